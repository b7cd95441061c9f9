"""Push: one claimed batch to the Push API, fenced by its lease, bracketed by status calls."""

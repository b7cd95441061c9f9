"""Windows: coalescing events per target, and closing due windows into claimed batches."""

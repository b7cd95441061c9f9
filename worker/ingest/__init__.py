"""Ingestion: broker messages in, decoded and checked events out, into their windows or quarantine."""

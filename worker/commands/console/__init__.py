"""`pushsync console`: the operators' web page over status, the dead-letter queue and the quarantine."""

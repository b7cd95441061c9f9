"""Full runs: rebuilds and identity syncs, started by the command line or through the broker."""

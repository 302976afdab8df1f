"""Locks held as objects in the state bucket: the generation scheme, short per-run
locks, and the one-open-run-per-workspace lock."""

"""The ``terraform`` engine: the run's stack applied on this machine."""

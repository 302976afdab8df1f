"""The data every layer shares: events, run records and states, job specs, run ids,
and the runs ledger that stores the records."""

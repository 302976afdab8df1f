"""Deploy tests: packages, plans, schedules, the CLI."""

"""Lithops-compatible FunctionExecutor and Storage (placeholder until the bridge lands)."""

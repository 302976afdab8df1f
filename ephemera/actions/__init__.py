"""Deployable actions, each a thin ``main(params) -> dict`` over the core."""

"""Tests of the local event runtime: scheduler, watchers, invoker, activations, up."""

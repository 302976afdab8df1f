"""The IBM Cloud Schematics workspace engine (``engine.backend: schematics``).

The SDK (``ibm-schematics``, ``ibm-cloud-sdk-core``) is imported only inside
:mod:`ephemera.engines.schematics.engine`, when the engine is built.
"""

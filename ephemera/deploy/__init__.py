"""Deploying Ephemera's actions to IBM Cloud Code Engine and OpenWhisk-compatible platforms.

- :mod:`ephemera.deploy.package`: the OpenWhisk ``python:3.11`` action zip
  (``__main__.py`` + ``virtualenv/``) and the Code Engine function/job source bundle.
- :mod:`ephemera.deploy.openwhisk`: the command plan of ``functions-create.sh``.
- :mod:`ephemera.deploy.code_engine`: the command plan of ``ephemera deploy code-engine``.
- :mod:`ephemera.deploy.steps`: plans as idempotent steps, printed (``--dry-run``) or run.
- :mod:`ephemera.deploy.cli`: ``ephemera deploy ...``.

Secrets never appear on a command line: the bound config goes into a parameter file
(OpenWhisk ``--param-file``) or a Code Engine secret created ``--from-env-file``, both
written mode 0600 into a private temporary folder.
"""

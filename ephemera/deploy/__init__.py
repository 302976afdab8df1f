"""Deploying Ephemera's actions to IBM Cloud Code Engine, Apache OpenWhisk and AWS Lambda.

- the ``code_engine`` and ``openwhisk`` config sections and the platform limits they are
  checked against live in the config floor (:mod:`ephemera.config.deploy_targets`).
- :mod:`ephemera.deploy.package`: the OpenWhisk ``python:3.11`` action zip (with every
  dependency in ``virtualenv/``) and the Code Engine source folder (prebuilt wheels of
  the source-only packages and a plain ``requirements.txt``).
- :mod:`ephemera.deploy.schedules`: an alarm's cron and dates in each platform's form.
- :mod:`ephemera.deploy.checks`: what every cloud deploy checks first.
- :mod:`ephemera.deploy.openwhisk`: the command plan of ``functions-create.sh``.
- :mod:`ephemera.deploy.code_engine`: the command plan of ``ephemera deploy code-engine``.
- :mod:`ephemera.deploy.steps`: plans as idempotent steps, printed (``--dry-run``) or run.
- :mod:`ephemera.deploy.invoke_token`: the Code Engine functions' per-deployment invoke
  token (made, kept 0600, checked in constant time).
- :mod:`ephemera.deploy.bound`: the digest of the config an OpenWhisk package binds.
- :mod:`ephemera.deploy.aws`: everything of ``ephemera deploy aws`` (Lambda functions,
  EventBridge Scheduler schedules, S3 notifications, IAM roles, the function zip).

``ephemera deploy ...`` (:mod:`ephemera.cli.deploy`) drives them. Secrets never appear
on a command line: the bound config goes into a parameter file (OpenWhisk
``--param-file``) or a Code Engine secret created ``--from-env-file``, both mode 0600.
"""

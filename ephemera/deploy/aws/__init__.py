"""Deploying Ephemera's actions to AWS: Lambda functions, EventBridge Scheduler, S3 notifications.

- :mod:`ephemera.config.aws_lambda`: the ``aws_lambda`` config section and Lambda's limits.
- :mod:`ephemera.deploy.aws.schedules`: an alarm's cron in EventBridge Scheduler's
  six-field ``cron()`` form.
- :mod:`ephemera.deploy.aws.policies`: the IAM documents: each function's role (trust
  and least-privilege policy), the scheduler's role, the S3 notification configuration.
- :mod:`ephemera.deploy.aws.plan`: the command plan of ``ephemera deploy aws`` (the
  ``aws`` CLI), and the files its commands read: the secret, roles and functions; the
  schedules and S3 notifications in :mod:`ephemera.deploy.aws.sources`, the shared
  building blocks (names, one command, a role's steps) in :mod:`ephemera.deploy.aws.commands`.
- :mod:`ephemera.deploy.aws.package`: the Lambda ``.zip`` (sources and dependencies at its root).

The functions run :mod:`ephemera.actions.lambda_entry`. Secrets never appear on a
command line: the config goes into a Secrets Manager secret from a 0600 file
(``--secret-string file://...``), and the functions read it at run time.
"""

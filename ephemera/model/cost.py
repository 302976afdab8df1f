"""What a run cost: a price per instance profile, times the VM-seconds the run paid for.

:data:`PRICES` is the built-in table: hourly on-demand price per instance, GPUs per
instance, the date and the source of each price. **The gx3 prices are estimates**:
they were written without access to IBM Cloud's price list (the catalog's VPC virtual
server pricing, which varies by region, account and contract), so each says so in its
``source``; so are the EC2 GPU instance types' (on-demand, Linux, us-east-1, recalled
without access to AWS's price list; spot runs are priced at on-demand until the table
has a spot column). Put the prices you pay in the config's ``cost.prices``, which win. The
local stack's "VMs" are processes on this machine and cost nothing.

A run's VM-seconds come from its boot timeline: each VM from its ``booted`` phase to
the destroy confirmation (or now, while it runs); the part between its first and last
task is the workload, the rest -- booting, installing, proving GPUs, idling until the
teardown -- is *idle* time, paid for outside the workload (:func:`ephemera.vm.reports.vm_seconds`).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ephemera.model.runs import RunRecord

if TYPE_CHECKING:
    from ephemera.config import Config

LOCAL_PROFILE = "local"  # the local stack's "instances": processes on this machine
# the variables (and resource attributes) that name an instance's shape: IBM's profile, EC2's instance type
PROFILE_VARIABLES = ("profile", "instance_type")
STACK_PROFILE_RE = re.compile(r'variable\s+"(?:profile|instance_type)"\s*\{[^}]*?default\s*=\s*"([^"]+)"', re.S)
_ESTIMATE = ("estimate (not read from IBM Cloud's price list, which could not be reached when this table was "
             "written): check the catalog's VPC virtual server pricing for your region and set cost.prices")


@dataclass(frozen=True)
class Price:
    profile: str  # the instance profile, e.g. gx3-16x80x1l4
    hourly: float  # price of one instance for one hour, in the table's currency
    gpus: int  # GPUs per instance
    as_of: str  # the date the price was read or estimated (YYYY-MM-DD)
    source: str  # where it comes from, in words
    estimate: bool = False  # True when nobody read it from a published price list

    def to_dict(self) -> dict:
        return asdict(self)


PRICES: dict[str, Price] = {p.profile: p for p in (
    Price(LOCAL_PROFILE, 0.0, 0, "2026-12-02", "the local stack: processes on this machine, no charge"),
    Price("gx3-16x80x1l4", 1.90, 1, "2026-12-02", _ESTIMATE, True),
    Price("gx3-32x160x2l4", 3.80, 2, "2026-12-02", _ESTIMATE, True),
    Price("gx3-64x320x4l4", 7.60, 4, "2026-12-02", _ESTIMATE, True),
    Price("gx3-24x120x1l40s", 2.90, 1, "2026-12-02", _ESTIMATE, True),
    Price("gx3-48x240x2l40s", 5.80, 2, "2026-12-02", _ESTIMATE, True),
)}
_EC2_ESTIMATE = ("estimate (AWS's public on-demand price, Linux, us-east-1, as recalled when this table was written without "
                 "access to the price list): check the EC2 pricing page for your region and set cost.prices")
_EC2 = {  # instance type: (hourly on-demand USD, GPUs)
    "g6.xlarge": (0.8048, 1), "g6.2xlarge": (0.9776, 1), "g6.4xlarge": (1.3232, 1), "g6.8xlarge": (2.0144, 1),
    "g6.16xlarge": (3.3968, 1), "g6.12xlarge": (4.6016, 4), "g6.24xlarge": (6.6752, 4), "g6.48xlarge": (13.3504, 8),
    "g6e.xlarge": (1.861, 1), "g6e.2xlarge": (2.24208, 1), "g6e.4xlarge": (3.00424, 1), "g6e.8xlarge": (4.52856, 1),
    "g6e.16xlarge": (7.57719, 1), "g6e.12xlarge": (10.49264, 4), "g6e.24xlarge": (15.06559, 4), "g6e.48xlarge": (30.13118, 8),
    "g5.xlarge": (1.006, 1), "g5.2xlarge": (1.212, 1), "g5.4xlarge": (1.624, 1), "g5.8xlarge": (2.448, 1),
    "g5.16xlarge": (4.096, 1), "g5.12xlarge": (5.672, 4), "g5.24xlarge": (8.144, 4), "g5.48xlarge": (16.288, 8),
    "p5.4xlarge": (6.88, 1), "p5.48xlarge": (55.04, 8),
}
PRICES.update({name: Price(name, hourly, gpus, "2026-12-07", _EC2_ESTIMATE, True) for name, (hourly, gpus) in _EC2.items()})
_GPUS_RE = re.compile(r"x(\d+)(?:l4|l40s|v100|a100|h100|h200|mi300x)$")


def price_table(config: Config) -> dict[str, Price]:
    """The built-in prices with the config's ``cost.prices`` over them."""
    table = dict(PRICES)
    for profile, entry in config.cost.prices.items():
        known = table.get(profile)
        gpus = entry.get("gpus", known.gpus if known else gpus_of(profile))
        table[profile] = Price(profile, entry["hourly"], gpus, entry.get("as_of") or "", entry["source"])
    return table


def gpus_of(profile: str) -> int:
    """GPUs per instance, read from a gx profile name (``gx3-32x160x2l4``: 2)."""
    match = _GPUS_RE.search(profile)
    return int(match.group(1)) if match else 0


def price_of(config: Config, profile: str) -> Price | None:
    return price_table(config).get(profile)


def stack_profile(stack_dir: Path | None) -> str | None:
    """The default of a stack's ``profile`` variable, or None (a stack without one: local)."""
    if stack_dir is None or not Path(stack_dir).is_dir():
        return None
    for tf in sorted(Path(stack_dir).glob("*.tf")):
        match = STACK_PROFILE_RE.search(tf.read_text())
        if match:
            return match.group(1)
    return None


def run_profile(run: RunRecord, config: Config, stack_dir: Path | None = None) -> str:
    """The instance profile a run's VMs had: as the stack reported them, else as configured,
    else the stack's default; the local profile for a stack without one."""
    for vm in (run.outputs or {}).get("workers") or []:
        if isinstance(vm, dict) and vm.get("profile"):
            return str(vm["profile"])
    configured = instance_shape(config.workspace.variables)
    return str(configured or stack_profile(stack_dir) or LOCAL_PROFILE)


def instance_shape(values: dict) -> str | None:
    """The instance profile named in stack variables or a planned resource's attributes."""
    return next((str(values[name]) for name in PROFILE_VARIABLES if values.get(name)), None)


@dataclass
class RunCost:
    profile: str  # the instance profile priced
    price: Price | None  # its price (None: not in the table, cost unknown)
    currency: str  # of every amount below
    vm_seconds: float  # paid VM time of every VM of the run
    workload_seconds: float  # the part in the workload
    idle_seconds: float  # the part outside it (booting, installing, idling)
    final: bool  # the run is destroyed: these are its final numbers

    @property
    def cost(self) -> float | None:
        return None if self.price is None else self.vm_seconds / 3600 * self.price.hourly

    @property
    def idle_cost(self) -> float | None:
        return None if self.price is None else self.idle_seconds / 3600 * self.price.hourly

    def to_dict(self) -> dict:
        return {"profile": self.profile, "currency": self.currency, "vm_seconds": self.vm_seconds,
                "workload_seconds": self.workload_seconds, "idle_seconds": self.idle_seconds, "cost": self.cost,
                "idle_cost": self.idle_cost, "final": self.final, "price": self.price.to_dict() if self.price else None}


def run_cost(run: RunRecord, config: Config, seconds: dict | None = None, stack_dir: Path | None = None) -> RunCost:
    """A run's cost from its VM-seconds (the record's, else ``seconds``: what its VMs report so far)."""
    seconds = run.vm_seconds or seconds or {}
    profile = run_profile(run, config, stack_dir)
    currency = config.cost.currency or "USD"
    return RunCost(profile, price_of(config, profile), currency, float(seconds.get("total", 0.0)),
                   float(seconds.get("workload", 0.0)), float(seconds.get("outside", 0.0)), bool(run.vm_seconds))


def money(amount: float | None, currency: str) -> str:
    """An amount as the CLI and the dashboard show it (4 decimals below one unit)."""
    if amount is None:
        return "unknown"
    return f"{amount:.4f} {currency}" if amount < 1 else f"{amount:,.2f} {currency}"

"""What a run cost: a price per instance profile, times the VM-seconds the run paid for.

The price table is the stacks' (each spec's ``[prices]``: hourly on-demand price per
instance, GPUs per instance, the date and the source of each price, and whether it is
an estimate; every registered stack's, since a ledger may hold runs of another stack)
with the config's ``cost.prices`` over it, which win. Which profile a
run's VMs have comes from the stack too: what its outputs report, else the variable
its spec names (``profile_variable``) as configured or by default, else its fixed
``profile`` (the local stack's "VMs" are processes on this machine and cost nothing).

A run's VM-seconds come from its boot timeline: each VM from its ``booted`` phase to
the destroy confirmation (or now, while it runs); the part between its first and last
task is the workload, the rest -- booting, installing, proving GPUs, idling until the
teardown -- is *idle* time, paid for outside the workload (:func:`ephemera.vm.reports.vm_seconds`).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Iterable

from ephemera.model.runs import RunRecord

if TYPE_CHECKING:
    from ephemera.config import Config
    from ephemera.stack.spec import StackSpec

UNKNOWN_PROFILE = "unknown"  # a run whose stack is unknown here and whose outputs name no profile
# the variables (and resource attributes) that name an instance's shape: IBM's profile, EC2's instance type
PROFILE_VARIABLES = ("profile", "instance_type")


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


_GPUS_RE = re.compile(r"x(\d+)(?:l4|l40s|v100|a100|h100|h200|mi300x)$")


def price_table(config: Config, stacks: Iterable[StackSpec] = ()) -> dict[str, Price]:
    """The stacks' prices with the config's ``cost.prices`` over them."""
    table = {
        p.profile: Price(p.profile, p.hourly, p.gpus, p.as_of, p.source, p.estimate)
        for stack in stacks
        for p in stack.prices.values()
    }
    for profile, entry in config.cost.prices.items():
        known = table.get(profile)
        gpus = entry.get("gpus", known.gpus if known else gpus_of(profile))
        table[profile] = Price(profile, entry["hourly"], gpus, entry.get("as_of") or "", entry["source"])
    return table


def gpus_of(profile: str) -> int:
    """GPUs per instance, read from a gx profile name (``gx3-32x160x2l4``: 2)."""
    match = _GPUS_RE.search(profile)
    return int(match.group(1)) if match else 0


def price_of(config: Config, profile: str, stacks: Iterable[StackSpec] = ()) -> Price | None:
    return price_table(config, stacks).get(profile)


def run_profile(run: RunRecord, config: Config, stack: StackSpec | None = None) -> str:
    """The instance profile a run's VMs had: as the stack reported them (an output's
    per-VM ``profile``), else its profile variable as configured, else the stack's default."""
    for vm in (run.outputs or {}).get("workers") or []:
        if isinstance(vm, dict) and vm.get("profile"):
            return str(vm["profile"])
    if stack is None:
        return UNKNOWN_PROFILE
    configured = config.workspace.variables.get(stack.profile_variable) if stack.profile_variable else None
    return str(configured or stack.default_profile() or UNKNOWN_PROFILE)


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
        return {
            "profile": self.profile,
            "currency": self.currency,
            "vm_seconds": self.vm_seconds,
            "workload_seconds": self.workload_seconds,
            "idle_seconds": self.idle_seconds,
            "cost": self.cost,
            "idle_cost": self.idle_cost,
            "final": self.final,
            "price": self.price.to_dict() if self.price else None,
        }


def run_cost(
    run: RunRecord, config: Config, seconds: dict | None = None, stack: StackSpec | None = None, stacks: Iterable[StackSpec] = ()
) -> RunCost:
    """A run's cost from its VM-seconds (the record's, else ``seconds``: what its VMs report so
    far); ``stack`` is the config's stack, ``stacks`` every stack whose prices count."""
    seconds = run.vm_seconds or seconds or {}
    profile = run_profile(run, config, stack)
    currency = config.cost.currency or "USD"
    return RunCost(
        profile,
        price_of(config, profile, [*stacks, *([stack] if stack else [])]),
        currency,
        float(seconds.get("total", 0.0)),
        float(seconds.get("workload", 0.0)),
        float(seconds.get("outside", 0.0)),
        bool(run.vm_seconds),
    )


def money(amount: float | None, currency: str) -> str:
    """An amount as the CLI and the dashboard show it (4 decimals below one unit)."""
    if amount is None:
        return "unknown"
    return f"{amount:.4f} {currency}" if amount < 1 else f"{amount:,.2f} {currency}"

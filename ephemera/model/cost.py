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

Spot: a price may have a spot column (``spot_hourly``). Which market a run's VMs ran in
is what the stack's outputs report per VM (``market``: "spot" or "on-demand"), else the
``spot`` variable as configured. A recovered run pays each VM lifetime at the price of
the market it ran in (:class:`PaidLifetime`): the lifetimes lost to preemptions, then
the current one. A spot lifetime whose profile has no spot price is priced at on-demand,
the most a spot instance costs (AWS's default spot ceiling), and said so.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Iterable

from ephemera.model.runs import RunRecord

if TYPE_CHECKING:
    from ephemera.config import Config
    from ephemera.stack.spec import StackSpec

UNKNOWN_PROFILE = "unknown"  # a run whose stack is unknown here and whose outputs name no profile
# the variables (and resource attributes) that name an instance's shape: IBM's profile, EC2's instance type
PROFILE_VARIABLES = ("profile", "instance_type")
SPOT, ON_DEMAND = "spot", "on-demand"  # the markets a VM runs in, as the stacks' outputs name them


@dataclass(frozen=True)
class Price:
    profile: str  # the instance profile, e.g. gx3-16x80x1l4
    hourly: float  # price of one instance for one hour, in the table's currency
    gpus: int  # GPUs per instance
    as_of: str  # the date the price was read or estimated (YYYY-MM-DD)
    source: str  # where it comes from, in words
    estimate: bool = False  # True when nobody read it from a published price list
    spot_hourly: float | None = None  # one spot instance for one hour (None: no spot price known)

    def rate(self, market: str) -> float:
        """The hourly price in ``market``: spot's where known, else on-demand (spot's ceiling)."""
        return self.spot_hourly if market == SPOT and self.spot_hourly is not None else self.hourly

    def to_dict(self) -> dict:
        return asdict(self)


_GPUS_RE = re.compile(r"x(\d+)(?:l4|l40s|v100|a100|h100|h200|mi300x)$")


def price_table(config: Config, stacks: Iterable[StackSpec] = ()) -> dict[str, Price]:
    """The stacks' prices with the config's ``cost.prices`` over them."""
    table = {
        p.profile: Price(p.profile, p.hourly, p.gpus, p.as_of, p.source, p.estimate, p.spot_hourly)
        for stack in stacks
        for p in stack.prices.values()
    }
    for profile, entry in config.cost.prices.items():
        known = table.get(profile)
        gpus = entry.get("gpus", known.gpus if known else gpus_of(profile))
        # the config's entry is the user's price list for the profile: a spot price it leaves out is unknown
        table[profile] = Price(
            profile, entry["hourly"], gpus, entry.get("as_of") or "", entry["source"], False, entry.get("spot_hourly")
        )
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


def run_market(run: RunRecord, config: Config, stack: StackSpec | None = None) -> str:
    """The market the run's current VMs run in: as the stack reported them (each VM's
    ``market`` in its outputs), else its ``spot`` variable as configured."""
    vms = [vm for name in ("workers", stack.vms.list if stack else None) if name for vm in (run.outputs or {}).get(name) or []]
    markets = {vm.get("market") for vm in vms if isinstance(vm, dict)} & {SPOT, ON_DEMAND}
    if markets:
        return SPOT if SPOT in markets else ON_DEMAND
    takes_spot = stack is not None and "spot" in stack.variables
    return SPOT if takes_spot and config.workspace.variables.get("spot") is True else ON_DEMAND


def instance_shape(values: dict) -> str | None:
    """The instance profile named in stack variables or a planned resource's attributes."""
    return next((str(values[name]) for name in PROFILE_VARIABLES if values.get(name)), None)


@dataclass(frozen=True)
class PaidLifetime:
    """VM time of one generation of a run's VMs, priced in the market it ran in."""

    seconds: float  # paid VM-seconds of that generation, all its VMs
    market: str = ON_DEMAND  # SPOT or ON_DEMAND
    workload_seconds: float = 0.0  # the part in the workload


def earlier_lifetimes(run: RunRecord) -> list[PaidLifetime]:
    """The VM lifetimes a run lost to preemptions, as its record keeps them (``preemptions``:
    one entry per preemption with its ``paid_seconds``, ``market`` and optional ``workload_seconds``);
    [] for a run never preempted. An entry without a number >= 0 of paid seconds is left out."""
    found = []
    for entry in getattr(run, "preemptions", None) or []:
        paid = entry.get("paid_seconds") if isinstance(entry, dict) else None
        if isinstance(paid, (int, float)) and not isinstance(paid, bool) and paid >= 0:
            market = SPOT if entry.get("market", SPOT if entry.get("spot", True) else ON_DEMAND) == SPOT else ON_DEMAND
            work = entry.get("workload_seconds")
            in_workload = (
                float(work) if isinstance(work, (int, float)) and not isinstance(work, bool) and 0 <= work <= paid else 0.0
            )
            found.append(PaidLifetime(float(paid), market, in_workload))
    return found


@dataclass
class RunCost:
    profile: str  # the instance profile priced
    price: Price | None  # its price (None: not in the table, cost unknown)
    currency: str  # of every amount below
    vm_seconds: float  # paid VM time of every VM of the run, every lifetime
    workload_seconds: float  # the part in the workload
    idle_seconds: float  # the part outside it (booting, installing, idling)
    final: bool  # the run is destroyed: these are its final numbers
    lifetimes: list[PaidLifetime] = field(default_factory=list)  # the VM time by generation and market (empty: all on-demand)

    def _priced(self) -> list[PaidLifetime]:
        return self.lifetimes or [PaidLifetime(self.vm_seconds, ON_DEMAND, self.workload_seconds)]

    @property
    def market(self) -> str:
        """SPOT when any of the run's VM time was on spot."""
        return SPOT if any(life.market == SPOT for life in self._priced()) else ON_DEMAND

    @property
    def spot_at_on_demand(self) -> bool:
        """Spot time priced at on-demand, for want of a spot price (the cost is then an upper bound)."""
        return self.market == SPOT and self.price is not None and self.price.spot_hourly is None

    @property
    def cost(self) -> float | None:
        price = self.price
        return None if price is None else sum(life.seconds / 3600 * price.rate(life.market) for life in self._priced())

    @property
    def idle_cost(self) -> float | None:
        price = self.price
        if price is None:
            return None
        return sum(max(0.0, life.seconds - life.workload_seconds) / 3600 * price.rate(life.market) for life in self._priced())

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
            "market": self.market,
            "lifetimes": [asdict(life) for life in self._priced()],
            "price": self.price.to_dict() if self.price else None,
        }


def run_cost(
    run: RunRecord,
    config: Config,
    seconds: dict | None = None,
    stack: StackSpec | None = None,
    stacks: Iterable[StackSpec] = (),
    earlier: list[PaidLifetime] | None = None,
) -> RunCost:
    """A run's cost from its VM-seconds (the record's, else ``seconds``: what its current VMs
    report so far) in its current market, plus the ``earlier`` lifetimes its preemptions cost
    (default: as its record keeps them); ``stack`` is the config's stack, ``stacks`` every
    stack whose prices count."""
    seconds = run.vm_seconds or seconds or {}
    profile = run_profile(run, config, stack)
    currency = config.cost.currency or "USD"
    current = PaidLifetime(float(seconds.get("total", 0.0)), run_market(run, config, stack), float(seconds.get("workload", 0.0)))
    lifetimes = [*(earlier_lifetimes(run) if earlier is None else earlier), current]
    total = sum(life.seconds for life in lifetimes)
    workload = sum(life.workload_seconds for life in lifetimes)
    return RunCost(
        profile,
        price_of(config, profile, [*stacks, *([stack] if stack else [])]),
        currency,
        round(total, 1),
        round(workload, 1),
        round(total - workload, 1),
        bool(run.vm_seconds),
        lifetimes,
    )


def money(amount: float | None, currency: str) -> str:
    """An amount as the CLI and the dashboard show it (4 decimals below one unit)."""
    if amount is None:
        return "unknown"
    return f"{amount:.4f} {currency}" if amount < 1 else f"{amount:,.2f} {currency}"

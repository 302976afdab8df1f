"""Budget caps: what one run may cost, and what a calendar month may.

At apply, :func:`admit` prices the run (its VMs' instance profile in the price table,
:mod:`ephemera.model.cost`, times its VM count) and:

- with ``budget.max_cost_per_run``, computes its *effective hard deadline*: the sooner
  of its hard deadline and the moment its VMs, paid from the apply on, reach the cap
  (``apply + cap / hourly``). It is recorded on the run (``RunRecord.budget``), shown by
  the apply's result and ``runs show``, given to the stack as its ``hard_deadline``
  variable (the cloud VMs power themselves off there, should the reaper be late), and
  the reaper ends the run there (:mod:`ephemera.lifecycle.cost_cap`, ``BUDGET_EXCEEDED``);
- with ``budget.monthly``, refuses the apply (``BUDGET_EXCEEDED``) when the month's
  spend plus the run's most (its VMs until its effective deadline) would exceed the
  overall cap or its workspace's, and notifies ``BUDGET`` once per (month, cap, share)
  when that sum crosses ``budget.notify_at`` of a cap.

The month is the calendar month in UTC in which a run was created. Its spend: each
destroyed run's final cost (its recorded VM-seconds), and each open run's most (its
VMs from its apply until its effective deadline: reserved, since the reaper ends it
there at the latest); a run still REQUESTED and never admitted counts once admitted. The run being applied is priced the same way, so a cap holds
however long the admitted runs live; admissions of one month take turns (a short
storage lock), so two concurrent applies cannot both take the last room under a cap. A run whose profile has no price counts as
unknown (0, with one warning per computation); a run under a cap whose own profile
has no price is refused, naming ``cost.prices``.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Callable
from datetime import datetime, timedelta, timezone

from ephemera import layout
from ephemera.config.budget import OVERALL
from ephemera.context import Context
from ephemera.errors import BudgetExceededError, ConfigError, EphemeraError
from ephemera.locking.storage_lock import StorageLock
from ephemera.model.cost import Price, money, price_table, run_cost, run_profile
from ephemera.model.runids import stamp, stamp_of
from ephemera.model.runs import RunRecord, RunState
from ephemera.notify import notify_once
from ephemera.stack import StackSpec, config_stack, registered_stacks
from ephemera.timeutil import now_utc

log = logging.getLogger("ephemera.budget")
LOCK_TTL = 60.0  # seconds a crashed admission holds up the month's others at most
STAMP_SKEW = timedelta(days=1)  # a run id's stamp and its record's created_at differ by moments: a day covers it
LOCK_WAIT = 30.0  # seconds an admission waits for another one (LOCK_TIMEOUT, retryable, after that)


@dataclass
class Admission:
    """A run's budget as computed at its apply (stored as ``RunRecord.budget``)."""

    at: str  # when it was admitted (the apply's start; its VMs are paid from here at the latest)
    profile: str  # the instance profile priced
    vms: int  # how many VMs of that profile
    hourly: float  # what all of them cost per hour
    currency: str  # of every amount here
    cap: float | None  # budget.max_cost_per_run then (None: no per-run cap)
    deadline: str  # effective hard deadline: the sooner of the hard deadline and at + cap / hourly
    capped: bool  # the cost cap, not timeouts.hard, sets the deadline
    most: float  # the most the run can cost: hourly until the deadline

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Admission | None":
        try:
            return cls(**{k: data[k] for k in cls.__dataclass_fields__})
        except (KeyError, TypeError):
            return None


@dataclass
class MonthSpend:
    """What runs created in one calendar month (UTC) cost, or may still cost."""

    month: str  # YYYY-MM
    currency: str  # of every amount here
    overall: float = 0.0  # every workspace together
    by_workspace: dict[str, float] = field(default_factory=dict)  # workspace -> its spend
    reserved: float = 0.0  # the part that is open runs' most (not yet paid, possibly never)
    unknown: list[str] = field(default_factory=list)  # runs without a price (counted as 0)

    def of(self, scope: str) -> float:
        return self.overall if scope == OVERALL else self.by_workspace.get(scope, 0.0)


def month_of(when: datetime | str) -> str:
    """The calendar month (UTC) of a time: ``YYYY-MM``."""
    moment = datetime.fromisoformat(when) if isinstance(when, str) else when
    return moment.astimezone(timezone.utc).strftime("%Y-%m")


def _stacks(config) -> tuple[StackSpec | None, list[StackSpec]]:
    try:
        stack: StackSpec | None = config_stack(config)
    except EphemeraError:  # a stack unknown here: its runs' prices may still be in cost.prices
        stack = None
    return stack, registered_stacks() + ([stack] if stack else [])


def run_price(config, run: RunRecord) -> tuple[str, Price | None, int]:
    """(profile, its price or None, VM count) of a run as the config's stack makes it."""
    stack, stacks = _stacks(config)
    profile = run_profile(run, config, stack)
    vms = run.job.worker_count if run.job is not None else 1
    return profile, price_table(config, stacks).get(profile), vms


def _most(run: RunRecord, config) -> float | None:
    """The most an open run can cost: its admission's, else (admitted before any cap)
    its VMs from its creation until its hard deadline; None without a price."""
    admission = Admission.from_dict(run.budget) if run.budget else None
    if admission is not None:
        return admission.most
    _, price, vms = run_price(config, run)
    if price is None or not run.hard_deadline:
        return None
    hours = (datetime.fromisoformat(run.hard_deadline) - datetime.fromisoformat(run.created_at)).total_seconds() / 3600
    return max(0.0, hours) * price.hourly * vms


def _stamped_in(month: str) -> Callable[[str], bool]:
    """Whether a run id's stamp may lie in ``month``: records of other months are never
    read (the ledger keeps every month). An id without a stamp is read."""
    start = datetime.strptime(month, "%Y-%m").replace(tzinfo=timezone.utc)
    end = (start + timedelta(days=32)).replace(day=1)
    low, high = stamp(start - STAMP_SKEW), stamp(end + STAMP_SKEW)

    def wanted(run_id: str) -> bool:
        at = stamp_of(run_id)
        return at is None or low <= at < high

    return wanted


def month_spend(ctx: Context, month: str, exclude: str = "") -> MonthSpend:
    """Spend of the runs created in ``month`` (``exclude``: a run left out, the one being admitted)."""
    config = ctx.config
    stack, stacks = _stacks(config)
    spend = MonthSpend(month, config.cost.currency or "USD")
    runs, invalid = ctx.ledger.scan(_stamped_in(month))
    for exc in invalid:
        log.warning("budget: skipping %s", exc.message)
    for run in runs:
        if run.run_id == exclude or month_of(run.created_at) != month:
            continue
        if run.state == RunState.REQUESTED and not run.budget:
            continue  # not admitted yet: it counts once its own admission has priced it
        if run.state == RunState.DESTROYED:
            amount = run_cost(run, config, stack=stack, stacks=stacks).cost
        else:
            amount = _most(run, config)
            spend.reserved += amount or 0.0
        if amount is None:
            spend.unknown.append(run.run_id)
            continue
        spend.overall += amount
        spend.by_workspace[run.workspace] = spend.by_workspace.get(run.workspace, 0.0) + amount
    if spend.unknown:
        log.warning(
            "budget: %d run(s) of %s have no price and count as 0 (e.g. %s); set cost.prices for their profiles",
            len(spend.unknown),
            month,
            spend.unknown[0],
        )
    return spend


def caps_of(config, workspace: str) -> list[tuple[str, float]]:
    """The monthly caps a run of ``workspace`` counts against: (scope, amount)."""
    monthly = config.budget.monthly
    return [(scope, monthly[scope]) for scope in (OVERALL, workspace) if scope in monthly]


def _scope_key(scope: str) -> str:
    return OVERALL if scope == OVERALL else f"workspace/{scope}"


def _scope_name(scope: str) -> str:
    return "overall" if scope == OVERALL else f"workspace '{scope}'"


def admit(ctx: Context, run: RunRecord, now: datetime | None = None) -> Admission | None:
    """The run's budget at its apply, recorded on it (and set on ``run``, whose stack
    variables then carry the effective deadline); BudgetExceededError if a monthly cap
    refuses it, ConfigError (``cost.prices``) if a cap applies and its profile has no
    price. None (and nothing recorded) without a ``budget`` section."""
    config, budget = ctx.config, ctx.config.budget
    if not budget.enabled:
        return None
    now = now or now_utc()
    profile, price, vms = run_price(config, run)
    if price is None:
        raise ConfigError(
            f"cost.prices.{profile}",
            f"the run's instance profile '{profile}' has no price, so the budget caps cannot be enforced",
            f"set cost.prices.{profile}.hourly (the price of one instance for one hour), or remove the budget section",
        )
    hourly, currency = price.hourly * vms, config.cost.currency or "USD"
    hard = datetime.fromisoformat(run.hard_deadline) if run.hard_deadline else now + timedelta(seconds=config.timeouts.hard)
    deadline, capped = hard, False
    if budget.max_cost_per_run is not None and hourly > 0:
        by_cost = now + timedelta(hours=budget.max_cost_per_run / hourly)
        deadline, capped = (by_cost, True) if by_cost < hard else (hard, False)
    most = hourly * max(0.0, (deadline - now).total_seconds()) / 3600
    admission = Admission(
        now.isoformat(), profile, vms, hourly, currency, budget.max_cost_per_run, deadline.isoformat(), capped, most
    )
    month = month_of(run.created_at)
    caps = caps_of(config, run.workspace)
    if not caps:
        ctx.ledger.update(run.run_id, lambda record: setattr(record, "budget", admission.to_dict()))
        run.budget = admission.to_dict()
        return admission
    # one admission at a time per month: two applies must not both fit in the same room under a cap
    with StorageLock(ctx.storage, config.state_bucket, f"budget-{month}", ttl=LOCK_TTL, wait=LOCK_WAIT):
        spend = month_spend(ctx, month, exclude=run.run_id)
        crossed = []
        for scope, cap in caps:
            spent = spend.of(scope)
            if spent + most > cap:
                raise BudgetExceededError(
                    f"run '{run.run_id}' refused: {_scope_name(scope)} has spent or reserved {money(spent, currency)} of "
                    f"its {money(cap, currency)} monthly cap for {month}, and this run may cost up to {money(most, currency)} "
                    f"({vms} x {profile} at {price.hourly:g} {currency}/h until {deadline.isoformat(timespec='seconds')}); "
                    f"raise budget.monthly.{scope}, lower budget.max_cost_per_run or timeouts.hard, or wait for next month"
                )
            if spent + most >= budget.notify_at * cap:
                crossed.append((scope, cap, spent))
        ctx.ledger.update(run.run_id, lambda record: setattr(record, "budget", admission.to_dict()))
    run.budget = admission.to_dict()
    for scope, cap, spent in crossed:
        _notify_share(ctx, run, month, scope, cap, spent, most, currency)
    return admission


def _notify_share(
    ctx: Context, run: RunRecord, month: str, scope: str, cap: float, spent: float, most: float, currency: str
) -> None:
    share = ctx.config.budget.notify_at
    percent = round(share * 100)
    reason = (
        f"{_scope_name(scope)} reached {percent} % of its monthly cap for {month}: {money(spent, currency)} spent or "
        f"reserved and up to {money(most, currency)} for run {run.run_id}, of {money(cap, currency)}"
    )
    log.info("budget: %s", reason)
    notify_once(
        ctx, ctx.ledger.get(run.run_id), "BUDGET", layout.budget_notified_key(month, _scope_key(scope), percent), "", reason
    )


def deadline_line(run: RunRecord) -> str | None:
    """How ``runs show`` and the apply's result say a run's cost cap, if it has one."""
    admission = Admission.from_dict(run.budget) if run.budget else None
    if admission is None or admission.cap is None:
        return None
    cur = admission.currency
    if not admission.capped:
        return f"cost cap {money(admission.cap, cur)}: not reached before the hard deadline {run.hard_deadline}"
    return (
        f"effective hard deadline {admission.deadline}: cost cap {money(admission.cap, cur)} at "
        f"{admission.hourly:g} {cur}/h ({admission.vms} x {admission.profile})"
    )

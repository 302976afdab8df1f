"""``ephemera plan``: print what an apply of the config's workspace would create, and its cost;
``ephemera plan --prices``: the price table it prices with (on-demand and spot)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ephemera.cli.tables import human_duration, table
from ephemera.context import Context
from ephemera.lifecycle.plan import PlanReport, known_stack, plan_workspace
from ephemera.model.cost import Price, money, price_table
from ephemera.stack import registered_stacks

if TYPE_CHECKING:
    from ephemera.config import Config


def price_line(price: Price, currency: str, spot: bool) -> str:
    """One profile's prices per instance: spot beside on-demand when spot is asked."""
    on_demand = f"{price.hourly:g} {currency}/h on-demand"
    if not spot:
        return f"{price.hourly:g} {currency}/h per instance"
    if price.spot_hourly is None:
        return (
            f"spot price unknown, priced at on-demand ({on_demand}), the most a spot instance costs "
            f"(set cost.prices.{price.profile}.spot_hourly)"
        )
    return f"{price.spot_hourly:g} {currency}/h on spot, {on_demand}, per instance"


def format_plan(report: PlanReport, show_log: bool = False) -> str:
    plan = report.plan
    parts = [f"plan of workspace {report.workspace} ({report.engine} engine): {plan.summary}"]
    if plan.resources:
        parts.append(
            table(
                ["RESOURCE", "ACTION", "PROFILE"],
                [[r.address, r.action, r.attributes.get("profile", "")] for r in plan.resources],
            )
        )
    price = report.price
    each = f"{price.gpus} GPU{'s' if price.gpus != 1 else ''} each" if price else "GPUs unknown"
    parts.append(f"\ninstances: {report.instances} x {report.profile} ({each}); GPUs in all: {report.gpus}")
    if report.spot:
        parts.append("capacity: spot -- the VMs may be preempted (reclaimed by the cloud) at any time")
        parts.append(f"  on preemption: {report.preemption or 'the stack does not say'}")
    if price is None:
        parts.append(f"estimated cost: unknown: no price for {report.profile} (set cost.prices.{report.profile}.hourly)")
    else:
        parts.append(
            f"estimated cost{' on spot' if report.spot else ''}: {money(report.per_hour, report.currency)} per hour; "
            f"{money(report.for_hard_timeout, report.currency)} at most, for the hard timeout "
            f"({human_duration(report.hard_timeout)})"
        )
        parts.append(f"  price of {report.profile}: {price_line(price, report.currency, report.spot)}")
        parts.append(f"  as of {price.as_of or 'an unknown date'}: {price.source}")
    if show_log:
        parts.append("\n" + plan.log)
    parts.append("\nnothing was created: this was a plan")
    return "\n".join(parts)


def prices_table(config: Config) -> str:
    """The price table (every registered stack's, with the config's ``cost.prices`` over it):
    on-demand and spot per instance-hour, GPUs, date, estimate or not, source."""
    stack = known_stack(config)
    currency = config.cost.currency or "USD"
    prices = price_table(config, [*registered_stacks(), *([stack] if stack else [])])
    rows = [
        [
            p.profile,
            f"{p.hourly:g}",
            "unknown" if p.spot_hourly is None else f"{p.spot_hourly:g}",
            p.gpus,
            p.as_of or "unknown",
            "yes" if p.estimate else "",
            p.source,
        ]
        for p in sorted(prices.values(), key=lambda p: p.profile)
    ]
    head = [
        f"prices per instance-hour, in {currency}: the stacks' table, with cost.prices over it; a spot run "
        "whose spot price is unknown is priced at on-demand, the most spot costs"
    ]
    return "\n".join(head + [table(["PROFILE", "ON-DEMAND", "SPOT", "GPUS", "AS OF", "ESTIMATE", "SOURCE"], rows)])


def cmd_plan(args) -> int:
    ctx = Context(args.config)
    print(prices_table(ctx.config) if args.prices else format_plan(plan_workspace(ctx), args.log))
    return 0

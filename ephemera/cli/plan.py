"""``ephemera plan``: print what an apply of the config's workspace would create, and its cost."""

from __future__ import annotations

from ephemera.cli.tables import human_duration, table
from ephemera.context import Context
from ephemera.lifecycle.plan import PlanReport, plan_workspace
from ephemera.model.cost import money


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
    if price is None:
        parts.append(f"estimated cost: unknown: no price for {report.profile} (set cost.prices.{report.profile}.hourly)")
    else:
        parts.append(
            f"estimated cost: {money(report.per_hour, report.currency)} per hour; "
            f"{money(report.for_hard_timeout, report.currency)} at most, for the hard timeout "
            f"({human_duration(report.hard_timeout)})"
        )
        parts.append(
            f"  price of {report.profile}: {price.hourly:g} {report.currency}/h per instance, "
            f"as of {price.as_of or 'an unknown date'}: {price.source}"
        )
    if show_log:
        parts.append("\n" + plan.log)
    parts.append("\nnothing was created: this was a plan")
    return "\n".join(parts)


def cmd_plan(args) -> int:
    print(format_plan(plan_workspace(Context(args.config)), args.log))
    return 0

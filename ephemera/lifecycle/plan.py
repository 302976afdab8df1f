"""``ephemera plan``: what an apply of the config's workspace would create, and what it would cost.

The run's Terraform variables are built as for a real run (:func:`stack_variables`),
for a run that is never recorded: no run record, no lock, no job spec, no bundle
upload (the boot documents are placeholders, since a plan boots nothing). The
engine's plan (:class:`~ephemera.engines.base.Planner`) lists the resources; the
instances among them (resources with a priced ``profile``, else the stack's VMs, one
per worker) give the GPU count and, with the price table, the cost per hour and for
the hard timeout -- the most a run can cost before the reaper destroys it. A spot
config (``workspace.variables.spot``) is priced at the spot price (on-demand where the
table has none: the most spot costs), with the on-demand price beside it and what the
stack does to a preempted VM (its spec's ``preemption``).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import timedelta

from ephemera import layout
from ephemera.context import Context
from ephemera.engines.base import Planner
from ephemera.engines.plan import Plan
from ephemera.errors import EngineError, EphemeraError
from ephemera.lifecycle.activities import stack_variables
from ephemera.bundle.delivery import prefixes_variable
from ephemera.bundle.preflight import check_workload
from ephemera.model.cost import ON_DEMAND, SPOT, Price, gpus_of, instance_shape, price_table, run_market, run_profile
from ephemera.model.jobs import JobSpec
from ephemera.model.runs import RunRecord
from ephemera.storage.spec import RunScope
from ephemera.stack import StackSpec, config_stack, registered_stacks
from ephemera.timeutil import now_utc


def known_stack(config) -> StackSpec | None:
    """The spec of the config's stack, None where it has none on this machine (its cost is then unknown)."""
    try:
        return config_stack(config)
    except EphemeraError:
        return None


@dataclass
class PlanReport:
    workspace: str  # the workspace planned
    engine: str  # the engine that planned it
    plan: Plan  # the engine's plan
    instances: int  # VMs an apply would create
    profile: str  # their instance profile
    price: Price | None  # its price (None: not in the table)
    gpus: int  # GPUs in all
    currency: str  # of the amounts below
    hard_timeout: int  # seconds a run may live at most (timeouts.hard)
    market: str = ON_DEMAND  # the capacity asked for: SPOT or ON_DEMAND
    preemption: str = ""  # with spot: what the stack does to a preempted VM, in words

    @property
    def spot(self) -> bool:
        return self.market == SPOT

    @property
    def per_hour(self) -> float | None:
        """All instances for one hour, in the market asked for."""
        return None if self.price is None else self.instances * self.price.rate(self.market)

    @property
    def on_demand_per_hour(self) -> float | None:
        return None if self.price is None else self.instances * self.price.hourly

    @property
    def for_hard_timeout(self) -> float | None:
        return None if self.per_hour is None else self.per_hour * self.hard_timeout / 3600


def plan_variables(ctx: Context, run_id: str) -> tuple[dict, dict, int]:
    """(plain, secure) variables of a run that is never recorded, and its worker count."""
    config = ctx.config
    workspace = config.workspace.name
    deadline = now_utc() + timedelta(seconds=config.timeouts.hard)
    workers = int(config.workspace.variables.get("worker_count", 1))
    job = JobSpec(
        run_id=run_id,
        workspace=workspace,
        entry=config.workload.entry,
        params={},
        state_bucket=config.state_bucket,
        output_bucket=config.output_bucket,
        output_prefix=layout.output_prefix(config.workload.output_prefix, run_id),
        worker_count=workers,
        hard_deadline=deadline.isoformat(),
    )
    run = RunRecord(run_id=run_id, workspace=workspace, engine=config.engine.backend, hard_deadline=deadline.isoformat(), job=job)
    plain, secure = stack_variables(ctx, run)
    placeholder = [
        base64.b64encode(json.dumps({"run_id": run_id, "worker": w, "plan": True}).encode()).decode() for w in range(workers)
    ]
    scope = RunScope(
        run_id=run_id,
        state_bucket=config.state_bucket,
        output_bucket=config.output_bucket,
        prefixes=layout.run_prefixes(run_id, job.output_prefix, "0" * 64),
        seconds=0,
    )
    # a plan boots nothing: no bundle is uploaded (its key is a placeholder in run_prefixes too)
    plain.update(vm_boot=placeholder, bootstrap_script="", run_prefixes=prefixes_variable(scope))
    return plain, secure, workers


def plan_workspace(ctx: Context) -> PlanReport:
    """Plan the config's workspace and estimate its cost; nothing is created."""
    engine, engine_name = ctx.engine, ctx.engine.name
    if not isinstance(engine, Planner):
        raise EngineError(f"the {engine_name} engine cannot plan; plan with Terraform in the stack's folder")
    config = ctx.config
    check_workload(config)  # the pre-apply check: a plan says what an apply would refuse
    workspace = config.workspace.name
    run_id = f"{workspace}-plan"
    plain, secure, workers = plan_variables(ctx, run_id)
    plan = engine.plan(workspace, run_id, plain, secure)
    stack = known_stack(config)
    table = price_table(config, [*registered_stacks(), *([stack] if stack else [])])
    planned = [
        (r, shape)
        for r in plan.resources
        for shape in [instance_shape(r.attributes)]
        if r.action in ("create", "replace") and shape in table
    ]
    if planned:
        instances, profile = len(planned), str(planned[0][1])
    else:
        instances, profile = (
            workers,
            run_profile(RunRecord(run_id=run_id, workspace=workspace, engine=engine_name), config, stack),
        )
    price = table.get(profile)
    gpus = instances * (price.gpus if price else gpus_of(profile))
    market = run_market(RunRecord(run_id=run_id, workspace=workspace, engine=engine_name), config, stack)
    return PlanReport(
        workspace,
        engine_name,
        plan,
        instances,
        profile,
        price,
        gpus,
        config.cost.currency or "USD",
        int(config.timeouts.hard),
        market,
        (stack.preemption if stack else "") if market == SPOT else "",
    )

"""A workload for the agent tests: a plain FunctionExecutor() fanned over the run's VMs.

Worker 0 starts its workload as soon as its own agent is up; on a busy machine the other
VM's agent may join a few seconds later, after a short map is already done. So the probe
maps until every VM has run a call (or a minute passes): what it checks is that the
standalone backend spreads work over all the run's VMs once they are up."""

from __future__ import annotations

import time

from tests.bridge import funcs

VMS = 2  # the VMs the agent tests start


def main(ctx) -> dict:
    from lithops_bridge import FunctionExecutor

    hosts: set[str] = set()
    deadline = time.monotonic() + 60
    with FunctionExecutor() as fexec:
        while len(hosts) < VMS and time.monotonic() < deadline:
            futures = fexec.map(funcs.sleepy, [0.05] * 40)
            fexec.get_result(futures)
            hosts |= {f.stats["worker_host"] for f in futures}
        ctx.put_json("hosts.json", sorted(hosts))
        return {"backend": fexec.backend, "hosts": sorted(hosts)}

"""A workload for the agent tests: a plain FunctionExecutor() fanned over the run's VMs."""

from __future__ import annotations

from tests.bridge import funcs


def main(ctx) -> dict:
    from lithops_bridge import FunctionExecutor

    with FunctionExecutor() as fexec:
        futures = fexec.map(funcs.sleepy, [0.05] * 40)
        fexec.get_result(futures)
        hosts = sorted({f.stats["worker_host"] for f in futures})
        ctx.put_json("hosts.json", hosts)
        return {"backend": fexec.backend, "hosts": hosts}

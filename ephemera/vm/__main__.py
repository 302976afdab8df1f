"""``python -m ephemera.vm``: the agent's command line, as the stacks call it.

python -m ephemera.vm start --config AGENT_JSON --worker I --pid-file P --log-file L
python -m ephemera.vm stop --pid-file P [--timeout S]
python -m ephemera.vm serve --config AGENT_JSON --worker I --pid-file P
python -m ephemera.vm run-job --config AGENT_JSON --worker I
python -m ephemera.vm boot --boot BOOT_JSON --root DIR [--pid-file P]   (the bootstrap's second stage)
python -m ephemera.vm gpu-check --count N [--model L4]
"""

from __future__ import annotations

import argparse
import sys


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ephemera.vm", description="The agent on each VM of a run.")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("start", help="start a detached agent; return once it is up")
    p.add_argument("--config", required=True)
    p.add_argument("--worker", type=int, default=0)
    p.add_argument("--pid-file", required=True)
    p.add_argument("--log-file", required=True)
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the agent to come up")
    p = sub.add_parser("stop", help="stop an agent and confirm it is gone")
    p.add_argument("--pid-file", required=True)
    p.add_argument("--timeout", type=float, default=10.0)
    p = sub.add_parser("serve", help="run the agent in the foreground")
    p.add_argument("--config", required=True)
    p.add_argument("--worker", type=int, default=0)
    p.add_argument("--pid-file", required=True)
    p = sub.add_parser("run-job", help="run the job once and write its marker")
    p.add_argument("--config", required=True)
    p.add_argument("--worker", type=int, default=0)
    p = sub.add_parser("boot", help="the bootstrap's second stage: storage access, GPU check, then the agent")
    p.add_argument("--boot", required=True)
    p.add_argument("--root", required=True)
    p.add_argument("--pid-file")
    p = sub.add_parser("gpu-check", help="prove the GPUs a profile promises; print what they are")
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--model")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from ephemera.vm.logship import log_to_stdout

    log_to_stdout()
    if args.cmd == "start":
        from ephemera.vm.control import AgentStartError, start_agent

        try:
            pid = start_agent(args.config, args.worker, args.pid_file, args.log_file, args.timeout)
        except AgentStartError as exc:
            print(exc.message, file=sys.stderr)
            return 1
        print(f"agent worker {args.worker} started, pid {pid}")
        return 0
    if args.cmd == "stop":
        from ephemera.vm.control import stop_agent

        if not stop_agent(args.pid_file, args.timeout):
            print(
                f"agent of {args.pid_file} was still exiting after SIGKILL; destroy again to confirm it is gone", file=sys.stderr
            )
            return 1
        print(f"agent of {args.pid_file}: stopped")
        return 0
    if args.cmd == "boot":
        from ephemera.vm.boot import main as boot_main

        return boot_main(args.boot, args.root, args.pid_file)
    if args.cmd == "gpu-check":
        import json

        from ephemera.vm.gpu import GPUCheckError, check_gpus

        try:
            report = check_gpus(args.count, args.model)
        except GPUCheckError as exc:
            print(
                f"GPU check failed{' (a reboot may load the driver)' if exc.needs_reboot else ''}: {exc.message}", file=sys.stderr
            )
            return 2 if exc.needs_reboot else 1
        print(json.dumps(report.to_dict() if report else {"count": 0}))
        return 0
    from ephemera.secrets import install_scrubber
    from ephemera.vm.agent import Agent, agent_context, load_agent_config

    if args.cmd == "serve":
        agent = Agent(args.config, args.worker)
        install_scrubber(agent.scrubber)
        return agent.serve(args.pid_file)
    from ephemera.lifeline import bind_to_owner
    from ephemera.vm.workload import run_job

    bind_to_owner()  # killed with the agent's whole group when the agent dies
    agent_cfg = load_agent_config(args.config)
    _config, storage, job, scrubber = agent_context(agent_cfg)
    install_scrubber(scrubber)
    marker = run_job(job, storage, worker=args.worker, scrubber=scrubber, run_key=agent_cfg.run_key)
    return 0 if marker.succeeded else 3


if __name__ == "__main__":
    sys.exit(main())

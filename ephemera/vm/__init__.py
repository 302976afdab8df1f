"""The VM side of a run: what runs on each VM (locally: each agent process).

- :mod:`ephemera.vm.agent`: the agent (heartbeats, the workload child, VM services).
- :mod:`ephemera.vm.control`: starting and stopping an agent process (``stop_agent``).
- :mod:`ephemera.vm.pids`: pid files and telling an agent process from a reused pid.
- :mod:`ephemera.vm.heartbeats`: the agents' heartbeat objects, written and read.
- :mod:`ephemera.vm.services`: services other packages run on every VM (entry points).
- :mod:`ephemera.vm.workload`: running the job's workload and writing its marker.
- :mod:`ephemera.vm.localrun`: N local agents of one run, for tests and benchmarks.

``python -m ephemera.vm start|stop|serve|run-job`` is the command line the stacks use.
"""

"""The ``standalone`` section (consume mode on the VMs of an Ephemera run).

Keys as in Lithops: ``exec_mode`` (only ``consume``: the VMs exist, Ephemera made
them), ``worker_processes`` (per VM, default the VM's CPU count), ``use_gpu``,
``soft_dismantle_timeout``, ``hard_dismantle_timeout``, ``auto_dismantle``,
``runtime``. Bridge keys: ``run_id`` (mandatory: the run whose VMs take the work),
``run_key`` (mandatory: the run's key, 64 hex digits, with which jobs and results
are sealed; ``ephemera lithops-config RUN_ID --bridge`` writes it, and a VM of the run
puts it into the workload's ``LITHOPS_CONFIG``), ``poll_interval`` (seconds between
the client's storage listings while a job is active; default 0.5 on cloud storage, and
on localhost storage 0.02, the fallback of the VMs' wake-ups, or 0.005 where this user
has no private wake folder: see ``wake``) and ``retries`` (how many times a batch whose
VM died is taken over by another VM of the run; default 2, 0 turns it off).
"""

from __future__ import annotations

from lithops_bridge.backends.localhost.config import worker_count
from lithops_bridge.backends.standalone.seal import parse_key
from lithops_bridge.errors import ConfigError

DEFAULTS = {
    "exec_mode": "consume",
    "use_gpu": False,
    "auto_dismantle": True,
    "soft_dismantle_timeout": 300,
    "hard_dismantle_timeout": 3600,
    "runtime": "python3",
    "poll_interval": None,
    "retries": 2,
}


def load_config(config: dict) -> None:
    """Complete ``config['standalone']`` in place (``config`` is the bridge's own copy)."""
    sa = {**DEFAULTS, **dict(config.get("standalone") or {})}
    if sa["exec_mode"] != "consume":
        raise ConfigError(
            "standalone.exec_mode",
            f"'{sa['exec_mode']}' is not supported by the bridge",
            "use 'consume': Ephemera creates and destroys the VMs",
        )
    if not sa.get("run_id"):
        raise ConfigError(
            "standalone.run_id",
            "missing",
            "name the Ephemera run whose VMs run the functions (`ephemera lithops-config RUN_ID` writes a config with it)",
        )
    sa["worker_processes"] = worker_count("standalone.worker_processes", sa.get("worker_processes"))
    for key in ("soft_dismantle_timeout", "hard_dismantle_timeout", "poll_interval"):
        if sa[key] is None:
            continue
        try:
            sa[key] = float(sa[key])
            if sa[key] <= 0:
                raise ValueError
        except (TypeError, ValueError):
            raise ConfigError(
                f"standalone.{key}", f"expected a positive number of seconds, got {sa[key]!r}", "e.g. 3600"
            ) from None
    retries = sa["retries"]
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ConfigError(
            "standalone.retries", f"expected a whole number of attempts (0 or more), got {retries!r}", "e.g. retries: 2"
        )
    parse_key(sa.get("run_key"))  # ConfigError naming standalone.run_key
    config["standalone"] = sa

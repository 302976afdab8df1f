"""``ephemera lithops-config RUN_ID``: a real-Lithops config for the VMs of a run.

Lithops' standalone backends drive one existing VM each in ``consume`` mode, so the
command writes one config per VM: ``standalone: {exec_mode: consume}``, the VM's
backend section, and the storage section of the Ephemera config (``storage_bucket``
= the state bucket). From the run record's Terraform outputs:

- the ``ibm-vpc-gpu`` stack (``instance_ids``, ``private_ips``, optional
  ``floating_ips``): ``lithops.backend: ibm_vpc`` with ``instance_id``, ``floating_ip``
  (the public address when the stack has one, else the private IP: run Lithops from
  inside the VPC), ``region`` (the stack's ``region`` variable, else the engine's, e.g.
  ``schematics.region``, else the stack's default) and ``iam_api_key``;
- the local stack (``agents``): ``lithops.backend: vm`` with ``ip_address: 127.0.0.1``
  and ``ssh_username`` (Lithops reaches a "VM" over SSH to this machine).

The ``standalone`` section also names the run (``run_id``) and carries its key
(``run_key``, derived from this controller's signing key: :mod:`ephemera.runkeys`),
so the same file drives ``lithops_bridge``: its jobs, sealed with the run key, are
the only ones the run's VMs run. The key is a secret like the others.

With ``out_path`` the files are written mode 0600 (one VM: ``out_path``; several:
``<stem>-vm<i><suffix>``) and contain the credentials Lithops needs. Without it the
configs go to stdout with every secret masked.
"""

from __future__ import annotations

import copy
import getpass
import sys
from pathlib import Path

import yaml

from ephemera.engines import engine_spec
from ephemera.ibm import IBMAccount
from ephemera.runkeys import run_key
from ephemera.storage.lithops import to_lithops

STACK_DEFAULT_REGION = "us-south"  # the ibm-vpc-gpu stack's default for its region variable


def _value(outputs: dict, name: str):
    value = outputs.get(name)
    return value.get("value") if isinstance(value, dict) and "value" in value else value


def vm_configs(config, record) -> list[tuple[int, dict]]:
    """One (worker, Lithops config) per VM of the run."""
    outputs = record.outputs or {}
    storage_config = to_lithops(config)
    storage_name = storage_config["backend"]
    storage = storage_config[storage_name]
    base = {"lithops": {"mode": "standalone", "storage": storage_name}, storage_name: storage,
            "standalone": {"exec_mode": "consume", "auto_dismantle": False, "run_id": record.run_id,
                           "run_key": run_key(config, record.run_id)}}
    out = []
    instance_ids = _value(outputs, "instance_ids") or []
    private_ips = _value(outputs, "private_ips") or []
    agents = _value(outputs, "agents")
    if private_ips:
        floating = _value(outputs, "floating_ips") or []
        region = ((config.workspace.variables or {}).get("region")
                  or engine_spec(config.engine.backend).vm_region(config) or STACK_DEFAULT_REGION)
        for i, (iid, ip) in enumerate(zip(instance_ids, private_ips)):
            cfg = copy.deepcopy(base)
            cfg["lithops"]["backend"] = "ibm_vpc"
            cfg["ibm_vpc"] = {"instance_id": iid, "floating_ip": floating[i] if i < len(floating) else ip,
                              "region": region, "iam_api_key": config.section(IBMAccount).iam_api_key or "",
                              "ssh_username": "root"}
            out.append((i, cfg))
    elif agents:
        for agent in sorted(agents, key=lambda a: int(a.get("worker", 0))):
            cfg = copy.deepcopy(base)
            cfg["lithops"]["backend"] = "vm"
            cfg["vm"] = {"ip_address": "127.0.0.1", "ssh_username": getpass.getuser()}
            out.append((int(agent.get("worker", 0)), cfg))
    return out


def main(config, run_id: str, out_path: str | None) -> int:
    """Write (or print, secrets masked) the Lithops configs of ``run_id``'s VMs. 0 on success."""
    from ephemera.assembly import load_config
    from ephemera.errors import EphemeraError
    from ephemera.files import write_private
    from ephemera.model.ledger import Ledger
    from ephemera.model.runs import RunState  # with the other imports of this lazily loaded subcommand
    from ephemera.secrets import Scrubber
    from ephemera.storage import get_storage

    try:
        config = load_config(config)
        record = Ledger(get_storage(config), config.state_bucket).get(run_id)
        configs = vm_configs(config, record)
    except EphemeraError as exc:
        print(f"lithops-config: {exc}", file=sys.stderr)
        return 2
    if record.state == RunState.DESTROYED:
        print(f"lithops-config: run '{run_id}' is DESTROYED (at {record.entered_at(RunState.DESTROYED)}): its VMs are gone, "
              "so no config can drive them; pick an open run (`ephemera runs --open`) or start one", file=sys.stderr)
        return 3
    if record.state not in (RunState.REQUESTED, RunState.APPLYING, RunState.RUNNING):
        print(f"lithops-config: warning: run '{run_id}' is {record.state}: its workload has ended and its VMs are "
              "being (or will be) torn down; this config works only until then", file=sys.stderr)
    if not configs:
        print(f"lithops-config: run '{run_id}' ({record.state}) reports no VMs in its Terraform outputs "
              "(expected 'instance_ids' + 'private_ips', or 'agents'); is it applied?", file=sys.stderr)
        return 3
    header = f"# Lithops config for run {run_id}, VM {{worker}} (consume mode); generated by ephemera lithops-config\n"
    if out_path is None:
        for worker, cfg in configs:
            print("---\n" + header.format(worker=worker) + "# secrets masked: use --out FILE for a usable config\n"
                  + yaml.safe_dump(Scrubber([*config.secret_values(), run_key(config, run_id)]).scrub_obj(cfg),
                                   sort_keys=False), end="")
        return 0
    base = Path(out_path).expanduser()
    written = []
    paths = [base if len(configs) == 1 else base.with_name(f"{base.stem}-vm{worker}{base.suffix}") for worker, _ in configs]
    linked = [str(path) for path in paths if path.is_symlink()]
    if linked:  # checked before any is written: all the configs or none
        print(f"lithops-config: --out: refusing to write through symbolic links: {', '.join(linked)}; "
              "remove them or choose another path", file=sys.stderr)
        return 2
    for path, (worker, cfg) in zip(paths, configs):
        try:  # 0600, atomically; a link planted meanwhile is refused or replaced, never followed
            write_private(path, header.format(worker=worker) + yaml.safe_dump(cfg, sort_keys=False))
        except EphemeraError as exc:
            print(f"lithops-config: --out: {exc.message}", file=sys.stderr)
            return 2
        written.append(str(path))
    for where in written:
        print(f"wrote {where}  (use: LITHOPS_CONFIG_FILE={where})")
    return 0

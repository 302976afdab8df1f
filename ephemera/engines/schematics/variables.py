"""The Schematics variable store: what the engine PUTs before each apply.

``replace_workspace_inputs`` (PUT ``.../template_data/<id>/values``) replaces the whole
store, so the store sent holds every variable: the run's, each with its Terraform
``type`` ("complex data types such as list(type), map(type)" with the value "in HCL
format ... as you provide in a .tfvars file"; JSON is HCL), and every variable an
operator set on the workspace as it was. Secure values are "not returned in your API
response": an operator's secure variable is sent from ``schematics.secure_variables``,
and if it is not there the apply stops before anything is changed. Secure variables
older Ephemera versions wrote themselves (storage keys, the account's API key) are
dropped: no secret goes to Terraform any more.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from ephemera.errors import EngineError

log = logging.getLogger("ephemera.engines.schematics")

# secure variables Ephemera itself wrote before VMs had identities: no longer sent, dropped from the store
LEGACY_SECURE = frozenset({"cos_hmac_access_key_id", "cos_hmac_secret_access_key", "cos_api_key", "ibmcloud_api_key"})


def tf_type(value: Any) -> str:
    """The Terraform type of a value, as the Schematics variable store names it."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, (list, tuple)):
        kinds = {tf_type(v) for v in value}
        return f"list({kinds.pop()})" if len(kinds) == 1 and not any("(" in k for k in kinds) else "list(any)"
    if isinstance(value, dict):
        kinds = {tf_type(v) for v in value.values()}
        return f"map({kinds.pop()})" if len(kinds) == 1 and not any("(" in k for k in kinds) else "map(any)"
    return "string"


def tf_value(value: Any) -> str:
    """A Terraform variable value as the Schematics variable store wants it: a string."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True)
    return "" if value is None else str(value)


def variablestore(existing: list[dict], variables: dict, secure_variables: dict, kept: dict, workspace_id: str) -> list[dict]:
    """The whole store to PUT: the run's variables and secrets over every variable the
    operator set on the workspace (``existing``, as GET returns it); ``kept`` holds the
    values of the operator's secure variables."""
    store: dict[str, dict] = {}
    lost = []
    for var in existing:
        name = var.get("name")
        if not name or name in variables or name in secure_variables:
            continue
        entry = {"name": name, "value": var.get("value", ""), "secure": bool(var.get("secure"))}
        if var.get("type"):
            entry["type"] = var["type"]
        if var.get("secure"):
            if name in LEGACY_SECURE and name not in kept:
                log.info("schematics: dropping variable %s (Ephemera no longer sends secrets to Terraform)", name)
                continue
            if name not in kept:
                lost.append(name)
                continue
            entry["value"] = tf_value(kept[name])
        store[name] = entry
    if lost:
        raise EngineError(
            f"Schematics workspace '{workspace_id}' has secure variable(s) {', '.join(sorted(lost))} that "
            "Schematics does not return, and writing the run's variables replaces the whole store: put their values "
            "in schematics.secure_variables (they are sent back as secure values), or delete them from the workspace"
        )
    for name, value in variables.items():
        if name not in secure_variables:
            store[name] = {"name": name, "value": tf_value(value), "type": tf_type(value), "secure": False}
    for name, value in secure_variables.items():
        if value is None or value == "":
            continue
        store[name] = {"name": name, "value": tf_value(value), "type": tf_type(value), "secure": True}
    return [store[name] for name in sorted(store)]

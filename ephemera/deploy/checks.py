"""Checks every cloud deploy makes before printing or running a command.

- The workspace engine must be able to run inside a cloud action: an engine that keeps
  its state on the machine that applies (the ``terraform`` engine: state files and
  stacks in the Ephemera home) would lose it with each short-lived container.
- A deployed action's time limit must fit the platform's maximum (the settings
  sections check that) and ``timeouts.action``: the reaper takes a run whose action
  recorded nothing for that long for one whose action died.
- No setting may name a file of this machine (``notify.smtp_ca_file``): an action
  cannot read it. (The workload's paths are replaced by the published bundle.)
- Platform resource names come from rule and trigger names: two rules may not map to
  one platform trigger.
- No value may still be an example's placeholder (``REPLACE-...``): a plan deployed
  with them fails only when the cloud refuses the keys, after resources were made.
"""

from __future__ import annotations

from typing import Any, Iterator

from ephemera.config import Config, ConfigError
from ephemera.engines import engine_spec
from ephemera.errors import ConfigErrors

PLACEHOLDER = "REPLACE"  # how examples/ibm-cloud.yaml marks the values to fill in


def check_engine(config: Config, target: str, state_in_bucket_ok: bool = False) -> None:
    """ConfigError naming ``engine.backend`` when the engine cannot run in ``target``'s actions;
    ``state_in_bucket_ok``: the target runs an on-host engine whose config keeps its state in a bucket."""
    spec = engine_spec(config.engine.backend)
    if spec.state_on_host and not (state_in_bucket_ok and spec.state_in_bucket(config)):
        fix = "use an engine that runs as a service, e.g. schematics"
        if state_in_bucket_ok:
            fix += ", or keep the state in S3: terraform.state = {backend: s3, bucket: <bucket>}"
        raise ConfigError(
            "engine.backend",
            f"the {spec.name} engine keeps its state on the machine that applies, which a {target} action does not keep",
            fix,
        )


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _strings(item, f"{path}[{i}]")
    elif isinstance(value, str):
        yield path, value


def check_no_placeholders(config: Config) -> None:
    """ConfigErrors naming every key whose value is still a ``REPLACE...`` placeholder (never the value)."""
    found = [
        ConfigError(path, "is still the example's placeholder", "put your own value here")
        for path, value in _strings(config.to_dict(redact=False), "")
        if value.startswith(PLACEHOLDER)
    ]
    if found:
        raise ConfigErrors.of(found)


def check_engine_and_files(config: Config, target: str, state_in_bucket_ok: bool = False) -> None:
    """:func:`check_engine`, no placeholder left, and ConfigError for a setting that names a local file."""
    check_no_placeholders(config)
    check_engine(config, target, state_in_bucket_ok)
    if config.notify.smtp_ca_file:
        raise ConfigError(
            "notify.smtp_ca_file",
            f"names a file on this machine, which a {target} action cannot read",
            "unset it for the deployed config (the system's CAs are used), or use a server with a public certificate",
        )


def check_time_limit(config: Config, field: str, seconds: int) -> None:
    """ConfigError naming ``field`` when ``seconds`` exceeds ``timeouts.action``."""
    action = config.timeouts.action
    if seconds > action:
        raise ConfigError(
            field,
            f"{seconds}s is longer than timeouts.action ({action}s): the reaper would take a running action for a dead one",
            f"set it to at most {action}s, or raise timeouts.action",
        )


def rule_trigger_names(config: Config) -> dict[str, str]:
    """Rule name -> the name of the platform trigger that fires it: the config trigger's
    own name when one rule binds it, else the rule's name (each rule then has its own
    trigger, which carries that rule's params)."""
    bound: dict[str, list[str]] = {}
    for rule in config.rules:
        bound.setdefault(rule.trigger, []).append(str(rule.name))
    names: dict[str, str] = {}
    owner: dict[str, str] = {}
    for i, rule in enumerate(config.rules):
        own = str(rule.name)  # completed by validation: '<trigger>-<action>' when unset
        name = rule.trigger if len(bound[rule.trigger]) == 1 else own
        if name in owner and owner[name] != own:
            raise ConfigError(
                f"rules[{i}].name",
                f"its platform trigger '{name}' is also that of rule '{owner[name]}'",
                "rename the rule or the trigger",
            )
        owner[name] = own
        names[own] = name
    return names

"""The whole config as one pydantic model, assembled from the core's sections and the
sections every registered storage backend and engine declares.

Section order (also the order of README's key table): ``storage``, the storage
backends' sections, ``engine``, the engines' sections, ``workspace``, ``workload``,
``timeouts``, ``cost``, ``notify``, the deploy targets' ``code_engine`` and ``openwhisk``, ``triggers``,
``rules``, ``home``. A section two plugins share (``ibm``)
must be the same model in both. The model is rebuilt when a registry changes, so a
backend registered at run time (a test's) is picked up without another edit.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Literal, Optional

from pydantic import BaseModel, Field, create_model

from ephemera.config.deploy_targets import SECTIONS as DEPLOY_SECTIONS
from ephemera.config.operator import OPERATOR_SECTIONS
from ephemera.config.schema import secret_paths
from ephemera.config.sections import CORE_SECTIONS, EngineSection, RuleEntry, StorageSection, TriggerEntry
from ephemera.engines import DEFAULT_ENGINE, ENGINES, engine_specs
from ephemera.sections import Section
from ephemera.storage import BACKENDS, DEFAULT_BACKEND, storage_specs

ANNOTATIONS = ("title", "description", "default", "examples", "writeOnly")  # JSON Schema keywords that describe, not constrain


def root_model() -> type[BaseModel]:
    """The config model for the registries as they are now."""
    return _assemble(tuple(BACKENDS.items()), DEFAULT_BACKEND, tuple(ENGINES.items()), DEFAULT_ENGINE)


def _choice(base: type[Section], names: tuple[str, ...], default: str) -> type[Section]:
    """``base`` with its ``backend`` field limited to the registered names."""
    field = base.model_fields["backend"]
    return create_model(
        base.__name__,
        __base__=base,
        __doc__=base.__doc__,
        backend=(
            Literal[names],  # type: ignore[arg-type]  # the names registered at run time
            Field(default, description=field.description),
        ),
    )


def _add_sections(fields: dict[str, Any], specs: list) -> None:
    for spec in specs:
        for name, model in spec.sections.items():
            known = fields.get(name)
            if known is not None and known[0] is not model:
                raise RuntimeError(f"config section '{name}' of {spec!r} differs from the one already declared")
            fields[name] = (model, Field(default_factory=model, description=model.__doc__))


@lru_cache(maxsize=8)
def _assemble(backends: tuple, default_backend: str, engines: tuple, default_engine: str) -> type[BaseModel]:
    storage = _choice(StorageSection, tuple(name for name, _ in backends), default_backend)
    engine = _choice(EngineSection, tuple(name for name, _ in engines), default_engine)
    fields: dict[str, Any] = {"storage": (storage, Field(default_factory=storage, description=storage.__doc__))}
    _add_sections(fields, storage_specs())
    fields["engine"] = (engine, Field(default_factory=engine, description=engine.__doc__))
    _add_sections(fields, engine_specs())
    for name, model in {**CORE_SECTIONS, **OPERATOR_SECTIONS, **DEPLOY_SECTIONS}.items():
        if name in fields:
            raise RuntimeError(f"config section '{name}' belongs to the core; a plugin may not declare it")
        fields[name] = (model, Field(default_factory=model, description=model.__doc__))
    fields["triggers"] = (list[TriggerEntry], Field(default_factory=list, description=TriggerEntry.__doc__))
    fields["rules"] = (list[RuleEntry], Field(default_factory=list, description=RuleEntry.__doc__))
    fields["home"] = (
        Optional[str],
        Field(None, description="the Ephemera home (workspaces, logs); default ~/.ephemera", examples=["~/.ephemera"]),
    )
    return create_model("EphemeraConfig", __base__=Section, __doc__="The Ephemera config (one YAML file).", **fields)


def raw_secret_values(raw: Any) -> list[str]:
    """The secret values of a config dict that may not validate (so even a config error is scrubbed).

    A secret given in the wrong shape (a list, a mapping) yields every string inside it."""
    if not isinstance(raw, dict):
        return []
    values: list[str] = []
    for section, key in secret_paths(root_model()):
        data = raw.get(section)
        if isinstance(data, dict) and data.get(key):
            values += _strings(data[key])
    return values


def _strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in _strings(v)]
    return [str(value)] if value not in (None, "") else []


def json_schema() -> dict:
    """The JSON Schema of the config file, for editors (``ephemera config --schema``).

    Every key may also be null, which the loader reads as "the default"."""
    schema = root_model().model_json_schema()
    for obj in [schema, *schema.get("$defs", {}).values()]:
        obj["properties"] = {name: _nullable(prop) for name, prop in obj.get("properties", {}).items()}
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def _nullable(prop: dict) -> dict:
    if prop.get("type") == "null" or any(alt.get("type") == "null" for alt in prop.get("anyOf", [])):
        return prop
    described = {k: v for k, v in prop.items() if k in ANNOTATIONS}
    constraint = {k: v for k, v in prop.items() if k not in ANNOTATIONS}
    choices = constraint["anyOf"] if list(constraint) == ["anyOf"] else [constraint]
    return {**described, "anyOf": [*choices, {"type": "null"}]}

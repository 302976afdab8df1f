"""Pydantic validation errors as ConfigErrors.

Each error names the dotted key (``triggers[1].cron``, ``aws_s3.secret_access_key``),
says what is wrong and how to fix it. Every problem is reported at once
(:class:`~ephemera.errors.ConfigErrors`), unknown keys first (usually a typo that
explains the rest). A secret's value is never quoted.
"""

from __future__ import annotations

import typing
from enum import Enum
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from ephemera.errors import ConfigError, ConfigErrors
from ephemera.sections import Invalid, is_secret

EXPECTED = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "bool_type": "true/false",
    "float_type": "a number",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "list_type": "a list",
}
SCALARS = (str, int, float)


def dotted(loc: tuple) -> str:
    """('triggers', 1, 'cron') -> 'triggers[1].cron'."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The model an annotation holds: the model itself, or the item model of a list."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        model = _model_of(arg)
        if model is not None:
            return model
    return None


def field_at(root: type[BaseModel], loc: tuple) -> tuple[FieldInfo | None, type[BaseModel] | None]:
    """(the field at ``loc``, the model that holds it); None where the path leaves the models."""
    model: type[BaseModel] | None = root
    field = parent = None
    for part in loc:
        if isinstance(part, int):
            continue  # an index into a list of models
        if model is None or part not in model.model_fields:
            return None, model
        field = model.model_fields[part]
        parent, model = model, _model_of(field.annotation)
    return field, parent


def _example(key: str, field: FieldInfo | None) -> str:
    """How to write the field: an example, its default, else what it is."""
    if field is None:
        return ""
    if field.examples and not is_secret(field):
        return f"e.g. {key}: {field.examples[0]}"
    if isinstance(field.default, SCALARS) and field.default != "" and not is_secret(field):
        return f"e.g. {key}: {field.default}"
    return field.description or ""


def _got(value: Any, secret: bool) -> str:
    if isinstance(value, bool):
        return "a boolean"
    shown = f" {value!r}" if isinstance(value, SCALARS) and not secret else ""
    return f"{type(value).__name__}{shown}"


def config_error(exc: ValidationError, root: type[BaseModel]) -> ConfigError:
    """Every problem of ``exc``, unknown keys first: one ConfigError, or ConfigErrors."""
    errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")  # stable: otherwise in pydantic's order
    found: list[ConfigError] = []
    for err in errors:
        one = _error(err, root)
        if all(one.message != seen.message for seen in found):
            found.append(one)
    return ConfigErrors.of(found)


def _error(err: Any, root: type[BaseModel]) -> ConfigError:
    """One pydantic error as a ConfigError naming its key."""
    loc, kind = tuple(err["loc"]), err["type"]
    path = dotted(loc)
    key = str(next((p for p in reversed(loc) if isinstance(p, str)), path))
    field, parent = field_at(root, loc)
    if kind == "extra_forbidden":
        if len(loc) == 1:
            return ConfigError(path, "unknown section", f"known sections are: {', '.join(sorted(root.model_fields))}")
        known = ", ".join(parent.model_fields) if parent is not None else ""
        return ConfigError(path, "unknown key", f"known keys are: {known}")
    if kind == "missing":
        return ConfigError(path, "missing", _example(key, field) or "it is required")
    if kind == "value_error" and isinstance((err.get("ctx") or {}).get("error"), Invalid):
        invalid = err["ctx"]["error"]
        return ConfigError(
            path + "".join(a if a.startswith("[") else f".{a}" for a in invalid.at),
            invalid.problem,
            invalid.fix or _example(key, field),
        )
    if kind in ("literal_error", "enum"):
        annotation = field.annotation if field is not None else None
        choices = (
            [m.value for m in annotation]
            if isinstance(annotation, type) and issubclass(annotation, Enum)
            else typing.get_args(annotation)
        )
        allowed = ", ".join(map(str, choices)) or err.get("ctx", {}).get("expected", "")
        return ConfigError(path, f"'{err['input']}' is not one of {allowed}")
    if kind in EXPECTED:
        got = _got(err["input"], field is not None and is_secret(field))
        item = _model_of(field.annotation) if field is not None else None
        if kind in ("model_type", "model_attributes_type") and isinstance(loc[-1], int) and item is not None:
            first = next((n for n, f in item.model_fields.items() if f.is_required()), next(iter(item.model_fields)))
            fix = f"write each entry of '{key}' as keys under '- ', e.g. '- {first}: ...'"
        elif kind in ("model_type", "model_attributes_type", "dict_type") and field is not None and _model_of(field.annotation):
            fix = f"write '{path}:' with keys under it"
        elif kind == "list_type":
            fix = f"write '{key}:' as a list of '- ...' entries"
        else:
            fix = _example(key, field)
        return ConfigError(path, f"expected {EXPECTED[kind]}, got {got}", fix)
    return ConfigError(path, err["msg"], _example(key, field))

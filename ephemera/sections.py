"""Building blocks of config sections, shared by the core and every backend and engine.

A config section is a pydantic model deriving from :class:`Section`: typed fields
with defaults and descriptions, unknown keys forbidden, no coercion (a boolean is not
an integer, a number is not a string), and ``key: null`` meaning "use the default".
Secret fields are declared with :func:`secret`, which marks them ``writeOnly`` in the
JSON Schema; :func:`is_secret` reads the mark back, for masking and log scrubbing.

A field check raises :class:`Invalid` with the problem and the fix; the config loader
turns it into a :class:`~ephemera.errors.ConfigError` naming the dotted key. Checks
that need several sections (credentials pairs, URLs of the chosen backend) run after
loading and raise ``ConfigError`` themselves; :func:`check_url` is the one URL check.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.fields import FieldInfo

from ephemera.errors import ConfigError


class Invalid(ValueError):
    """A field value is wrong: what is wrong, how to fix it, and optionally the sub-key at fault."""

    def __init__(self, problem: str, fix: str = "", at: tuple[str, ...] = ()):
        super().__init__(problem)
        self.problem = problem  # e.g. "'soon' is not a duration"
        self.fix = fix  # e.g. "write seconds or e.g. '30m', '4h'"
        self.at = at  # keys below the field that hold the bad value, e.g. ("worker_count",)


@dataclass(frozen=True)
class Label:
    """How README's key table names a field type, put in its ``Annotated`` metadata."""

    text: str  # e.g. "duration"


class Section(BaseModel):
    """Base of every config section: strict types, unknown keys forbidden, null = default."""

    model_config = ConfigDict(extra="forbid", strict=True)

    @model_validator(mode="before")
    @classmethod
    def _null_is_default(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {key: value for key, value in data.items() if value is not None}
        return data


_SECRET_MARK: dict[str, bool | str] = {"writeOnly": True, "format": "password"}  # how JSON Schema marks a password


def secret(description: str, **kwargs: Any) -> Any:
    """A secret string field (default None): never echoed, masked by ``Config.to_dict()``."""
    return Field(None, description=description, json_schema_extra=dict(_SECRET_MARK), **kwargs)


def is_secret(field: FieldInfo) -> bool:
    extra = field.json_schema_extra
    return isinstance(extra, dict) and extra.get("writeOnly") is True


def secret_keys(model: type[BaseModel]) -> list[str]:
    """Names of the secret fields of a section model."""
    return [name for name, field in model.model_fields.items() if is_secret(field)]


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


__all__ = ["Field", "Invalid", "Label", "Section", "check_url", "is_secret", "secret", "secret_keys"]

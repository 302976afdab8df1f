"""Reading an assembled config model: its mapping sections and its secret fields.

The model itself is assembled from the registries by the composition root
(:func:`ephemera.assembly.model.root_model`); these helpers take it as given, so the
``Config`` value class can tell its secrets without importing any plugin.
"""

from __future__ import annotations

from pydantic import BaseModel

from ephemera.sections import Section, is_secret


def section_models(root: type[BaseModel]) -> dict[str, type[Section]]:
    """The mapping sections of the config model, by key (not the lists or ``home``)."""
    out = {}
    for name, field in root.model_fields.items():
        if isinstance(field.annotation, type) and issubclass(field.annotation, Section):
            out[name] = field.annotation
    return out


def secret_paths(root: type[BaseModel]) -> list[tuple[str, str]]:
    """(section, key) of every secret field."""
    return [(section, key) for section, model in section_models(root).items()
            for key, field in model.model_fields.items() if is_secret(field)]

"""Reading an assembled config model: its mapping sections and its secret fields.

The model itself is assembled from the registries by the composition root
(:func:`ephemera.assembly.model.root_model`); these helpers take it as given, so the
``Config`` value class can tell its secrets without importing any plugin.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import BaseModel

from ephemera.sections import Section, is_secret


def section_models(root: type[BaseModel]) -> dict[str, type[Section]]:
    """The mapping sections of the config model, by key (not the lists or ``home``)."""
    out = {}
    for name, field in root.model_fields.items():
        if isinstance(field.annotation, type) and issubclass(field.annotation, Section):
            out[name] = field.annotation
    return out


@lru_cache(maxsize=64)
def section_name(root: type[BaseModel], model: type[BaseModel]) -> str:
    """The key of the section ``root`` declares with ``model`` (or a model derived from it, as
    ``storage`` and ``engine`` are); LookupError when there is none or more than one."""
    sections = section_models(root)
    names = [name for name, declared in sections.items() if declared is model]
    names = names or [name for name, declared in sections.items() if issubclass(declared, model)]
    if len(names) != 1:
        found = "no section" if not names else f"the sections {', '.join(names)}"
        raise LookupError(
            f"the config declares {found} with the model {model.__name__}: "
            "register the plugin that declares it (its spec's sections) in its registry"
        )
    return names[0]


def secret_paths(root: type[BaseModel]) -> list[tuple[str, str]]:
    """(section, key) of every secret field."""
    return [
        (section, key)
        for section, model in section_models(root).items()
        for key, field in model.model_fields.items()
        if is_secret(field)
    ]

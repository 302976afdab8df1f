"""The ``scratch`` config section: where the folders are, and a token its VMs get."""

from __future__ import annotations

from typing import Optional

from pydantic import Field

from ephemera.sections import Section, secret


class ScratchSection(Section):
    """A scratch directory store (test backend)."""

    path: Optional[str] = Field(None, description="directory under which each bucket is a folder")
    token: Optional[str] = secret("a token the VMs present (stands in for a credential)")

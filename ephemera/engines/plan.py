"""What an apply would do: a Terraform plan, read from Terraform's human-readable output.

Both engines end with that text -- the local engine runs ``terraform plan``, a
Schematics plan job logs the same (each line led by the job's time and step, which
are dropped) -- so one parser serves both. A planned resource is its address, what
would happen to it (``create``, ``update``, ``replace``, ``destroy``, ``read``) and
its top-level string attributes as the plan shows them (``profile`` among them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_JOB_PREFIX_RE = re.compile(r"^\s*\d{4}/\d\d/\d\d \d\d:\d\d:\d\d [^|]*\| ?")
_HEADER_RE = re.compile(r"^\s*# (\S+) (?:will be|must be) (created|updated in-place|destroyed|replaced|read during apply)")
_BLOCK_RE = re.compile(r"^(\s*)[-+~<=>/ ]+(?:resource|data) \"[^\"]+\" \"[^\"]+\" \{")
_ATTR_RE = re.compile(r'^(\s*)[+~-]? ?([A-Za-z0-9_]+)\s*=\s*"([^"]*)"')
_SUMMARY_RE = re.compile(r"^\s*Plan: \d+ to add, \d+ to change, \d+ to destroy\.|^\s*No changes\.")
ACTIONS = {
    "created": "create",
    "updated in-place": "update",
    "destroyed": "destroy",
    "replaced": "replace",
    "read during apply": "read",
}


@dataclass
class PlannedResource:
    address: str  # e.g. terraform_data.vm[0]
    action: str  # create | update | replace | destroy | read
    attributes: dict = field(default_factory=dict)  # top-level string attributes the plan shows

    @property
    def type(self) -> str:
        return self.address.split(".")[-2] if self.address.startswith("data.") else self.address.split(".")[0]


@dataclass
class Plan:
    resources: list  # PlannedResource, in the plan's order
    summary: str  # Terraform's "Plan: N to add, ..." line, or "No changes."
    log: str  # the plan's output, scrubbed


def clean_lines(text: str) -> list[str]:
    """The plan's lines without a Schematics job's time-and-step prefix."""
    return [_JOB_PREFIX_RE.sub("", line) for line in text.splitlines()]


def parse_plan(text: str) -> Plan:
    """The resources and summary of Terraform's plan output."""
    lines = clean_lines(text)
    resources: list[PlannedResource] = []
    current: PlannedResource | None = None
    depth = None  # the column of the current resource block's attributes
    summary = ""
    for line in lines:
        header = _HEADER_RE.match(line)
        if header:
            current = PlannedResource(header.group(1), ACTIONS[header.group(2)])
            resources.append(current)
            depth = None
            continue
        if _SUMMARY_RE.match(line):
            summary = line.strip()
            current = None
            continue
        if current is None:
            continue
        block = _BLOCK_RE.match(line)
        if block and depth is None:
            depth = len(block.group(1)) + 4
            continue
        attr = _ATTR_RE.match(line)
        if attr and depth is not None and len(attr.group(1)) == depth:
            current.attributes.setdefault(attr.group(2), attr.group(3))
    return Plan(
        resources, summary or ("No changes." if not resources else f"{len(resources)} resource changes"), "\n".join(lines)
    )

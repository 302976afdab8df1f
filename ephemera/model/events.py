"""The one shape every trigger delivery becomes: :class:`Event`.

The parsers of each delivery format (OpenWhisk feeds, Code Engine subscriptions, S3
notifications, the local runtime) live in :mod:`ephemera.events.formats`; the core
only consumes the parsed event.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime

KINDS = ("alarm", "object_write", "manual")


@dataclass(frozen=True)
class Event:
    kind: str  # alarm | object_write | manual
    source: str  # the delivery format it came in, e.g. "openwhisk_cos"
    time: datetime | None = None  # fire time (alarm) or request time (write), if the format says
    bucket: str | None = None  # object_write: the bucket written
    key: str | None = None  # object_write: the key written (decoded)
    etag: str | None = None  # object_write: the object's etag, if the format says
    size: int | None = None  # object_write: the object's size, if the format says
    trigger: str | None = None  # the trigger's name, if known
    payload: dict = field(default_factory=dict)  # every other parameter

    def to_dict(self) -> dict:
        data = asdict(self)
        data["time"] = self.time.isoformat() if self.time else None
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "Event":
        data = dict(data)
        if data.get("time"):
            data["time"] = datetime.fromisoformat(data["time"])
        return cls(**data)

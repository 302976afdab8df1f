"""The one object outside a run's prefixes its VMs may read: the object whose write fired it.

``ctx.event`` names that object (bucket, key). On S3 the run's VMs hold per-run STS keys
whose session policy names only the run's prefixes, so without a grant a cloud VM
could not read it. The grant is that one key, ``s3:GetObject`` only, until the run's
keys expire (its hard deadline); nothing under the same prefix, no write, no listing.
It is given only where it cannot widen what a run reaches beyond what the config says:

- the event is an ``object_write`` with a bucket and a key;
- a configured ``object_write`` trigger that a rule binds to ``apply`` watches that
  object (its bucket, under its prefix, with one of its suffixes). Whoever can invoke an
  apply by hand with a made-up event could otherwise point a run's keys at any object
  the controller can read (another run's outputs, say, which a destroy trigger watches);
- it is not in Ephemera's own namespace of the state bucket (``ephemera/``: run
  records, other runs' credentials objects and job specs);
- its key holds no IAM wildcard or policy variable (``* ? $``): the policy's ARN would
  match other keys.

Where none is granted, the run goes ahead and the reason is logged: the workload's
read of the object is then refused by the storage.
"""

from __future__ import annotations

import logging
import re

from ephemera import layout
from ephemera.config.sections import TriggerKind

log = logging.getLogger(__name__)
_WILDCARDS = re.compile(r"[*?$]")


def event_inputs(config, event: dict) -> tuple[tuple[str, str], ...]:
    """``((bucket, key),)`` for the object an event of ``config``'s triggers names, or ``()``."""
    bucket, key = event.get("bucket"), event.get("key")
    if event.get("kind") != TriggerKind.OBJECT_WRITE.value or not bucket or not key:
        return ()
    why = _refusal(config, str(bucket), str(key))
    if why:
        log.warning("the run's VMs get no read access to the event's object %s/%s: %s", bucket, key, why)
        return ()
    return ((str(bucket), str(key)),)


def _refusal(config, bucket: str, key: str) -> str:
    """Why the VMs may not read ``bucket/key``; empty when they may."""
    if _WILDCARDS.search(key) or _WILDCARDS.search(bucket):
        return "its name holds an IAM wildcard (* ? $), which would match other objects"
    if bucket == config.state_bucket and key.startswith(f"{layout.ROOT}/"):
        return f"it is in Ephemera's own '{layout.ROOT}/' namespace of the state bucket"
    applying = {rule.trigger for rule in config.rules if _value(rule.action) == "apply"}
    for trig in config.triggers:
        suffixes = list(trig.suffix or [])
        if (
            trig.kind == TriggerKind.OBJECT_WRITE
            and trig.name in applying
            and trig.bucket == bucket
            and key.startswith(trig.prefix)
            and (not suffixes or key.endswith(tuple(suffixes)))
        ):
            return ""
    return "no object_write trigger of the config that fires an apply watches it"


def _value(action) -> str:
    return str(getattr(action, "value", action))

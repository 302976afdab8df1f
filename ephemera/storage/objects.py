"""Small JSON objects under a prefix, read as a whole: the one reader of the per-VM
status objects (the agents' heartbeats, :mod:`ephemera.vm.heartbeats`; the bridge's
task-server presence, ``lithops_bridge.backends.standalone.presence``)."""

from __future__ import annotations

import json

from ephemera.errors import NoSuchBucketError, NoSuchKeyError
from ephemera.storage.base import Storage


def json_objects(storage: Storage, bucket: str, prefix: str) -> list[dict]:
    """Every JSON object (a dict) under ``prefix``, in key order. A missing bucket is no
    objects; an object deleted since the listing, or not a JSON object, is skipped
    (a status object is rewritten every few seconds: the next one counts)."""
    out: list[dict] = []
    try:
        infos = list(storage.list(bucket, prefix))
    except NoSuchBucketError:
        return out
    for info in infos:
        try:
            body = json.loads(storage.get(bucket, info.key))
        except (NoSuchKeyError, ValueError):
            continue
        if isinstance(body, dict):
            out.append(body)
    return out

"""Process the file that fired this run: ``ctx.event`` names it (bucket, key, etag, size),
``ctx.storage`` reads it, ``ctx.put_json`` writes the result beside the run's marker.
See ephemera.yaml for the trigger and rules that run it."""

from __future__ import annotations


def main(ctx) -> dict:
    event = ctx.event
    if event.kind != "object_write":  # run by hand or by an alarm: nothing landed
        return {"processed": None, "why": f"fired by a {event.kind} event, not a file"}
    text = ctx.storage.get(event.bucket, event.key).decode("utf-8", errors="replace")
    summary = {
        "file": f"{event.bucket}/{event.key}",
        "etag": event.etag,
        "bytes": event.size,
        "lines": len(text.splitlines()),
        "words": len(text.split()),
        "trigger": event.trigger,
        "landed_at": event.time.isoformat() if event.time else None,
    }
    ctx.put_json("summary.json", summary)
    return summary

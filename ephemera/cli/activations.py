"""What ``ephemera activations`` prints: the table of activations, one activation in
full, and the one-line result summary ``ephemera up`` prints per invocation."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from ephemera.cli.tables import table, visible
from ephemera.runtime.activations import Activation


def _short_time(iso: str) -> str:
    try:
        return datetime.fromisoformat(iso).astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    except (TypeError, ValueError):
        return iso or "-"


def result_summary(activation: Activation, width: int = 48) -> str:
    """One line saying how the invocation ended."""
    result = activation.result or {}
    err = result.get("error") if isinstance(result, dict) else None
    if isinstance(err, dict):
        text = f"{err.get('code', 'ERROR')}: {err.get('message', '')}"
    elif err:
        text = f"error: {err}"
    else:
        parts = [f"{k}={result[k]}" for k in ("run_id", "state", "ignored", "reason") if k in result]
        text = " ".join(parts) or ("ok" if result.get("ok") else str(result))
    text = visible(" ".join(text.split()))
    return text if len(text) <= width else text[: width - 3] + "..."


def format_table(activations: list[Activation]) -> str:
    """A plain-text table, one activation per line, newest first as given."""
    if not activations:
        return "no activations"
    headers = ("ACTIVATION ID", "START (UTC)", "TRIGGER", "RULE", "ACTION", "STATUS", "DURATION", "RESULT")
    rows = [
        (
            a.activationId,
            _short_time(a.start),
            a.trigger,
            a.rule,
            a.action,
            a.status,
            f"{a.duration_ms / 1000:.2f}s",
            result_summary(a),
        )
        for a in activations
    ]
    return table(headers, rows)


def format_activation(activation: Activation) -> str:
    """One activation in full: fields, result and logs (control characters shown as escapes,
    one log line per line)."""
    lines = [
        f"activation  {activation.activationId}",
        f"trigger     {activation.trigger}",
        f"rule        {activation.rule}",
        f"action      {activation.action} ({activation.target})",
        f"status      {activation.status}"
        + (f" (exit code {activation.exit_code})" if activation.exit_code not in (None, 0) else ""),
        f"start       {activation.start}",
        f"end         {activation.end}",
        f"duration    {activation.duration_ms} ms",
        "event       " + json.dumps(activation.event, sort_keys=True, default=str),
        "result",
        *("  " + line for line in json.dumps(activation.result, indent=2, sort_keys=True, default=str).splitlines()),
        f"logs ({len(activation.logs)} lines)",
        *("  " + visible(line) for line in activation.logs),
    ]
    return visible("\n".join(lines), keep_newlines=True)

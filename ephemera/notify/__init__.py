"""Telling people when a run ends badly (or well): the ``notify:`` config section's receivers.

Every transition a :class:`~ephemera.context.Context`'s ledger records calls
:func:`on_transition`; the reaper calls :func:`notify_run` with ``NEEDS_PERSON`` when it
stops retrying a destroy; :mod:`ephemera.lifecycle.budget` sends ``BUDGET`` when spend
crosses ``budget.notify_at`` of a monthly cap (once per month, cap and share). A receiver -- the JSON webhook, the Slack incoming webhook,
e-mail -- is told of the states it asked for. Each (run, state) is notified once:
whoever creates ``ephemera/notified/<run_id>/<state>.json`` first (``put_if_absent``)
sends, so two actions recording the same transition concurrently send one notice.
Sending never blocks the action: the receivers run in a thread that the action waits
for at most ``notify.timeout`` seconds (less if its own time is short), and a failure is
logged, never raised. Every text is scrubbed of the config's secrets (the webhook URLs
and the SMTP password among them) before it leaves; in Slack's text, ``&``, ``<`` and
``>`` are escaped, so a workload's error cannot mention ``<!channel>`` or disguise a link.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ephemera import layout
from ephemera.model.runs import RunRecord, RunState
from ephemera.notify.senders import SendError, post_json, send_mail, slack_body, with_retries
from ephemera.timeutil import now_iso

if TYPE_CHECKING:
    from ephemera.config.operator import NotifySection

log = logging.getLogger("ephemera.notify")
RESERVE_SECONDS = 2.0  # of an action's time, kept back from notifying


@dataclass
class Notice:
    run_id: str  # the run
    state: str  # the state entered (or NEEDS_PERSON)
    previous: str  # the state before it ("" if unknown)
    workspace: str  # the run's workspace
    at: str  # when (ISO 8601 UTC)
    reason: str  # why, in words (the transition's reason)
    error: dict | None  # {code, message} of the run's last failure, if any
    link: str | None  # the run's page on the dashboard, when notify.link is set
    commands: list  # what to run to see more

    @property
    def title(self) -> str:
        return f"Ephemera run {self.run_id}: {self.state}"

    def text(self) -> str:
        error = f" -- {self.error['code']}: {self.error['message']}" if self.error else ""
        more = self.link or f"`{self.commands[0]}`"
        return f"{self.title} (workspace {self.workspace}){error}. See {more}"

    def to_dict(self) -> dict:
        return {
            "run_id": self.run_id,
            "state": self.state,
            "previous_state": self.previous,
            "workspace": self.workspace,
            "at": self.at,
            "reason": self.reason,
            "error": self.error,
            "link": self.link,
            "commands": self.commands,
            "text": self.text(),
        }

    def facts(self) -> dict:
        return {
            "title": self.title,
            "facts": {
                "state": self.state,
                "workspace": self.workspace,
                "reason": self.reason,
                "error": f"{self.error['code']}: {self.error['message']}" if self.error else "",
                "see": self.link or "; ".join(f"`{c}`" for c in self.commands),
            },
        }

    def mail_body(self) -> str:
        lines = [
            self.title,
            "",
            f"state:      {self.state} (from {self.previous or '-'})",
            f"workspace:  {self.workspace}",
            f"at:         {self.at}",
            f"reason:     {self.reason}",
        ]
        if self.error:
            lines.append(f"error:      {self.error['code']}: {self.error['message']}")
        if self.link:
            lines.append(f"dashboard:  {self.link}")
        lines += ["", "To see more:", *(f"  {c}" for c in self.commands)]
        return "\n".join(lines) + "\n"


def notice_for(ctx, record: RunRecord, state: str, previous: str = "", reason: str = "") -> Notice:
    settings = ctx.config.notify
    last = record.transitions[-1] if record.transitions else None
    link = f"{settings.link.rstrip('/')}/runs/{record.run_id}" if settings.link else None
    error = {"code": record.error.code, "message": record.error.message} if record.error and state != "SUCCEEDED" else None
    return Notice(
        record.run_id,
        state,
        previous,
        record.workspace,
        last.at if last and not reason else now_iso(),
        reason or (last.reason if last else ""),
        error,
        link,
        [f"ephemera runs show {record.run_id}", f"ephemera logs {record.run_id}"],
    )


def receivers(settings: NotifySection, state: str) -> list[str]:
    """The receivers configured that want ``state``."""
    wanted = []
    if settings.webhook_url and state in settings.webhook_states:
        wanted.append("webhook")
    if settings.slack_webhook_url and state in settings.slack_states:
        wanted.append("slack")
    if settings.smtp_host and settings.email_to and state in settings.email_states:
        wanted.append("email")
    return wanted


def _send(receiver: str, settings: NotifySection, notice: Notice, scrub, deadline: float) -> None:
    attempts = max(1, int(settings.retries))
    if receiver == "webhook":
        body = scrub(notice.to_dict())
        with_retries(lambda t: post_json(str(settings.webhook_url), body, t), deadline, attempts)
    elif receiver == "slack":
        # scrubbed before escaping too, so a secret holding '&', '<' or '>' is masked as written
        body = scrub(slack_body(scrub(notice.text()), scrub(notice.facts())))
        with_retries(lambda t: post_json(str(settings.slack_webhook_url), body, t), deadline, attempts)
    else:
        subject, text = scrub(f"[ephemera] {notice.title}"), scrub(notice.mail_body())
        with_retries(lambda t: send_mail(settings.model_dump(), subject, text, t), deadline, attempts)


def deliver(ctx, notice: Notice, wanted: list[str], seconds: float) -> dict[str, str]:
    """Send to every receiver in ``wanted`` at once, for ``seconds`` at most; receiver -> outcome."""
    settings, scrub = ctx.config.notify, ctx.scrubber.scrub_obj
    deadline = time.monotonic() + seconds
    outcome: dict[str, str] = {name: "not finished in time" for name in wanted}

    def one(name: str) -> None:
        try:
            _send(name, settings, notice, scrub, deadline)
            outcome[name] = "sent"
        except SendError as exc:
            outcome[name] = f"failed: {exc.message}"
        except Exception as exc:  # noqa: BLE001 - a receiver's bug must not reach the action
            outcome[name] = f"failed: {type(exc).__name__}"

    threads = [threading.Thread(target=one, args=(name,), name=f"notify-{name}", daemon=True) for name in wanted]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return dict(outcome)


def notify_run(
    ctx, record: RunRecord, state: str, previous: str = "", reason: str = "", *, once: str = ""
) -> dict[str, str] | None:
    """Tell the receivers that want ``state`` about the run, once per (run, state) (per
    (run, state, ``once``) when given: e.g. each rung of the capacity ladder); the
    outcome per receiver, or None when nobody wants it or it was notified already."""
    key = layout.notified_key(record.run_id, f"{state}-{once}" if once else str(state))
    return notify_once(ctx, record, str(state), key, previous, reason)


def notify_once(ctx, record: RunRecord, state: str, key: str, previous: str = "", reason: str = "") -> dict[str, str] | None:
    """:func:`notify_run` with the claim at ``key``: one notice per key (e.g. a monthly
    budget notice, once per month, cap and share, whichever run crossed it)."""
    try:
        settings = ctx.config.notify
        wanted = receivers(settings, str(state))
        if not wanted:
            return None
        claim = {"run_id": record.run_id, "state": str(state), "at": now_iso(), "receivers": wanted}
        if not ctx.storage.put_if_absent(ctx.config.state_bucket, key, json.dumps(claim).encode()):
            return None  # another action is telling them, or has told them
        seconds = min(float(settings.timeout), max(0.0, ctx.budget.remaining() - RESERVE_SECONDS))
        outcome = deliver(ctx, notice_for(ctx, record, str(state), previous, reason), wanted, seconds)
        ctx.storage.put(ctx.config.state_bucket, key, json.dumps({**claim, "outcome": outcome}).encode())
        for name, result in outcome.items():
            log.log(
                logging.INFO if result == "sent" else logging.WARNING,
                "run %s %s: %s notification %s",
                record.run_id,
                state,
                name,
                result,
            )
        return outcome
    except Exception as exc:  # noqa: BLE001 - notifying never fails the action
        log.warning(
            "run %s %s: notifications not sent: %s", record.run_id, state, ctx.scrubber.scrub(f"{type(exc).__name__}: {exc}")
        )
        return None


def on_transition(ctx, record: RunRecord, previous: RunState) -> None:
    """The ledger's hook: the run entered ``record.state`` from ``previous``."""
    if record.state != previous:
        notify_run(ctx, record, str(record.state), str(previous))


__all__ = ["Notice", "deliver", "notice_for", "notify_once", "notify_run", "on_transition", "receivers"]

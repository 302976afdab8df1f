"""What the people running Ephemera configure for themselves: ``cost`` (prices of the
instance profiles, over the prices in the stacks' specs: :mod:`ephemera.model.cost`) and
``notify`` (webhooks and e-mail on run transitions, see :mod:`ephemera.notify`) and
``budget`` (cost caps, :mod:`ephemera.config.budget`).

Webhook URLs carry their credential in the URL (a Slack incoming webhook's path is
its secret), so they are secrets, like the SMTP password.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Optional

from pydantic import BeforeValidator, Field, WithJsonSchema, model_validator

from ephemera.config.budget import BudgetSection
from ephemera.sections import Invalid, Label, Section, secret

# the states a notification may ask for; NEEDS_PERSON is a run the reaper stopped retrying,
# BUDGET a monthly cap's share (budget.notify_at) crossed, PREEMPTED a run whose spot VM the
# cloud reclaimed (told at its first recovery; opt-in), CAPACITY_FALLBACK a run the capacity
# ladder moved to its next rung (ephemera.lifecycle.ladder)
NOTIFY_STATES = (
    "SUCCEEDED",
    "FAILED",
    "TIMED_OUT",
    "APPLY_FAILED",
    "DESTROY_FAILED",
    "NEEDS_PERSON",
    "BUDGET",
    "PREEMPTED",
    "CAPACITY_FALLBACK",
)
DEFAULT_NOTIFY_STATES = ["FAILED", "TIMED_OUT", "APPLY_FAILED", "DESTROY_FAILED", "NEEDS_PERSON", "BUDGET", "CAPACITY_FALLBACK"]
_DATE_RE = re.compile(r"^\d{4}-\d\d-\d\d$")
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+$")


def _prices(value: Any) -> dict:
    if not isinstance(value, dict):
        raise Invalid(
            f"expected a mapping of profile -> price, got {type(value).__name__}",
            "e.g. prices: {gx3-16x80x1l4: {hourly: 1.9, as_of: '2026-12-01', source: 'our contract'}}",
        )
    out = {}
    for profile, entry in value.items():
        entry = {"hourly": entry} if isinstance(entry, (int, float)) and not isinstance(entry, bool) else entry
        if not isinstance(entry, dict) or set(entry) - {"hourly", "spot_hourly", "as_of", "source", "gpus"}:
            raise Invalid(
                "expected {hourly, spot_hourly, as_of, source, gpus} or an hourly number",
                "e.g. {hourly: 1.9, spot_hourly: 0.7, as_of: '2026-12-01'}",
                at=(str(profile),),
            )
        hourly = entry.get("hourly")
        if isinstance(hourly, bool) or not isinstance(hourly, (int, float)) or hourly < 0:
            raise Invalid(
                f"hourly must be a number >= 0, got {hourly!r}",
                "the price of one instance for one hour",
                at=(str(profile), "hourly"),
            )
        spot = entry.get("spot_hourly")
        if spot is not None and (isinstance(spot, bool) or not isinstance(spot, (int, float)) or spot < 0):
            raise Invalid(
                f"spot_hourly must be a number >= 0, got {spot!r}",
                "the price of one spot instance for one hour (leave it out where you buy no spot)",
                at=(str(profile), "spot_hourly"),
            )
        as_of = entry.get("as_of", "")
        if as_of and not (isinstance(as_of, str) and _DATE_RE.match(as_of)):
            raise Invalid(
                f"as_of must be a date YYYY-MM-DD, got {as_of!r}", "e.g. as_of: '2026-12-01'", at=(str(profile), "as_of")
            )
        gpus = entry.get("gpus")
        if gpus is not None and (isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 0):
            raise Invalid(f"gpus must be a whole number >= 0, got {gpus!r}", "GPUs per instance", at=(str(profile), "gpus"))
        out[str(profile)] = {
            "hourly": float(hourly),
            "as_of": as_of,
            "source": str(entry.get("source") or "the config (cost.prices)"),
            **({"gpus": gpus} if gpus is not None else {}),
            **({"spot_hourly": float(spot)} if spot is not None else {}),
        }
    return out


def _states(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise Invalid("expected a list of states", f"choose from {', '.join(NOTIFY_STATES)}")
    bad = [s for s in value if s.upper() not in NOTIFY_STATES]
    if bad:
        raise Invalid(f"unknown state {bad[0]!r}", f"choose from {', '.join(NOTIFY_STATES)}")
    return [s.upper() for s in value]


def _emails(value: Any) -> list[str]:
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not all(isinstance(v, str) and _EMAIL_RE.match(v) for v in values):
        raise Invalid(f"expected e-mail addresses, got {value!r}", "e.g. email_to: [oncall@example.com]")
    return list(values)


def _webhook(value: Any) -> str:
    if not isinstance(value, str) or not re.match(r"^https?://[^/\s]+", value):
        raise Invalid("expected an http(s) URL", "e.g. https://hooks.slack.com/services/T000/B000/XXXX")
    if any(c.isspace() or not c.isprintable() for c in value):  # a CR/LF would end the request line early
        raise Invalid("the URL holds a space or a control character", "percent-encode it, or copy the URL again")
    return value


Prices = Annotated[
    dict,
    Label("mapping: profile -> {hourly, spot_hourly, as_of, source, gpus}"),
    BeforeValidator(_prices),
    WithJsonSchema({"type": "object"}),
]
States = Annotated[
    list,
    Label("list of states"),
    BeforeValidator(_states),
    WithJsonSchema({"type": "array", "items": {"enum": list(NOTIFY_STATES)}}),
]
Emails = Annotated[
    list,
    Label("e-mail address or list of them"),
    BeforeValidator(_emails),
    WithJsonSchema({"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}),
]
WebhookURL = Annotated[Optional[str], BeforeValidator(_webhook)]


class CostSection(Section):
    """What instance profiles cost: the built-in price table, with your own prices over it."""

    currency: str = Field("USD", description="the currency of every price (the built-in table's is USD)")
    prices: Prices = Field(
        default_factory=dict,
        description="profile -> {hourly, spot_hourly, as_of, source, gpus}: your prices (on-demand, and spot) over the built-in table",
    )


class NotifySection(Section):
    """Who is told when a run ends badly (or well): webhooks and e-mail, each with the states it wants."""

    webhook_url: WebhookURL = secret("a URL that gets a JSON POST per transition (the URL is a secret)")
    webhook_states: States = Field(
        default_factory=lambda: list(DEFAULT_NOTIFY_STATES),
        description="states the JSON webhook is told of (SUCCEEDED is opt-in)",
    )
    slack_webhook_url: WebhookURL = secret("a Slack incoming-webhook URL (the URL is a secret)")
    slack_states: States = Field(default_factory=lambda: list(DEFAULT_NOTIFY_STATES), description="states Slack is told of")
    smtp_host: Optional[str] = Field(None, description="SMTP server for e-mail notifications (unset: no e-mail)")
    smtp_port: int = Field(587, description="SMTP port (587: submission with STARTTLS)")
    smtp_starttls: bool = Field(True, description="upgrade the SMTP connection with STARTTLS before authenticating")
    smtp_implicit_tls: bool = Field(
        False, description="speak TLS from the first byte (SMTPS, usually port 465) instead of STARTTLS"
    )
    smtp_insecure: bool = Field(
        False,
        description="allow smtp_password over a connection with neither STARTTLS nor implicit TLS: "
        "for a local test relay only, the password then crosses the network in clear",
    )
    smtp_username: Optional[str] = Field(None, description="SMTP login (with smtp_password)")
    smtp_password: Optional[str] = secret("SMTP password")
    smtp_ca_file: Optional[str] = Field(
        None, description="CA bundle the SMTP server's certificate is checked against (default: the system's)"
    )
    email_from: Optional[str] = Field(None, description="the sender address", examples=["ephemera@example.com"])
    email_to: Emails = Field(default_factory=list, description="recipients")
    email_states: States = Field(default_factory=lambda: list(DEFAULT_NOTIFY_STATES), description="states e-mail is sent for")
    link: Optional[str] = Field(None, description="the dashboard's base URL, put in notifications as a link to the run")
    timeout: float = Field(10.0, description="seconds all notifications of one transition may take in all; never longer")
    retries: int = Field(
        3, description="attempts per receiver on a transient error (connection refused or reset, timeout, HTTP 429/5xx, SMTP 4xx)"
    )

    @model_validator(mode="after")
    def _email_complete(self) -> "NotifySection":
        if self.smtp_host and not (self.email_from and self.email_to):
            missing = "email_from" if not self.email_from else "email_to"
            raise Invalid(
                f"smtp_host is set but {missing} is not", f"set notify.{missing}, or unset notify.smtp_host", at=(missing,)
            )
        if (self.smtp_password or self.smtp_username) and not (
            self.smtp_starttls or self.smtp_implicit_tls or self.smtp_insecure
        ):
            raise Invalid(
                "an SMTP login is set but smtp_starttls and smtp_implicit_tls are both off: the password would be sent in clear",
                "set notify.smtp_starttls: true (port 587) or notify.smtp_implicit_tls: true (port 465); "
                "only for a local test relay, notify.smtp_insecure: true",
                at=("smtp_starttls",),
            )
        return self


OPERATOR_SECTIONS: dict[str, type[Section]] = {"cost": CostSection, "notify": NotifySection, "budget": BudgetSection}

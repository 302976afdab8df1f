"""Notifications: a failing run tells the JSON webhook, Slack and e-mail once each, with
the run id, state, error and what to run to see more, and no secret; concurrent actions
recording the same transition send one notice; transient errors are retried; sending
never holds the action longer than its bound.

Contracts tested against: a Slack incoming webhook takes an HTTP POST of a JSON body
with ``text`` (required unless blocks are given; used as the notification's fallback)
and optional ``blocks`` (``section`` blocks with ``mrkdwn`` text). SMTP submission on
port 587 upgrades with STARTTLS (RFC 3207) before AUTH (RFC 4954), which a server may
refuse on an unencrypted channel -- the local server here requires both.
"""

from __future__ import annotations

import threading
from email import message_from_bytes
from email.policy import default as email_policy

import pytest

from ephemera.context import Context
from ephemera.lifecycle.activities import finish_run
from ephemera.model import marker as markers
from ephemera.model.runs import RunError, RunRecord, RunState
from ephemera.notify import notify_run
from tests.fakes.receivers import HTTPReceiver, start_smtp

S = RunState
SMTP_USER, SMTP_PASSWORD = "ephemera-bot", "smtp-pass-8c1f27"
HOOK_PATH = "/hooks/T0001/B0001/hook-token-5d9e13aa"
SLACK_PATH = "/services/T0002/B0002/slack-token-77ab90cd"
RUN = "ws-20261202t120000"


@pytest.fixture
def http():
    receiver = HTTPReceiver()
    yield receiver
    receiver.close()


@pytest.fixture
def smtp(tmp_path):
    receiver = start_smtp(tmp_path, SMTP_USER, SMTP_PASSWORD)
    yield receiver
    receiver.close()


@pytest.fixture
def make_ctx(local_config, http, smtp):
    def build(**notify):
        raw = local_config(
            notify={
                "webhook_url": http.url + HOOK_PATH,
                "slack_webhook_url": http.url + SLACK_PATH,
                "smtp_host": smtp.host,
                "smtp_port": smtp.port,
                "smtp_username": SMTP_USER,
                "smtp_password": SMTP_PASSWORD,
                "smtp_ca_file": str(smtp.ca_file),
                "email_from": "ephemera@example.com",
                "email_to": ["oncall@example.com"],
                "link": "http://127.0.0.1:8765",
                "timeout": 20,
                **notify,
            }
        )
        ctx = Context(raw)
        ctx.storage.create_bucket(ctx.config.state_bucket)
        return ctx

    return build


def running(ctx, run_id=RUN):
    ctx.ledger.create(RunRecord(run_id=run_id, workspace="ws", engine="terraform"))
    for state in (S.APPLYING, S.RUNNING):
        ctx.ledger.transition(run_id, state, "test")
    return run_id


def secrets_of(ctx) -> list[str]:
    values = ctx.config.secret_values()
    assert len(values) == 3  # both webhook URLs and the SMTP password
    return values + [HOOK_PATH, SLACK_PATH]


def test_a_failing_run_sends_one_webhook_one_slack_message_and_one_email_without_secrets(make_ctx, http, smtp):
    ctx = make_ctx()
    running(ctx)
    # the workload's error quotes secrets: the notices must not
    marker = markers.failure(RUN, "w:main", "RuntimeError", f"login {SMTP_PASSWORD} refused by {http.url + HOOK_PATH}")
    finish_run(ctx, RUN, False, marker)

    [hook], [slack], [mail] = http.to(HOOK_PATH), http.to(SLACK_PATH), smtp.mails
    body = hook.json()
    assert hook.headers["content-type"] == "application/json"
    assert body["run_id"] == RUN and body["state"] == "FAILED" and body["previous_state"] == "RUNNING"
    assert body["error"]["code"] == "WORKLOAD_FAILED" and "RuntimeError: login ******** refused" in body["error"]["message"]
    assert body["link"] == f"http://127.0.0.1:8765/runs/{RUN}" and f"ephemera logs {RUN}" in body["commands"]

    text = slack.json()
    assert RUN in text["text"] and "FAILED" in text["text"] and "WORKLOAD_FAILED" in text["text"]
    assert text["blocks"][0]["type"] == "section" and text["blocks"][0]["text"]["type"] == "mrkdwn"

    message = message_from_bytes(mail.data, policy=email_policy)
    assert message["Subject"] == f"[ephemera] Ephemera run {RUN}: FAILED" and mail.rcpt_tos == ["oncall@example.com"]
    content = message.get_content()
    assert "WORKLOAD_FAILED" in content and f"ephemera runs show {RUN}" in content and f"/runs/{RUN}" in content
    assert mail.tls and (SMTP_USER, SMTP_PASSWORD) in smtp.logins  # STARTTLS, then AUTH

    for secret in secrets_of(ctx):
        for sent in (hook.body, slack.body, mail.data):
            assert secret.encode() not in sent
    ctx.ledger.transition(RUN, S.DESTROYING, "test")  # states nobody asked for send nothing
    ctx.ledger.transition(RUN, S.DESTROYED, "test")
    assert len(http.posts) == 2 and len(smtp.mails) == 1


def test_concurrent_actions_recording_the_same_transition_send_once(make_ctx, http, smtp):
    ctxs = [make_ctx(), make_ctx()]
    running(ctxs[0])
    record = ctxs[0].ledger.get(RUN)
    record.enter(S.FAILED, "completion marker written")
    record.error = RunError("WORKLOAD_FAILED", "boom")
    barrier = threading.Barrier(2)
    outcomes = []

    def act(ctx):
        barrier.wait()
        outcomes.append(notify_run(ctx, record, "FAILED", "RUNNING"))

    threads = [threading.Thread(target=act, args=(c,)) for c in ctxs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count(None) == 1 and {"webhook": "sent", "slack": "sent", "email": "sent"} in outcomes
    assert len(http.to(HOOK_PATH)) == 1 and len(http.to(SLACK_PATH)) == 1 and len(smtp.mails) == 1


def test_transient_errors_are_retried_and_others_are_not(make_ctx, http):
    ctx = make_ctx(smtp_host=None, slack_webhook_url=None, retries=3)
    running(ctx)
    http.statuses = [503, 429]  # transient twice, then 200
    record = ctx.ledger.get(RUN)
    assert notify_run(ctx, record, "APPLY_FAILED") == {"webhook": "sent"}
    assert len(http.to(HOOK_PATH)) == 3
    http.statuses = [400]  # the receiver refuses the notice: no retry
    assert notify_run(ctx, record, "DESTROY_FAILED") == {"webhook": "failed: HTTP 400"}
    assert len(http.to(HOOK_PATH)) == 4


def test_an_unreachable_smtp_server_is_reported_not_raised(make_ctx):
    ctx = make_ctx(webhook_url=None, slack_webhook_url=None, smtp_port=1, retries=2)
    running(ctx)
    outcome = notify_run(ctx, ctx.ledger.get(RUN), "TIMED_OUT")
    assert outcome == {"email": "failed: connection failed: ConnectionRefusedError"}


def test_a_slow_receiver_does_not_hold_the_action_past_the_bound(make_ctx, http):
    ctx = make_ctx(smtp_host=None, slack_webhook_url=None, timeout=0.5)
    running(ctx)
    http.hold = threading.Event()  # the receiver answers only when the test says so
    try:
        outcome = notify_run(ctx, ctx.ledger.get(RUN), "FAILED")
        # returned while the receiver still holds the request: the delivery's bound or the
        # sender's own socket timeout (the same 0.5 s) fires first, either way not "sent"
        assert outcome in ({"webhook": "not finished in time"}, {"webhook": "failed: connection failed: TimeoutError"})
        assert not http.hold.is_set()
    finally:
        http.hold.set()


def test_succeeded_is_opt_in(make_ctx, http, smtp):
    ctx = make_ctx()
    running(ctx)
    finish_run(ctx, RUN, True, markers.success(RUN, "w:main", {"ok": 1}))
    assert http.posts == [] and smtp.mails == []
    ctx = make_ctx(webhook_states=["SUCCEEDED"], slack_webhook_url=None, smtp_host=None)
    running(ctx, "ws-20261202t130000")
    finish_run(ctx, "ws-20261202t130000", True, markers.success("ws-20261202t130000", "w:main", {"ok": 1}))
    [hook] = http.to(HOOK_PATH)
    assert hook.json()["state"] == "SUCCEEDED" and hook.json()["error"] is None


def test_the_reaper_tells_once_when_a_run_needs_a_person(make_ctx, http):
    from ephemera.lifecycle.reaper import reap

    ctx = make_ctx(smtp_host=None, slack_webhook_url=None)
    running(ctx)
    ctx.ledger.transition(RUN, S.SUCCEEDED, "test")
    ctx.ledger.transition(RUN, S.DESTROYING, "test")
    ctx.ledger.update(RUN, lambda r: r.fail(RunError("DESTROY_FAILED", "quota API said no"), S.DESTROY_FAILED))
    assert [p.json()["state"] for p in http.to(HOOK_PATH)] == ["DESTROY_FAILED"]
    reap(ctx)
    reap(ctx)
    states = [p.json()["state"] for p in http.to(HOOK_PATH)]
    assert states == ["DESTROY_FAILED", "NEEDS_PERSON"]
    assert "needs a person" in http.to(HOOK_PATH)[1].json()["reason"]


@pytest.mark.parametrize(
    "notify, key",
    [
        ({"webhook_url": "ftp://x"}, "notify.webhook_url"),
        ({"slack_webhook_url": "https://h.example/a\r\nX-Injected: 1"}, "notify.slack_webhook_url"),
        ({"email_states": ["FAILD"]}, "notify.email_states"),
        ({"email_to": ["not-an-address"]}, "notify.email_to"),
        ({"smtp_host": "smtp.example.com", "email_to": ["a@example.com"]}, "notify.email_from"),
    ],
)
def test_bad_notify_settings_name_the_key(local_config, notify, key):
    from ephemera.assembly import load_config
    from ephemera.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        load_config(local_config(notify=notify))
    assert key in str(info.value) and "h.example/a" not in str(info.value)  # a URL secret is not echoed


def test_a_password_without_tls_is_refused_at_config_load(local_config):
    """Finding 16: ``smtp_starttls: false`` with a password was accepted and the password
    sent in clear. Now the config is refused, naming the key and the ways out, unless the
    operator says ``smtp_insecure: true`` (a local test relay)."""
    from ephemera.assembly import load_config
    from ephemera.errors import ConfigError

    clear = {
        "smtp_host": "smtp.example.com",
        "smtp_port": 25,
        "smtp_starttls": False,
        "smtp_username": SMTP_USER,
        "smtp_password": SMTP_PASSWORD,
        "email_from": "e@example.com",
        "email_to": ["a@example.com"],
    }
    with pytest.raises(ConfigError) as info:
        load_config(local_config(notify=clear))
    message = str(info.value)
    assert "notify.smtp_starttls" in message and "in clear" in message and "smtp_implicit_tls" in message
    assert "smtp_insecure" in message and SMTP_PASSWORD not in message
    assert load_config(local_config(notify={**clear, "smtp_implicit_tls": True})).notify.smtp_implicit_tls is True
    assert load_config(local_config(notify={**clear, "smtp_insecure": True})).notify.smtp_insecure is True
    no_login = {k: v for k, v in clear.items() if k not in ("smtp_username", "smtp_password")}
    assert load_config(local_config(notify=no_login)).notify.smtp_starttls is False  # nothing secret to protect


def _mail_settings(receiver, **over) -> dict:
    return {
        "smtp_host": receiver.host,
        "smtp_port": receiver.port,
        "smtp_starttls": True,
        "smtp_username": SMTP_USER,
        "smtp_password": SMTP_PASSWORD,
        "smtp_ca_file": str(receiver.ca_file),
        "email_from": "e@example.com",
        "email_to": ["oncall@example.com"],
        **over,
    }


def test_no_login_on_a_clear_connection(tmp_path):
    """Finding 16, at the sender: against a server that offers no TLS and takes AUTH in
    clear (a lax relay, or a man in the middle who stripped STARTTLS), no AUTH is ever
    sent: with STARTTLS on, smtplib refuses when the server does not offer it (RFC 3207:
    the client must not send AUTH before TLS is up); with it off (settings that bypassed
    the config check), the sender refuses before connecting. Only ``smtp_insecure``
    logs in in clear."""
    from ephemera.notify.senders import SendError, send_mail

    lax = start_smtp(tmp_path, SMTP_USER, SMTP_PASSWORD, mode="clear")
    try:
        with pytest.raises(SendError) as info:
            send_mail(_mail_settings(lax), "s", "b", 10)
        assert not info.value.transient and lax.logins == [] and lax.mails == []
        with pytest.raises(SendError) as info:
            send_mail(_mail_settings(lax, smtp_starttls=False), "s", "b", 10)
        assert "clear" in info.value.message and lax.logins == [] and lax.mails == []
        send_mail(_mail_settings(lax, smtp_starttls=False, smtp_insecure=True), "s", "b", 10)  # the test relay, by choice
        assert lax.logins == [(SMTP_USER, SMTP_PASSWORD)] and len(lax.mails) == 1 and not lax.mails[0].tls
    finally:
        lax.close()


def test_implicit_tls_logs_in_over_tls(tmp_path):
    """``smtp_implicit_tls``: TLS from the first byte (SMTPS, RFC 8314's port 465), the
    certificate checked, then AUTH."""
    from ephemera.notify.senders import send_mail

    server = start_smtp(tmp_path, SMTP_USER, SMTP_PASSWORD, mode="implicit")
    try:
        send_mail(_mail_settings(server, smtp_starttls=False, smtp_implicit_tls=True), "s", "b", 10)
        assert server.logins == [(SMTP_USER, SMTP_PASSWORD)] and len(server.mails) == 1
    finally:
        server.close()


def test_a_line_break_in_the_subject_does_not_add_a_header(smtp):
    """Header injection: a run id or state with CR/LF (the subject quotes both) must not end
    the Subject header and start a ``Bcc:`` of its own."""
    from ephemera.notify.senders import send_mail

    send_mail(_mail_settings(smtp), "[ephemera] run x\r\nBcc: attacker@evil.example\r\n\r\nbody", "b", 10)
    [mail] = smtp.mails
    message = message_from_bytes(mail.data, policy=email_policy)
    assert message["Bcc"] is None and "attacker@evil.example" not in mail.rcpt_tos
    assert message["Subject"].startswith("[ephemera] run x") and "\n" not in message["Subject"]


def test_workload_text_reaches_slack_escaped(make_ctx, http):
    """Finding 10: a workload's error text reached Slack as mrkdwn, so ``<!channel>`` paged
    the whole channel and ``<http://evil.example|click>`` showed a link disguised as
    "click". Slack's "Formatting text for app surfaces" reference: "Slack uses &, <, and
    > as control characters for special parsing in text objects, so they must be
    converted to HTML entities if they're not going to be used for their parsing
    purpose" (& -> &amp;, < -> &lt;, > -> &gt;), and "you shouldn't HTML entity-encode
    the entire text". Every untrusted value, in the fallback text and the block, is."""
    ctx = make_ctx(webhook_url=None, smtp_host=None)
    running(ctx)
    hostile = "<!channel> see <http://evil.example/login|the run's logs> & <@U0001> <!subteam^S01>"
    finish_run(ctx, RUN, False, markers.failure(RUN, "w:main", "RuntimeError", hostile))
    [slack] = http.to(SLACK_PATH)
    body = slack.json()
    shown = [body["text"], body["blocks"][0]["text"]["text"]]
    for text in shown:
        assert "<!channel>" not in text and "<http" not in text and "<@U0001>" not in text and "<!subteam" not in text
        assert "&lt;!channel&gt; see &lt;http://evil.example/login|the run's logs&gt; &amp; &lt;@U0001&gt;" in text
        assert "<" not in text.replace("&lt;", "") and ">" not in text.replace("&gt;", "")  # no control character left
    assert body["blocks"][0]["text"]["text"].startswith(f"*Ephemera run {RUN}: FAILED*")  # our own mrkdwn still formats
    assert "the run's" in shown[0]  # only &, < and > are entities


def test_a_secret_with_slack_control_characters_is_masked_in_slack(make_ctx, http):
    """A secret holding '&' or '<' is masked before the Slack escaping changes how it is written."""
    password = "p<ss&w>rd-91f3"
    ctx = make_ctx(webhook_url=None, smtp_host="127.0.0.1", smtp_password=password, email_states=["APPLY_FAILED"])
    running(ctx)
    ctx.ledger.update(RUN, lambda r: r.fail(RunError("WORKLOAD_FAILED", f"bad password {password}"), S.FAILED))
    [slack] = http.to(SLACK_PATH)
    assert b"p<ss" not in slack.body and b"p&lt;ss" not in slack.body and b"********" in slack.body

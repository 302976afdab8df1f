"""Issue 11, defect 9: secrets are scrubbed in every encoding they take in text.

A secret with '"', '\\', '/', '+', spaces or non-ASCII characters is masked raw,
JSON-escaped (once and twice), as a Python repr, URL-encoded (quote, quote_plus) and
base64-encoded (standard and urlsafe, padded or not) at any position inside a longer
encoded text; with Go's JSON escapes, as HTML entities, with lower-case or double
percent-encoding, and a URL secret as its path alone (issue 16, finding 9). Property:
after scrubbing, no piece of the text decodes to the secret."""

from __future__ import annotations

import base64
import binascii
import html
import json
import re
from urllib.parse import quote, quote_plus

import markupsafe
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ephemera.secrets import MASK, Scrubber

SECRET = 'zqx7-S3CRET/key+"quoted"\\back'


def decodes_to(text: str, raw: bytes) -> bool:
    """Whether any piece of ``text`` between masks decodes (base64, any offset, either alphabet) to bytes holding ``raw``."""
    for piece in text.split(MASK):
        for alphabet in (piece, piece.replace("-", "+").replace("_", "/")):
            for start in range(4):
                chunk = alphabet[start:]
                chunk = chunk[: len(chunk) - len(chunk) % 4]
                for lo in range(0, len(chunk), 4):
                    try:
                        if raw in base64.b64decode(chunk[lo:], validate=False):
                            return True
                    except (binascii.Error, ValueError):
                        continue
    return False


def test_the_issue_secret_in_each_encoding():
    scrub = Scrubber([SECRET]).scrub
    forms = [
        SECRET,
        json.dumps(SECRET)[1:-1],
        json.dumps(json.dumps({"k": SECRET})),
        repr(SECRET),
        quote(SECRET),
        quote(SECRET, safe=""),
        quote_plus(SECRET),
        base64.b64encode(SECRET.encode()).decode(),
        base64.urlsafe_b64encode(SECRET.encode()).decode().rstrip("="),
    ]
    for form in forms:
        text = f"env: AWS_SECRET={form}; done"
        out = scrub(text)
        assert MASK in out and "S3CRET" not in out, (form, out)


@settings(max_examples=60, deadline=None, database=None)
@given(
    secret=st.text(min_size=6, max_size=40).filter(lambda s: s.strip() == s and len(s.encode()) >= 6),
    before=st.binary(max_size=7),
    after=st.binary(max_size=7),
    urlsafe=st.booleans(),
    pad=st.booleans(),
)
@example(secret="000000", before=b"\0", after=b"\0\0", urlsafe=False, pad=False)  # found by CI: 6 bytes, lead 1
@example(secret="abcdef", before=b"\0\0", after=b"", urlsafe=True, pad=True)  # 6 bytes, lead 2
def test_base64_at_any_alignment(secret, before, after, urlsafe, pad):
    """A secret of six bytes or more is masked in base64 at each of the three byte
    alignments it can have inside a longer encoded blob."""
    raw = secret.encode("utf-8", "surrogatepass")
    blob = before + raw + after
    encoded = (base64.urlsafe_b64encode if urlsafe else base64.b64encode)(blob).decode()
    encoded = encoded if pad else encoded.rstrip("=")
    out = Scrubber([secret]).scrub(f"payload={encoded}")
    assert not decodes_to(out, raw), (secret, encoded, out)


@settings(max_examples=60, deadline=None, database=None)
@given(
    secret=st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=4, max_size=30).filter(lambda s: s.strip() == s)
)
@example(secret="****")  # found by a local run: a secret made of the mask's own characters
@example(secret="<<**")
def test_text_encodings(secret):
    scrub = Scrubber([secret]).scrub
    for form in (
        secret,
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        json.dumps(json.dumps(secret))[1:-1],
        repr(secret)[1:-1],
        quote(secret),
        quote(secret, safe=""),
        quote_plus(secret),
    ):
        out = scrub(f"<<{form}>>")
        # the mask itself is made of '*': a secret like '****' is judged on what the masks leave
        assert MASK in out and form not in out.replace(MASK, "\0"), (secret, form, out)


@pytest.mark.parametrize("secret", ['zqx7-S3CRET/key+"quoted"\\back', "plain-secret-value-1234"])
def test_a_secret_cut_between_two_pieces_of_a_stream_is_masked(secret):
    """The agent reads the workload's output in bounded pieces: a secret (or one of its
    encoded forms) cut at any point between two pieces never reaches the log whole."""
    from ephemera.secrets import StreamScrubber

    scrubber = Scrubber([secret])
    for text in (
        f"env: {secret} done\n",
        f"json: {json.dumps({'k': secret})}\n",
        f"b64: {base64.b64encode(secret.encode()).decode()}\n",
    ):
        for cut in range(1, len(text)):
            stream = StreamScrubber(scrubber)
            shown = stream.feed(text[:cut]) + stream.feed(text[cut:]) + stream.flush()
            assert shown == scrubber.scrub(text), (cut, shown)
            assert MASK in shown


def _go(text: str) -> str:
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def _lower_percent(text: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), text)


def new_forms(secret: str) -> list[str]:
    """The encodings issue 16's finding 9 found unmasked: Go's JSON escapes, HTML entities,
    lower-case and double percent-encoding."""
    once = json.dumps(secret)[1:-1]
    return [
        _go(once),
        _go(once).replace("\\u003c", "\\u003C").replace("\\u003e", "\\u003E"),
        _go(json.dumps(secret, ensure_ascii=False)[1:-1]),
        _go(json.dumps(once)[1:-1]),
        html.escape(secret),
        html.escape(secret, quote=False),
        str(markupsafe.escape(secret)),
        "".join(f"&#{ord(c)};" if c in "&<>\"'" else c for c in secret),
        "".join(f"&#x{ord(c):x};" if c in "&<>\"'" else c for c in secret),
        _lower_percent(quote(secret)),
        _lower_percent(quote(secret, safe="")),
        _lower_percent(quote_plus(secret)),
        quote(quote(secret, safe=""), safe=""),
        quote(quote(secret)),
        quote(quote_plus(secret), safe=""),
        _lower_percent(quote(quote(secret, safe=""), safe="")),
    ]


def test_finding_9_each_new_encoding_of_a_secret_is_masked():
    """Finding 9 of issue 16, as reported: a Go program logs JSON with ``\\u0026``/``\\u003c``
    (Go's encoding/json escapes '<', '>' and '&' that way, for HTML safety), a page shows
    HTML entities, a proxy logs lower-case (``%2f``) or double (``%252F``) percent-encoding;
    none of these was masked."""
    secret = 'tok<en>&"q\'/p+ x-0123'
    scrub = Scrubber([secret]).scrub
    for form in new_forms(secret):
        assert form != secret
        out = scrub(f"logged: {form} end")
        assert MASK in out and "0123" not in out, (form, out)


@settings(max_examples=60, deadline=None, database=None)
@given(
    secret=st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=4, max_size=30).filter(lambda s: s.strip() == s)
)
@example(secret="a<b>&'\"c")
@example(secret="%2F%2f")  # a secret that looks percent-encoded itself
def test_new_text_encodings(secret):
    """Property: Go/JSON escapes, HTML entities (named and numeric), lower-case and double
    percent-encoding of any secret are masked inside longer text."""
    scrub = Scrubber([secret]).scrub
    for form in new_forms(secret):
        out = scrub(f"<<{form}>>")
        assert MASK in out and form not in out.replace(MASK, "\0"), (secret, form, out)


def test_a_webhook_url_printed_without_its_host_is_masked():
    """Finding 9: a Slack webhook URL's secret is its path; a log line quoting only the path
    (a client logging ``POST /services/T…/B…/…``) kept it. The path and query of a URL
    secret are masked alone, in their encodings too, once long enough to be unique; a
    short path (``/hook``) is anyone's text and stays."""
    url = "https://hooks.slack.com/services/T0002/B0002/slack-token-77ab90cd?x=1&y=2"
    scrub = Scrubber([url, "https://example.com/hook"]).scrub
    for printed in (
        "POST /services/T0002/B0002/slack-token-77ab90cd?x=1&y=2 HTTP/1.1",
        "path=services/T0002/B0002/slack-token-77ab90cd?x=1&y=2",
        "url=hooks.slack.com/services/T0002/B0002/slack-token-77ab90cd?x=1&y=2",
        "q=%2Fservices%2FT0002%2FB0002%2Fslack-token-77ab90cd%3Fx%3D1%26y%3D2",
        "j=/services/T0002/B0002/slack-token-77ab90cd?x=1\\u0026y=2",
    ):
        out = scrub(printed)
        assert "slack-token" not in out and MASK in out, (printed, out)
    assert scrub("GET /hook 200") == "GET /hook 200"
    assert scrub(f"full {url} here") == f"full {MASK} here"


@settings(max_examples=60, deadline=None, database=None)
@given(
    host=st.from_regex(r"[a-z]{1,12}\.example\.(com|org)", fullmatch=True),
    path=st.text(
        alphabet=st.characters(whitelist_categories=("Ll", "Lu", "Nd"), whitelist_characters="/-_.~"), min_size=16, max_size=60
    ).filter(lambda p: p.strip("/")),
)
def test_url_secret_path_alone(host, path):
    """Property: a URL secret's path (16 characters or more, not only slashes), printed
    without scheme and host, is masked."""
    path = "/" + path
    scrub = Scrubber([f"https://{host}{path}"]).scrub
    out = scrub(f"sent to {path} ok")
    assert path not in out.replace(MASK, "\0") and MASK in out, (path, out)

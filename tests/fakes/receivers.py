"""Local receivers for notifications: an HTTP server that records every POST, and an
SMTP server (aiosmtpd) that requires STARTTLS, with a self-signed certificate made
for 127.0.0.1, and AUTH after it."""

from __future__ import annotations

import datetime
import ipaddress
import json
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@dataclass
class Post:
    path: str
    headers: dict
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


class HTTPReceiver:
    """Records POSTs; ``statuses`` (popped per request) answers them, then 200; ``hold``
    (an Event) makes every request wait for it first."""

    def __init__(self):
        self.posts: list[Post] = []
        self.statuses: list[int] = []
        self.hold: threading.Event | None = None
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.posts.append(Post(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                if receiver.hold is not None:
                    receiver.hold.wait(30)
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "text/plain")
                    self.end_headers()
                    self.wfile.write(b"ok" if status == 200 else b"no")
                except (BrokenPipeError, ConnectionResetError):  # a sender that gave up waiting
                    pass

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def to(self, path: str) -> list[Post]:
        return [p for p in self.posts if p.path == path]

    def close(self):
        if self.hold is not None:
            self.hold.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def self_signed(folder: Path) -> tuple[Path, Path]:
    """(cert, key) PEM files of a fresh self-signed certificate for 127.0.0.1."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "smtp-cert.pem", folder / "smtp-key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


@dataclass
class Mail:
    mail_from: str
    rcpt_tos: list
    data: bytes
    tls: bool  # the session had done STARTTLS
    login: str | None  # who authenticated


@dataclass
class SMTPReceiver:
    host: str
    port: int
    ca_file: Path
    mails: list = field(default_factory=list)
    logins: list = field(default_factory=list)  # (user, password) pairs tried
    controller: object = None

    def close(self):
        self.controller.stop()


def start_smtp(folder: Path, user: str, password: str, mode: str = "starttls") -> SMTPReceiver:
    """An SMTP server on 127.0.0.1. ``mode``: "starttls" (requires STARTTLS, then AUTH),
    "implicit" (TLS from the first byte, as on port 465), or "clear" (offers no TLS and
    takes AUTH in clear text: a lax relay, or what a man in the middle who strips
    STARTTLS looks like); every AUTH it gets is in ``logins``."""
    import ssl

    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    cert, key = self_signed(folder)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    receiver = SMTPReceiver("127.0.0.1", port, cert)

    def authenticator(server, session, envelope, mechanism, auth_data):
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login, pw = auth_data.login.decode(), auth_data.password.decode()
        receiver.logins.append((login, pw))
        return AuthResult(success=(login, pw) == (user, password), handled=False)

    class Handler:
        async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
            receiver.mails.append(
                Mail(
                    envelope.mail_from,
                    list(envelope.rcpt_tos),
                    envelope.content,
                    session.ssl is not None,
                    getattr(session, "login_data", None),
                )
            )
            return "250 OK"

    if mode == "clear":
        options = {"auth_require_tls": False}
    elif mode == "implicit":
        # aiosmtpd counts only STARTTLS as TLS, so it would not offer AUTH here; the socket is TLS from the start
        options = {"ssl_context": tls, "auth_require_tls": False}
    else:
        options = {"tls_context": tls, "require_starttls": True, "auth_require_tls": True}
    controller = Controller(
        Handler(), hostname="127.0.0.1", port=port, auth_required=True, authenticator=authenticator, **options
    )
    controller.start()
    receiver.controller = controller
    return receiver

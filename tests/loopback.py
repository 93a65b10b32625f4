"""Real servers on 127.0.0.1 for delivery tests: an SMTP server and a webhook receiver.

Both bind a free port, run in a background thread and shut down when the `with` block
ends, whatever happened inside it. They behave like a careful receiver would: the webhook
server checks signatures and de-duplicates by message id, as docs/delivery.md tells
integrators to do.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller

from runtime.delivery import verify_signature

HOST = "127.0.0.1"


def free_port() -> int:
    """A port nothing listens on right now (the OS picks it)."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


# -- SMTP -------------------------------------------------------------------------------------


@dataclass(slots=True)
class Mail:
    """One message the SMTP server accepted."""

    message: EmailMessage
    mail_from: str
    rcpt_tos: list[str]
    peer: tuple[str, int]  # the client's address: one connection keeps one port


@dataclass(slots=True)
class SmtpLoopback:
    host: str
    port: int
    mails: list[Mail] = field(default_factory=list)
    # RCPT replies by address, e.g. {"gone@example.com": "550 5.1.1 no such user"}.
    rcpt_replies: dict[str, str] = field(default_factory=dict)

    @property
    def messages(self) -> list[EmailMessage]:
        return [m.message for m in self.mails]


class _SmtpHandler:
    def __init__(self, box: SmtpLoopback) -> None:
        self.box = box

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        reply = self.box.rcpt_replies.get(address)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        peer = (str(session.peer[0]), int(session.peer[1]))
        self.box.mails.append(Mail(parsed, envelope.mail_from, list(envelope.rcpt_tos), peer))
        return f"250 2.0.0 queued as {len(self.box.mails)}"


@contextmanager
def smtp_server(
    port: int | None = None, rcpt_replies: dict[str, str] | None = None
) -> Iterator[SmtpLoopback]:
    """An aiosmtpd server collecting what it receives as `EmailMessage` objects."""
    box = SmtpLoopback(HOST, port or free_port(), rcpt_replies=dict(rcpt_replies or {}))
    controller = Controller(_SmtpHandler(box), hostname=HOST, port=box.port, ready_timeout=10)
    controller.start()
    try:
        yield box
    finally:
        controller.stop()


# -- webhooks ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Request:
    """One HTTP request the webhook server received, and what it answered."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int

    @property
    def message_id(self) -> str | None:
        return self.headers.get("x-ticketflow-message-id")


@dataclass(slots=True)
class WebhookLoopback:
    host: str
    port: int
    secret: str | None
    fail_first: int
    status: int
    delay: float
    reply: bytes
    received: list[Request] = field(default_factory=list)
    failed: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/hook"

    @property
    def accepted(self) -> list[Request]:
        return [r for r in self.received if 200 <= r.status < 300]

    def delivered_ids(self) -> list[str]:
        """Message ids the application saw, each once, in arrival order."""
        return list(dict.fromkeys(r.message_id for r in self.accepted if r.message_id))

    def answer(self, headers: dict[str, str], body: bytes) -> int:
        """The status for a request: 401 for a bad signature, then the planned failures."""
        if self.secret is not None:
            header = headers.get("x-ticketflow-signature", "")
            if not verify_signature(self.secret, header, body, time.time()):
                return 401
        if self.failed < self.fail_first:
            self.failed += 1
            return self.status
        return 200


class _WebhookHandler(BaseHTTPRequestHandler):
    server: _WebhookHTTPServer

    def _handle(self) -> None:
        box = self.server.box
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        headers = {k.lower(): v for k, v in self.headers.items()}
        with box.lock:
            status = box.answer(headers, body)
            box.received.append(Request(self.command, self.path, headers, body, status))
        if box.delay:
            time.sleep(box.delay)
        # A client that gave up waiting (a timeout test) has nobody left to answer.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self._answer(status, box.reply if status == 200 else b"failed")

    def _answer(self, status: int, payload: bytes) -> None:
        self.send_response(status)
        if 300 <= status < 400:
            self.send_header("Location", "/moved")  # a client that follows comes back here
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_POST = do_PUT = do_PATCH = _handle

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep pytest output clean


class _WebhookHTTPServer(ThreadingHTTPServer):
    daemon_threads = True  # a handler still sleeping must not hold up shutdown

    def __init__(self, box: WebhookLoopback) -> None:
        super().__init__((box.host, 0), _WebhookHandler)
        self.box = box
        box.port = int(self.server_address[1])


@contextmanager
def webhook_server(
    secret: str | None = None,
    fail_first: int = 0,
    status: int = 500,
    delay: float = 0.0,
    reply: bytes = b'{"ok": true}',
) -> Iterator[WebhookLoopback]:
    """A threaded HTTP receiver that records every request.

    With `secret`, requests with a missing or wrong signature get 401. The first
    `fail_first` correctly signed requests get `status`; `delay` seconds pass before
    any answer (to make a client time out); 200 answers carry `reply`.
    """
    box = WebhookLoopback(HOST, 0, secret, fail_first, status, delay, reply)
    server = _WebhookHTTPServer(box)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield box
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

"""Deliver outbox messages: email over SMTP, every other channel as a signed HTTP request.

Delivery is at-least-once: the worker calls `Deliverer.deliver` for a claimed row and, on a
transient `DeliveryError`, schedules it again after `next_attempt`. A retried message keeps
its id, sent as `X-Ticketflow-Message-Id` (and as the email's `Message-ID`), so a receiver
de-duplicates. Secrets are resolved only when a message needs one, and no value of theirs
ever reaches a log line, an exception or a receipt; URLs are named by host only, because
chat-bot URLs carry access tokens in their query string.
"""

from __future__ import annotations

import email.errors
import email.policy
import hashlib
import hmac
import json
import math
import os
import re
import smtplib
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Protocol, Self, cast, get_args

import httpx
from pydantic import (
    ConfigDict,
    Field,
    PositiveFloat,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from dsl.diagnostics import Diagnostic, Span
from dsl.yaml_loader import LoadLimits, load_yaml_file
from engine.errors import translate
from engine.fields import Strict
from engine.values import Duration, parse_duration

ChatChannel = Literal["sms", "wecom", "dingtalk", "slack", "push", "webhook"]
CHAT_CHANNELS: frozenset[str] = frozenset(get_args(ChatChannel))
USER_AGENT = "ticketflow-delivery/0.1"
MAX_RESPONSE_BYTES = 64 * 1024  # enough for an error reply; a hostile receiver gets no more
# CRLF line ends as on the wire; base64 or quoted-printable bodies, because a server that
# did not announce 8BITMIME may mangle raw UTF-8.
_MAIL_POLICY = email.policy.SMTP.clone(cte_type="7bit")
# Chat bots answer HTTP 200 with an error code in the body; these codes mean "slow down".
_BOT_RATE_LIMITED = {45009, 130101}


# -- configuration ----------------------------------------------------------------------------


class SecretRef(Strict):
    """Where a secret's value comes from: an environment variable or the file itself."""

    model_config = ConfigDict(hide_input_in_errors=True)

    env: str | None = Field(None, description="Environment variable holding the value.")
    value: SecretStr | None = Field(None, description="The value itself (prefer `env`).")
    tenants: list[str] | None = Field(
        None, description="Tenants whose packs may use this secret; all when absent."
    )

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.env is None) == (self.value is None):
            raise PydanticCustomError(
                "secret-source", "a secret has exactly one of `env:` or `value:`"
            )
        return self


class SmtpConfig(Strict):
    """The mail server email notifications go through."""

    host: str = Field(description="SMTP server host name.")
    port: int = Field(25, ge=1, le=65535, description="SMTP port: 25, 587 (STARTTLS), 465 (TLS).")
    sender: str = Field(description="The From address, e.g. `Service desk <desk@example.com>`.")
    username: str | None = Field(None, description="Login name, when the server needs one.")
    password_env: str | None = Field(None, description="Environment variable of the password.")
    starttls: bool = Field(False, description="Upgrade the connection with STARTTLS.")
    ssl: bool = Field(False, description="Connect with TLS from the start (port 465).")
    timeout: PositiveFloat = Field(30.0, description="Seconds to wait for the server.")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.ssl and self.starttls:
            raise PydanticCustomError(
                "smtp-tls", "choose `ssl:` (TLS from the start) or `starttls:`"
            )
        if self.username is not None and self.password_env is None:
            raise PydanticCustomError(
                "smtp-login", "`username:` needs `password_env:` (password variable)"
            )
        return self


class Endpoint(Strict):
    """The HTTP endpoint a chat, SMS or push channel posts to."""

    url: str = Field(pattern=r"^https?://", description="Where to POST the message.")
    secret: str | None = Field(None, description="Name of the secret that signs the body.")
    format: Literal["generic", "slack", "wecom", "dingtalk"] = Field(
        "generic", description="The JSON shape of the body."
    )

    @field_validator("secret")
    @classmethod
    def _known_secret(cls, name: str | None, info: ValidationInfo) -> str | None:
        # `load` passes the secret names as context, so the error points at this key.
        known = info.context.get("secrets") if isinstance(info.context, dict) else None
        if name is not None and known is not None and name not in known:
            raise PydanticCustomError(
                "unknown-secret", "no secret '{name}' under `secrets:`", {"name": name}
            )
        return name


class RetryPolicy(Strict):
    """Exponential backoff between attempts; after `max_attempts` a message is dead."""

    max_attempts: int = Field(6, ge=1, le=100, description="Attempts before a message is dead.")
    base: Duration = Field("30s", description="Delay after the first failed attempt.")
    factor: float = Field(2.0, ge=1.0, le=10.0, description="Growth of the delay per attempt.")
    cap: Duration = Field("1h", description="Longest delay between two attempts.")

    @model_validator(mode="after")
    def _cap_not_below_base(self) -> Self:
        if parse_duration(self.cap) < parse_duration(self.base):
            raise PydanticCustomError("retry-cap", "`cap` is shorter than `base`")
        return self


class ChannelConfig(Strict):
    """How messages leave ticketflow: a mail server, channel endpoints, secrets, retries."""

    # A secret's value must not show up in a printed ValidationError.
    model_config = ConfigDict(hide_input_in_errors=True)

    smtp: SmtpConfig | None = Field(None, description="Mail server for the email channel.")
    channels: dict[ChatChannel, Endpoint] = Field(
        default_factory=dict, description="The endpoint of each chat, SMS or push channel."
    )
    secrets: dict[str, SecretRef] = Field(default_factory=dict, description="Secrets, by name.")
    retry: RetryPolicy = Field(default_factory=RetryPolicy, description="Backoff and dead letter.")
    timeout: PositiveFloat = Field(10.0, description="Seconds an HTTP request may wait.")

    @model_validator(mode="after")
    def _secrets_exist(self) -> Self:
        for name, endpoint in self.channels.items():
            if endpoint.secret is not None and endpoint.secret not in self.secrets:
                message = "channel '{channel}' names secret '{name}', not under `secrets:`"
                ctx = {"channel": name, "name": endpoint.secret}
                raise PydanticCustomError("unknown-secret", message, ctx)
        return self

    @classmethod
    def load(cls, path: Path) -> ChannelConfig:
        """Read a channel config file; `ChannelConfigError` lists located problems."""
        doc, diagnostics = load_yaml_file(path, LoadLimits(max_bytes=256 * 1024))
        if doc is None:
            raise ChannelConfigError(diagnostics)
        if not isinstance(doc.data, dict):
            span = doc.source.value(()) or Span(str(path), 1, 1)
            raise ChannelConfigError([Diagnostic("not-a-mapping", "expected a mapping", span)])
        secrets = doc.data.get("secrets")
        names = set(secrets) if isinstance(secrets, dict) else set()
        try:
            return cls.model_validate(doc.data, context={"secrets": names})
        except ValidationError as exc:
            problems = translate(exc, cls, doc.data, doc.source)
            raise ChannelConfigError([_without_value(d) for d in problems]) from None


def _without_value(d: Diagnostic) -> Diagnostic:
    """A diagnostic about a secret's value must not quote it."""
    parts = (d.pointer or "").split("/")
    if len(parts) >= 4 and parts[1] == "secrets" and parts[3] == "value":
        return replace(d, message="a secret's `value:` must be text (quote it)")
    return d


class ChannelConfigError(Exception):
    """A channel config file that cannot be used, with every problem and where it is."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        super().__init__("\n".join(d.headline() for d in diagnostics))
        self.diagnostics = diagnostics


# -- results and errors -----------------------------------------------------------------------


class OutboxMessage(Protocol):
    """What delivery reads of an outbox row (`runtime.records.OutboxRow` has it)."""

    @property
    def id(self) -> str: ...
    @property
    def tenant_id(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def payload(self) -> Mapping[str, Any]: ...
    @property
    def attempts(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Receipt:
    """A delivery the receiver acknowledged."""

    message_id: str
    channel: str  # email, sms, ..., or `webhook` for a pack's webhook action
    target: str  # the mail server or URL host that accepted it
    status: int  # HTTP status or SMTP reply code
    response: str  # the reason phrase or SMTP reply text, shortened
    elapsed: float  # seconds


class DeliveryError(Exception):
    """A failed attempt. `permanent` means retrying cannot help: the message is dead."""

    def __init__(self, message: str, permanent: bool) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent


def _permanent(message: str) -> DeliveryError:
    return DeliveryError(message, permanent=True)


def _transient(message: str) -> DeliveryError:
    return DeliveryError(message, permanent=False)


# -- signatures and backoff -------------------------------------------------------------------


def sign(secret: bytes, body: bytes, timestamp: int) -> str:
    """`t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body>`; the time stops replays."""
    mac = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_signature(
    secret: bytes | str, header: str, body: bytes, now: float, tolerance: int = 300
) -> bool:
    """True when `header` signs `body` with `secret` within `tolerance` seconds of `now`."""
    key = secret.encode() if isinstance(secret, str) else secret
    parts = [p.split("=", 1) for p in header.split(",") if "=" in p]
    stamps = [v for k, v in parts if k.strip() == "t"]
    macs = [v.strip() for k, v in parts if k.strip() == "v1"]
    # Twelve digits reach the year 33658; a longer stamp is an attack on int().
    if len(stamps) != 1 or not re.fullmatch(r"\s*[0-9]{1,12}\s*", stamps[0]) or not macs:
        return False
    timestamp = int(stamps[0])
    if abs(now - timestamp) > tolerance:
        return False
    expected = sign(key, body, timestamp).split("v1=", 1)[1]
    # Several v1 values let a sender sign with an old and a new secret during a rotation.
    return any(hmac.compare_digest(expected, mac) for mac in macs)


def next_attempt(attempts: int, retry: RetryPolicy, message_id: str) -> timedelta | None:
    """The wait before the next attempt after `attempts` failed ones; None: give up (dead).

    base·factor^(attempts-1), capped, then moved by up to ±10% by a jitter taken from the
    message id: retries of many messages failing together spread out, and a test sees the
    same delays every run.
    """
    if attempts < 1:
        raise ValueError("attempts counts failed attempts and starts at 1")
    if attempts >= retry.max_attempts:
        return None
    base = parse_duration(retry.base).total_seconds()
    cap = parse_duration(retry.cap).total_seconds()
    # Compare logarithms so a large exponent never overflows a float.
    grown = retry.factor > 1 and (attempts - 1) * math.log(retry.factor) >= math.log(cap / base)
    nominal = cap if grown else min(cap, base * retry.factor ** (attempts - 1))
    digest = hashlib.sha256(message_id.encode()).digest()
    jitter = int.from_bytes(digest[:8], "big") / 2**64 * 0.2 - 0.1  # in [-0.1, 0.1)
    return timedelta(seconds=round(nominal * (1 + jitter), 3))


# -- message bodies -----------------------------------------------------------------------------


def _text(payload: Mapping[str, Any], key: str) -> str | None:
    value = payload.get(key)
    return value if isinstance(value, str) and value else None


def _recipient(payload: Mapping[str, Any]) -> dict[str, Any]:
    to = payload.get("to")
    return dict(to) if isinstance(to, Mapping) else {}


def _message_text(payload: Mapping[str, Any]) -> str:
    """The subject as a first line (chat messages have no subject), then the body."""
    subject, body = _text(payload, "subject"), _text(payload, "body") or ""
    if subject and not body.startswith(subject):
        return f"{subject}\n\n{body}" if body else subject
    return body


def channel_body(fmt: str, row: OutboxMessage, channel: str) -> dict[str, Any]:
    """The JSON a channel endpoint receives, in the shape its `format` names."""
    payload, text = row.payload, _message_text(row.payload)
    phones = [p] if (p := _text(_recipient(payload), "phone")) else []
    if fmt == "slack":
        return {"text": text}
    if fmt == "wecom":
        return {"msgtype": "text", "text": {"content": text, "mentioned_mobile_list": phones}}
    if fmt == "dingtalk":
        return {"msgtype": "text", "text": {"content": text}, "at": {"atMobiles": phones}}
    return {
        "message_id": row.id,
        "tenant": row.tenant_id,
        "channel": channel,
        "to": _recipient(payload),
        "subject": _text(payload, "subject"),
        "text": _text(payload, "body") or "",
        "ticket": payload.get("ticket"),
    }


def _host(url: str) -> str:
    try:
        return httpx.URL(url).host or "an invalid URL"
    except httpx.InvalidURL:
        return "an invalid URL"


@dataclass(frozen=True, slots=True)
class _Request:
    """One HTTP request to make: what and where, and the secret name that signs it."""

    channel: str
    url: str
    method: str
    body: bytes
    content_type: str
    secret: str | None
    bot: bool  # a chat bot that reports errors inside a 200 answer


# -- the deliverer ------------------------------------------------------------------------------


class Deliverer:
    """Sends outbox messages; one HTTP client and one SMTP connection serve a whole batch.

    Use it as a context manager (or call `close()`) so the connections are released.
    `env` and `clock` are injectable for tests; they default to the process's.
    """

    def __init__(
        self,
        config: ChannelConfig,
        client: httpx.Client | None = None,
        *,
        env: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self._own_client = client is None
        self._client = client or httpx.Client(headers={"User-Agent": USER_AGENT})
        self._env = os.environ if env is None else env
        self._clock = clock
        self._smtp: smtplib.SMTP | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Say goodbye to the mail server and close the HTTP client if it is ours."""
        self._drop_smtp(polite=True)
        if self._own_client:
            self._client.close()

    def deliver(self, row: OutboxMessage, attempt: int | None = None) -> Receipt:
        """Send one message. `attempt` (default: `row.attempts + 1`) is sent to receivers.

        Raises `DeliveryError`; its `permanent` flag says whether a retry can help.
        """
        number = row.attempts + 1 if attempt is None else attempt
        if row.kind == "webhook":
            return self._http(row, self._action_request(row), number)
        channel = getattr(row, "channel", None) or row.payload.get("channel")
        if channel == "email":
            return self._email(row)
        if isinstance(channel, str) and channel in CHAT_CHANNELS:
            return self._http(row, self._channel_request(row, channel), number)
        if row.kind != "notify":
            raise _permanent(f"outbox message of unknown kind '{row.kind}'")
        raise _permanent(f"no adapter delivers over channel {channel!r}")

    # -- secrets --------------------------------------------------------------------------

    def _secret(self, name: str, tenant: str) -> bytes:
        """A secret's value; unknown, unset or not the tenant's is a permanent error."""
        ref = self.config.secrets.get(name)
        if ref is None or (ref.tenants is not None and tenant not in ref.tenants):
            raise _permanent(f"unknown secret '{name}'")
        if ref.value is not None:
            return ref.value.get_secret_value().encode()
        value = self._env.get(ref.env or "")
        if not value:
            raise _permanent(f"secret '{name}': environment variable {ref.env} is not set")
        return value.encode()

    # -- HTTP -----------------------------------------------------------------------------

    def _action_request(self, row: OutboxMessage) -> _Request:
        p = row.payload
        url = _text(p, "url")
        if url is None:
            raise _permanent("webhook message has no url")
        method = (_text(p, "method") or "POST").upper()
        if method not in ("POST", "PUT", "PATCH"):
            raise _permanent(f"webhook method {method} is not one of POST, PUT, PATCH")
        body = _text(p, "body")
        data = body.encode() if body is not None else _json(_default_body(row))
        ctype = _text(p, "content_type") or "application/json"
        return _Request("webhook", url, method, data, ctype, _text(p, "secret"), bot=False)

    def _channel_request(self, row: OutboxMessage, channel: str) -> _Request:
        endpoint = self.config.channels.get(cast(ChatChannel, channel))
        if endpoint is None:
            raise _permanent(f"no endpoint is configured for channel '{channel}'")
        if channel == "sms" and not _text(_recipient(row.payload), "phone"):
            raise _permanent("the recipient has no phone number for an SMS")
        body = _json(channel_body(endpoint.format, row, channel))
        bot = endpoint.format in ("wecom", "dingtalk")
        return _Request(
            channel, endpoint.url, "POST", body, "application/json", endpoint.secret, bot
        )

    def _headers(self, row: OutboxMessage, req: _Request, attempt: int) -> dict[str, str]:
        headers = {
            "Content-Type": req.content_type,
            "X-Ticketflow-Message-Id": row.id,
            "X-Ticketflow-Attempt": str(attempt),
        }
        if req.secret is not None:
            key = self._secret(req.secret, row.tenant_id)
            headers["X-Ticketflow-Signature"] = sign(key, req.body, int(self._clock()))
        return headers

    def _http(self, row: OutboxMessage, req: _Request, attempt: int) -> Receipt:
        host, started = _host(req.url), time.perf_counter()
        headers = self._headers(row, req, attempt)
        try:
            with self._client.stream(
                req.method,
                req.url,
                content=req.body,
                headers=headers,
                timeout=self.config.timeout,
                follow_redirects=False,
            ) as resp:
                reply = _read_limited(resp)
        except (httpx.UnsupportedProtocol, httpx.InvalidURL, httpx.LocalProtocolError):
            raise _permanent(f"{req.channel} to {host}: the request cannot be sent") from None
        except httpx.TimeoutException:
            message = f"{req.channel} to {host} timed out after {self.config.timeout:g}s"
            raise _transient(message) from None
        except httpx.TransportError as exc:
            raise _transient(
                f"{req.channel} to {host}: connection failed ({type(exc).__name__}: {exc})"
            ) from None
        _check_status(req, host, resp, reply)
        elapsed = time.perf_counter() - started
        return Receipt(row.id, req.channel, host, resp.status_code, resp.reason_phrase, elapsed)

    # -- email ----------------------------------------------------------------------------

    def _email(self, row: OutboxMessage) -> Receipt:
        smtp = self.config.smtp
        if smtp is None:
            raise _permanent("email is not configured (no `smtp:` in the channel config)")
        to = _recipient(row.payload)
        address = _text(to, "email")
        if address is None:
            raise _permanent("the recipient has no email address")
        msg = _email_message(row, smtp.sender, to.get("name"), address)
        started = time.perf_counter()
        code, reply = self._smtp_send(smtp, msg, address)
        return Receipt(row.id, "email", smtp.host, code, reply, time.perf_counter() - started)

    def _smtp_send(self, cfg: SmtpConfig, msg: EmailMessage, rcpt: str) -> tuple[int, str]:
        reused = self._smtp is not None
        try:
            try:
                return _transfer(self._connection(cfg), cfg.sender, rcpt, msg.as_bytes())
            except smtplib.SMTPServerDisconnected:
                self._drop_smtp(polite=False)
                if not reused:
                    raise
                # A kept connection the server closed while idle: one fresh try is safe.
                return _transfer(self._connection(cfg), cfg.sender, rcpt, msg.as_bytes())
        except smtplib.SMTPResponseException as exc:
            raise _smtp_refusal(cfg.host, exc.smtp_code, exc.smtp_error) from None
        except (OSError, smtplib.SMTPException) as exc:
            self._drop_smtp(polite=False)
            message = f"email via {cfg.host}:{cfg.port}: {type(exc).__name__}: {exc}"
            raise _transient(message) from None

    def _connection(self, cfg: SmtpConfig) -> smtplib.SMTP:
        if self._smtp is None:
            self._smtp = self._connect(cfg)
        return self._smtp

    def _connect(self, cfg: SmtpConfig) -> smtplib.SMTP:
        context = ssl.create_default_context()
        smtp = (
            smtplib.SMTP_SSL(cfg.host, cfg.port, timeout=cfg.timeout, context=context)
            if cfg.ssl
            else smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout)
        )
        try:
            if cfg.starttls:
                smtp.starttls(context=context)
            if cfg.username is not None:
                smtp.login(cfg.username, self._smtp_password(cfg))
        except BaseException:
            smtp.close()
            raise
        return smtp

    def _smtp_password(self, cfg: SmtpConfig) -> str:
        password = self._env.get(cfg.password_env or "")
        if not password:
            raise _permanent(f"email: SMTP password variable {cfg.password_env} is not set")
        return password

    def _drop_smtp(self, polite: bool) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        try:
            if polite:
                smtp.quit()
        except (OSError, smtplib.SMTPException):
            pass  # the server is gone already; nothing is lost
        smtp.close()


# -- helpers ------------------------------------------------------------------------------------


def _json(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


def _default_body(row: OutboxMessage) -> dict[str, Any]:
    """A webhook action without a body template sends what identifies the event."""
    p = row.payload
    return {
        "message_id": row.id,
        "tenant": row.tenant_id,
        "source": p.get("source"),
        "ref": p.get("ref"),
        "ticket": p.get("ticket"),
    }


def _read_limited(resp: httpx.Response) -> bytes:
    data = b""
    try:
        for chunk in resp.iter_bytes():
            data += chunk
            if len(data) >= MAX_RESPONSE_BYTES:
                break
    except httpx.DecodingError:
        return b""  # a garbled answer body; the status code still says what happened
    return data[:MAX_RESPONSE_BYTES]


def _check_status(req: _Request, host: str, resp: httpx.Response, reply: bytes) -> None:
    code, what = resp.status_code, f"{req.channel} to {host} answered {resp.status_code}"
    if 300 <= code < 400:
        raise _permanent(f"{what} (a redirect, which is not followed; fix the URL)")
    if code in (408, 429) or code >= 500:
        raise _transient(f"{what} {resp.reason_phrase}".rstrip())
    if code >= 400 or code < 200:
        raise _permanent(f"{what} {resp.reason_phrase}".rstrip())
    if req.bot:
        _check_bot_reply(what, reply)


def _check_bot_reply(what: str, reply: bytes) -> None:
    """WeCom and DingTalk robots answer 200 with `{"errcode": n, "errmsg": ...}`."""
    try:
        data = json.loads(reply)
    except ValueError:
        return
    code = data.get("errcode", 0) if isinstance(data, dict) else 0
    if not isinstance(code, int) or code == 0:
        return
    message = f"{what} with errcode {code}: {str(data.get('errmsg', ''))[:200]}"
    raise (_transient if code in _BOT_RATE_LIMITED else _permanent)(message)


def _one_line(text: str) -> str:
    """Header text: a rendered subject may hold line breaks, which would end the header."""
    return " ".join(text.split())


def _email_message(row: OutboxMessage, sender: str, name: Any, address: str) -> EmailMessage:
    msg = EmailMessage(policy=_MAIL_POLICY)
    msg["From"] = sender
    display = _one_line(name) if isinstance(name, str) else ""
    try:
        msg["To"] = Address(display_name=display, addr_spec=address)
    except (ValueError, IndexError, email.errors.MessageError):
        # Non-ASCII local parts would need SMTPUTF8, which not every relay speaks.
        raise _permanent(f"the recipient's email address {address!r} is not valid") from None
    subject = _text(row.payload, "subject") or _text(row.payload, "ref") or "ticketflow"
    msg["Subject"] = _one_line(subject)
    msg["Date"] = formatdate(localtime=False)
    # Derived from the outbox id, so a retried email has the same id and mail clients and
    # archives can drop the copy.
    msg["Message-ID"] = f"<{row.id}@ticketflow>"
    msg["X-Ticketflow-Message-Id"] = row.id
    msg.set_content(_text(row.payload, "body") or "")
    return msg


def _transfer(smtp: smtplib.SMTP, sender: str, rcpt: str, data: bytes) -> tuple[int, str]:
    """MAIL, RCPT, DATA by hand: `sendmail` hides the server's final reply (its queue id)."""
    smtp.ehlo_or_helo_if_needed()
    from_addr = parseaddr(sender)[1] or sender
    steps: list[tuple[Callable[[], tuple[int, bytes]], tuple[int, ...]]] = [
        (lambda: smtp.mail(from_addr), (250,)),
        (lambda: smtp.rcpt(rcpt), (250, 251)),
        (lambda: smtp.data(data), (250,)),
    ]
    code, reply = 0, b""
    for step, ok in steps:
        code, reply = step()
        if code not in ok:
            smtp.rset()
            raise smtplib.SMTPResponseException(code, reply)
    return code, reply.decode(errors="replace")[:200]


def _smtp_refusal(host: str, code: int, reply: bytes | str) -> DeliveryError:
    text = reply.decode(errors="replace") if isinstance(reply, bytes) else reply
    message = f"email via {host} refused with {code} {text[:200]}".rstrip()
    # 4xx is the server's "try again later" (greylisting, full mailbox, rate limit).
    return DeliveryError(message, permanent=code >= 500)

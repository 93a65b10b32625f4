"""Inbound email, read for intake: an RFC 822 message turned into what a ticket needs
(sender, recipients, subject, plain text, attachments as metadata), replies cut at the
quoted original, and ticket references found in a subject."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import getaddresses, parseaddr
from functools import lru_cache
from html.parser import HTMLParser
from typing import Literal

from runtime.commands import REF_PART
from runtime.records import InvalidCommand

# What a route may copy into a field (see `runtime.intake.EmailRoute`).
EmailPart = Literal["subject", "body", "from_address", "from_name", "to_address"]
DEFAULT_MAX_EMAIL_BYTES = 10 * 1024 * 1024
# Recipient headers, the envelope's first: a Bcc'd desk mailbox is only in Delivered-To.
_RECIPIENT_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "To", "Cc")


@dataclass(frozen=True, slots=True)
class Attachment:
    """An attached file as metadata: the file itself is not kept."""

    name: str | None
    content_type: str
    size: int

    def as_json(self) -> dict[str, object]:
        return {"name": self.name, "content_type": self.content_type, "size": self.size}


@dataclass(frozen=True, slots=True)
class InboundEmail:
    """An email as intake reads it. Addresses are lower-cased."""

    message_id: str | None
    from_address: str
    from_name: str
    recipients: tuple[str, ...]
    subject: str
    body: str
    attachments: tuple[Attachment, ...]
    auto_reply: bool  # an out-of-office or other machine reply: never a new ticket

    def part(self, name: EmailPart, recipient: str | None = None) -> str:
        """The text a field mapping names."""
        if name == "to_address":
            return recipient or (self.recipients[0] if self.recipients else "")
        value: str = getattr(self, name)
        return value


def parse_email(raw: bytes, max_bytes: int = DEFAULT_MAX_EMAIL_BYTES) -> InboundEmail:
    """Read a raw RFC 822 message; InvalidCommand when it is too big or has no sender."""
    if len(raw) > max_bytes:
        raise InvalidCommand(
            f"the message is {len(raw):,} bytes; this mailbox takes at most {max_bytes:,}"
        )
    if not raw.strip():
        raise InvalidCommand("the message is empty")
    msg = BytesParser(policy=policy.default).parsebytes(raw)
    senders = _addresses(msg, "From")
    if not senders:
        raise InvalidCommand("the message has no From address: it cannot be answered")
    name, address = senders[0]
    body_part = msg.get_body(preferencelist=("plain", "html"))
    return InboundEmail(
        message_id=_message_id(msg),
        from_address=address,
        from_name=name,
        recipients=tuple(
            dict.fromkeys(a for h in _RECIPIENT_HEADERS for _, a in _addresses(msg, h))
        ),
        subject=_header_text(msg, "Subject"),
        body=_body_text(body_part),
        attachments=tuple(_attachments(msg, body_part)),
        auto_reply=_is_auto_reply(msg),
    )


# -- headers ------------------------------------------------------------------------------------


def _header_text(msg: Message, name: str) -> str:
    try:
        value = msg.get(name)
    except Exception:  # a header the parser cannot make sense of reads as absent
        return ""
    return " ".join(str(value or "").split())


def _addresses(msg: Message, name: str) -> list[tuple[str, str]]:
    """(display name, lower-cased address) of every address in the named headers."""
    out: list[tuple[str, str]] = []
    try:
        headers = msg.get_all(name) or []
    except Exception:
        return out
    for header in headers:
        found = getattr(header, "addresses", None)
        if found is not None:
            out += [(a.display_name, a.addr_spec) for a in found if isinstance(a, Address)]
        else:
            out += getaddresses([str(header)])
    return [(" ".join(n.split()), a.strip().lower()) for n, a in out if "@" in a]


def _message_id(msg: Message) -> str | None:
    raw = _header_text(msg, "Message-ID")
    _, found = parseaddr(raw)
    value = (found or raw).strip("<> ")
    return value or None


def _is_auto_reply(msg: Message) -> bool:
    """RFC 3834 `Auto-Submitted`, and the older headers mailers still send."""
    auto = _header_text(msg, "Auto-Submitted").lower()
    precedence = _header_text(msg, "Precedence").lower()
    return (
        (auto != "" and auto != "no")
        or precedence in ("auto_reply", "bulk", "junk", "list")
        or bool(_header_text(msg, "X-Autoreply") or _header_text(msg, "X-Autorespond"))
    )


# -- body and attachments -------------------------------------------------------------------------


def _decoded(part: Message) -> str:
    if isinstance(part, EmailMessage):
        try:
            content = part.get_content()
            if isinstance(content, str):
                return content
        except (LookupError, ValueError):  # an unknown charset: read it as UTF-8
            pass
    payload = part.get_payload(decode=True)
    return payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""


def _body_text(part: Message | None) -> str:
    """The text of the body: text/plain, else text/html with its markup removed."""
    if part is None:
        return ""
    text = _decoded(part)
    if part.get_content_subtype() == "html":
        text = html_to_text(text)
    return tidy(text)


def _attachments(msg: EmailMessage, body: Message | None) -> Iterable[Attachment]:
    for part in msg.walk():
        if part.is_multipart() or part is body:
            continue
        name = part.get_filename()
        if part.get_content_disposition() != "attachment" and not name:
            continue  # the other alternative of the body (HTML next to plain text)
        payload = part.get_payload(decode=True)
        size = len(payload) if isinstance(payload, bytes) else 0
        yield Attachment(name, part.get_content_type(), size)


def tidy(text: str) -> str:
    """Unix line ends, no trailing spaces, at most one blank line in a row, trimmed."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


class _HtmlText(HTMLParser):
    """Collects the text of an HTML body: blocks become lines, scripts and styles vanish."""

    BLOCKS = frozenset(
        {"p", "div", "br", "tr", "li", "ul", "ol", "table", "blockquote", "pre", "hr"}
        | {"section", "h1", "h2", "h3", "h4", "h5", "h6"}
    )
    HIDDEN = frozenset({"script", "style", "head", "title"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.HIDDEN:
            self.hidden += 1
        elif tag in self.BLOCKS:
            self.parts.append("\n- " if tag == "li" else "\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif tag in self.BLOCKS and tag not in ("li", "br", "hr"):  # those start a line
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.parts.append(re.sub(r"[ \t\r\n]+", " ", data))


def html_to_text(html: str) -> str:
    """The readable text of an HTML fragment."""
    parser = _HtmlText()
    parser.feed(html)
    parser.close()
    lines = (line.strip() for line in "".join(parser.parts).split("\n"))
    return tidy("\n".join(lines))


# -- replies ------------------------------------------------------------------------------------

# Lines that introduce the quoted original: everything from them on is the old message.
_QUOTE_HEADERS = (
    re.compile(r"^On\b.{0,400}\bwrote:$"),  # Gmail, Apple Mail, Thunderbird
    re.compile(r"^在.{0,200}写道[:：]$"),  # the same in Chinese clients
    re.compile(r"^-{2,}\s*(Original Message|原始邮件|Forwarded message)\s*-{2,}$", re.I),
    re.compile(r"^_{10,}$"),  # Outlook's rule above its From:/Sent: block
)
_OUTLOOK_FROM = re.compile(r"^(From|发件人)\s*[:：]")
_OUTLOOK_NEXT = re.compile(r"^(Sent|Date|To|发送时间|收件人)\s*[:：]")


def strip_quoted(text: str) -> str:
    """The new part of a reply: cut at the quoted original ("On … wrote:", an Outlook
    header block, "-----Original Message-----") and drop lines quoted with ">"."""
    lines = text.replace("\r\n", "\n").split("\n")
    cut = next((i for i in range(len(lines)) if _starts_quote(lines, i)), len(lines))
    kept = [line for line in lines[:cut] if not line.lstrip().startswith(">")]
    return tidy("\n".join(kept))


def _starts_quote(lines: list[str], i: int) -> bool:
    line = lines[i].strip()
    following = lines[i + 1].strip() if i + 1 < len(lines) else ""
    if any(p.match(line) for p in _QUOTE_HEADERS):
        return True
    # "On Mon, 2 Mar 2026 at 09:14, Alice Example <alice@example.com>" wrapped before "wrote:"
    if line.startswith("On ") and following.endswith("wrote:"):
        return bool(_QUOTE_HEADERS[0].match(f"{line} {following}"))
    return bool(_OUTLOOK_FROM.match(line) and _OUTLOOK_NEXT.match(following))


# -- references -----------------------------------------------------------------------------------


@lru_cache(maxsize=1024)
def ref_regex(pattern: str) -> re.Pattern[str] | None:
    """A regex matching the references a template's `ref` pattern makes, or None when the
    pattern has no letters of its own (a bare number is too common to be a reference)."""
    literal = REF_PART.sub("", pattern)
    if not any(ch.isalpha() for ch in literal):
        return None
    out, last = [], 0
    for m in REF_PART.finditer(pattern):
        out.append(re.escape(pattern[last : m.start()]))
        name = m.group(1)
        if name.startswith("seq"):
            width = int(m.group(3) or 0)
            out.append(rf"\d{{{max(width, 1)},}}")
        else:
            out.append(r"\d{4}" if name == "yyyy" else r"\d{2}")
        last = m.end()
    out.append(re.escape(pattern[last:]))
    return re.compile(r"(?<![A-Za-z0-9])" + "".join(out) + r"(?![A-Za-z0-9])")


def find_refs(text: str, patterns: Mapping[str, re.Pattern[str]]) -> list[tuple[str, str]]:
    """(reference, key of the pattern that matched) for each reference-like text, in the
    order they appear; `patterns` maps e.g. `pack/template` to its `ref_regex`."""
    found: list[tuple[int, str, str]] = []
    for key, regex in patterns.items():
        found += [(m.start(), m.group(0), key) for m in regex.finditer(text)]
    return [(ref, key) for _, ref, key in sorted(found)]

"""Channel adapters against real loopback servers: what arrives, how it is signed, which
failures are worth a retry, and the backoff between retries."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from loopback import free_port, smtp_server, webhook_server

from runtime.delivery import (
    ChannelConfig,
    ChannelConfigError,
    Deliverer,
    DeliveryError,
    RetryPolicy,
    SmtpConfig,
    next_attempt,
    sign,
    verify_signature,
)
from runtime.records import OutboxRow

SECRET = "s3cr3t-do-not-leak"
TICKET = {"id": "t-17", "ref": "SR-2026-00017"}
WANG = {
    "id": "u1",
    "name": "王工",
    "email": "wang@example.com",
    "phone": "+8613800000000",
    "wecom": "wang",
}


def notify(channel: str, *, to: dict[str, Any] | None = None, row_id: str = "m-1") -> OutboxRow:
    payload = {
        "source": "rule:p1_alert",
        "ref": TICKET["ref"],
        "ticket": TICKET,
        "channel": channel,
        "to": WANG if to is None else to,
        "locale": "zh",
        "subject": "P1 报修：S0001 冷柜故障",
        "body": "门店 S0001 的冷柜不制冷，请尽快处理。",
        "message": "p1_alert",
    }
    return OutboxRow("acme", row_id, datetime(2026, 3, 2, tzinfo=UTC), "notify", "t-17", payload)


def webhook(url: str, *, secret: str | None = "hook", method: str = "POST") -> OutboxRow:
    payload = {
        "source": "rule:erp_sync",
        "ref": TICKET["ref"],
        "ticket": TICKET,
        "url": url,
        "method": method,
        "secret": secret,
        "body": json.dumps({"ref": TICKET["ref"], "note": "冷柜"}, ensure_ascii=False),
        "content_type": "application/json",
    }
    return OutboxRow("acme", "w-1", datetime(2026, 3, 2, tzinfo=UTC), "webhook", "t-17", payload)


def config(**extra: Any) -> ChannelConfig:
    data: dict[str, Any] = {"secrets": {"hook": {"value": SECRET}}, "timeout": 5, **extra}
    return ChannelConfig.model_validate(data)


def fail(deliverer: Deliverer, row: Any, attempt: int | None = None) -> DeliveryError:
    with pytest.raises(DeliveryError) as info:
        deliverer.deliver(row, attempt)
    return info.value


# -- config -------------------------------------------------------------------------------------

EXAMPLE = """\
smtp:
  host: smtp.example.com
  port: 587
  sender: "Service desk <desk@example.com>"
  username: desk
  password_env: SMTP_PASSWORD
  starttls: true
channels:
  wecom: {url: "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=abc", format: wecom}
  sms: {url: "https://sms.example.com/send", secret: sms_gateway}
secrets:
  sms_gateway: {env: SMS_GATEWAY_SECRET}
  erp: {value: "inline-secret", tenants: [acme]}
retry: {max_attempts: 8, cap: 30m}
timeout: 5
"""


def test_config_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "channels.yaml"
    path.write_text(EXAMPLE, encoding="utf-8")
    cfg = ChannelConfig.load(path)
    assert cfg.smtp is not None and (cfg.smtp.port, cfg.smtp.starttls) == (587, True)
    assert cfg.channels["wecom"].format == "wecom"
    assert cfg.channels["sms"].format == "generic"
    assert (cfg.retry.max_attempts, cfg.retry.base, cfg.retry.cap) == (8, "30s", "30m")
    assert "inline-secret" not in repr(cfg)


def test_the_documented_example_config_loads(tmp_path: Path) -> None:
    docs = (Path(__file__).parent.parent / "docs" / "delivery.md").read_text(encoding="utf-8")
    example = docs.split("```yaml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "channels.yaml"
    path.write_text(example, encoding="utf-8")
    cfg = ChannelConfig.load(path)
    assert sorted(cfg.channels) == ["dingtalk", "slack", "sms", "wecom"]
    assert cfg.secrets["erp"].tenants == ["acme"] and cfg.retry == RetryPolicy()


def test_config_errors_are_located_and_hide_secret_values(tmp_path: Path) -> None:
    path = tmp_path / "channels.yaml"
    path.write_text(
        "channels:\n"
        "  sms: {url: 'https://sms.example.com', secret: missing}\n"
        "  fax: {url: 'https://fax.example.com'}\n"
        "secrets:\n"
        "  pin: {value: 987654}\n"
        "retry: {base: 30x}\n",
        encoding="utf-8",
    )
    with pytest.raises(ChannelConfigError) as info:
        ChannelConfig.load(path)
    text = str(info.value)
    lines = {d.span.line: d for d in info.value.diagnostics if d.span}
    assert lines[2].code == "unknown-secret" and "missing" in lines[2].message
    assert lines[3].code == "invalid-value"  # `fax` is not a channel
    assert lines[5].message == "a secret's `value:` must be text (quote it)"
    assert lines[6].code == "invalid-duration"
    assert "987654" not in text


# -- email --------------------------------------------------------------------------------------


def smtp_config(port: int) -> ChannelConfig:
    smtp = SmtpConfig(host="127.0.0.1", port=port, sender="服务台 <desk@example.com>", timeout=5)
    return config(smtp=smtp)


def test_email_arrives_with_utf8_headers_and_body() -> None:
    row = notify("email")
    with smtp_server() as server, Deliverer(smtp_config(server.port)) as d:
        receipt = d.deliver(row)
    assert (receipt.status, receipt.channel, receipt.message_id) == (250, "email", "m-1")
    assert receipt.response.startswith("2.0.0 queued as 1")
    [mail] = server.mails
    msg = mail.message
    assert mail.mail_from == "desk@example.com" and mail.rcpt_tos == ["wang@example.com"]
    assert msg["From"].addresses[0].display_name == "服务台"
    assert msg["To"].addresses[0].display_name == "王工"
    assert msg["To"].addresses[0].addr_spec == "wang@example.com"
    assert msg["Subject"] == "P1 报修：S0001 冷柜故障"
    # Text is encoded in MIME's canonical form, lines ending in CRLF.
    assert msg.get_content() == "门店 S0001 的冷柜不制冷，请尽快处理。\r\n"
    assert msg["Content-Transfer-Encoding"] == "base64"  # safe through any relay
    assert msg["Message-ID"] == "<m-1@ticketflow>"
    assert msg["X-Ticketflow-Message-Id"] == "m-1"


def test_email_retry_keeps_message_id_on_one_connection() -> None:
    row = notify("email", row_id="m-42")
    with smtp_server() as server, Deliverer(smtp_config(server.port)) as d:
        d.deliver(row)
        d.deliver(row)
    assert [m.message["Message-ID"] for m in server.mails] == ["<m-42@ticketflow>"] * 2
    assert server.mails[0].peer == server.mails[1].peer  # the batch reused the connection


def test_email_reconnects_when_the_server_dropped_the_kept_connection() -> None:
    port = free_port()
    with Deliverer(smtp_config(port)) as d:
        with smtp_server(port=port) as first:
            d.deliver(notify("email", row_id="m-1"))
        # The server restarted; the deliverer still holds the connection the old one closed.
        with smtp_server(port=port) as second:
            receipt = d.deliver(notify("email", row_id="m-2"))
    assert receipt.status == 250
    assert [m.message["Message-ID"] for m in first.mails] == ["<m-1@ticketflow>"]
    assert [m.message["Message-ID"] for m in second.mails] == ["<m-2@ticketflow>"]


@pytest.mark.parametrize(
    ("reply", "permanent"),
    [("550 5.1.1 no such user", True), ("452 4.2.2 mailbox full, try later", False)],
)
def test_email_refusal_is_classified_by_reply_code(reply: str, permanent: bool) -> None:
    with (
        smtp_server(rcpt_replies={"wang@example.com": reply}) as server,
        Deliverer(smtp_config(server.port)) as d,
    ):
        error = fail(d, notify("email"))
        # The refusal reset the transaction; the same connection still delivers.
        d.deliver(notify("email", to={"email": "li@example.com"}, row_id="m-2"))
    assert error.permanent is permanent
    assert reply.split(" ", 1)[0] in error.message and "127.0.0.1" in error.message
    assert [m.rcpt_tos for m in server.mails] == [["li@example.com"]]


def test_email_without_address_or_server_is_permanent() -> None:
    with smtp_server() as server, Deliverer(smtp_config(server.port)) as d:
        no_address = fail(d, notify("email", to={"id": "u2", "name": "Li"}))
    with Deliverer(config()) as d:
        no_smtp = fail(d, notify("email"))
    assert no_address.permanent and "no email address" in no_address.message
    assert no_smtp.permanent and "not configured" in no_smtp.message
    assert server.mails == []


def test_email_headers_cannot_be_injected_and_bad_addresses_are_permanent() -> None:
    row = notify("email")
    row.payload["subject"] = "告警\r\nBcc: everyone@example.com"
    row.payload["to"] = {**WANG, "name": "王工\nBcc: x@example.com"}
    with smtp_server() as server, Deliverer(smtp_config(server.port)) as d:
        d.deliver(row)
        bad = [
            fail(d, notify("email", to={"email": e})) for e in ("wang", "a b@c.d", "王@例子.中国")
        ]
    [mail] = server.mails
    assert mail.message["Subject"] == "告警 Bcc: everyone@example.com"
    assert mail.message["Bcc"] is None and mail.rcpt_tos == ["wang@example.com"]
    assert all(e.permanent and "is not valid" in e.message for e in bad)


def test_smtp_login_without_its_password_is_permanent() -> None:
    with smtp_server() as server:
        smtp = SmtpConfig(
            host="127.0.0.1",
            port=server.port,
            sender="desk@example.com",
            username="desk",
            password_env="SMTP_PASSWORD",
        )
        with Deliverer(config(smtp=smtp), env={}) as d:
            error = fail(d, notify("email"))
    assert error.permanent and "SMTP_PASSWORD is not set" in error.message
    assert server.mails == []


def test_email_server_down_is_transient() -> None:
    with Deliverer(smtp_config(free_port())) as d:
        error = fail(d, notify("email"))
    assert not error.permanent and "127.0.0.1" in error.message


# -- webhooks -----------------------------------------------------------------------------------


def test_webhook_is_signed_and_the_signature_verifies() -> None:
    with webhook_server(secret=SECRET) as server, Deliverer(config()) as d:
        receipt = d.deliver(webhook(server.url, method="PUT"))
    assert (receipt.status, receipt.target, receipt.channel) == (200, "127.0.0.1", "webhook")
    [req] = server.received
    assert (req.method, req.path, req.status) == ("PUT", "/hook", 200)
    assert req.headers["content-type"] == "application/json"
    assert req.headers["x-ticketflow-message-id"] == "w-1"
    assert req.headers["x-ticketflow-attempt"] == "1"
    assert json.loads(req.body) == {"ref": "SR-2026-00017", "note": "冷柜"}
    header = req.headers["x-ticketflow-signature"]
    now = float(header.split(",")[0].removeprefix("t="))
    assert verify_signature(SECRET, header, req.body, now)
    assert not verify_signature(SECRET, header, req.body.replace("冷柜".encode(), b"x"), now)
    assert not verify_signature("another secret", header, req.body, now)
    assert not verify_signature(SECRET, header, req.body, now + 301)  # a replay, too late


def test_signature_format_and_malformed_headers() -> None:
    header = sign(b"k", b"{}", 1_700_000_000)
    assert header.startswith("t=1700000000,v1=") and len(header.split("v1=")[1]) == 64
    assert verify_signature(b"k", header, b"{}", 1_700_000_100)
    rotated = f"{header},v1={'0' * 64}"  # an extra signature, as during a secret rotation
    assert verify_signature("k", rotated, b"{}", 1_700_000_000)
    for bad in ("", "t=abc,v1=00", "v1=" + header.split("v1=")[1], "t=1700000000", "garbage"):
        assert not verify_signature(b"k", bad, b"{}", 1_700_000_000), bad


def test_unsigned_webhook_and_wrong_secret_are_refused_by_the_receiver() -> None:
    with webhook_server(secret="the receiver's secret") as server, Deliverer(config()) as d:
        wrong = fail(d, webhook(server.url))
        unsigned = fail(d, webhook(server.url, secret=None))
    assert [r.status for r in server.received] == [401, 401]
    assert "x-ticketflow-signature" not in server.received[1].headers
    assert wrong.permanent and unsigned.permanent and "401" in wrong.message


def test_three_failures_then_success_is_one_delivery() -> None:
    errors: list[DeliveryError] = []
    with (
        webhook_server(secret=SECRET, fail_first=3, status=503) as server,
        Deliverer(config()) as d,
    ):
        row = webhook(server.url)
        for attempt in range(1, 4):
            errors.append(fail(d, row, attempt))
        receipt = d.deliver(row, 4)
        d.deliver(row, 5)  # at-least-once: a duplicate the receiver must absorb
    assert [e.permanent for e in errors] == [False, False, False]
    assert all("503" in e.message for e in errors)
    assert receipt.status == 200
    assert [r.status for r in server.received] == [503, 503, 503, 200, 200]
    assert {r.message_id for r in server.received} == {"w-1"}
    assert [r.headers["x-ticketflow-attempt"] for r in server.received] == ["1", "2", "3", "4", "5"]
    assert server.delivered_ids() == ["w-1"]


def test_attempt_header_defaults_to_attempts_so_far_plus_one() -> None:
    with webhook_server() as server, Deliverer(config()) as d:
        row = webhook(server.url, secret=None)
        row.attempts = 2
        d.deliver(row)
    assert server.received[0].headers["x-ticketflow-attempt"] == "3"


@pytest.mark.parametrize(
    ("status", "permanent"),
    [
        *[(400, True), (404, True), (410, True), (422, True), (302, True), (307, True)],
        *[(408, False), (429, False), (500, False), (502, False), (503, False)],
    ],
)
def test_http_status_classification(status: int, permanent: bool) -> None:
    with webhook_server(fail_first=1, status=status) as server, Deliverer(config()) as d:
        error = fail(d, webhook(server.url, secret=None))
    assert error.permanent is permanent
    assert f"answered {status}" in error.message and "127.0.0.1" in error.message
    assert ("redirect" in error.message) is (300 <= status < 400)
    assert len(server.received) == 1  # a redirect is not followed


def test_timeout_is_transient() -> None:
    with webhook_server(delay=2.0) as server, Deliverer(config(timeout=0.2)) as d:
        error = fail(d, webhook(server.url, secret=None))
    assert not error.permanent and "timed out after 0.2s" in error.message


def test_connection_refused_is_transient() -> None:
    with Deliverer(config()) as d:
        error = fail(d, webhook(f"http://127.0.0.1:{free_port()}/hook", secret=None))
    assert not error.permanent
    assert "connection failed" in error.message and "127.0.0.1" in error.message


def test_errors_name_the_host_but_never_secrets_or_tokens() -> None:
    token = "tok-abcdef123456"
    with webhook_server(fail_first=1, status=500) as server, Deliverer(config()) as d:
        error = fail(d, webhook(f"{server.url}?access_token={token}"))
        unknown = fail(d, webhook(server.url, secret="nope"))
    assert "127.0.0.1" in error.message
    for e in (error, unknown):
        assert token not in e.message and SECRET not in e.message
        assert token not in repr(e.args) and SECRET not in repr(e.args)
    assert unknown.permanent and unknown.message == "unknown secret 'nope'"
    assert len(server.received) == 1  # nothing is sent unsigned when the secret is unknown


def test_secret_from_env_per_tenant() -> None:
    cfg = config(secrets={"erp": {"env": "ERP_SECRET", "tenants": ["acme"]}})
    with webhook_server(secret="from-env") as server:
        row = webhook(server.url, secret="erp")
        with Deliverer(cfg, env={"ERP_SECRET": "from-env"}) as d:
            receipt = d.deliver(row)
        with Deliverer(cfg, env={}) as d:
            unset = fail(d, row)
        other = OutboxRow("globex", "w-2", row.created_at, "webhook", None, row.payload)
        with Deliverer(cfg, env={"ERP_SECRET": "from-env"}) as d:
            foreign = fail(d, other)
    assert receipt.status == 200 and server.delivered_ids() == ["w-1"]
    assert unset.permanent and "ERP_SECRET is not set" in unset.message
    assert foreign.permanent and foreign.message == "unknown secret 'erp'"


# -- channel endpoints --------------------------------------------------------------------------

TEXT = "P1 报修：S0001 冷柜故障\n\n门店 S0001 的冷柜不制冷，请尽快处理。"


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("slack", {"text": TEXT}),
        (
            "wecom",
            {
                "msgtype": "text",
                "text": {"content": TEXT, "mentioned_mobile_list": ["+8613800000000"]},
            },
        ),
        (
            "dingtalk",
            {
                "msgtype": "text",
                "text": {"content": TEXT},
                "at": {"atMobiles": ["+8613800000000"]},
            },
        ),
        (
            "generic",
            {
                "message_id": "m-1",
                "tenant": "acme",
                "channel": "wecom",
                "to": WANG,
                "subject": "P1 报修：S0001 冷柜故障",
                "text": "门店 S0001 的冷柜不制冷，请尽快处理。",
                "ticket": TICKET,
            },
        ),
    ],
)
def test_channel_body_shapes(fmt: str, expected: dict[str, Any]) -> None:
    with webhook_server(secret=SECRET) as server:
        endpoint = {"url": server.url, "format": fmt, "secret": "hook"}
        with Deliverer(config(channels={"wecom": endpoint})) as d:
            receipt = d.deliver(notify("wecom"))
    assert receipt.channel == "wecom"
    [req] = server.accepted
    assert json.loads(req.body) == expected
    assert req.message_id == "m-1"


@pytest.mark.parametrize(
    ("errcode", "permanent"), [(93000, True), (310000, True), (45009, False), (130101, False)]
)
def test_chat_bot_error_inside_a_200_answer(errcode: int, permanent: bool) -> None:
    reply = json.dumps({"errcode": errcode, "errmsg": "robot says no"}).encode()
    with webhook_server(reply=reply) as server:
        cfg = config(channels={"dingtalk": {"url": server.url, "format": "dingtalk"}})
        with Deliverer(cfg) as d:
            error = fail(d, notify("dingtalk"))
    assert error.permanent is permanent
    assert f"errcode {errcode}: robot says no" in error.message


@dataclass
class RowWithChannel:
    """A row of the coming schema, where the channel is a column."""

    tenant_id: str
    id: str
    kind: str
    payload: dict[str, Any]
    channel: str | None
    attempts: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def test_channel_column_wins_over_payload_and_bad_channels_are_permanent() -> None:
    with webhook_server() as server:
        cfg = config(channels={"slack": {"url": server.url, "format": "slack"}})
        with Deliverer(cfg) as d:
            d.deliver(RowWithChannel("acme", "m-9", "notify", notify("sms").payload, "slack"))
            unknown = fail(d, notify("fax"))
            in_app = fail(d, notify("in_app"))
            unconfigured = fail(d, notify("push"))
            no_phone = fail(d, notify("sms", to={"id": "u2"}))
    assert json.loads(server.received[0].body) == {"text": TEXT}
    assert len(server.received) == 1
    assert unknown.permanent and "'fax'" in unknown.message
    assert in_app.permanent and "'in_app'" in in_app.message
    assert unconfigured.permanent and "no endpoint is configured for channel 'push'" in (
        unconfigured.message
    )
    assert no_phone.permanent  # sms needs a phone number; a missing one is not fixed by waiting


# -- backoff ------------------------------------------------------------------------------------


def delays(policy: RetryPolicy, message_id: str, upto: int) -> Iterator[timedelta | None]:
    return (next_attempt(n, policy, message_id) for n in range(1, upto + 1))


def test_backoff_doubles_with_a_stable_jitter_then_dies() -> None:
    policy = RetryPolicy()
    got = list(delays(policy, "m-1", 6))
    assert got[-1] is None  # the sixth failed attempt makes the message dead
    seconds = [d.total_seconds() for d in got[:-1] if d is not None]
    for nominal, actual in zip([30, 60, 120, 240, 480], seconds, strict=True):
        assert nominal * 0.9 <= actual <= nominal * 1.1
    # One jitter per message: the ratio between steps is exactly the factor.
    assert [round(b / a, 2) for a, b in itertools.pairwise(seconds)] == [2.0] * 4
    assert list(delays(policy, "m-1", 6)) == got  # reproducible


def test_backoff_is_capped_and_jitter_spreads_messages() -> None:
    policy = RetryPolicy(max_attempts=40, base="30s", factor=2, cap="1h")
    capped = [d.total_seconds() for d in delays(policy, "m-1", 39) if d is not None]
    assert max(capped) <= 3600 * 1.1 and len(set(capped[8:])) == 1
    spread = {next_attempt(1, policy, f"m-{i}") for i in range(50)}
    assert len(spread) > 40
    assert all(d is not None and 27 <= d.total_seconds() <= 33 for d in spread)
    huge = RetryPolicy(max_attempts=100, factor=10, cap="1d")
    last = next_attempt(99, huge, "m-1")  # 10**98 would overflow a float if not capped first
    assert last is not None and 86400 * 0.9 <= last.total_seconds() <= 86400 * 1.1
    assert next_attempt(100, huge, "m-1") is None


def test_backoff_rejects_zero_attempts() -> None:
    with pytest.raises(ValueError, match="starts at 1"):
        next_attempt(0, RetryPolicy(), "m-1")

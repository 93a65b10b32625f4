"""The captcha hook of public forms: a check `(tenant, answer) -> ok`. `site_verify` is the
one most captcha services share (hCaptcha, Cloudflare Turnstile, reCAPTCHA): POST the secret
and the answer to their verify URL, read `success` from the JSON answer."""

from __future__ import annotations

import logging

import httpx

from runtime.api_intake import CaptchaCheck

log = logging.getLogger("ticketflow.captcha")


def site_verify(url: str, secret: str, timeout: float = 5.0) -> CaptchaCheck:
    """A check that asks the service at `url`; an unreachable service refuses (fail closed)."""
    client = httpx.Client(timeout=timeout)

    def check(tenant: str, answer: str | None) -> bool:
        if not answer:
            return False
        try:
            reply = client.post(url, data={"secret": secret, "response": answer})
            return reply.status_code == 200 and reply.json().get("success") is True
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("captcha service %s failed for tenant %s: %s", url, tenant, exc)
            return False

    return check

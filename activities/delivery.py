"""Delivering one notification to one channel: signed JSON webhooks and Slack-style messages.

HTTP with the standard library (urllib, in a thread). Redirects are not followed (a webhook
that moved is a configuration error, and a redirected POST would lose its body). Error text
names the status or the network error, never the URL: channel URLs can carry tokens.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import http.client
import json
import urllib.error
import urllib.request
from typing import Any

from domain.channels import Channel
from domain.notifications import Notification

SIGNATURE_HEADER = "X-Escalation-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
ATTEMPT_HEADER = "X-Escalation-Attempt"
USER_AGENT = "ticket-escalation/0.1"
KIND_TITLE = {
    "at_risk": (":warning:", "SLA at risk"),
    "breach": (":rotating_light:", "SLA breached"),
    "escalated": (":arrow_double_up:", "Escalated"),
    "breach_reminder": (":bell:", "SLA still breached"),
}


class DeliveryError(Exception):
    """The channel did not take the notification (status, timeout, network)."""


def sign(secret: str, body: bytes) -> str:
    """The signature header's value: `sha256=<hex HMAC-SHA256 of the body>`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str) -> bool:
    """What a receiver does (docs/configuration.md#notification-channels): constant-time
    comparison of the signature."""
    return hmac.compare_digest(sign(secret, body), header)


def _headline(n: Notification) -> str:
    _, title = KIND_TITLE[n.kind]
    return f"{title} · {n.tier} · ticket {n.ticket_id}: {n.subject}"


def webhook_body(n: Notification, policy: str | None, link: str | None) -> bytes:
    """The JSON body: the notification's fields plus the policy, workflow id, link and text."""
    data: dict[str, Any] = {
        **n.model_dump(mode="json"),
        "policy": policy,
        "workflow_id": f"ticket-{n.ticket_id}",
        "link": link,
        "text": f"{_headline(n)} — {n.message}" + (f" ({link})" if link else ""),
    }
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_body(n: Notification, link: str | None) -> bytes:
    """A Slack-compatible incoming-webhook body: `{"text": ...}` in Slack's mrkdwn."""
    emoji, title = KIND_TITLE[n.kind]
    ticket = f"<{link}|{_slack_escape(n.ticket_id)}>" if link else _slack_escape(n.ticket_id)
    text = (
        f"{emoji} *{title}* · {_slack_escape(n.tier)} · ticket {ticket}: "
        f"{_slack_escape(n.subject)}\n{_slack_escape(n.message)}"
    )
    return json.dumps({"text": text}, ensure_ascii=False).encode()


def request_for(
    channel: Channel, n: Notification, policy: str | None, link: str | None, attempt: int
) -> tuple[bytes, dict[str, str]]:
    """The body and headers of one delivery attempt (the body is the same on every attempt)."""
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": USER_AGENT,
        IDEMPOTENCY_HEADER: n.notification_id,
        ATTEMPT_HEADER: str(attempt),
    }
    if channel.type == "slack":
        return slack_body(n, link), headers
    body = webhook_body(n, policy, link)
    assert channel.secret is not None  # parse_channels requires one for webhooks
    headers[SIGNATURE_HEADER] = sign(channel.secret, body)
    return body, headers


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # urllib then raises HTTPError with the 3xx status


_OPENER = urllib.request.build_opener(_NoRedirect)


def _post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> None:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            response.read(65536)
    except urllib.error.HTTPError as exc:
        exc.close()
        raise DeliveryError(f"HTTP {exc.code}") from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, TimeoutError):
            raise DeliveryError(f"timed out after {timeout:g}s") from None
        raise DeliveryError(f"connection failed: {reason}") from None
    except TimeoutError:
        raise DeliveryError(f"timed out after {timeout:g}s") from None
    except (OSError, http.client.HTTPException) as exc:  # reset, closed without a response
        raise DeliveryError(f"connection failed: {type(exc).__name__}: {exc}") from None


async def deliver(
    channel: Channel, n: Notification, policy: str | None, link: str | None, attempt: int
) -> None:
    """POST the notification to the channel; DeliveryError unless it answers 2xx in time."""
    body, headers = request_for(channel, n, policy, link, attempt)
    await asyncio.to_thread(_post, channel.url, body, headers, channel.timeout.total_seconds())

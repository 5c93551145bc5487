"""Sending the webhook outbox: each WebhookDelivery is posted to its endpoint, signed per the
Standard Webhooks specification, with the same webhook-id on every attempt.

A send claims the row with a conditional update (a task delivered twice sends once), checks the
address again and connects to the address it checked (pharmacy/webhook_addresses.py), follows no
redirect, and records the attempt (its time, the HTTP status or the error, how long it took). A
2xx answer is success; anything else puts the row back to pending for its next attempt, after an
exponential back-off with jitter that the caller gives (pharmacy.tasks.backoff), until the
delivery or its endpoint has failed for WEBHOOK_DISABLE_AFTER: then the delivery is given up, or
the endpoint turned off and its clinic's prescribers emailed. The secret signs the message and
never leaves this module: it is neither logged nor stored anywhere else."""

import datetime
import http.client
import json
import logging
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from .models import Delivery, DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from .webhook_addresses import WebhookAddressRefused, WebhookTarget, webhook_target
from .webhooks import endpoint_turn_off_failing

logger = logging.getLogger(__name__)
S = DeliveryStatus

# What is read of an answer at most: receivers answer with a short acknowledgement, and nothing
# of the answer is kept.
MAX_ANSWER_BYTES = 64 * 1024
USER_AGENT = "LDN-Portal-Webhooks/1"


@dataclass(frozen=True)
class SendOutcome:
    """What a send did: whether the message was accepted, and the emails it wrote (its endpoint
    was turned off) for the caller to queue."""

    sent: bool
    emails: list[Delivery] = field(default_factory=list)


def signed_headers(
    *, endpoint: WebhookEndpoint, message_id: str, at: datetime.datetime, body: bytes
) -> dict[str, str]:
    """The Standard Webhooks headers of a message sent at `at`: webhook-id, webhook-timestamp
    (seconds) and webhook-signature, which during a rotation's grace carries the signature by
    the new secret and by the old one, space-separated."""
    at = at.astimezone(datetime.UTC)
    secrets = [endpoint.secret]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret and expires is not None and at < expires:
        secrets.append(endpoint.previous_secret)
    text = body.decode()
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": " ".join(
            Webhook(secret).sign(msg_id=message_id, timestamp=at, data=text) for secret in secrets
        ),
    }


def message_body(payload: dict) -> bytes:
    """The payload as sent: compact JSON, keys sorted (the same bytes on every attempt)."""
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """HTTP to an address checked beforehand, never to the name resolved again."""

    def __init__(self, target: WebhookTarget, address: str, timeout: float):
        super().__init__(target.host, target.port, timeout=timeout)
        self._address = address

    def connect(self):
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to an address checked beforehand; the certificate is verified for the host name."""

    def __init__(self, target: WebhookTarget, address: str, timeout: float):
        super().__init__(
            target.host, target.port, timeout=timeout, context=ssl.create_default_context()
        )
        self._address = address

    def connect(self):
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def _post(target: WebhookTarget, body: bytes, headers: dict[str, str]) -> int:
    """POST the body to the first of the target's addresses that answers; the HTTP status."""
    connection_class = _PinnedHTTPSConnection if target.scheme == "https" else _PinnedHTTPConnection
    refused: OSError | None = None
    for address in target.addresses:
        connection = connection_class(target, address, settings.WEBHOOK_TIMEOUT)
        try:
            connection.connect()
        except OSError as error:
            refused = error
            connection.close()
            continue
        try:
            connection.request(
                "POST",
                target.path,
                body,
                {**headers, "content-type": "application/json", "user-agent": USER_AGENT},
            )
            answer = connection.getresponse()
            answer.read(MAX_ANSWER_BYTES)
            return answer.status
        finally:
            connection.close()
    raise refused or OSError("no address to connect to")


def _error_text(error: BaseException) -> str:
    if isinstance(error, WebhookAddressRefused):
        return f"Refused: {' '.join(error.messages)}"
    if isinstance(error, SoftTimeLimitExceeded):
        return "Stopped: the send took longer than its time limit."
    return f"{type(error).__name__}: {error}"[:500]


def webhook_delivery_send(*, delivery_id: int, retry_delay: Callable[[int], int]) -> SendOutcome:
    """Send one delivery, once per claim. retry_delay(n) is the seconds to wait after the n-th
    failed attempt (n from 0). Returns whether it was sent, and the emails written when its
    endpoint was turned off."""
    now = timezone.now()
    claimed = WebhookDelivery.objects.filter(
        pk=delivery_id, status=S.PENDING, next_attempt_at__lte=now
    ).update(status=S.SENDING, claimed_at=now, attempts=F("attempts") + 1)
    if not claimed:
        return SendOutcome(sent=False)
    delivery = WebhookDelivery.objects.select_related("endpoint").filter(pk=delivery_id).first()
    if delivery is None:  # its endpoint was deleted meanwhile
        return SendOutcome(sent=False)
    endpoint = delivery.endpoint
    if not endpoint.enabled:
        WebhookDelivery.objects.filter(pk=delivery_id, status=S.SENDING).update(
            status=S.FAILED, last_error="Not sent: the endpoint is turned off."
        )
        return SendOutcome(sent=False)
    started = time.monotonic()
    status, error = None, ""
    try:
        target = webhook_target(endpoint.url)
        body = message_body(delivery.payload)
        headers = signed_headers(
            endpoint=endpoint, message_id=delivery.message_id, at=timezone.now(), body=body
        )
        status = _post(target, body, headers)
    except (
        OSError,
        ValueError,
        http.client.HTTPException,
        WebhookAddressRefused,
        SoftTimeLimitExceeded,
    ) as e:
        error = _error_text(e)
    else:
        if not 200 <= status < 300:
            # A redirect is not followed: the endpoint's address is the one the clinic gave.
            error = f"HTTP {status}" + (
                " (redirects are not followed)" if 300 <= status < 400 else ""
            )
    duration_ms = round((time.monotonic() - started) * 1000)
    logger.info(
        "webhook delivery %s to endpoint %s: %s in %s ms",
        delivery_id,
        endpoint.pk,
        status or error.split(":")[0],
        duration_ms,
    )
    return _record(
        delivery,
        attempted_at=now,
        status=status,
        error=error,
        duration_ms=duration_ms,
        retry_delay=retry_delay,
    )


def _record(
    delivery: WebhookDelivery,
    *,
    attempted_at: datetime.datetime,
    status: int | None,
    error: str,
    duration_ms: int,
    retry_delay: Callable[[int], int],
) -> SendOutcome:
    """The attempt, and what follows from it, in one transaction: sent; or pending for the next
    attempt; or given up; or the endpoint turned off."""
    now = timezone.now()
    with transaction.atomic():
        # The endpoint first, then the delivery (the order the publisher and the pages never
        # reverse): concurrent sends to one endpoint take turns at its failing_since.
        endpoint = (
            WebhookEndpoint.objects.select_for_update().filter(pk=delivery.endpoint_id).first()
        )
        mine = WebhookDelivery.objects.select_for_update().filter(pk=delivery.pk, status=S.SENDING)
        if endpoint is None or not mine.exists():
            # Deleted meanwhile, or given back by the sweep (this worker took too long): the
            # row is another run's now.
            return SendOutcome(sent=not error)
        WebhookAttempt.objects.create(
            delivery_id=delivery.pk,
            attempted_at=attempted_at,
            response_status=status,
            error=error,
            duration_ms=duration_ms,
        )
        if not error:
            mine.update(status=S.SENT, sent_at=now, last_error="", next_attempt_at=None)
            if endpoint.failing_since is not None:
                endpoint.failing_since = None
                endpoint.save(update_fields=["failing_since"])
            return SendOutcome(sent=True)
        if endpoint.failing_since is None:
            endpoint.failing_since = attempted_at
            endpoint.save(update_fields=["failing_since"])
        give_up = now - settings.WEBHOOK_DISABLE_AFTER
        if endpoint.enabled and endpoint.failing_since <= give_up:
            mine.update(status=S.FAILED, last_error=error)
            return SendOutcome(
                sent=False, emails=endpoint_turn_off_failing(endpoint=endpoint, now=now)
            )
        if (delivery.resent_at or delivery.created_at) <= give_up:
            hours = round(settings.WEBHOOK_DISABLE_AFTER.total_seconds() / 3600)
            mine.update(status=S.FAILED, last_error=f"{error} (given up after {hours} hours)")
            return SendOutcome(sent=False)
        next_at = now + datetime.timedelta(seconds=retry_delay(delivery.attempts - 1))
        mine.update(status=S.PENDING, last_error=error, next_attempt_at=next_at, queued_at=None)
    return SendOutcome(sent=False)

"""Sending the outbox: each Delivery row becomes one email, sent once.

Sending claims the row with a conditional update, so a task delivered twice sends once; a
failure puts the row back to pending with the reason, for the task's retry or the sweep
(pharmacy/tasks.py). The message is composed when it is sent: a label email attaches the
order's latest label, rendered first if there is none. Subjects carry no personal health
information."""

import contextlib
import logging
import select
import threading
import time
from smtplib import SMTPException

from django.conf import settings
from django.core.mail import EmailMessage, EmailMultiAlternatives, get_connection
from django.db import transaction
from django.db.models import F
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from orders.models import OrderEventKind
from orders.services import order_event_record

from .label_documents import label_render
from .models import Delivery, DeliveryKind, DeliveryStatus, RecallNotice
from .selectors import latest_label, recall_notice_orders

logger = logging.getLogger(__name__)
K, S = DeliveryKind, DeliveryStatus


def _portal_url(name: str, *args) -> str:
    return settings.PORTAL_BASE_URL + reverse(name, args=args)


def _account_message(delivery: Delivery) -> EmailMessage:
    """An account email as it was made with Django's mail API (notifications.message_enqueue)."""
    kept = delivery.message
    message = EmailMultiAlternatives(
        kept["subject"],
        kept["body"],
        kept["from_email"],
        to=[delivery.recipient],
        reply_to=kept["reply_to"],
        headers=kept["headers"],
    )
    for content, mimetype in kept["alternatives"]:
        message.attach_alternative(content, mimetype)
    return message


def _message(delivery: Delivery) -> EmailMessage:
    """The email of an outbox row, with the row's Message-ID (the same on every attempt)."""
    if delivery.kind == K.ACCOUNT:
        message = _account_message(delivery)
    else:
        message = _composed_message(delivery)
    message.extra_headers["Message-ID"] = delivery.message_id
    return message


def _composed_message(delivery: Delivery) -> EmailMessage:
    """An email about an order or a recall, made from its templates when it is sent."""
    context = {"pharmacy_name": settings.PHARMACY_NAME, "delivery": delivery}
    if delivery.order_id is not None:
        order = delivery.order
        context |= {
            "order": order,
            "order_url": _portal_url("order_detail", order.pk),
            # Read only by the templates that print it (the template calls it): one query
            # fewer for the label emails.
            "note": lambda: order.events.filter(to_status=order.status)
            .values_list("note", flat=True).last(),
        }  # fmt: skip
    elif delivery.recall_notice_id is not None:
        notice = delivery.recall_notice
        context |= {
            "recall": notice.recall,
            "orders": recall_notice_orders(notice),
            "notice_url": _portal_url("recall_notice_detail", notice.pk),
        }
    else:  # a webhook endpoint turned off (pharmacy/webhooks.py); None if deleted since
        endpoint = delivery.webhook_endpoint
        context |= {
            "endpoint": endpoint,
            "endpoint_url": endpoint and _portal_url("webhook_endpoint_detail", endpoint.pk),
            "webhooks_url": _portal_url("webhook_endpoint_list"),
            "hours": round(settings.WEBHOOK_DISABLE_AFTER.total_seconds() / 3600),
        }
    subject = render_to_string(f"emails/{delivery.kind}_subject.txt", context)
    body = render_to_string(f"emails/{delivery.kind}.txt", context)
    message = EmailMessage(" ".join(subject.split()), body, to=[delivery.recipient])
    if delivery.kind == K.LABEL_READY:
        document = latest_label(delivery.order) or label_render(order=delivery.order)
        with document.file.open("rb") as pdf:
            message.attach(f"label-{delivery.order.number}.pdf", pdf.read(), "application/pdf")
    return message


_SMTP_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
_SMTP_SETTINGS = (
    "EMAIL_HOST", "EMAIL_PORT", "EMAIL_HOST_USER", "EMAIL_HOST_PASSWORD", "EMAIL_USE_TLS",
    "EMAIL_USE_SSL", "EMAIL_TIMEOUT",
)  # fmt: skip
# A kept connection is closed after this many messages or seconds, as mail servers limit both
# (the limits of Postfix's own SMTP client when it reuses connections).
_SMTP_REUSE_MESSAGES = 100
_SMTP_REUSE_SECONDS = 300
# A connection used less than this long ago is taken as it is when the server has not closed it
# (nothing waits on its socket); one idle for longer must answer NOOP first. Servers close idle
# connections after minutes, not seconds (RFC 5321 4.5.3.2.7: at least 5 minutes), and say so
# with a 421 reply and the end of the stream, which the socket shows at once.
_SMTP_FRESH_SECONDS = 5
_smtp = threading.local()  # this thread's open connection: connection, key, opened, sent, used


def _send(message: EmailMessage) -> None:
    """Send through SMTP over a connection this thread keeps open: a worker process sends many
    messages with one TCP (and TLS) handshake and login, not one per message.

    A kept connection is used again only if it is still open: one the server closed while idle
    is replaced before sending. Between messages sent back to back that costs no round trip
    (_still_open); after a pause it answers NOOP. A failed send drops it, and the next send (a
    retry) opens a new one. Other backends (files, tests) send as usual."""
    if settings.OUTBOX_EMAIL_BACKEND != _SMTP_BACKEND:
        get_connection(settings.OUTBOX_EMAIL_BACKEND).send_messages([message])
        return
    key = tuple(getattr(settings, name) for name in _SMTP_SETTINGS)
    connection = getattr(_smtp, "connection", None)
    if connection is not None and (
        _smtp.key != key
        or _smtp.sent >= _SMTP_REUSE_MESSAGES
        or time.monotonic() - _smtp.opened > _SMTP_REUSE_SECONDS
        or not _still_open(connection, idle=time.monotonic() - _smtp.used)
    ):
        _drop_smtp()
        connection = None
    if connection is None:
        connection = get_connection(_SMTP_BACKEND)
        connection.open()
        opened = time.monotonic()
        _smtp.connection, _smtp.key, _smtp.sent = connection, key, 0
        _smtp.opened = _smtp.used = opened
    try:
        connection.send_messages([message])  # already open: it stays open
    except BaseException:
        _drop_smtp()
        raise
    _smtp.sent += 1
    _smtp.used = time.monotonic()


def _still_open(connection, *, idle: float) -> bool:
    """Whether a kept connection can take the next message. Used a moment ago, with nothing to
    read on its socket, it can; otherwise (idle for longer, or the server said something: a 421
    goodbye, the end of the stream, or a TLS record still to be read) it must answer NOOP."""
    client = connection.connection
    if client is None or client.sock is None:
        return False
    if idle < _SMTP_FRESH_SECONDS:
        waiting = select.poll()
        try:
            waiting.register(client.sock, select.POLLIN)
        except (OSError, ValueError):  # closed on this side
            return False
        if not waiting.poll(0):
            return True
    try:
        return client.noop()[0] == 250
    except (SMTPException, OSError):
        return False


def _drop_smtp() -> None:
    connection, _smtp.connection = getattr(_smtp, "connection", None), None
    if connection is not None:
        with contextlib.suppress(SMTPException, OSError):  # broken: no goodbye to say
            connection.close()


def delivery_send(*, delivery_id: int) -> bool:
    """Send one outbox row, once. Returns False when another run has it or it was sent."""
    claimed = Delivery.objects.filter(pk=delivery_id, status=S.PENDING).update(
        status=S.SENDING, claimed_at=timezone.now(), attempts=F("attempts") + 1
    )
    if not claimed:
        return False
    delivery = Delivery.objects.select_related(
        "order__clinic", "order__prescription", "recall_notice__recall"
    ).get(pk=delivery_id)
    try:
        message = _message(delivery)
    except ValueError as refused:
        # Its label cannot be made as the order stands: failed once, with the reason.
        logger.warning("delivery %s failed: %s", delivery_id, refused)
        delivery_fail(delivery_id=delivery_id, error=label_failure(refused))
        return False
    try:
        _send(message)
    except Exception as error:
        # Back to pending with the reason: the task retries, the sweep picks it up later.
        Delivery.objects.filter(pk=delivery_id, status=S.SENDING).update(
            status=S.PENDING, last_error=f"{type(error).__name__}: {error}"[:2000]
        )
        raise
    # An account email may hold a one-time link: once sent, only its subject is kept.
    kept = {"message": {"subject": delivery.message["subject"]}} if delivery.message else {}
    with transaction.atomic():
        Delivery.objects.filter(pk=delivery_id).update(
            status=S.SENT, sent_at=timezone.now(), last_error="", **kept
        )
        if delivery.order_id is not None:  # on the order's timeline
            order_event_record(
                order=delivery.order,
                kind=OrderEventKind.EMAIL_SENT,
                parameters={
                    "about": delivery.get_kind_display().lower(),
                    "recipient": delivery.recipient,
                    "delivery": delivery.pk,
                },
            )
        if delivery.recall_notice_id is not None:  # the recall's page shows it sent
            RecallNotice.objects.filter(pk=delivery.recall_notice_id).update(
                status=RecallNotice.Status.SENT
            )
    logger.info("delivery %s sent (%s)", delivery_id, delivery.kind)
    return True


def label_failure(refused: ValueError) -> str:
    """The reason a delivery failed because its label cannot be made."""
    return f"The label could not be made: {refused}"


def delivery_fail(*, delivery_id: int, error: str) -> None:
    """After the last retry: failed, visible in the admin, retried only by a person."""
    Delivery.objects.filter(pk=delivery_id).exclude(status=S.SENT).update(
        status=S.FAILED, last_error=error[:2000]
    )

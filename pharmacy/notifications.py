"""Emails to clinics and prescribers through an outbox.

Each email is first a Delivery row, written in the same transaction as the change that causes
it; its task is queued only after that transaction commits (pharmacy/tasks.py), and a periodic
sweep re-queues rows left pending or sending too long, so a broker outage or a killed worker
delays mail and loses none. pharmacy/outbox.py sends the rows. Subjects carry no personal
health information."""

import uuid
from email.utils import make_msgid

from django.core.exceptions import PermissionDenied, ValidationError
from django.core.mail import EmailMessage
from django.core.mail.backends.base import BaseEmailBackend
from django.db import IntegrityError, transaction

from core.roles import STAFF, has_staff_role

from .models import Delivery, DeliveryKind, DeliveryStatus, PrintJob, PrintStation, RecallNotice
from .tasks import queue_delivery, queue_print_job

K, S = DeliveryKind, DeliveryStatus


def delivery_enqueue(
    *,
    kind: DeliveryKind,
    recipient: str,
    order=None,
    recall_notice: RecallNotice | None = None,
    occasion: str = "",
) -> Delivery:
    """The outbox row of one email, made once: the same (kind, subject, recipient) again
    returns the row that exists. `occasion` tells apart the emails of the same kind about one
    order that are meant to go again (a second final check). Call it inside the transaction of
    the change."""
    subject_key = f"order:{order.pk}" if order is not None else f"recall_notice:{recall_notice.pk}"
    if occasion:
        subject_key += f":{occasion}"
    try:
        with transaction.atomic():
            delivery = Delivery.objects.create(
                kind=kind, recipient=recipient, subject_key=subject_key, order=order,
                recall_notice=recall_notice,
                # One Message-ID for every attempt: a resend after a worker died between the
                # SMTP hand-off and the database update is the same message to mail systems.
                message_id=make_msgid(domain="ldn-portal"),
            )  # fmt: skip
    except IntegrityError:
        return Delivery.objects.get(kind=kind, subject_key=subject_key, recipient=recipient)
    queue_delivery(delivery)
    return delivery


def delivery_retry(*, delivery: Delivery) -> bool:
    """A person asks to try a failed delivery again."""
    again = Delivery.objects.filter(pk=delivery.pk, status=S.FAILED).update(
        status=S.PENDING, last_error=""
    )
    if again:
        queue_delivery(delivery)
    return bool(again)


def print_job_start(*, orders, station: PrintStation | None = None, actor) -> PrintJob:
    """Queue the labels of the orders for a print station (ZPL for a thermal printer, a PDF
    for a station taking PDFs or for none); the job renders in the background and its page
    shows the progress, then the file. Nothing is rendered here."""
    if not has_staff_role(actor, STAFF):
        raise PermissionDenied("Only a pharmacist or a technician prints labels.")
    if station is not None and not station.is_active:
        raise ValidationError(f"The print station {station} is no longer in use.")
    ids = [order.pk for order in orders]
    if not ids:
        raise ValidationError("Choose the orders whose labels to print.")
    with transaction.atomic():
        job = PrintJob.objects.create(
            created_by=actor, order_ids=ids, total=len(ids), station=station
        )
        queue_print_job(job)
    return job


def message_enqueue(message: EmailMessage) -> list[Delivery]:
    """An email made elsewhere with Django's mail API (a password reset, a prescriber's
    decision): one outbox row per recipient, written in the caller's transaction. The row keeps
    the message until it is sent (it may hold a one-time link), then only its subject."""
    if message.cc or message.bcc or message.attachments:
        raise ValueError("The outbox takes messages to plain recipients without attachments.")
    deliveries = []
    for recipient in message.to:
        delivery = Delivery.objects.create(
            kind=K.ACCOUNT,
            recipient=recipient,
            subject_key=f"message:{uuid.uuid4().hex}",
            message_id=make_msgid(domain="ldn-portal"),
            message={
                "subject": message.subject,
                "body": message.body,
                "from_email": message.from_email,
                "reply_to": list(message.reply_to),
                "headers": dict(message.extra_headers),
                "alternatives": [
                    [content, mimetype]
                    for content, mimetype in getattr(message, "alternatives", ())
                ],
            },
        )
        queue_delivery(delivery)
        deliveries.append(delivery)
    return deliveries


class OutboxEmailBackend(BaseEmailBackend):
    """Django's email backend for the whole portal (settings.EMAIL_BACKEND): send_mail() and
    EmailMessage.send() anywhere write outbox rows, which the workers send through
    OUTBOX_EMAIL_BACKEND (SMTP, or files in the embedded default). No email is sent any other
    way, so a broker outage delays an activation link or a password reset and loses none."""

    def send_messages(self, email_messages):
        with transaction.atomic():
            for message in email_messages:
                message_enqueue(message)
        return len(email_messages)

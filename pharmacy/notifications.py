"""Emails to clinics and prescribers through an outbox.

Each email is first a Delivery row, written in the same transaction as the change that causes
it; its task is queued only after that transaction commits. Sending claims the row with a
conditional update, so a task delivered twice sends once; a periodic sweep re-queues rows left
pending or sending too long, so a broker outage or a killed worker delays mail and loses none.
Subjects carry no personal health information."""

import contextlib
import datetime
import logging
import threading
import time
from email.utils import make_msgid
from smtplib import SMTPException

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.core.files.base import ContentFile
from django.core.mail import EmailMessage, get_connection
from django.db import IntegrityError, transaction
from django.db.models import F, Max, Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from kombu.exceptions import OperationalError as KombuOperationalError

from .models import (
    Delivery,
    DeliveryKind,
    DeliveryStatus,
    LabelDocument,
    PrintJob,
    RecallNotice,
)
from .roles import has_staff_role

logger = logging.getLogger(__name__)
K, S = DeliveryKind, DeliveryStatus


def _queue(delivery: Delivery) -> None:
    """After commit: a label is rendered (render queue) before its email is sent (mail queue)."""
    kind, delivery_id, order_id = delivery.kind, delivery.pk, delivery.order_id
    transaction.on_commit(lambda: _publish(kind, delivery_id, order_id))


def _publish(kind: str, delivery_id: int, order_id: int | None) -> None:
    from .tasks import render_label, send_delivery  # tasks import this module

    try:
        if kind == K.LABEL_READY:
            render_label.delay(order_id=order_id, delivery_id=delivery_id)
        else:
            send_delivery.delay(delivery_id=delivery_id)
    except (KombuOperationalError, OSError) as error:
        # The broker is down: the change is committed and its row waits; the sweep queues it.
        logger.warning("delivery %s not queued (%s); the sweep will", delivery_id, error)


def delivery_enqueue(*, kind: DeliveryKind, recipient: str, order=None,
                     recall_notice: RecallNotice | None = None) -> Delivery:  # fmt: skip
    """The outbox row of one email, made once: the same (kind, subject, recipient) again
    returns the row that exists. Call it inside the transaction of the change."""
    subject_key = f"order:{order.pk}" if order is not None else f"recall_notice:{recall_notice.pk}"
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
    _queue(delivery)
    return delivery


def label_render(*, order, actor=None) -> LabelDocument:
    """Render the order's label PDF as a new version; earlier versions are kept. A person
    (actor) must be a pharmacist or a technician; the workers render without one."""
    from .labels import render_label_pdf

    if actor is not None and not has_staff_role(actor, {"pharmacist", "technician"}):
        raise PermissionDenied("Only a pharmacist or a technician renders labels.")
    pdf = render_label_pdf(order)
    with transaction.atomic():
        last = LabelDocument.objects.filter(order=order).aggregate(last=Max("version"))["last"]
        version = (last or 0) + 1
        document = LabelDocument(order=order, version=version, created_by=actor)
        document.file.save(f"{order.number}-v{version}.pdf", ContentFile(pdf), save=False)
        document.save()
    return document


def latest_label(order) -> LabelDocument | None:
    return LabelDocument.objects.filter(order=order).order_by("-version").first()


def _portal_url(name: str, *args) -> str:
    return settings.PORTAL_BASE_URL + reverse(name, args=args)


def _message(delivery: Delivery) -> EmailMessage:
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
    else:
        notice = delivery.recall_notice
        from .recalls import recall_impact

        impact = recall_impact(notice.recall)
        context |= {
            "recall": notice.recall,
            "orders": [o for o in impact.orders if o.clinic_id == notice.clinic_id],
        }
    subject = render_to_string(f"emails/{delivery.kind}_subject.txt", context)
    body = render_to_string(f"emails/{delivery.kind}.txt", context)
    message = EmailMessage(" ".join(subject.split()), body, to=[delivery.recipient])
    message.extra_headers["Message-ID"] = delivery.message_id
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
_smtp = threading.local()  # this thread's open connection: connection, key, opened, sent


def _send(message: EmailMessage) -> None:
    """Send through SMTP over a connection this thread keeps open: a worker process sends many
    messages with one TCP (and TLS) handshake and login, not one per message.

    A kept connection is used again only if it answers NOOP, so one that the server closed
    while idle is replaced before sending; a failed send drops it, and the next send (a retry)
    opens a new one. Other backends (files, tests) send as usual."""
    if settings.EMAIL_BACKEND != _SMTP_BACKEND:
        message.send()
        return
    key = tuple(getattr(settings, name) for name in _SMTP_SETTINGS)
    connection = getattr(_smtp, "connection", None)
    if connection is not None and (
        _smtp.key != key
        or _smtp.sent >= _SMTP_REUSE_MESSAGES
        or time.monotonic() - _smtp.opened > _SMTP_REUSE_SECONDS
        or not _answers_noop(connection)
    ):
        _drop_smtp()
        connection = None
    if connection is None:
        connection = get_connection(_SMTP_BACKEND)
        connection.open()
        _smtp.connection, _smtp.key, _smtp.opened, _smtp.sent = (
            connection, key, time.monotonic(), 0,
        )  # fmt: skip
    try:
        connection.send_messages([message])  # already open: it stays open
    except BaseException:
        _drop_smtp()
        raise
    _smtp.sent += 1


def _answers_noop(connection) -> bool:
    try:
        return connection.connection is not None and connection.connection.noop()[0] == 250
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
        _send(_message(delivery))
    except Exception as error:
        # Back to pending with the reason: the task retries, the sweep picks it up later.
        Delivery.objects.filter(pk=delivery_id, status=S.SENDING).update(
            status=S.PENDING, last_error=f"{type(error).__name__}: {error}"[:2000]
        )
        raise
    Delivery.objects.filter(pk=delivery_id).update(
        status=S.SENT, sent_at=timezone.now(), last_error=""
    )
    logger.info("delivery %s sent (%s)", delivery_id, delivery.kind)
    return True


def delivery_fail(*, delivery_id: int, error: str) -> None:
    """After the last retry: failed, visible in the admin, retried only by a person."""
    Delivery.objects.filter(pk=delivery_id).exclude(status=S.SENT).update(
        status=S.FAILED, last_error=error[:2000]
    )


def delivery_retry(*, delivery: Delivery) -> bool:
    """A person asks to try a failed delivery again."""
    again = Delivery.objects.filter(pk=delivery.pk, status=S.FAILED).update(
        status=S.PENDING, last_error=""
    )
    if again:
        _queue(delivery)
    return bool(again)


def delivery_sweep(*, now: datetime.datetime | None = None) -> int:
    """Re-queue what a broker outage or a killed worker left behind: rows pending for longer
    than OUTBOX_PENDING_AFTER, and rows still sending after OUTBOX_SENDING_AFTER (their worker
    died; the claim is given back). Returns how many it queued."""
    now = now or timezone.now()
    pending_before = now - datetime.timedelta(seconds=settings.OUTBOX_PENDING_AFTER)
    sending_before = now - datetime.timedelta(seconds=settings.OUTBOX_SENDING_AFTER)
    Delivery.objects.filter(status=S.SENDING, claimed_at__lt=sending_before).update(
        status=S.PENDING, last_error="Given back by the sweep: its worker stopped."
    )
    stale = Delivery.objects.filter(status=S.PENDING).filter(
        Q(claimed_at__lt=pending_before) | Q(claimed_at__isnull=True, created_at__lt=pending_before)
    )
    queued = 0
    for delivery in stale.order_by("pk").iterator():
        with transaction.atomic():
            _queue(delivery)
        queued += 1
    return queued


def print_job_start(*, orders, actor) -> PrintJob:
    """Queue the labels of many orders as one PDF; its page shows the progress."""
    ids = [order.pk for order in orders]
    job = PrintJob.objects.create(created_by=actor, order_ids=ids, total=len(ids))
    from .tasks import render_print_job

    render_print_job.delay_on_commit(job_id=job.pk)
    return job


def print_job_render(*, job_id: int) -> None:
    """Render a print job once: claimed with a conditional update, progress saved per chunk."""
    from orders.models import Order

    from .labels import render_labels_pdf

    claimed = PrintJob.objects.filter(pk=job_id, status=PrintJob.Status.QUEUED).update(
        status=PrintJob.Status.RUNNING
    )
    if not claimed:
        return
    job = PrintJob.objects.get(pk=job_id)
    orders = Order.objects.filter(pk__in=job.order_ids).order_by("pk")
    try:
        pdf = render_labels_pdf(
            orders, progress=lambda done, _total: PrintJob.objects.filter(pk=job_id).update(
                done=done),
        )  # fmt: skip
    except ValueError as refused:
        PrintJob.objects.filter(pk=job_id).update(status=PrintJob.Status.FAILED, error=str(refused))
        return
    job.file.save(f"labels-{job.total}-orders-{job.pk}.pdf", ContentFile(pdf), save=False)
    PrintJob.objects.filter(pk=job_id).update(
        file=job.file.name, done=job.total, status=PrintJob.Status.DONE
    )

"""Celery tasks of the pharmacy, and how the outbox queues them.

The tasks are thin, idempotent wrappers of the services that do the work (pharmacy/outbox.py,
pharmacy/label_documents.py, pharmacy/webhook_sending.py). Every email is an outbox row sent by
send_delivery, so one retry policy serves every email: exponential back-off with full jitter,
then failed for a person to retry. queue_delivery is called inside the transaction that wrote
the row and publishes after commit; a broker that cannot be reached leaves the row pending for
the sweep. Webhooks are outbox rows too, queued by webhook_dispatch when their attempt is due
(see the end of this module)."""

import datetime
import logging
import random
from smtplib import SMTPException

from celery import shared_task
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from kombu.exceptions import OperationalError as KombuOperationalError

from orders.models import Order
from orders.patient_reminders import patient_reminders_send
from prescribers.services import licence_expiry_notices_send

from . import outbox
from .label_documents import label_render, print_job_render
from .models import (
    Delivery,
    DeliveryKind,
    DeliveryStatus,
    PrintJob,
    WebhookAttempt,
    WebhookDelivery,
)
from .selectors import latest_label
from .webhook_sending import webhook_delivery_send
from .webhooks import webhook_events_publish

logger = logging.getLogger(__name__)
K, S = DeliveryKind, DeliveryStatus


def backoff(retries: int) -> int:
    """Seconds before retry n: exponential, capped, with full jitter (no thundering herd)."""
    ceiling = min(settings.OUTBOX_RETRY_MAX_DELAY, settings.OUTBOX_RETRY_BASE_DELAY * 2**retries)
    return random.randint(1, max(1, ceiling))


@shared_task(
    bind=True,
    max_retries=8,
    time_limit=settings.OUTBOX_SEND_TIME_LIMIT,
    soft_time_limit=max(1, settings.OUTBOX_SEND_TIME_LIMIT * 4 // 5),
)
def send_delivery(self, *, delivery_id: int) -> None:
    try:
        outbox.delivery_send(delivery_id=delivery_id)
    except (SMTPException, OSError) as error:
        if self.request.is_eager:
            # In-process (no broker): leave the row pending for the sweep, never fail the page.
            logger.warning("delivery %s not sent, left for the sweep: %s", delivery_id, error)
            return
        if self.request.retries >= self.max_retries:
            outbox.delivery_fail(delivery_id=delivery_id, error=str(error))
            return
        raise self.retry(exc=error, countdown=backoff(self.request.retries)) from error


@shared_task(bind=True, max_retries=3)
def render_label(self, *, order_id: int, delivery_id: int | None = None) -> None:
    """Render the order's label once (a redelivered task finds it), then queue its email."""
    try:
        with transaction.atomic():
            # The order's row is locked while its label is looked for and rendered: the same
            # task taken by two worker processes at once (two sweeps queued it) renders once.
            order = Order.objects.select_for_update().get(pk=order_id)
            if latest_label(order) is None:
                label_render(order=order)
    except ValueError as refused:
        # The label cannot be made as the order stands (its text does not fit, a batch was
        # recalled): a retry would fail the same way. Its email fails once, with the reason,
        # for a person to see in the admin.
        logger.warning("label of order %s not made: %s", order_id, refused)
        if delivery_id is not None:
            outbox.delivery_fail(delivery_id=delivery_id, error=outbox.label_failure(refused))
        return
    except Exception:
        if not self.request.is_eager:
            raise
        # In-process (no broker): the page that made the order ready must not fail; the
        # delivery stays pending and the sweep renders and sends it later.
        logger.exception("label of order %s not rendered, left for the sweep", order_id)
        return
    if delivery_id is not None:
        send_delivery.delay(delivery_id=delivery_id)  # after its label, on the mail queue


@shared_task
def sweep_deliveries() -> int:
    return delivery_sweep()


@shared_task
def send_licence_expiry_notices() -> int:
    """Daily (beat): warn prescribers whose state licence expires soon, once per expiry date."""
    return licence_expiry_notices_send()


@shared_task(time_limit=600, soft_time_limit=540)
def send_patient_reminders() -> int:
    """Daily (beat): the patients' refill and diary reminders due today, each sent once (a run
    stopped half-way is finished by the next: what was sent is not sent again)."""
    return patient_reminders_send()


@shared_task(time_limit=600, soft_time_limit=540)
def render_print_job(*, job_id: int) -> None:
    print_job_render(job_id=job_id)


def queue_delivery(delivery: Delivery) -> None:
    """After commit: a label is rendered (render queue) before its email is sent (mail queue)."""
    kind, delivery_id, order_id = delivery.kind, delivery.pk, delivery.order_id
    if kind == K.LABEL_READY:
        what = f"delivery {delivery_id}"
        _after_commit(render_label, what, order_id=order_id, delivery_id=delivery_id)
    else:
        _after_commit(send_delivery, f"delivery {delivery_id}", delivery_id=delivery_id)


def queue_print_job(job: PrintJob) -> None:
    """After commit: the job's labels are rendered on the render queue."""
    _after_commit(render_print_job, f"print job {job.pk}", job_id=job.pk)


def _after_commit(task, what: str, **kwargs) -> None:
    """Publish the task once the transaction commits. A broker that cannot be reached leaves
    the row as it is (pending, queued) and the request succeeds: the sweep queues it later."""

    def publish():
        try:
            task.delay(**kwargs)
        except (KombuOperationalError, OSError) as error:
            logger.warning("%s not queued (%s); the sweep will", what, error)

    transaction.on_commit(publish)


def delivery_sweep(*, now: datetime.datetime | None = None) -> int:
    """Re-queue what a broker outage or a killed worker left behind: rows pending for longer
    than OUTBOX_PENDING_AFTER, rows still sending after OUTBOX_SENDING_AFTER (their worker
    died; the claim is given back), and print jobs queued for longer than OUTBOX_PENDING_AFTER
    (rendering one twice is harmless: it is claimed once). Returns how many it queued."""
    now = now or timezone.now()
    pending_before = now - datetime.timedelta(seconds=settings.OUTBOX_PENDING_AFTER)
    sending_before = now - datetime.timedelta(seconds=settings.OUTBOX_SENDING_AFTER)
    given_back = list(
        Delivery.objects.filter(status=S.SENDING, claimed_at__lt=sending_before).values_list(
            "pk", flat=True
        )
    )
    Delivery.objects.filter(pk__in=given_back, status=S.SENDING).update(
        status=S.PENDING, last_error="Given back by the sweep: its worker stopped."
    )
    # What was given back goes now, not OUTBOX_PENDING_AFTER after its claim.
    stale = Delivery.objects.filter(status=S.PENDING).filter(
        Q(pk__in=given_back)
        | Q(claimed_at__lt=pending_before)
        | Q(claimed_at__isnull=True, created_at__lt=pending_before)
    )
    queued = 0
    for delivery in stale.order_by("pk").iterator():
        with transaction.atomic():
            queue_delivery(delivery)
        queued += 1
    # Print jobs still queued: their task was never published (or lost with the broker).
    waiting = PrintJob.objects.filter(status=PrintJob.Status.QUEUED, created_at__lt=pending_before)
    for job in waiting.order_by("pk").iterator():
        with transaction.atomic():
            queue_print_job(job)
        queued += 1
    # The webhooks' outbox too (beat also runs its publisher every WEBHOOK_PUBLISH_EVERY).
    queued += webhook_delivery_sweep(now=now)
    return queued


# --- Webhooks: pharmacy/webhooks.py writes the rows, pharmacy/webhook_sending.py sends them ---
# The row says when its next attempt is due (after a failure, backoff() from now), and the
# publisher's run queues it then: no retry waits in the broker, and a lost task is only a row
# that the sweep makes due again.

# Deliveries queued per run at most: a backlog drains over the next runs.
DISPATCH_BATCH = 1000
# What the sweep writes of a send whose worker died: its attempt, and the row's last error.
STOPPED = "No answer recorded: the worker stopped during the send."
GIVEN_BACK = "Given back by the sweep: its worker stopped."


@shared_task(
    time_limit=settings.OUTBOX_SEND_TIME_LIMIT,
    soft_time_limit=max(1, settings.OUTBOX_SEND_TIME_LIMIT * 4 // 5),
)
def send_webhook(*, delivery_id: int) -> None:
    """One attempt of one delivery (claimed once: a task delivered twice sends once)."""
    outcome = webhook_delivery_send(delivery_id=delivery_id, retry_delay=backoff)
    for email in outcome.emails:  # its endpoint was turned off: its prescribers are told
        queue_delivery(email)


@shared_task
def publish_webhook_events() -> int:
    """Beat, every WEBHOOK_PUBLISH_EVERY seconds."""
    return webhook_dispatch()


def queue_webhook_delivery(delivery_id: int) -> None:
    """After commit, on the webhooks queue."""
    _after_commit(send_webhook, f"webhook delivery {delivery_id}", delivery_id=delivery_id)


def webhook_dispatch(*, now: datetime.datetime | None = None) -> int:
    """Publish the order events not published yet (pharmacy/webhooks.py: their deliveries are
    made and committed), then queue, after commit, every delivery whose attempt is due and that
    is not queued yet: the new ones, those made by a recall or sent again by a person, those
    whose back-off has passed. Rows are taken with SKIP LOCKED and marked queued, so two runs at
    once queue each row once. Returns how many it queued."""
    webhook_events_publish()
    now = now or timezone.now()
    with transaction.atomic():
        due = list(
            WebhookDelivery.objects.select_for_update(skip_locked=True)
            .filter(status=S.PENDING, queued_at__isnull=True, next_attempt_at__lte=now)
            .order_by("next_attempt_at", "pk")
            .values_list("pk", flat=True)[:DISPATCH_BATCH]
        )
        WebhookDelivery.objects.filter(pk__in=due).update(queued_at=now)
        for delivery_id in due:
            queue_webhook_delivery(delivery_id)
    return len(due)


def webhook_delivery_sweep(*, now: datetime.datetime | None = None) -> int:
    """What a broker outage or a killed worker left behind, as delivery_sweep does for email:
    deliveries still sending after OUTBOX_SENDING_AFTER (their worker died: the claim is given
    back, with an attempt that says so) and deliveries queued longer than OUTBOX_PENDING_AFTER
    ago that no worker took (the task was lost) are due again, and webhook_dispatch queues them
    with the rest. The message goes again with the same webhook-id. Returns how many it
    queued."""
    now = now or timezone.now()
    sending_before = now - datetime.timedelta(seconds=settings.OUTBOX_SENDING_AFTER)
    pending_before = now - datetime.timedelta(seconds=settings.OUTBOX_PENDING_AFTER)
    with transaction.atomic():
        stopped = list(
            WebhookDelivery.objects.select_for_update(skip_locked=True)
            .filter(status=S.SENDING, claimed_at__lt=sending_before)
            .values_list("pk", "claimed_at")
        )
        WebhookAttempt.objects.bulk_create(
            WebhookAttempt(delivery_id=delivery_id, attempted_at=claimed_at, error=STOPPED)
            for delivery_id, claimed_at in stopped
        )
        WebhookDelivery.objects.filter(pk__in=[pk for pk, _ in stopped]).update(
            status=S.PENDING, queued_at=None, next_attempt_at=now, last_error=GIVEN_BACK
        )
    WebhookDelivery.objects.filter(status=S.PENDING, queued_at__lt=pending_before).update(
        queued_at=None
    )
    return webhook_dispatch(now=now)

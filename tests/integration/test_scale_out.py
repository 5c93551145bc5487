"""Scaled out as README's "Running on several machines" says, on loopback: a Celery worker for
the render queue (its processes recycled every few labels), another for mail, webhooks and the
default queue, and two `celery beat` processes at once, against PostgreSQL and Redis, with an
SMTP server that keeps every message. A backlog of label emails that a broker outage left
pending is queued by the beats' sweeps: each label is rendered by the render worker, each email
sent by the mail worker, and each delivered exactly once, although both beats queue every row
that is still pending again at each sweep until it is sent."""

import datetime
import time
from collections import Counter

import pytest
from django.utils import timezone

from pharmacy.models import Delivery, DeliveryStatus, LabelDocument
from tests.factories import StaffFactory
from tests.integration.conftest import broker_unreachable, database_url
from tests.integration.test_outbox_worker import (
    SCALED_OUTBOX,
    assert_one_labelled_email_each,
    compounded_orders,
    make_ready,
)
from tests.services import CeleryBeat, CeleryWorker, stop_together

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]
BACKLOG = 30
SWEEP_EVERY = int(SCALED_OUTBOX["OUTBOX_SWEEP_EVERY"])
PENDING_AFTER = int(SCALED_OUTBOX["OUTBOX_PENDING_AFTER"])


def tasks_run(worker: CeleryWorker, name: str) -> int:
    """How many tasks of that name the worker finished, by its own log."""
    return sum(f"pharmacy.tasks.{name}[" in line and "succeeded" in line for line in worker.output)


def test_a_backlog_is_sent_once_by_workers_per_queue_with_two_beats_at_once(
    postgresql, celery_on_redis, smtp_sink, settings, tmp_path
):
    media = tmp_path / "media"  # the storage both workers share
    env = {
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": celery_on_redis,
        "EMAIL_URL": smtp_sink.url,
        "PORTAL_BASE_URL": settings.PORTAL_BASE_URL,
        "MEDIA_ROOT": str(media),
        **SCALED_OUTBOX,
    }
    render = CeleryWorker(
        env, queues="render", concurrency=2, name="render", options=("--max-tasks-per-child=5",)
    )
    mail = CeleryWorker(env, queues="mail,webhooks,default", concurrency=2, name="mail")
    beats = [CeleryBeat(env, tmp_path / f"beat-schedule-{n}") for n in (1, 2)]
    processes = [render, mail, *beats]
    # Given: label emails written while no broker answered, older than OUTBOX_PENDING_AFTER,
    # before any worker or beat runs (a sweep running meanwhile would take the first rows made
    # once they are older than OUTBOX_PENDING_AFTER, however long making the rest takes).
    orders = compounded_orders(BACKLOG)
    with broker_unreachable():
        make_ready(orders, StaffFactory(group="Pharmacist"))  # each commits; queuing fails
    deliveries = Delivery.objects.filter(order__in=orders)
    assert deliveries.filter(status=DeliveryStatus.PENDING).count() == BACKLOG
    assert not LabelDocument.objects.exists()
    outage_began = timezone.now() - datetime.timedelta(seconds=PENDING_AFTER + 1)
    deliveries.update(created_at=outage_began)
    message_ids = set(deliveries.values_list("message_id", flat=True))
    try:
        # When: the workers, one per group of queues, and both beats run.
        for process in processes:
            process.launch()
        for process in processes:
            process.wait_ready()
        ready = time.monotonic()
        messages = smtp_sink.wait_for(BACKLOG, timeout=60)
        drained = time.monotonic() - ready
        # Then, and no more: later sweeps of both beats find every row sent.
        time.sleep(2 * SWEEP_EVERY + 1)
    finally:
        stop_together(processes)

    # Every row's message arrived once: none missing, none twice, nothing else.
    assert Counter(m["Message-ID"] for m in smtp_sink.messages) == dict.fromkeys(message_ids, 1)
    assert_one_labelled_email_each(orders, messages)
    assert set(deliveries.values_list("status", "attempts")) == {(DeliveryStatus.SENT, 1)}
    # One label each, rendered once, although its task was queued by several sweeps: one file
    # each in the shared storage, and no task failed on the way.
    assert sorted(LabelDocument.objects.values_list("order_id", "version")) == sorted(
        (order.pk, 1) for order in orders
    )
    assert len(list(media.rglob("*.pdf"))) == BACKLOG
    for worker in (render, mail):
        assert worker.log_count(" ERROR ") == 0, "".join(worker.output)
    # Both beats swept, more than once each.
    for beat in beats:
        assert beat.log_count("Sending due task sweep-outbox") >= 2, "".join(beat.output[-20:])
    # Each worker did its queues' work and none of the other's.
    assert tasks_run(render, "render_label") >= BACKLOG
    assert tasks_run(mail, "render_label") == 0
    assert tasks_run(mail, "send_delivery") >= BACKLOG
    assert tasks_run(mail, "sweep_deliveries") >= 2
    for name in ("send_delivery", "sweep_deliveries", "publish_webhook_events"):
        assert tasks_run(render, name) == 0
    for delivery_id in deliveries.values_list("pk", flat=True):
        assert mail.log_count(f"delivery {delivery_id} sent") == 1
        assert render.log_count(f"delivery {delivery_id} sent") == 0
    print(
        f"\n{BACKLOG} label emails after an outage, sent {drained:.1f} s after the workers and "
        f"two beats were ready; the render worker ran {tasks_run(render, 'render_label')} "
        f"render tasks and the mail worker {tasks_run(mail, 'send_delivery')} send tasks for "
        f"them (the sweeps queue a row again until it is sent; the claims send each once)"
    )

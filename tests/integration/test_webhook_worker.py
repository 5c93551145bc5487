"""Webhooks with a real Celery worker and beat on Redis, PostgreSQL, and a clinic's system on
loopback that records every request and checks every signature: the worker is killed while the
receiver holds its first message, a new worker is started, and every event arrives, none lost;
the one message that went twice carries the same webhook-id both times."""

import threading
import time
from collections import Counter

import pytest
from standardwebhooks.webhooks import Webhook

from orders.models import OrderEvent
from orders.services import order_start_review
from pharmacy.fulfilment import order_hold
from pharmacy.models import DeliveryStatus, WebhookDelivery, WebhookEventType
from pharmacy.webhooks import endpoint_create, order_event_types
from tests.factories import PatientFactory, PrescriberFactory, StaffFactory, clinic_of, submit_order
from tests.integration.conftest import database_url
from tests.orders.test_workflow import REGIMEN
from tests.services import CeleryBeat, CeleryWorker
from tests.webhook_receiver import WebhookReceiver

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]
# The outbox's limits scaled down from the defaults (10, 45, 60, 120 and 60 s) in the same order,
# and the publisher every second instead of five, so that the test runs in real time, with the
# real beat, in well under a minute.
SCALED = {
    "EMAIL_TIMEOUT": "2",
    "WEBHOOK_TIMEOUT": "2",
    "OUTBOX_SEND_TIME_LIMIT": "4",
    "OUTBOX_SENDING_AFTER": "6",
    "OUTBOX_PENDING_AFTER": "12",
    "OUTBOX_SWEEP_EVERY": "2",
    "WEBHOOK_PUBLISH_EVERY": "1",
    "WEBHOOK_ALLOWED_PRIVATE_HOSTS": "127.0.0.1",
}
ORDERS = 12
HELD = 4  # of which this many are put on hold: a status change and a question each


def orders_of(prescriber) -> list:
    """The prescriber's orders: each submitted, some reviewed and put on hold with a question."""
    pharmacist = StaffFactory(group="Pharmacist")
    orders = []
    for _ in range(ORDERS):
        patient = PatientFactory(
            clinic=clinic_of(prescriber), takes_opioids=False, current_medications=""
        )
        orders.append(submit_order(prescriber, patient, REGIMEN))
    for order in orders[:HELD]:
        reviewed = order_start_review(order=order, actor=pharmacist)
        order_hold(order=reviewed, actor=pharmacist, question="Has the patient stopped opioids?")
    return orders


def wait_until(condition, *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.2)


@pytest.mark.slow
def test_a_worker_killed_mid_delivery_loses_no_event_and_a_repeat_keeps_its_webhook_id(
    postgresql, celery_on_redis, smtp_sink, settings, tmp_path
):
    settings.WEBHOOK_ALLOWED_PRIVATE_HOSTS = frozenset({"127.0.0.1"})
    killed = threading.Event()

    def kill_on_the_first(count: int) -> None:
        """The first message is held until its worker is dead: it went, unanswered."""
        if count == 1:
            worker.kill()
            killed.set()

    receiver = WebhookReceiver(on_request=kill_on_the_first).start()
    env = {
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": celery_on_redis,
        "EMAIL_URL": smtp_sink.url,
        "PORTAL_BASE_URL": settings.PORTAL_BASE_URL,
        **SCALED,
    }
    worker, beat = CeleryWorker(env), CeleryBeat(env, tmp_path / "beat-schedule")
    prescriber = PrescriberFactory()
    endpoint = endpoint_create(
        actor=prescriber.user,
        clinic_id=clinic_of(prescriber).pk,
        url=receiver.url,
        events=list(WebhookEventType.values),
    )
    secret = endpoint.secret
    orders = orders_of(prescriber)

    worker.start()
    beat.start()
    try:
        assert killed.wait(timeout=120), "".join(worker.output[-40:])
        worker.start()
        expected = sum(
            len([k for k in order_event_types(e) if k in endpoint.events])
            for e in OrderEvent.objects.filter(order__in=orders)
        )
        wait_until(
            lambda: WebhookDelivery.objects.filter(status=DeliveryStatus.SENT).count() == expected,
            timeout=120,
            what=f"{expected} deliveries sent",
        )
        # Nothing more comes: a sweep after the sending limit finds every row sent.
        time.sleep(int(SCALED["OUTBOX_SENDING_AFTER"]) + 2 * int(SCALED["OUTBOX_SWEEP_EVERY"]))
    finally:
        beat.stop()
        worker.stop()
        receiver.stop()

    deliveries = {d.message_id: d for d in WebhookDelivery.objects.all()}
    # Every event's message was made once: 12 submitted, 4 in review, 4 on hold (a status
    # change and a question each).
    assert expected == ORDERS + 3 * HELD == len(deliveries)
    assert not OrderEvent.objects.filter(published_at__isnull=True).exists()
    received = receiver.requests
    ids = Counter(request.headers["webhook-id"] for request in received)
    assert set(ids) == set(deliveries)  # every one arrived
    first = received[0].headers["webhook-id"]
    assert ids[first] == 2 and all(n == 1 for mid, n in ids.items() if mid != first)
    for request in received:  # each verified with the endpoint's secret, as sent
        payload = Webhook(secret).verify(request.body, request.headers)
        assert payload == deliveries[request.headers["webhook-id"]].payload
    repeated = deliveries[first]
    assert (repeated.status, repeated.attempts) == (DeliveryStatus.SENT, 2)
    assert [(a.response_status, a.error) for a in repeated.attempt_log.all()] == [
        (None, "No answer recorded: the worker stopped during the send."),
        (204, ""),
    ]
    assert {d.status for d in deliveries.values()} == {DeliveryStatus.SENT}

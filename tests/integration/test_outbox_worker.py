"""The outbox with a real Celery worker on Redis and an SMTP server on loopback: labels rendered
and mailed once per order, through retries, a killed worker and a broker outage."""

import datetime
import io
import threading
import time
from decimal import Decimal

import pytest
from django.utils import timezone
from pypdf import PdfReader

from orders.dosing import DosageForm, Regimen, Step
from orders.models import Formulation, Order, OrderStatus, Prescription
from pharmacy import tasks
from pharmacy.fulfilment import order_final_check
from pharmacy.labels import label_barcodes
from pharmacy.models import Delivery, DeliveryStatus, Dispense
from tests.factories import (
    BatchFactory,
    FormulationVersionFactory,
    PatientFactory,
    PrescriberFactory,
    StaffFactory,
    clinic_of,
    submit_order,
)
from tests.integration.conftest import celery_publishing_to, database_url
from tests.services import CeleryBeat, CeleryWorker, SmtpSink

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]
REGIMEN = Regimen(
    dosage_form=DosageForm.CAPSULE, steps=(Step(Decimal("1.5"), 30),), doses_per_day=1,
    quantity=Decimal("30"), days_supply=30, refills=1,
)  # fmt: skip


def compounded_orders(count: int) -> list[Order]:
    """Orders verified and dispensed, waiting for the pharmacist's final check."""
    prescriber = PrescriberFactory()
    capsule = Formulation.objects.get(dosage_form="capsule", strength_mg=Decimal("1.5"))
    batch = BatchFactory(
        formulation_version=FormulationVersionFactory(formulation=capsule),
        units_remaining=Decimal(30 * count), actual_units=Decimal(30 * count),
    )  # fmt: skip
    orders = []
    for _ in range(count):
        patient = PatientFactory(
            clinic=clinic_of(prescriber), takes_opioids=False, current_medications="",
            date_of_birth=datetime.date(1970, 1, 1),
        )  # fmt: skip
        order = submit_order(prescriber, patient, REGIMEN)
        Prescription.objects.filter(pk=order.prescription_id).update(
            rx_number=str(7000000 + order.prescription_id)
        )
        Order.objects.filter(pk=order.pk).update(status=OrderStatus.COMPOUNDING)
        Dispense.objects.create(order=order, line=order.lines().get(), batch=batch,
                                units=Decimal("30"), dispensed_by=batch.compounded_by)  # fmt: skip
        orders.append(order)
    return orders


def make_ready(orders, pharmacist):
    for order in orders:
        order_final_check(
            order=order, actor=pharmacist, scans=label_barcodes(order)
        )  # each commits, then queues


def labels_by_order(messages) -> dict[str, list]:
    found: dict[str, list] = {}
    for message in messages:
        number = message["Subject"].rsplit(" ", 1)[-1]
        found.setdefault(number, []).append(message)
    return found


def assert_one_labelled_email_each(orders, messages):
    by_order = labels_by_order(messages)
    assert sorted(by_order) == sorted(order.number for order in orders)
    for order in orders:
        # One message per order; a resend after a worker died mid-send would carry the same
        # Message-ID, which mail systems treat as one message.
        assert len({m["Message-ID"] for m in by_order[order.number]}) == 1
        (attachment,) = list(by_order[order.number][0].iter_attachments())
        assert attachment.get_content_type() == "application/pdf"
        pdf = PdfReader(io.BytesIO(attachment.get_content()))
        assert len(pdf.pages) == 1
        assert order.prescription.patient.last_name in pdf.pages[0].extract_text()
    assert set(Delivery.objects.values_list("status", flat=True)) == {DeliveryStatus.SENT}


def test_fifty_orders_ready_fifty_labelled_emails(celery_worker, smtp_sink):
    orders = compounded_orders(50)
    make_ready(orders, StaffFactory(group="Pharmacist"))

    messages = smtp_sink.wait_for(50, timeout=180)

    assert len(messages) == 50
    assert_one_labelled_email_each(orders, messages)


# The outbox's limits scaled down from the defaults (10, 10, 45, 60, 120 and 60 s), in the same
# order, so that the worker-kill test runs in real time, with the real beat, in under a minute.
SCALED_OUTBOX = {
    "EMAIL_TIMEOUT": "2", "WEBHOOK_TIMEOUT": "2", "OUTBOX_SEND_TIME_LIMIT": "4",
    "OUTBOX_SENDING_AFTER": "6", "OUTBOX_PENDING_AFTER": "12", "OUTBOX_SWEEP_EVERY": "2",
}  # fmt: skip
KILLS_AT = (10, 30, 50)  # the SMTP server's nth message of 60


@pytest.mark.slow
def test_three_kills_mid_send_lose_no_email_and_resend_each_once_soon(
    postgresql, celery_on_redis, settings, tmp_path
):
    """The worker's process group is killed three times, each time after the SMTP server kept a
    message and before it answered "250": the message went, but its row still says "sending".
    The real beat's sweep gives such a row back once OUTBOX_SENDING_AFTER has passed, and the
    message goes again with the same Message-ID: every order's email arrives, each killed one
    exactly twice, no other twice, and each resend within a sweep of OUTBOX_SENDING_AFTER."""
    kills: list[tuple[int, float]] = []
    killed = threading.Event()

    def kill_mid_send(count: int):
        if count in KILLS_AT:
            worker.kill()
            kills.append((count, time.monotonic()))
            killed.set()

    sink = SmtpSink(on_accept=kill_mid_send)
    env = {
        "DATABASE_URL": database_url(), "CELERY_BROKER_URL": celery_on_redis,
        "EMAIL_URL": sink.url, "PORTAL_BASE_URL": settings.PORTAL_BASE_URL, **SCALED_OUTBOX,
    }  # fmt: skip
    worker, beat = CeleryWorker(env), CeleryBeat(env, tmp_path / "beat-schedule")
    orders = compounded_orders(60)
    sink.start()
    worker.start()
    beat.start()
    try:
        began = time.monotonic()
        make_ready(orders, StaffFactory(group="Pharmacist"))
        restarted: list[float] = []  # when the worker was ready again after each kill
        for _ in KILLS_AT:
            assert killed.wait(timeout=180), "".join(worker.output[-40:])
            killed.clear()
            worker.start()
            restarted.append(time.monotonic())
        messages = sink.wait_for(60 + len(KILLS_AT), timeout=180)
        drained = time.monotonic()
        # Nothing more comes: a sweep after the sending limit finds every row sent.
        time.sleep(
            int(SCALED_OUTBOX["OUTBOX_SENDING_AFTER"])
            + 2 * int(SCALED_OUTBOX["OUTBOX_SWEEP_EVERY"])
        )
        assert len(sink.messages) == 60 + len(KILLS_AT)
    finally:
        beat.stop()
        worker.stop()
        sink.stop()

    assert_one_labelled_email_each(orders, messages)
    by_order = labels_by_order(messages)
    twice = {number for number, copies in by_order.items() if len(copies) == 2}
    killed_orders = {messages[count - 1]["Subject"].rsplit(" ", 1)[-1] for count, _ in kills}
    assert twice == killed_orders and len(twice) == len(KILLS_AT)
    assert all(len(copies) <= 2 for copies in by_order.values())
    sent_twice = Delivery.objects.filter(order__in=orders, attempts=2)
    assert sorted(d.order.number for d in sent_twice.select_related("order")) == sorted(
        killed_orders
    )

    sending_after = int(SCALED_OUTBOX["OUTBOX_SENDING_AFTER"])
    sweep_every = int(SCALED_OUTBOX["OUTBOX_SWEEP_EVERY"])
    for (count, at), ready in zip(kills, restarted, strict=True):
        number = messages[count - 1]["Subject"].rsplit(" ", 1)[-1]
        resent = [sink.arrived[i] for i, m in enumerate(messages)
                  if m["Subject"].endswith(number)][1]  # fmt: skip
        # Not before its claim runs out (the claim held); then, once the claim has run out and
        # a worker is running again (its start-up is Celery's, not the outbox's), within two
        # sweeps, the send itself, and the sends already queued ahead of it (one worker
        # process sends one message at a time, at the pace this run measured).
        assert resent - at >= sending_after - 1
        free = max(at + sending_after, ready)
        ahead = sum(1 for arrived in sink.arrived if free < arrived < resent)
        pace = (drained - began) / len(messages)
        assert resent - free <= 2 * sweep_every + 10 + ahead * pace
    print(
        f"\n60 labelled emails, {len(KILLS_AT)} kills of the worker's process group mid-send: "
        f"drained {drained - began:.1f} s after the orders were made ready, "
        f"{drained - kills[-1][1]:.1f} s after the last kill "
        f"(OUTBOX_SENDING_AFTER={sending_after} s, sweep every {sweep_every} s)"
    )


def test_smtp_refusing_for_a_while_then_accepting(celery_on_redis, postgresql, settings):

    sink = SmtpSink(refuse_first=3)
    sink.start()
    worker = CeleryWorker({
        "DATABASE_URL": database_url(), "CELERY_BROKER_URL": celery_on_redis,
        "EMAIL_URL": sink.url, "PORTAL_BASE_URL": settings.PORTAL_BASE_URL,
        "OUTBOX_RETRY_BASE_DELAY": "1", "OUTBOX_RETRY_MAX_DELAY": "2",
    })  # fmt: skip
    worker.start()
    try:
        orders = compounded_orders(1)
        make_ready(orders, StaffFactory(group="Pharmacist"))
        messages = sink.wait_for(1, timeout=120)
    finally:
        worker.stop()
        sink.stop()
    assert len(messages) == 1
    assert sink.refused == 3
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.SENT, 4)


@pytest.mark.slow
def test_a_broker_outage_delays_mail_and_loses_none(own_redis, postgresql, smtp_sink, settings):
    worker = CeleryWorker({
        "DATABASE_URL": database_url(), "CELERY_BROKER_URL": own_redis.url,
        "EMAIL_URL": smtp_sink.url, "PORTAL_BASE_URL": settings.PORTAL_BASE_URL,
    })  # fmt: skip
    with celery_publishing_to(own_redis.url):
        worker.start()
        try:
            orders = compounded_orders(20)
            own_redis.stop()
            make_ready(orders, StaffFactory(group="Pharmacist"))  # commits; queuing fails
            assert Delivery.objects.filter(status=DeliveryStatus.PENDING).count() == 20
            assert smtp_sink.messages == []

            own_redis.start()
            later = timezone.now() + datetime.timedelta(seconds=settings.OUTBOX_PENDING_AFTER + 1)
            assert tasks.delivery_sweep(now=later) == 20
            messages = smtp_sink.wait_for(20, timeout=180)
        finally:
            worker.stop()
    assert len(messages) == 20
    assert_one_labelled_email_each(orders, messages)

"""The outbox with a real Celery worker on Redis and an SMTP server on loopback: labels rendered
and mailed once per order, through retries, a killed worker and a broker outage."""

import datetime
import io
import os
import signal
from decimal import Decimal

import pytest
from django.utils import timezone
from pypdf import PdfReader

from orders.dosing import DosageForm, Regimen, Step
from orders.models import Formulation, Order, OrderStatus, Prescription
from pharmacy import tasks
from pharmacy.fulfilment import order_final_check
from pharmacy.models import Delivery, DeliveryStatus, Dispense
from tests.factories import (
    BatchFactory,
    FormulationVersionFactory,
    PatientFactory,
    PrescriberFactory,
    StaffFactory,
    submit_order,
)
from tests.integration.conftest import celery_publishing_to, database_url
from tests.services import CeleryWorker, SmtpSink

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
            clinic=prescriber.clinic, takes_opioids=False, current_medications="",
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
        order_final_check(order=order, actor=pharmacist)  # each commits, then queues


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


def test_a_killed_worker_loses_no_email_and_sends_none_twice(celery_worker, smtp_sink, settings):
    orders = compounded_orders(20)
    make_ready(orders, StaffFactory(group="Pharmacist"))
    smtp_sink.wait_for(3, timeout=120)

    os.kill(celery_worker.process.pid, signal.SIGKILL)  # no warm shutdown: tasks in flight die
    celery_worker.process.wait(timeout=30)
    celery_worker.start()
    # What the dead worker held waits in Redis until its visibility timeout; the sweep (beat,
    # every minute in production) gives it back now.
    later = timezone.now() + datetime.timedelta(seconds=settings.OUTBOX_SENDING_AFTER + 1)
    tasks.delivery_sweep(now=later)

    messages = smtp_sink.wait_for(20, timeout=180)
    assert_one_labelled_email_each(orders, messages)


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

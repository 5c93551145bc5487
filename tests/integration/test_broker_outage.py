"""Work a request starts survives a broker outage: with a real Redis stopped, the request
succeeds, the work waits as a row, and once the broker is back the sweep hands it to a real
worker, which does it. (A prescriber's approval: tests/integration/test_celery_worker.py.)"""

import datetime

import pytest
from django.urls import reverse
from django.utils import timezone

from core.admin_actions import CONFIRMED
from pharmacy import tasks
from pharmacy.models import Delivery, DeliveryKind, DeliveryStatus, PrintJob
from tests.factories import PrescriberFactory, StaffFactory
from tests.integration.conftest import celery_publishing_to, database_url
from tests.integration.test_outbox_worker import compounded_orders
from tests.services import CeleryWorker
from tests.signing_in import verified_staff_login

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


@pytest.fixture
def worker_on_own_redis(own_redis, postgresql, smtp_sink, settings):
    """A worker on a Redis of this test's own, which the test stops and starts."""
    worker = CeleryWorker(
        {
            "DATABASE_URL": database_url(),
            "CELERY_BROKER_URL": own_redis.url,
            "EMAIL_URL": smtp_sink.url,
            "PORTAL_BASE_URL": settings.PORTAL_BASE_URL,
            "MEDIA_ROOT": str(settings.MEDIA_ROOT),  # the PDFs it writes, where this test reads
        }
    )
    with celery_publishing_to(own_redis.url):
        worker.start()
        yield worker
        worker.stop()


def sweep_after_the_outage(settings) -> int:
    later = timezone.now() + datetime.timedelta(seconds=settings.OUTBOX_PENDING_AFTER + 1)
    return tasks.delivery_sweep(now=later)


def test_a_password_reset_while_the_broker_is_down_is_emailed_after_the_sweep(
    worker_on_own_redis, own_redis, smtp_sink, client, settings
):
    prescriber = PrescriberFactory()
    own_redis.stop()
    response = client.post(reverse("password_reset"), {"email": prescriber.user.email})
    assert response.status_code == 302
    assert response["Location"] == reverse("password_reset_done")
    delivery = Delivery.objects.get()
    assert (delivery.kind, delivery.status) == (DeliveryKind.ACCOUNT, DeliveryStatus.PENDING)
    assert smtp_sink.messages == []

    own_redis.start()
    assert sweep_after_the_outage(settings) == 1
    (message,) = smtp_sink.wait_for(1, timeout=120)
    assert message["To"] == prescriber.user.email
    assert message["Subject"] == "Demo Compounding Pharmacy: reset your password"


def test_a_label_print_while_the_broker_is_down_is_rendered_after_the_sweep(
    worker_on_own_redis, own_redis, client, settings
):
    orders = compounded_orders(26)
    verified_staff_login(client, StaffFactory(group="Pharmacist"))
    own_redis.stop()
    response = client.post(
        reverse("admin:orders_order_changelist"),
        {
            "action": "print_labels",
            "_selected_action": [order.pk for order in orders],
            CONFIRMED: "1",
            "station": "",  # none: a PDF
        },
    )
    job = PrintJob.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:pharmacy_printjob_change", args=[job.pk])
    assert (job.status, job.done) == (PrintJob.Status.QUEUED, 0)

    own_redis.start()
    assert sweep_after_the_outage(settings) == 1
    deadline = timezone.now() + datetime.timedelta(seconds=180)
    while job.status in (PrintJob.Status.QUEUED, PrintJob.Status.RUNNING):
        assert timezone.now() < deadline, "the print job was not rendered"
        job.refresh_from_db()
    assert (job.status, job.done, job.total) == (PrintJob.Status.DONE, 26, 26)
    with job.file.open("rb") as pdf:
        assert pdf.read(5) == b"%PDF-"

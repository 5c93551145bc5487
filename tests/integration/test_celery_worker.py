"""A real Celery worker on Redis sends the account emails (a prescriber's approval, a password
reset) from the outbox through a real SMTP server, and a broker outage loses none of them."""

import datetime
import re
import time

import pytest
import redis
from django.core import mail
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from pharmacy import tasks
from pharmacy.models import Delivery, DeliveryKind, DeliveryStatus
from prescribers import services
from prescribers.models import PrescriberStatus
from tests.factories import PrescriberFactory, StaffFactory
from tests.integration.conftest import celery_publishing_to, database_url
from tests.services import CeleryWorker

# Transactional tests empty the tables afterwards; serialized_rollback brings back what the
# migrations put there (the staff groups) for the next test.
pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]
APPROVED_SUBJECT = "Demo Compounding Pharmacy: your prescriber account is approved"


def choose_password_by_emailed_link(client, message, kind: str, password: str):
    """Opens the /accounts/<kind>/ link of the message the worker sent and sets the password:
    the link works here (same secret, same database). Returns the answer to the form."""
    body = message.get_body(("plain",)).get_content()
    link = re.search(rf"http://portal\.test(/accounts/{kind}/\S+/)", body).group(1)
    form_page = client.get(link, follow=True)
    assert form_page.context["validlink"] is True
    return client.post(
        form_page.redirect_chain[-1][0], {"new_password1": password, "new_password2": password}
    )


def assert_sent_and_forgotten(message) -> None:
    """The outbox row of an account email was sent, and keeps its subject, not its link (the
    worker marks it sent just after the SMTP server has the message)."""
    deadline = time.monotonic() + 30
    while Delivery.objects.filter(status=DeliveryStatus.SENDING).exists():
        assert time.monotonic() < deadline, "the worker did not mark the email sent"
        time.sleep(0.05)
    (delivery,) = Delivery.objects.all()
    assert delivery.kind == DeliveryKind.ACCOUNT
    assert delivery.status == DeliveryStatus.SENT
    assert delivery.recipient == message["To"]
    assert delivery.message == {"subject": message["Subject"]}
    assert message["Message-ID"] == delivery.message_id


def test_approval_email_goes_through_worker_and_smtp(celery_worker, smtp_sink, client):
    pharmacist = StaffFactory(group="Pharmacist")
    applicant = PrescriberFactory(status=PrescriberStatus.PENDING, user__password=None)

    services.prescriber_approve(prescriber=applicant, actor=pharmacist)  # commits, then queues

    (message,) = smtp_sink.wait_for(1)
    assert mail.outbox == []  # nothing was sent in this process
    assert message["To"] == applicant.user.email
    assert message["Subject"] == APPROVED_SUBJECT
    assert celery_worker.wait_for_log("pharmacy.tasks.send_delivery")
    assert_sent_and_forgotten(message)
    done = choose_password_by_emailed_link(client, message, "activate", "worker-made-link-77")
    assert done["Location"] == reverse("login")
    applicant.user.refresh_from_db()
    assert applicant.user.check_password("worker-made-link-77")


def test_nothing_is_queued_when_the_transaction_rolls_back(celery_on_redis):
    pharmacist = StaffFactory(group="Pharmacist")
    applicant = PrescriberFactory(status=PrescriberStatus.PENDING)

    class Abort(Exception):
        pass

    with pytest.raises(Abort), transaction.atomic():
        services.prescriber_approve(prescriber=applicant, actor=pharmacist)
        raise Abort

    applicant.refresh_from_db()
    assert applicant.status == PrescriberStatus.PENDING
    assert not Delivery.objects.exists()
    queue = redis.Redis.from_url(celery_on_redis)
    assert queue.llen("mail") == 0

    services.prescriber_approve(prescriber=applicant, actor=pharmacist)  # no worker: it waits
    assert queue.llen("mail") == 1
    assert Delivery.objects.get().status == DeliveryStatus.PENDING


def test_an_approval_while_the_broker_is_down_is_emailed_after_the_sweep(
    own_redis, postgresql, smtp_sink, settings, client
):
    worker = CeleryWorker(
        {
            "DATABASE_URL": database_url(),
            "CELERY_BROKER_URL": own_redis.url,
            "EMAIL_URL": smtp_sink.url,
            "PORTAL_BASE_URL": settings.PORTAL_BASE_URL,
        }
    )
    pharmacist = StaffFactory(group="Pharmacist")
    applicant = PrescriberFactory(status=PrescriberStatus.PENDING, user__password=None)
    with celery_publishing_to(own_redis.url):
        worker.start()
        try:
            own_redis.stop()
            services.prescriber_approve(prescriber=applicant, actor=pharmacist)  # queuing fails
            applicant.refresh_from_db()
            assert applicant.status == PrescriberStatus.APPROVED  # the decision stands
            delivery = Delivery.objects.get()
            assert (delivery.status, delivery.recipient) == (
                DeliveryStatus.PENDING,
                applicant.user.email,
            )
            assert smtp_sink.messages == []

            own_redis.start()
            later = timezone.now() + datetime.timedelta(seconds=settings.OUTBOX_PENDING_AFTER + 1)
            assert tasks.delivery_sweep(now=later) == 1
            (message,) = smtp_sink.wait_for(1, timeout=120)
        finally:
            worker.stop()
    assert message["To"] == applicant.user.email
    assert message["Subject"] == APPROVED_SUBJECT
    assert_sent_and_forgotten(message)
    done = choose_password_by_emailed_link(client, message, "activate", "after-the-outage-31")
    assert done["Location"] == reverse("login")
    applicant.user.refresh_from_db()
    assert applicant.user.check_password("after-the-outage-31")


def test_password_reset_email_is_sent_by_the_worker(celery_worker, smtp_sink, client):
    # The request only writes an outbox row (no SMTP conversation whose time would tell that
    # the account exists); the worker sends it.
    prescriber = PrescriberFactory()
    for email in ("nobody@example.test", prescriber.user.email):
        response = client.post(reverse("password_reset"), {"email": email})
        assert response["Location"] == reverse("password_reset_done")
    assert mail.outbox == []

    (message,) = smtp_sink.wait_for(1)
    assert message["To"] == prescriber.user.email
    assert message["Subject"] == "Demo Compounding Pharmacy: reset your password"
    assert celery_worker.wait_for_log("pharmacy.tasks.send_delivery")
    assert len(smtp_sink.wait_for(2, timeout=2)) == 1  # nothing for the unknown address
    assert_sent_and_forgotten(message)
    done = choose_password_by_emailed_link(client, message, "reset", "worker-made-reset-88")
    assert done["Location"] == reverse("password_reset_complete")
    prescriber.user.refresh_from_db()
    assert prescriber.user.check_password("worker-made-reset-88")

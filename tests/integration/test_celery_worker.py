"""A real Celery worker on Redis sends the approval email through a real SMTP server."""

import re

import pytest
from django.core import mail
from django.urls import reverse

from prescribers import services
from prescribers.models import PrescriberStatus
from tests.factories import PrescriberFactory, StaffFactory

# Transactional tests empty the tables afterwards; serialized_rollback brings back what the
# migrations put there (the staff groups) for the next test.
pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


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


def test_approval_email_goes_through_worker_and_smtp(celery_worker, smtp_sink, client):
    pharmacist = StaffFactory(group="Pharmacist")
    applicant = PrescriberFactory(status=PrescriberStatus.PENDING, user__password=None)

    services.prescriber_approve(prescriber=applicant, actor=pharmacist)  # commits, then queues

    (message,) = smtp_sink.wait_for(1)
    assert mail.outbox == []  # nothing was sent in this process
    assert message["To"] == applicant.user.email
    assert message["Subject"] == "Demo Compounding Pharmacy: your prescriber account is approved"
    assert celery_worker.wait_for_log("prescribers.tasks.send_prescriber_decision")
    done = choose_password_by_emailed_link(client, message, "activate", "worker-made-link-77")
    assert done["Location"] == reverse("login")
    applicant.user.refresh_from_db()
    assert applicant.user.check_password("worker-made-link-77")


def test_nothing_is_queued_when_the_transaction_rolls_back(celery_on_redis):
    import redis
    from django.db import transaction

    pharmacist = StaffFactory(group="Pharmacist")
    applicant = PrescriberFactory(status=PrescriberStatus.PENDING)

    class Abort(Exception):
        pass

    with pytest.raises(Abort), transaction.atomic():
        services.prescriber_approve(prescriber=applicant, actor=pharmacist)
        raise Abort

    applicant.refresh_from_db()
    assert applicant.status == PrescriberStatus.PENDING
    queue = redis.Redis.from_url(celery_on_redis)
    assert queue.llen("default") == 0

    services.prescriber_approve(prescriber=applicant, actor=pharmacist)  # no worker: it waits
    assert queue.llen("default") == 1


def test_password_reset_email_is_made_and_sent_by_the_worker(celery_worker, smtp_sink, client):
    # The request only queues the email (no SMTP conversation whose time would tell that the
    # account exists); the worker makes the link's token and sends it.
    prescriber = PrescriberFactory()
    for email in ("nobody@example.test", prescriber.user.email):
        response = client.post(reverse("password_reset"), {"email": email})
        assert response["Location"] == reverse("password_reset_done")
    assert mail.outbox == []

    (message,) = smtp_sink.wait_for(1)
    assert message["To"] == prescriber.user.email
    assert message["Subject"] == "Demo Compounding Pharmacy: reset your password"
    assert celery_worker.wait_for_log("pharmacy.tasks.send_password_reset")
    assert len(smtp_sink.wait_for(2, timeout=2)) == 1  # nothing for the unknown address
    done = choose_password_by_emailed_link(client, message, "reset", "worker-made-reset-88")
    assert done["Location"] == reverse("password_reset_complete")
    prescriber.user.refresh_from_db()
    assert prescriber.user.check_password("worker-made-reset-88")

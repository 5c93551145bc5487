"""The patients' reminders with a real Celery worker on Redis, PostgreSQL and an SMTP server on
loopback: the task, published through the broker as beat publishes it, queues each reminder's
emails, the worker sends them once as real messages that give a link and no health data, and
the task run again sends nothing more."""

import pytest
from django.utils import timezone

from orders.models import Patient, PatientAccess, PatientReminder
from pharmacy.models import Delivery, DeliveryStatus
from pharmacy.tasks import send_patient_reminders
from tests.factories import PrescriberFactory, clinic_of
from tests.orders.test_patient_reminders import (
    PATIENT_HOME,
    SUBJECT,
    assert_no_health_data,
    patient_with_fill,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def run_through_the_broker(worker) -> int:
    """Publish the task (as beat does), wait until the worker has run it, and return what it
    returned (how many emails it queued), as the worker's log says."""
    done = f"send_patient_reminders[{send_patient_reminders.delay().id}] succeeded"
    assert worker.wait_for_log(done, timeout=60), "".join(worker.output[-40:])
    line = next(line for line in worker.output if done in line)
    return int(line.rsplit(":", 1)[1])


def test_the_reminders_arrive_once_as_emails_with_a_link_and_no_health_data(
    celery_worker, smtp_sink
):
    prescriber = PrescriberFactory()
    # Each fill's 30 days' supply dispensed 24 days ago: its refill is due today.
    told = patient_with_fill(prescriber, days_ago=24, remind_clinic=True, diary_frequency="weekly")
    untold = patient_with_fill(prescriber, days_ago=24)
    revoked = patient_with_fill(prescriber, days_ago=24, diary_frequency="daily")
    PatientAccess.objects.filter(pk=revoked.pk).update(revoked_at=timezone.now())

    assert run_through_the_broker(celery_worker) == 4
    messages = smtp_sink.wait_for(4, timeout=60)

    clinic = clinic_of(prescriber)
    assert sorted((m["To"], m["Subject"]) for m in messages) == sorted(
        [
            (told.user.email, SUBJECT),  # the refill reminder
            (told.user.email, SUBJECT),  # the diary reminder
            (clinic.label_email, SUBJECT),
            (untold.user.email, SUBJECT),
        ]
    )
    for message in messages:
        body = message.get_body(("plain",)).get_content()
        link = "http://portal.test/" if message["To"] == clinic.label_email else PATIENT_HOME
        assert link in body.split()  # a line of its own
        for access in (told, untold):
            patient = Patient.objects.get(pk=access.patient_id)
            assert_no_health_data(patient, f"{message['Subject']}\n{body}")
    assert PatientReminder.objects.filter(access=revoked).count() == 0

    # Again (beat's next run, or the same run delivered twice): nothing more.
    assert run_through_the_broker(celery_worker) == 0
    assert len(smtp_sink.messages) == 4
    assert PatientReminder.objects.count() == 3
    assert list(Delivery.objects.values_list("status", flat=True)) == [DeliveryStatus.SENT] * 4

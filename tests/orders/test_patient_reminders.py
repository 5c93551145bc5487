"""The patients' reminders (orders/patient_reminders.py): a refill reminder once per fill from
the day 80 % of its supply has passed, while the prescription may be refilled; a diary reminder
after a whole day or week without an entry or a reminder; the clinic's copy when asked; emails
that carry only a link; two runs at once send each reminder once."""

import datetime
import threading

import pytest
from django.core import mail
from django.db import connection
from django.utils import timezone

from orders import patient_reminders
from orders.models import (
    Order,
    OrderKind,
    OrderStatus,
    Patient,
    PatientAccess,
    PatientReminder,
    Prescription,
    ReminderKind,
)
from orders.patient_reminders import patient_reminders_send
from pharmacy.models import Delivery
from pharmacy.tasks import send_patient_reminders
from tests.factories import (
    DiaryEntryFactory,
    PatientAccessFactory,
    PatientFactory,
    clinic_of,
    submit_order,
)
from tests.integration.test_postgres_locks import run_together
from tests.orders.test_inbox import MONTHLY, dispensed, filled
from tests.services import service_unavailable

pytestmark = pytest.mark.django_db

TODAY = datetime.date(2026, 3, 2)  # the clock fixture's day
SUBJECT = "A reminder from Demo Compounding Pharmacy"
PATIENT_HOME = "http://portal.test/my/"
PATIENT_SETTINGS = "http://portal.test/my/settings/"


@pytest.fixture
def send(clock, django_capture_on_commit_callbacks):
    """Run the reminders (today: the clock's day; the service, or the beat's task) and send
    what they queued into mail.outbox; returns how many emails they queued."""

    def run(reminders_send=patient_reminders_send) -> int:
        with django_capture_on_commit_callbacks(execute=True):
            return reminders_send()

    return run


def days(n: int) -> datetime.timedelta:
    return datetime.timedelta(days=n)


def patient_with_fill(prescriber, *, days_ago: int, **access) -> PatientAccess:
    """A patient whose 30-day first fill (two refills) was dispensed days_ago, with a live
    access (accepted a month ago, no diary reminders unless told)."""
    fill = filled(prescriber, "Vantongeren", days_ago=days_ago)
    Patient.objects.filter(pk=fill.prescription.patient_id).update(first_name="Philippa")
    accepted = timezone.now() - days(30)
    access.setdefault("diary_frequency", "never")
    return PatientAccessFactory(patient=fill.prescription.patient, invited_at=accepted, **access)


def first_fill(access: PatientAccess) -> Order:
    return Order.objects.filter(prescription__patient=access.patient_id).earliest("pk")


def prescriber_of(access: PatientAccess):
    return first_fill(access).prescription.prescriber


def refill_of(fill: Order, status: OrderStatus) -> Order:
    return Order.objects.create(
        prescription=fill.prescription,
        clinic=fill.clinic,
        kind=OrderKind.REFILL,
        fill_number=fill.fill_number + 1,
        status=status,
        ship_to="clinic",
        created_by=fill.created_by,
        signer=fill.prescription.prescriber,
    )


def reminders() -> list[tuple]:
    return list(
        PatientReminder.objects.order_by("pk").values_list("access", "kind", "order", "sent_on")
    )


# --- Refill reminders ---------------------------------------------------------------------------


def test_a_refill_reminder_goes_the_day_80_percent_of_the_supply_has_passed_once_per_fill(
    clock, prescriber, send
):
    access = patient_with_fill(prescriber, days_ago=23)  # 30 days' supply: due from day 24
    fill = first_fill(access)

    assert send() == 0
    assert (reminders(), mail.outbox) == ([], [])

    clock.shift(days(1))
    assert send() == 1
    [message] = mail.outbox
    assert (message.to, message.subject) == ([access.user.email], SUBJECT)
    assert f"read it:\n{PATIENT_HOME}\n" in message.body
    assert f"in your settings:\n{PATIENT_SETTINGS}\n" in message.body
    assert reminders() == [(access.pk, "refill", fill.pk, TODAY + days(1))]

    # The same day again, and the days after: never again for that fill.
    assert send() == 0
    for later in (1, 10, 60):
        clock.shift(days(later))
        assert send() == 0
    assert len(mail.outbox) == 1

    # The next fill, dispensed today, has its own: 24 days on, not 23.
    refill = refill_of(fill, OrderStatus.SHIPPED)
    dispensed(refill, days_ago=0)
    refilled_on = timezone.localdate()
    clock.shift(days(23))
    assert send() == 0
    clock.shift(days(1))
    assert send(send_patient_reminders) == 1  # the beat's task
    assert reminders()[1:] == [(access.pk, "refill", refill.pk, refilled_on + days(24))]
    assert len(mail.outbox) == 2


def _revoke(access):
    PatientAccess.objects.filter(pk=access.pk).update(revoked_at=timezone.now())


def _not_accepted(access):
    PatientAccess.objects.filter(pk=access.pk).update(accepted_at=None)


def _no_refills_left(access):
    Prescription.objects.filter(pk=first_fill(access).prescription_id).update(refills_authorized=0)


def _refills_used_up(access):
    fill = first_fill(access)
    for _ in range(2):  # both refills filled, the last as long ago as the first
        fill = refill_of(fill, OrderStatus.SHIPPED)
        dispensed(fill, days_ago=40)


def _expired(access):
    Prescription.objects.filter(pk=first_fill(access).prescription_id).update(
        expires_on=TODAY - days(1)
    )


def _refill_drafted(access):
    refill_of(first_fill(access), OrderStatus.DRAFT)


def _refill_in_review(access):
    refill_of(first_fill(access), OrderStatus.IN_REVIEW)


def _new_prescription_submitted(access):
    submit_order(prescriber_of(access), access.patient, MONTHLY)


def _new_prescription_drafted(access):
    order = submit_order(prescriber_of(access), access.patient, MONTHLY)
    Order.objects.filter(pk=order.pk).update(status=OrderStatus.DRAFT)


def _new_prescription_filled_since(access):
    # The current prescription is the newer one, its supply 5 days old: nothing is due.
    order = submit_order(prescriber_of(access), access.patient, MONTHLY)
    Order.objects.filter(pk=order.pk).update(status=OrderStatus.SHIPPED)
    dispensed(order, days_ago=5)


def _new_prescription_rejected(access):
    # A new prescription the pharmacy rejected leaves the one before current.
    order = submit_order(prescriber_of(access), access.patient, MONTHLY)
    Order.objects.filter(pk=order.pk).update(status=OrderStatus.REJECTED)


def _nothing(access):
    pass


@pytest.mark.parametrize(
    ("change", "sent"),
    [
        (_nothing, 1),
        (_new_prescription_rejected, 1),
        (_revoke, 0),
        (_not_accepted, 0),
        (_no_refills_left, 0),
        (_refills_used_up, 0),
        (_expired, 0),
        (_refill_drafted, 0),
        (_refill_in_review, 0),
        (_new_prescription_submitted, 0),
        (_new_prescription_drafted, 0),
        (_new_prescription_filled_since, 0),
    ],
)
def test_a_refill_reminder_goes_only_while_the_prescription_may_be_refilled(
    clock, prescriber, send, change, sent
):
    access = patient_with_fill(prescriber, days_ago=40)
    change(access)

    assert send() == sent
    assert len(mail.outbox) == Delivery.objects.count() == sent
    assert reminders() == [(access.pk, "refill", first_fill(access).pk, TODAY)] * sent


def test_the_clinic_gets_a_copy_of_a_refill_reminder_only_when_the_patient_chose_it(
    clock, prescriber, send
):
    told = patient_with_fill(prescriber, days_ago=24, remind_clinic=True)
    untold = patient_with_fill(prescriber, days_ago=30)

    assert send() == 3

    clinic = clinic_of(prescriber)
    by_recipient = {message.to[0]: message for message in mail.outbox}
    assert len(mail.outbox) == 3
    assert sorted(by_recipient) == sorted([told.user.email, untold.user.email, clinic.label_email])
    copy = by_recipient[clinic.label_email]
    assert copy.subject == SUBJECT
    assert f"The patient of order {first_fill(told).number} has been reminded" in copy.body
    assert "home page:\nhttp://portal.test/\n" in copy.body
    assert PATIENT_HOME not in copy.body
    # One reminder each, whoever it went to.
    assert reminders() == [
        (told.pk, "refill", first_fill(told).pk, TODAY),
        (untold.pk, "refill", first_fill(untold).pk, TODAY),
    ]


# --- Diary reminders ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frequency", "accepted", "entry", "reminded", "sent"),
    [
        # Days ago: the access accepted, the last entry, the last diary reminder.
        ("daily", 0, None, None, 0),  # not before a whole day
        ("daily", 1, None, None, 1),
        ("daily", 5, 0, None, 0),  # written today
        ("daily", 5, 1, None, 1),  # written yesterday, not yet today
        ("daily", 5, None, 0, 0),  # reminded today
        ("daily", 5, None, 1, 1),
        ("weekly", 6, None, None, 0),  # not before a whole week
        ("weekly", 7, None, None, 1),
        ("weekly", 30, 1, None, 0),  # the day after an entry
        ("weekly", 30, 6, None, 0),
        ("weekly", 30, 7, None, 1),
        ("weekly", 30, 20, 6, 0),
        ("weekly", 30, 20, 7, 1),
        ("never", 30, None, None, 0),
    ],
)
def test_a_diary_reminder_goes_after_a_whole_interval_without_an_entry_or_a_reminder(
    clock, prescriber, send, frequency, accepted, entry, reminded, sent
):
    access = patient_with_fill(prescriber, days_ago=0, diary_frequency=frequency)
    PatientAccess.objects.filter(pk=access.pk).update(accepted_at=timezone.now() - days(accepted))
    if entry is not None:
        DiaryEntryFactory(patient=access.patient, day=TODAY - days(entry))
    if reminded is not None:
        PatientReminder.objects.create(
            access=access, kind=ReminderKind.DIARY, sent_on=TODAY - days(reminded)
        )
    before = reminders()

    assert send() == sent
    assert send() == 0  # once a day at most

    assert reminders()[len(before) :] == [(access.pk, "diary", None, TODAY)] * sent
    assert [(m.to, m.subject) for m in mail.outbox] == [([access.user.email], SUBJECT)] * sent
    if sent:
        assert f"write in your diary. Sign in to the patient\nportal:\n{PATIENT_HOME}\n" in (
            mail.outbox[0].body
        )
        assert f"or stopped, in your settings:\n{PATIENT_SETTINGS}\n" in mail.outbox[0].body


def test_daily_diary_reminders_go_each_morning_the_diary_waits_for_an_entry(
    clock, prescriber, send
):
    access = patient_with_fill(prescriber, days_ago=0, diary_frequency="daily")
    assert send() == 1  # accepted a month ago, nothing written since
    clock.shift(days(1))
    DiaryEntryFactory(patient=access.patient, day=timezone.localdate())
    assert send() == 0  # written today
    clock.shift(days(1))
    assert send() == 1
    assert [day for *_, day in reminders()] == [TODAY, TODAY + days(2)]


def _expire_every_prescription(access):
    Prescription.objects.filter(patient=access.patient).update(expires_on=TODAY - days(1))


def _expire_one_of_two(access):
    submit_order(prescriber_of(access), access.patient, MONTHLY)
    Prescription.objects.filter(pk=first_fill(access).prescription_id).update(
        expires_on=TODAY - days(1)
    )


def _without_any_prescription(access):
    no_prescription = PatientFactory(clinic=access.patient.clinic)
    PatientAccess.objects.filter(pk=access.pk).update(patient=no_prescription)


@pytest.mark.parametrize(
    ("change", "sent"),
    [
        (_nothing, 1),
        (_expire_one_of_two, 1),
        (_revoke, 0),
        (_expire_every_prescription, 0),
        (_without_any_prescription, 0),
    ],
)
def test_no_diary_reminder_once_revoked_or_every_prescription_has_expired(
    clock, prescriber, send, change, sent
):
    access = patient_with_fill(prescriber, days_ago=0, diary_frequency="daily")
    change(access)

    assert send() == sent
    assert reminders() == [(access.pk, "diary", None, TODAY)] * sent


# --- What the emails say ------------------------------------------------------------------------


def assert_no_health_data(patient, text: str) -> None:
    """Neither the patient's name or date of birth, nor the drug, dose, form or condition of
    their order (MONTHLY: 4.5 mg capsules, for M79.7, fibromyalgia)."""
    said = text.lower()
    for health_data in (
        patient.first_name,
        patient.last_name,
        patient.date_of_birth.isoformat(),
        patient.date_of_birth.strftime("%m/%d/%Y"),
        "naltrexone",
        "mg",
        "4.5",
        "capsule",
        "m79.7",
        "fibromyalgia",
    ):
        assert health_data.lower() not in said, health_data


def test_the_emails_name_no_patient_drug_dose_or_condition(
    clock, prescriber, django_capture_on_commit_callbacks
):
    access = patient_with_fill(
        prescriber, days_ago=24, remind_clinic=True, diary_frequency="weekly"
    )
    patient = Patient.objects.get(pk=access.patient_id)
    with django_capture_on_commit_callbacks() as queued:
        assert patient_reminders_send() == 3

    # The outbox rows as the worker will send them, then the messages sent.
    written = [(d.message["subject"], d.message["body"]) for d in Delivery.objects.all()]
    for callback in queued:
        callback()
    sent = [(message.subject, message.body) for message in mail.outbox]
    assert len(written) == len(sent) == 3
    for subject, body in written + sent:
        assert subject == SUBJECT
        assert_no_health_data(patient, f"{subject}\n{body}")


# --- Cost ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("patients", [2, 10])
def test_the_queries_are_two_reads_and_a_few_writes_per_reminder(
    clock, prescriber, django_assert_num_queries, patients
):
    for _ in range(patients):
        patient_with_fill(prescriber, days_ago=24, remind_clinic=True, diary_frequency="daily")

    # Two reads; then each reminder: in a transaction (a savepoint here), its access locked, its
    # row (in a savepoint), its emails' outbox rows (in one savepoint), an email each.
    refill, diary = 2 + 1 + 3 + 2 + 2, 2 + 1 + 3 + 2 + 1
    with django_assert_num_queries(2 + patients * (refill + diary)):
        assert patient_reminders_send() == 3 * patients
    with django_assert_num_queries(2):
        assert patient_reminders_send() == 0


# --- Two runs at once (PostgreSQL: row locks and unique indexes decide) -------------------------


@pytest.mark.integration
@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.parametrize("kind", ["refill", "diary"])
def test_two_runs_at_once_send_a_reminder_once(clock, prescriber, monkeypatch, kind):
    """The first run holds its reminder's transaction open (in its email) until the second,
    which read the same reminder as due, waits on the access's row lock; the second then finds
    the reminder sent."""
    if connection.vendor != "postgresql":
        service_unavailable(f"needs PostgreSQL; the database is {connection.vendor}")
    if kind == "refill":
        access = patient_with_fill(prescriber, days_ago=24)
    else:
        access = patient_with_fill(prescriber, days_ago=0, diary_frequency="daily")
    inside, release = threading.Event(), threading.Event()
    send_mass_mail = patient_reminders.send_mass_mail

    def held_send_mass_mail(*args, **kwargs):
        if not inside.is_set():  # the first run's email (the second waits for it to start)
            inside.set()
            assert release.wait(timeout=30)
        return send_mass_mail(*args, **kwargs)

    monkeypatch.setattr(patient_reminders, "send_mass_mail", held_send_mass_mail)

    def second():
        assert inside.wait(timeout=30)
        return patient_reminders_send()

    def release_once_the_second_waits():
        assert inside.wait(timeout=30)
        with connection.cursor() as cursor:
            for _ in range(300):
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
                if cursor.fetchone()[0]:
                    break
                threading.Event().wait(0.05)
            else:
                raise AssertionError("the second run never waited for the first")
        release.set()

    results = run_together(patient_reminders_send, second, release_once_the_second_waits)

    assert results == [1, 0, None]
    order = first_fill(access).pk if kind == "refill" else None
    assert reminders() == [(access.pk, kind, order, TODAY)]
    assert Delivery.objects.filter(recipient=access.user.email).count() == 1

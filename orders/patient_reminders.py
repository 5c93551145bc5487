"""Reminders to patients by email, sent each morning (pharmacy.tasks.send_patient_reminders):
a refill reminder once per fill when its refill comes due, and a diary reminder after a day or a
week without an entry (orders/reminder_rules.py says when). Each reminder is a row whose unique
key (one per fill, one diary reminder a day) is written in the same transaction as its emails'
outbox rows, so a run repeated, or two at once, sends it once.

The emails carry no health data (no name, drug, dose or condition): they say there is a
reminder and give the portal's link; the clinic's copy of a refill reminder gives the order's
number, which the clinic's staff look up on their portal."""

import datetime
from dataclasses import dataclass

from django.conf import settings
from django.core.mail import send_mass_mail
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Subquery
from django.urls import reverse
from django.utils import timezone

from .checks import current_policy
from .models import (
    OPEN_STATUSES,
    DiaryEntry,
    Order,
    PatientAccess,
    PatientReminder,
    Prescription,
    ReminderKind,
)
from .patient_access import email_text
from .reminder_rules import DiaryFrequency, diary_reminder_due, refill_reminder_due
from .selectors import refillable_prescriptions


@dataclass(frozen=True)
class Email:
    template: str  # under templates/emails/: <template>.txt and <template>_subject.txt
    recipient: str
    context: dict


def patient_reminders_send(*, today: datetime.date | None = None) -> int:
    """Send the refill and diary reminders due today to the patients whose access is live.
    Reads everything in two queries; each reminder sent then costs the same few writes.
    Returns how many emails were queued."""
    today = today or timezone.localdate()
    queued = 0
    policy = current_policy()
    for prescription in _current_refillable(today):
        access = prescription.patient.access
        due = refill_reminder_due(
            filled_on=timezone.localdate(prescription.last_dispensed_at),
            days_supply=prescription.days_supply,
            today=today,
            reminded=prescription.reminded,
            policy=policy,
        )
        if due:
            emails = [Email("patient_refill_reminder", access.user.email, _patient_links())]
            if access.remind_clinic:
                order_number = Order.number_of(prescription.last_fill_id)
                context = {"order_number": order_number, "portal_url": _url("home")}
                clinic_email = prescription.patient.clinic.label_email
                emails.append(Email("clinic_refill_reminder", clinic_email, context))
            queued += _remind(
                access_id=access.pk,
                kind=ReminderKind.REFILL,
                order_id=prescription.last_fill_id,
                today=today,
                emails=emails,
            )
    for access in _diary_candidates(today):
        due = diary_reminder_due(
            frequency=DiaryFrequency(access.diary_frequency),
            last_entry_on=access.last_entry_on,
            last_reminded_on=access.last_reminded_on,
            started_on=timezone.localdate(access.accepted_at),
            today=today,
        )
        if due:
            email = Email("patient_diary_reminder", access.user.email, _patient_links())
            queued += _remind(
                access_id=access.pk,
                kind=ReminderKind.DIARY,
                order_id=None,
                today=today,
                emails=[email],
            )
    return queued


def _current_refillable(today: datetime.date):
    """Each live patient's current prescription, when it may be refilled (refills left, not
    expired, no fill open or drafted: selectors.refillable_prescriptions) and the patient has no
    other fill on its way (a new prescription drafted or being prepared); current: it holds the
    patient's latest dispensed fill. Annotated with that fill (`last_fill_id`) and whether its
    reminder went (`reminded`). One query."""
    patient = OuterRef("patient")
    dispensed_later = Order.objects.filter(
        prescription__patient=patient, dispenses__dispensed_at__gt=OuterRef("last_dispensed_at")
    )
    last_fill = (
        Order.objects.filter(
            prescription=OuterRef("pk"), dispenses__dispensed_at=OuterRef("last_dispensed_at")
        )
        .order_by("-pk")
        .values("pk")[:1]
    )
    open_fills = Order.objects.filter(prescription__patient=patient, status__in=OPEN_STATUSES)
    reminded = PatientReminder.objects.filter(
        access__patient=patient, kind=ReminderKind.REFILL, order=OuterRef("last_fill_id")
    )
    return (
        refillable_prescriptions(today=today)
        .filter(patient__access__in=PatientAccess.objects.live())
        .exclude(Exists(dispensed_later))
        .exclude(Exists(open_fills))
        .annotate(last_fill_id=Subquery(last_fill))
        .annotate(reminded=Exists(reminded))
        .select_related("patient__access__user", "patient__clinic")
        .only(
            "days_supply",
            "patient__clinic__label_email",
            "patient__access__remind_clinic",
            "patient__access__user__email",
        )
        .order_by("pk")
    )


def _diary_candidates(today: datetime.date):
    """The live accesses that want diary reminders, of patients with a prescription not yet
    expired, with their last entry's day and last diary reminder's day. One query."""
    last_entry = DiaryEntry.objects.filter(patient=OuterRef("patient")).order_by("-day")
    last_reminder = PatientReminder.objects.filter(
        access=OuterRef("pk"), kind=ReminderKind.DIARY
    ).order_by("-sent_on")
    in_date = Prescription.objects.filter(patient=OuterRef("patient"), expires_on__gte=today)
    return (
        PatientAccess.objects.live()
        .exclude(diary_frequency=DiaryFrequency.NEVER)
        .filter(Exists(in_date))
        .annotate(
            last_entry_on=Subquery(last_entry.values("day")[:1]),
            last_reminded_on=Subquery(last_reminder.values("sent_on")[:1]),
        )
        .select_related("user")
        .only("accepted_at", "diary_frequency", "user__email")
        .order_by("pk")
    )


def _remind(
    *,
    access_id: int,
    kind: ReminderKind,
    order_id: int | None,
    today: datetime.date,
    emails: list[Email],
) -> int:
    """One reminder: its row and its emails' outbox rows in one transaction. Nothing when the
    access was revoked meanwhile (its row is locked, as revoking locks it) or the reminder's
    unique row exists (another run sent it). Returns how many emails were queued."""
    with transaction.atomic():
        live = PatientAccess.objects.live().select_for_update().filter(pk=access_id)
        if live.values_list("pk", flat=True).first() is None:
            return 0
        try:
            with transaction.atomic():
                PatientReminder.objects.create(
                    access_id=access_id, kind=kind, order_id=order_id, sent_on=today
                )
        except IntegrityError:
            return 0
        send_mass_mail([_message(email) for email in emails])
    return len(emails)


def _message(email: Email) -> tuple[str, str, None, list[str]]:
    return *email_text(email.template, email.context), None, [email.recipient]


def _url(name: str) -> str:
    return settings.PORTAL_BASE_URL + reverse(name)


def _patient_links() -> dict[str, str]:
    return {"home_url": _url("patient_home"), "settings_url": _url("patient_settings")}

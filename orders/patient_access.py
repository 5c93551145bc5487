"""The patient's side of the portal: invited by their clinic, signed in by an emailed link after
confirming their date of birth, keeping a diary, asking for a refill. Writes are services here;
the pages are orders/patient_views.py.

Links are django-sesame tokens: signed with the account's password hash and last sign-in, so a
link works once (signing in changes the last sign-in), until it expires (an invitation after
PATIENT_INVITATION_DAYS, a sign-in link after SESAME_MAX_AGE), and never after the access is
revoked or the patient invited again (both give the account a new unusable password). The
account never has a password. Emails carry only the link: no name, drug, dose or condition."""

import datetime

from django.conf import settings
from django.contrib.auth import authenticate
from django.contrib.auth.signals import user_login_failed
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from sesame.utils import get_query_string

from core.forms import within_email_limit
from core.models import User, normalize_email_address
from prescribers.selectors import is_staff_of_clinic, prescriber_of_clinic

from .models import DiaryEntry, Order, Patient, PatientAccess, Prescription
from .reminder_rules import DiaryFrequency
from .services import prescription_refill

INVITATION_SCOPE = "patient-invitation"
SIGN_IN_SCOPE = "patient-sign-in"
# How long after writing it a patient may still correct a diary entry.
CORRECTABLE_FOR = datetime.timedelta(hours=24)
# How far back a patient may write an entry they forgot (a weekly diary: the past week).
BACKDATE_DAYS = 7


class LinkRefused(Exception):
    """The link is not (or no longer) good: expired, used, revoked or not a patient's."""


def _ensure_member(actor: User, patient: Patient) -> None:
    clinic_id = patient.clinic_id
    if prescriber_of_clinic(actor, clinic_id) is None and not is_staff_of_clinic(actor, clinic_id):
        raise PermissionDenied("Only the patient's clinic may give or end their access.")


def _link(user: User, page: str, scope: str) -> str:
    return f"{settings.PORTAL_BASE_URL}{reverse(page)}{get_query_string(user, scope)}"


def email_text(template: str, context: dict) -> tuple[str, str]:
    """The subject (one line) and body of templates/emails/<template>(_subject).txt."""
    context = {"pharmacy_name": settings.PHARMACY_NAME, **context}
    subject = render_to_string(f"emails/{template}_subject.txt", context)
    return " ".join(subject.split()), render_to_string(f"emails/{template}.txt", context)


def _email(template: str, recipient: str, context: dict) -> None:
    """An email of only a link (through the outbox: settings.EMAIL_BACKEND)."""
    send_mail(*email_text(template, context), None, [recipient])


def patient_access_invite(
    *, patient: Patient, email: str, actor: User, diary_frequency: str = DiaryFrequency.WEEKLY,
    remind_clinic: bool = False,
) -> PatientAccess:  # fmt: skip
    """Invite the patient by email (again, if invited or revoked before: earlier links stop
    working). The address may not be another account's."""
    _ensure_member(actor, patient)
    email = normalize_email_address(email)
    now = timezone.now()
    with transaction.atomic():
        access = (
            PatientAccess.objects.select_for_update().select_related("user")
            .filter(patient=patient).first()
        )  # fmt: skip
        taken = User.objects.filter(email=email)
        if access is not None:
            taken = taken.exclude(pk=access.user_id)
        if taken.exists():
            taken_message = "This address belongs to another account: use the patient's own."
            raise ValidationError({"email": taken_message})
        if access is None:
            user = User.objects.create_user(email=email)  # an unusable password
            access = PatientAccess(patient=patient, user=user)
        else:
            user = access.user
            user.email = email
            user.is_active = True
            user.set_unusable_password()  # earlier links and sessions end
            user.save(update_fields=["email", "is_active", "password"])
        access.invited_by = actor
        access.invited_at = now
        access.accepted_at = access.terms_accepted_at = None
        access.revoked_at = access.revoked_by = None
        access.diary_frequency = DiaryFrequency(diary_frequency).value
        access.remind_clinic = remind_clinic
        access.save()
        link = _link(user, "patient_invitation", INVITATION_SCOPE)
        _email(
            "patient_invitation", email, {"link": link, "days": settings.PATIENT_INVITATION_DAYS}
        )
    return access


def patient_access_revoke(*, access: PatientAccess, actor: User) -> PatientAccess:
    """End the patient's access at once: their sessions and links stop working."""
    _ensure_member(actor, access.patient)
    with transaction.atomic():
        access = PatientAccess.objects.select_for_update().select_related("user").get(pk=access.pk)
        if access.revoked_at is not None:
            return access
        access.revoked_at = timezone.now()
        access.revoked_by = actor
        access.save(update_fields=["revoked_at", "revoked_by"])
        user = access.user
        user.is_active = False
        user.set_unusable_password()
        user.save(update_fields=["is_active", "password"])
    return access


def link_user(request, token: str, *, invitation: bool) -> User:
    """The patient account a link is for; the link is not used up (a page that only shows the
    form, or a mail scanner opening the link, costs nothing). A link that is not good is a
    failed sign-in for the lockout (django-axes, by the address it came from)."""
    if not token:
        raise LinkRefused("This address is not a link.")
    scope, max_age = SIGN_IN_SCOPE, None
    if invitation:
        max_age = datetime.timedelta(days=settings.PATIENT_INVITATION_DAYS)
        scope = INVITATION_SCOPE
    user = authenticate(request, sesame=token, scope=scope, max_age=max_age)
    if (
        user is None
        or not PatientAccess.objects.filter(user=user, revoked_at__isnull=True).exists()
    ):
        raise LinkRefused("This link has expired or was already used.")
    return user


class DateOfBirthRefused(ValidationError):
    pass


def patient_link_accept(
    request, *, token: str, invitation: bool, date_of_birth: datetime.date, accept_terms: bool
) -> PatientAccess:
    """The patient confirmed their date of birth (and, the first time, accepted the terms): the
    link is used up and the access accepted; the caller signs the account in. A wrong date is a
    failed sign-in for the lockout (django-axes counts it against the account's address) and
    leaves the link good for another try."""
    user = link_user(request, token, invitation=invitation)
    access = PatientAccess.objects.select_related("patient").get(user=user)
    if invitation and access.terms_accepted_at is None and not accept_terms:
        raise ValidationError({"accept_terms": "Please read and accept the terms to go on."})
    if date_of_birth != access.patient.date_of_birth:
        user_login_failed.send(
            sender=__name__, credentials={"username": user.email}, request=request
        )
        raise DateOfBirthRefused(
            {"date_of_birth": "That is not the date of birth your clinic has on record."}
        )
    with transaction.atomic():
        User.objects.select_for_update().filter(pk=user.pk).first()
        access = PatientAccess.objects.select_for_update().get(pk=access.pk)
        # Again, under the lock: a second use of the link at the same moment finds it used.
        link_user(request, token, invitation=invitation)
        now = timezone.now()
        user.last_login = now  # the link is used up
        user.save(update_fields=["last_login"])
        access.accepted_at = access.accepted_at or now
        access.terms_accepted_at = access.terms_accepted_at or now
        access.save(update_fields=["accepted_at", "terms_accepted_at"])
    return access


def patient_sign_in_link_send(*, email: str) -> None:
    """Email a sign-in link to a patient whose access is live; nothing to any other address
    (the page says the same either way), and at most PASSWORD_RESET_EMAILS_PER_HOUR an hour."""
    if not within_email_limit(email):
        return
    access = (
        PatientAccess.objects.live().select_related("user")
        .filter(user__email=normalize_email_address(email), user__is_active=True).first()
    )  # fmt: skip
    if access is not None:
        link = _link(access.user, "patient_link", SIGN_IN_SCOPE)
        _email("patient_sign_in", access.user.email, {"link": link})


def patient_settings_update(
    *, access: PatientAccess, actor: User, diary_frequency: str
) -> PatientAccess:
    if actor.pk != access.user_id:
        raise PermissionDenied("Only the patient changes their reminders.")
    access.diary_frequency = DiaryFrequency(diary_frequency).value
    access.save(update_fields=["diary_frequency"])
    return access


def _ensure_patient(actor: User, access: PatientAccess) -> None:
    if actor.pk != access.user_id or not access.is_live:
        raise PermissionDenied("Only the patient writes in their diary.")


DIARY_FIELDS = (
    "dose_taken", "dose_mg", "time_taken", "score", "sleep_quality", "side_effects",
    "other_side_effect", "note",
)  # fmt: skip


def _day_allowed(day: datetime.date) -> None:
    today = timezone.localdate()
    if day > today:
        raise ValidationError({"day": "The day cannot be in the future."})
    if day < today - datetime.timedelta(days=BACKDATE_DAYS):
        raise ValidationError({"day": f"Only the past {BACKDATE_DAYS} days can be added."})


def diary_entry_record(
    *, access: PatientAccess, actor: User, day: datetime.date, **answers
) -> DiaryEntry:
    """A new entry for `day` (today or the past week); one a day."""
    _ensure_patient(actor, access)
    _day_allowed(day)
    with transaction.atomic():
        Patient.objects.select_for_update().filter(pk=access.patient_id).first()
        if DiaryEntry.objects.filter(patient_id=access.patient_id, day=day).exists():
            raise ValidationError(
                {"day": "There is already an entry for that day: correct it instead."}
            )
        fields = {name: answers[name] for name in DIARY_FIELDS if name in answers}
        return DiaryEntry.objects.create(
            patient_id=access.patient_id, day=day, created_by=actor, **fields
        )


def diary_entry_correct(*, entry: DiaryEntry, access: PatientAccess, actor: User,
                        **answers) -> DiaryEntry:  # fmt: skip
    """Correct an entry within CORRECTABLE_FOR of writing it; the earlier version stays in its
    history."""
    _ensure_patient(actor, access)
    if entry.patient_id != access.patient_id:
        raise PermissionDenied("Only the patient corrects their diary.")
    if timezone.now() - entry.created_at > CORRECTABLE_FOR:
        raise ValidationError("An entry can be corrected for 24 hours after writing it.")
    changed = [name for name in DIARY_FIELDS if name in answers]
    for name in changed:
        setattr(entry, name, answers[name])
    entry.save(update_fields=[*changed, "updated_at"])
    return entry


def correctable(entry: DiaryEntry, now: datetime.datetime | None = None) -> bool:
    return (now or timezone.now()) - entry.created_at <= CORRECTABLE_FOR


def patient_refill_request(*, access: PatientAccess, actor: User,
                           prescription: Prescription) -> Order:  # fmt: skip
    """The patient's "Ask for a refill": a draft refill for the prescription's prescriber to
    sign (never an order by itself), shipped as the last fill was."""
    _ensure_patient(actor, access)
    if prescription.patient_id != access.patient_id:
        raise PermissionDenied("Only the patient asks for their own refill.")
    last = prescription.orders.order_by("-fill_number").first()
    return prescription_refill(
        prescription=prescription, actor=actor, ship_to=last.ship_to, needed_by=None,
        idempotency_key=None, by_patient=True,
    )  # fmt: skip

"""Clinics and the prescribers who order for their patients."""

import datetime

from django.conf import settings
from django.db import models
from django.utils import timezone
from phonenumber_field.modelfields import PhoneNumberField

from core.history import HistoricalRecords
from core.models import PostalAddress, StateField, StatusEvent

from .npi import validate_npi


class Clinic(PostalAddress):
    name = models.CharField(max_length=200)
    phone = PhoneNumberField()
    label_email = models.EmailField(
        "email for labels", help_text="Where the pharmacy sends label PDFs and order notices."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class Credentials(models.TextChoices):
    MD = "MD", "MD (Doctor of Medicine)"
    DO = "DO", "DO (Doctor of Osteopathic Medicine)"
    NP = "NP", "NP (Nurse Practitioner)"
    PA = "PA", "PA (Physician Assistant)"


class PrescriberStatus(models.TextChoices):
    PENDING = "pending", "Awaiting approval"
    APPROVED = "approved", "Approved"
    DECLINED = "declined", "Declined"
    SUSPENDED = "suspended", "Suspended"

    @property
    def badge(self) -> str:
        """Bootstrap colour of this status, shared by the portal and the admin."""
        return {
            "pending": "warning",
            "approved": "success",
            "declined": "secondary",
            "suspended": "danger",
        }[self.value]


class Prescriber(models.Model):
    """A person's prescriber profile (NPI, credentials, the pharmacy's approval); the clinics
    they order for are their memberships."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="prescriber"
    )
    first_name = models.CharField(max_length=150)
    last_name = models.CharField(max_length=150)
    credentials = models.CharField(max_length=2, choices=Credentials.choices)
    npi = models.CharField("NPI", max_length=10, unique=True, validators=[validate_npi])
    phone = PhoneNumberField()
    status = models.CharField(
        max_length=10,
        choices=PrescriberStatus.choices,
        default=PrescriberStatus.PENDING,
        db_index=True,
    )
    applied_at = models.DateTimeField(auto_now_add=True)
    status_changed_at = models.DateTimeField(null=True, blank=True)

    history = HistoricalRecords()

    # What an applicant tells about themselves (the clinic and email are asked separately).
    PROFILE_FIELDS = (
        "first_name", "last_name", "credentials", "npi", "phone",
    )  # fmt: skip

    class Meta:
        ordering = ["last_name", "first_name"]
        permissions = [
            ("decide_prescriber", "Can approve, decline, suspend and reinstate prescribers"),
        ]

    def __str__(self):
        return f"{self.first_name} {self.last_name}, {self.credentials}"

    @property
    def email(self) -> str:
        return self.user.email

    @property
    def is_approved(self) -> bool:
        return self.status == PrescriberStatus.APPROVED

    @property
    def status_badge(self) -> str:
        return PrescriberStatus(self.status).badge


class Licence(models.Model):
    """A prescriber's licence to practise in one state. An order is accepted only for a patient
    in a state where the prescriber holds an active licence (orders.fill_rules)."""

    # Indexed by one_licence_per_state, which starts with it.
    prescriber = models.ForeignKey(
        Prescriber, on_delete=models.PROTECT, related_name="licences", db_index=False
    )
    state = StateField("state")
    number = models.CharField("licence number", max_length=50)
    # Empty only for licences recorded before expiry dates were asked for: not on file yet.
    expires_on = models.DateField("expires on", null=True, blank=True)
    # The expiry date the prescriber was last warned about (licence_expiry_notices_send): a
    # renewal's new date gets a warning of its own in time.
    expiry_notice_for = models.DateField(null=True, blank=True, editable=False)

    history = HistoricalRecords(excluded_fields=["expiry_notice_for"])

    class Meta:
        ordering = ["state"]
        constraints = [
            models.UniqueConstraint(fields=["prescriber", "state"], name="one_licence_per_state")
        ]

    def __str__(self):
        return f"{self.get_state_display()} licence {self.number}"

    def is_active(self, on: datetime.date) -> bool:
        return self.expires_on is None or self.expires_on >= on

    @property
    def days_left(self) -> int | None:
        """Days until it expires (negative once expired), None when no date is on file."""
        if self.expires_on is None:
            return None
        return (self.expires_on - timezone.localdate()).days


class PrescriberEvent(StatusEvent):
    """The decisions on a prescriber account: applied, approved, declined, suspended, ..."""

    subject_field = "prescriber"

    prescriber = models.ForeignKey(Prescriber, on_delete=models.PROTECT, related_name="events")
    from_status = models.CharField(max_length=10, choices=PrescriberStatus.choices, blank=True)
    to_status = models.CharField(max_length=10, choices=PrescriberStatus.choices)

    class Meta(StatusEvent.Meta):
        pass


class MembershipRole(models.TextChoices):
    PRESCRIBER = "prescriber", "Prescriber (signs orders)"
    STAFF = "staff", "Clinic staff (drafts orders for a prescriber to sign)"


class MembershipStatus(models.TextChoices):
    PENDING = "pending", "Asked to join"
    ACTIVE = "active", "Active"
    ENDED = "ended", "Ended"


class MembershipQuerySet(models.QuerySet):
    def active(self):
        return self.filter(status=MembershipStatus.ACTIVE)


class Membership(models.Model):
    """A person's place in a clinic, with the role they have there: a person may belong to
    several clinics, and every portal page works for the one they act for."""

    # Indexed by one_membership_per_clinic, which starts with it.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="memberships",
        db_index=False,
    )
    # Indexed by Meta's index on (clinic, role, status), which starts with it.
    clinic = models.ForeignKey(
        Clinic, on_delete=models.PROTECT, related_name="memberships", db_index=False
    )
    role = models.CharField(max_length=10, choices=MembershipRole.choices)
    status = models.CharField(
        max_length=10, choices=MembershipStatus.choices, default=MembershipStatus.PENDING
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # When the person last chose to act for this clinic: the one a new sign-in starts with.
    last_acted_at = models.DateTimeField(null=True, blank=True)

    history = HistoricalRecords(excluded_fields=["last_acted_at"])
    objects = MembershipQuerySet.as_manager()

    class Meta:
        ordering = ["clinic__name"]
        constraints = [
            models.UniqueConstraint(fields=["user", "clinic"], name="one_membership_per_clinic")
        ]
        indexes = [models.Index(fields=["clinic", "role", "status"])]

    def __str__(self):
        return f"{self.user} at {self.clinic} ({self.get_role_display()})"


class ApiKey(models.Model):
    """A key a clinic's own system (its EHR, a telehealth platform) uses for the partner API
    (`/api/v1/`, `/fhir/r4/`). A prescriber of the clinic makes it and is its owner: it reaches
    only that clinic's records, and it stops working when revoked or when its owner is no
    longer an approved prescriber there. The key itself is shown once; only its prefix and a
    SHA-512 hash of it are kept (djangorestframework-api-key's hasher: the key is random, so a
    slow password hash would add nothing but time to every request)."""

    # Indexed by Meta's index on (clinic, created_at), which starts with it.
    clinic = models.ForeignKey(
        Clinic, on_delete=models.PROTECT, related_name="api_keys", db_index=False
    )
    owner = models.ForeignKey(Prescriber, on_delete=models.PROTECT, related_name="api_keys")
    name = models.CharField(max_length=100, help_text='What uses it, e.g. "Clinic EHR".')
    prefix = models.CharField(max_length=12, unique=True, editable=False)
    hashed_key = models.CharField(max_length=150, editable=False)
    # The "sign" scope: orders sent with the key are signed by its owner as they arrive. Without
    # it they are drafts that wait for a prescriber's signature in the portal.
    can_sign = models.BooleanField("signs orders", default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    history = HistoricalRecords(excluded_fields=["last_used_at"])

    class Meta:
        verbose_name = "API key"
        ordering = ["clinic", "-created_at", "-pk"]
        indexes = [models.Index(fields=["clinic", "-created_at"])]

    def __str__(self):
        return f"{self.name} ({self.prefix}\u2026)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class IdempotentRequest(models.Model):
    """The first answer to a request sent with an Idempotency-Key, per API key: a retry of the
    same request gets the same answer, and a different request with the same key is refused
    (IETF draft "The Idempotency-Key HTTP Header Field")."""

    # Indexed by one_answer_per_idempotency_key, which starts with it.
    api_key = models.ForeignKey(ApiKey, on_delete=models.PROTECT, related_name="+", db_index=False)
    key = models.CharField(max_length=255)
    # SHA-256 of the method, the path and the body: what "the same request" means.
    fingerprint = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField()
    response = models.JSONField()
    location = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["api_key", "key"], name="one_answer_per_idempotency_key"
            )
        ]

    def __str__(self):
        return f"{self.api_key.prefix}: {self.key}"

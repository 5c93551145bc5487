"""The patient's side: their access to the portal (invited by the clinic), their dose and
symptom diary, and the reminders sent to them."""

from django.conf import settings
from django.core.validators import MaxValueValidator
from django.db import models
from django.db.models import Q

from core.history import HistoricalRecords

from ..reminder_rules import DiaryFrequency
from ..titration_advice import SideEffect
from .orders import Order, Patient

# The symptom and sleep scales of the diary: 0 (none, or the worst night) to 10.
SCALE_TOP = 10


class PatientAccessQuerySet(models.QuerySet):
    def live(self):
        """Accesses a patient may use now: accepted and not revoked."""
        return self.filter(accepted_at__isnull=False, revoked_at__isnull=True)


class PatientAccess(models.Model):
    """A patient's way in to their own regimen and diary. The clinic invites the patient by
    email; the emailed link (django-sesame, one-time and expiring) signs them in once they
    confirm their date of birth and accept the terms. Revoking ends it at once: the account is
    made inactive, so its sessions and links stop working. One row per patient, kept when
    revoked (invited again, it is the same row)."""

    patient = models.OneToOneField(Patient, on_delete=models.PROTECT, related_name="access")
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="patient_access"
    )
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    invited_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    terms_accepted_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="+",
        null=True,
        blank=True,
    )
    diary_frequency = models.CharField(
        "diary reminders",
        max_length=10,
        choices=[
            (DiaryFrequency.DAILY.value, "Every day"),
            (DiaryFrequency.WEEKLY.value, "Every week"),
            (DiaryFrequency.NEVER.value, "Never"),
        ],
        default=DiaryFrequency.WEEKLY.value,
    )
    remind_clinic = models.BooleanField(
        "also remind the clinic of refills",
        default=False,
        help_text="Refill reminders go to the clinic's email too.",
    )

    objects = PatientAccessQuerySet.as_manager()
    history = HistoricalRecords()

    class Meta:
        verbose_name = "patient access"
        verbose_name_plural = "patient accesses"

    def __str__(self):
        return f"Patient access {self.pk}"

    @property
    def is_live(self) -> bool:
        return self.accepted_at is not None and self.revoked_at is None

    @property
    def status(self) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.accepted_at is None:
            return "invited"
        return "active"


class TimeTaken(models.TextChoices):
    MORNING = "morning", "Morning"
    AFTERNOON = "afternoon", "Afternoon"
    EVENING = "evening", "Evening"
    BEDTIME = "bedtime", "Bedtime"


SIDE_EFFECT_CHOICES = [(effect.value, effect.label) for effect in SideEffect]


class DiaryEntry(models.Model):
    """One day of the patient's diary: the dose taken and when, the main symptom's score, sleep,
    side effects and a note. The patient may correct it for 24 hours; every version is kept."""

    # Indexed by one_diary_entry_a_day, which starts with it.
    patient = models.ForeignKey(
        Patient, on_delete=models.PROTECT, related_name="diary_entries", db_index=False
    )
    day = models.DateField()
    dose_taken = models.BooleanField(default=True)
    dose_mg = models.DecimalField(max_digits=6, decimal_places=3, null=True, blank=True)
    time_taken = models.CharField(max_length=10, choices=TimeTaken.choices, blank=True)
    score = models.PositiveSmallIntegerField(validators=[MaxValueValidator(SCALE_TOP)])
    sleep_quality = models.PositiveSmallIntegerField(validators=[MaxValueValidator(SCALE_TOP)])
    side_effects = models.JSONField(default=list, blank=True)
    other_side_effect = models.CharField(max_length=200, blank=True)
    note = models.TextField(max_length=1000, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )

    history = HistoricalRecords()

    class Meta:
        ordering = ["-day"]
        verbose_name_plural = "diary entries"
        constraints = [
            models.UniqueConstraint(fields=["patient", "day"], name="one_diary_entry_a_day"),
            models.CheckConstraint(
                condition=Q(score__lte=SCALE_TOP) & Q(sleep_quality__lte=SCALE_TOP),
                name="diary_scores_on_the_scale",
            ),
        ]

    def __str__(self):
        return f"Diary entry {self.pk}"


class ReminderKind(models.TextChoices):
    REFILL = "refill", "Refill reminder"
    DIARY = "diary", "Diary reminder"


class PatientReminder(models.Model):
    """A reminder sent to a patient: the unique key makes a second reminder for the same fill
    (or the same diary gap) impossible, whatever runs twice."""

    # Indexed by reminder_latest, which starts with it.
    access = models.ForeignKey(
        PatientAccess, on_delete=models.PROTECT, related_name="reminders", db_index=False
    )
    kind = models.CharField(max_length=10, choices=ReminderKind.choices)
    # The fill a refill reminder is about; none for a diary reminder.
    order = models.ForeignKey(
        Order, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    sent_on = models.DateField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["access", "order"],
                condition=Q(kind="refill"),
                name="one_refill_reminder_a_fill",
            ),
            models.UniqueConstraint(
                fields=["access", "sent_on"],
                condition=Q(kind="diary"),
                name="one_diary_reminder_a_day",
            ),
        ]
        indexes = [models.Index(fields=["access", "kind", "sent_on"], name="reminder_latest")]

    def __str__(self):
        return f"{self.get_kind_display()} {self.pk}"

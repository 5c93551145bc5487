"""Patients of a clinic. Prescriptions and orders join them in a later slice."""

import datetime

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone
from phonenumber_field.modelfields import PhoneNumberField
from simple_history.models import HistoricalRecords

from pharmacy.models import PostalAddress
from prescribers.models import Clinic

EARLIEST_DATE_OF_BIRTH = datetime.date(1900, 1, 1)


def validate_date_of_birth(value: datetime.date) -> None:
    if value > timezone.localdate():
        raise ValidationError("The date of birth cannot be in the future.", code="dob_future")
    if value < EARLIEST_DATE_OF_BIRTH:
        raise ValidationError(
            "The date of birth is before 1900; please check the year.", code="dob_too_early"
        )


class Sex(models.TextChoices):
    FEMALE = "F", "Female"
    MALE = "M", "Male"
    UNSPECIFIED = "X", "Other or not stated"


class PatientQuerySet(models.QuerySet):
    def of_clinic(self, clinic_id: int):
        return self.filter(clinic_id=clinic_id)

    def likely_duplicates(
        self, *, clinic_id: int, first_name: str, last_name: str, date_of_birth: datetime.date
    ):
        return self.filter(
            clinic_id=clinic_id,
            first_name__iexact=first_name.strip(),
            last_name__iexact=last_name.strip(),
            date_of_birth=date_of_birth,
        )


class Patient(PostalAddress):
    """A patient of a clinic; the address is where orders ship unless sent to the clinic."""

    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, related_name="patients")
    first_name = models.CharField(max_length=100)
    last_name = models.CharField(max_length=100)
    date_of_birth = models.DateField(validators=[validate_date_of_birth])
    sex = models.CharField(max_length=1, choices=Sex.choices)
    phone = PhoneNumberField()
    allergies = models.TextField(help_text='Drug and other allergies; write "NKDA" if none known.')
    current_medications = models.TextField(
        blank=True, help_text="Everything the patient takes now, one per line, with doses."
    )
    # Naltrexone is contraindicated with opioids: this is always answered, never left unknown.
    takes_opioids = models.BooleanField("currently takes opioids?")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords()
    objects = PatientQuerySet.as_manager()

    # What a prescriber fills in and may change, in the order the form asks for it.
    EDITABLE_FIELDS = (
        "first_name", "last_name", "date_of_birth", "sex", "phone", "address_line1",
        "address_line2", "city", "state", "postal_code", "allergies", "current_medications",
        "takes_opioids",
    )  # fmt: skip

    class Meta:
        ordering = ["last_name", "first_name", "pk"]
        indexes = [
            models.Index(fields=["clinic", "last_name", "first_name"]),
            models.Index(fields=["clinic", "date_of_birth"]),
        ]

    def __str__(self):
        return f"{self.last_name}, {self.first_name}"

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}"

    @property
    def age(self) -> int:
        today = timezone.localdate()
        born = self.date_of_birth
        return today.year - born.year - ((today.month, today.day) < (born.month, born.day))

"""A clinic's named titration protocols ("Standard 1.5 -> 4.5 mg", "Sensitive 0.5 mg steps"):
a schedule that a new order starts from, which the dose rules check again on every order."""

from django.conf import settings
from django.db import models
from django.db.models.functions import Lower

from core.history import HistoricalRecords
from prescribers.models import Clinic

from ..dosing import DOSAGE_FORM_CHOICES
from .orders import TimeOfDay


class TitrationProtocol(models.Model):
    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="protocols")
    name = models.CharField(max_length=80)
    dosage_form = models.CharField(max_length=20, choices=DOSAGE_FORM_CHOICES)
    concentration_mg_per_ml = models.DecimalField(
        max_digits=6, decimal_places=3, null=True, blank=True
    )
    # As typed on the order form and kept in its canonical spelling: "1.5 x 14, 3 x 14, 4.5 x 30".
    steps = models.CharField("schedule", max_length=400)
    doses_per_day = models.PositiveSmallIntegerField(default=1)
    time_of_day = models.CharField(max_length=10, choices=TimeOfDay.choices)
    days_supply = models.PositiveSmallIntegerField("days' supply")
    refills = models.PositiveSmallIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    history = HistoricalRecords()

    class Meta:
        ordering = [Lower("name"), "pk"]
        constraints = [
            models.UniqueConstraint("clinic", Lower("name"), name="one_protocol_name_per_clinic")
        ]

    def __str__(self):
        return self.name

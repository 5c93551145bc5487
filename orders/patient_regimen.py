"""What the patient's page says about their treatment, in plain words: which bottle to take now
and when to switch (each bottle's directions, as its label prints them, with the dates), when
the supply runs out, when a refill may be asked for, and any fill on its way."""

import datetime
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Min
from django.utils import timezone

from . import dosing
from .checks import current_policy, prescription_regimen
from .fill_rules import refill_due_on
from .models import OPEN_STATUSES, Order, OrderStatus, Patient, Prescription
from .services import prescription_refills_left


@dataclass(frozen=True)
class Bottle:
    drug: str
    quantity: str
    directions: tuple[str, ...]
    first_day: datetime.date
    last_day: datetime.date
    in_use: bool  # today falls in its days


@dataclass(frozen=True)
class PatientRegimen:
    prescription: Prescription
    fill: Order  # the latest fill dispensed
    started_on: datetime.date  # the day it was dispensed: day 1 of its schedule
    runs_out_on: datetime.date  # the day after its last day's supply
    bottles: list[Bottle]
    refills_left: int
    refill_from: datetime.date  # a refill is not too soon from this day
    on_its_way: Order | None  # a later fill being prepared, drafted or asked for
    steps: tuple[dosing.Step, ...] = ()  # the fill's schedule: as written, or the maintenance

    def dose_on(self, day: datetime.date) -> Decimal | None:
        """The dose the fill's schedule gives for `day` (its last step's after the end)."""
        left = (day - self.started_on).days
        for step in self.steps:
            if left < step.days:
                return step.dose_mg
            left -= step.days
        return self.steps[-1].dose_mg if self.steps else None

    @property
    def expired(self) -> bool:
        return self.prescription.expires_on < timezone.localdate()

    @property
    def may_ask_for_refill(self) -> bool:
        return (
            self.on_its_way is None
            and self.refills_left > 0
            and not self.expired
            and timezone.localdate() >= self.refill_from
        )


def _bottles(
    fill: Order, regimen: dosing.Regimen, started_on: datetime.date, today: datetime.date
) -> list[Bottle]:
    bottles, before = [], {}
    for line in fill.lines().select_related("formulation").order_by("position"):
        formulation = line.formulation
        strength = (
            formulation.strength_mg if formulation.dosage_form == dosing.DosageForm.CAPSULE
            else None
        )  # fmt: skip
        taken_before = before.get(strength, Decimal(0))
        first, last = dosing.days_in_use(regimen, strength, before=taken_before, units=line.units)
        before[strength] = taken_before + line.units
        first_day = started_on + datetime.timedelta(days=max(first, 1) - 1)
        last_day = started_on + datetime.timedelta(days=max(last, 1) - 1)
        bottles.append(
            Bottle(
                drug=formulation.name,
                quantity=dosing.units_text(line.units, formulation.unit),
                directions=dosing.label_directions(regimen, strength),
                first_day=first_day,
                last_day=last_day,
                in_use=first_day <= today <= last_day,
            )
        )
    return bottles


def patient_regimen(patient: Patient) -> PatientRegimen | None:
    """The patient's latest dispensed fill and what follows from it; None before the first."""
    fill = (
        Order.objects.filter(prescription__patient=patient)
        .annotate(dispensed_at=Min("dispenses__dispensed_at"))
        .filter(dispensed_at__isnull=False)
        .exclude(status__in=(OrderStatus.CANCELLED, OrderStatus.REJECTED))
        .select_related("prescription")
        .order_by("-dispensed_at", "-pk")
        .first()
    )
    if fill is None:
        return None
    prescription = fill.prescription
    today = timezone.localdate()
    started_on = timezone.localdate(fill.dispensed_at)
    regimen = prescription_regimen(prescription, fill.schedule)
    on_its_way = (
        prescription.orders.filter(status__in=OPEN_STATUSES, created_at__gt=fill.created_at)
        .order_by("-created_at")
        .first()
    )
    return PatientRegimen(
        prescription=prescription,
        fill=fill,
        started_on=started_on,
        runs_out_on=started_on + datetime.timedelta(days=prescription.days_supply),
        bottles=_bottles(fill, regimen, started_on, today),
        refills_left=prescription_refills_left(prescription),
        refill_from=refill_due_on(started_on, prescription.days_supply, current_policy()),
        on_its_way=on_its_way,
        steps=regimen.steps,
    )

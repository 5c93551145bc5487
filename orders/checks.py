"""The one place that decides whether a prescription may be filled now. The order form, the
live check endpoint, the submit service, refills, amendments, the pharmacist's verification and
dispensing all call fill_check (or prescription_findings, its pure core), so what the prescriber
sees while typing is exactly what the server enforces at every later step, against the patient
record and the orders as they are at that moment."""

import dataclasses
import datetime
import time
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from functools import cached_property

from django.conf import settings
from django.db import connection
from django.db.models import Max, Prefetch, Sum
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.utils import timezone

from core.compiled_reads import CompiledRead
from core.json_rows import json_rows
from core.json_rows import values as json_values
from core.models import state_name
from core.numbers import quantity_text
from prescribers.models import PrescriberStatus
from prescribers.selectors import licence_in

from . import bud, dosing, fill_rules, icd10
from .dosing import DosageForm, Finding, PatientFacts, Regimen, Severity
from .fill_rules import REASON_REQUIRED, FillHistory, OpenOrder, PreviousFill, Product
from .models import (
    OPEN_STATUSES,
    UNFILLED_STATUSES,
    FillSchedule,
    Formulation,
    FormulationIngredient,
    FormulationVersion,
    FormulationVersionStatus,
    Ingredient,
    Order,
    OrderKind,
    OrderStatus,
    Patient,
    Prescription,
)

NO_HISTORY = FillHistory()  # no orders to compare with (a patient described inline)
CATALOGUE_SOURCE = "The pharmacy's catalogue of formulations"
# How long a process uses the catalogue it read before reading it again (seconds). A change
# made in the admin is seen at once by the process that made it and within this time by the
# others (every order is still verified by a pharmacist).
CATALOGUE_MAX_AGE = 30.0


def current_policy() -> dosing.DosingPolicy:
    """The dose rules' defaults, with any overrides from settings.LDN_DOSING_POLICY."""
    return dosing.policy_with(settings.LDN_DOSING_POLICY)


def bud_limit_days(category: bud.BudCategory) -> int:
    """The longest days' supply a preparation of this category can have when it is compounded
    today (USP <795>; with the day-one setting, the compounding day counts as a day)."""
    today = timezone.localdate()
    date = bud.beyond_use_date(
        category=category,
        compounded_on=today,
        compounding_date_is_day_one=settings.BUD_COMPOUNDING_DATE_IS_DAY_ONE,
    ).date
    return (date - today).days


@dataclass(frozen=True)
class CatalogueItem:
    """A product the pharmacy can make now: a formulation with an approved master formulation
    record, whose BUD category and excipients the rules need."""

    formulation: Formulation
    bud_category: bud.BudCategory
    excipients: tuple[str, ...]

    @property
    def product(self) -> Product:
        category = self.bud_category
        return Product(
            name=self.formulation.name,
            bud_days=bud_limit_days(category),
            bud_label=category.label,
            excipients=self.excipients,
        )


@dataclass(frozen=True)
class Catalogue:
    """What prescribers can order: the active formulations that have an approved master
    formulation record (a strength without one is not offered: the pharmacy cannot make it)."""

    items: tuple[CatalogueItem, ...]

    @classmethod
    def load(cls) -> "Catalogue":
        """Read from the database now: the approved versions with their formulation (one
        query) and their excipients (one more)."""
        excipients = Prefetch(
            "ingredients",
            queryset=FormulationIngredient.objects.filter(
                ingredient__kind=Ingredient.Kind.EXCIPIENT
            )
            .select_related("ingredient")
            .order_by("ingredient__name"),
            to_attr="excipient_rows",
        )
        versions = (
            FormulationVersion.objects.filter(
                status=FormulationVersionStatus.APPROVED, formulation__is_active=True
            )
            .select_related("formulation")
            .prefetch_related(excipients)
            .order_by(*(f"formulation__{name}" for name in Formulation._meta.ordering))
        )
        return cls(
            tuple(
                CatalogueItem(
                    formulation=version.formulation,
                    bud_category=version.bud,
                    excipients=tuple(row.ingredient.name for row in version.excipient_rows),
                )
                for version in versions
            )
        )

    @classmethod
    def current(cls) -> "Catalogue":
        """The catalogue for a prescriber's page: this process's copy while it is younger than
        CATALOGUE_MAX_AGE and no formulation was saved here since. Inside a transaction it is
        read from the database (the transaction may have changed it, or may be rolled back)."""
        if connection.in_atomic_block:
            return cls.load()
        cached = _catalogue_cache.get("current")
        now = time.monotonic()
        if cached is None or now - cached[0] > CATALOGUE_MAX_AGE:
            cached = (now, cls.load())
            _catalogue_cache["current"] = cached
        return cached[1]

    @staticmethod
    def forget() -> None:
        """Read the catalogue from the database next time (a formulation changed)."""
        _catalogue_cache.clear()

    @property
    def formulations(self) -> tuple[Formulation, ...]:
        return tuple(item.formulation for item in self.items)

    @cached_property
    def capsule_strengths_mg(self) -> frozenset[Decimal]:
        return frozenset(
            f.strength_mg.normalize() for f in self.formulations if f.dosage_form == "capsule"
        )

    def dosage_forms(self) -> list[tuple[str, str]]:
        made = {f.dosage_form for f in self.formulations}
        return [(value, label) for value, label in dosing.DOSAGE_FORM_CHOICES if value in made]

    def concentrations(self, dosage_form: str) -> list[Decimal]:
        return sorted(
            f.concentration_mg_per_ml.normalize()
            for f in self.formulations
            if f.dosage_form == dosage_form and f.concentration_mg_per_ml is not None
        )

    def _item(self, formulation_id: int) -> CatalogueItem | None:
        return next((i for i in self.items if i.formulation.pk == formulation_id), None)

    def capsule(self, strength_mg: Decimal) -> Formulation | None:
        return next(
            (
                f
                for f in self.formulations
                if f.dosage_form == "capsule" and f.strength_mg == strength_mg
            ),
            None,
        )

    def product(self, dosage_form: str, concentration: Decimal | None) -> Formulation | None:
        """The liquid, drops or cream at this concentration, if the pharmacy makes it."""
        return next(
            (
                f
                for f in self.formulations
                if f.dosage_form == dosage_form
                and concentration is not None
                and f.concentration_mg_per_ml == concentration
            ),
            None,
        )

    def formulations_of(self, regimen: Regimen) -> list[Formulation]:
        """The products the regimen would dispense (those the pharmacy makes)."""
        if regimen.dosage_form == dosing.DosageForm.CAPSULE:
            strengths = dict.fromkeys(step.dose_mg for step in regimen.steps)  # 1.5 == 1.50
            found = (self.capsule(strength) for strength in strengths)
        else:
            found = [self.product(regimen.dosage_form, regimen.concentration_mg_per_ml)]
        return [formulation for formulation in found if formulation is not None]

    def products_of(self, regimen: Regimen) -> tuple[Product, ...]:
        return tuple(self._item(f.pk).product for f in self.formulations_of(regimen))

    def bud_limits(self) -> dict[str, dict[str, str]]:
        """For the order form: each product's beyond-use limit, by dosage form and strength
        or concentration ("capsule" -> "1.5" -> "180 days (nonaqueous solid)")."""
        limits: dict[str, dict[str, str]] = {}
        for item in self.items:
            formulation = item.formulation
            amount = formulation.strength_mg or formulation.concentration_mg_per_ml
            text = self.bud_limit_text(formulation.pk)
            limits.setdefault(formulation.dosage_form, {})[quantity_text(amount)] = text
        return limits

    def bud_limit_text(self, formulation_id: int) -> str:
        """ "180 days (nonaqueous solid)": the longest days' supply of the product made today;
        "" for a product the pharmacy no longer makes."""
        item = self._item(formulation_id)
        if item is None:
            return ""
        return f"{bud_limit_days(item.bud_category)} days ({item.bud_category.label})"

    def check(self, regimen: Regimen) -> list[Finding]:
        if regimen.dosage_form == dosing.DosageForm.CAPSULE:
            if self.capsule_strengths_mg:
                return []
            return [_not_made("dosage_form", "The pharmacy makes no capsules at the moment.")]
        if not self.concentrations(regimen.dosage_form):
            label = DosageForm(regimen.dosage_form).label.lower()
            return [_not_made("dosage_form", f"The pharmacy does not make {label}.")]
        if regimen.concentration_mg_per_ml is None:
            return []  # the dose rules ask for the concentration
        if self.product(regimen.dosage_form, regimen.concentration_mg_per_ml) is None:
            made = ", ".join(f"{c:f} mg/mL" for c in self.concentrations(regimen.dosage_form))
            return [
                _not_made(
                    "concentration_mg_per_ml",
                    f"The pharmacy does not make {regimen.concentration_mg_per_ml:f} mg/mL; "
                    f"it makes {made}.",
                )
            ]
        return []


_catalogue_cache: dict[str, tuple[float, Catalogue]] = {}


@receiver(post_save, sender=Formulation, dispatch_uid="orders.checks.catalogue_changed")
@receiver(post_delete, sender=Formulation, dispatch_uid="orders.checks.catalogue_deleted")
@receiver(post_save, sender=FormulationVersion, dispatch_uid="orders.checks.version_changed")
def _catalogue_changed(**kwargs) -> None:
    Catalogue.forget()


def _not_made(field: str, message: str) -> Finding:
    return Finding(
        code="catalogue.not_made",
        severity=Severity.ERROR,
        field=field,
        message=message,
        source=CATALOGUE_SOURCE,
    )


def patient_facts(patient, diagnosis_codes: Iterable[str] = ()) -> PatientFacts:
    return PatientFacts(
        date_of_birth=patient.date_of_birth,
        takes_opioids=patient.takes_opioids,
        medications=patient.current_medications,
        pregnant_or_breastfeeding=patient.pregnant_or_breastfeeding,
        liver_disease=patient.liver_disease,
        diagnosis_codes=tuple(diagnosis_codes),
        conditions=tuple(patient.conditions or ()),
        allergies=patient.allergies,
    )


def prescription_findings(
    *,
    regimen: Regimen,
    patient: PatientFacts,
    diagnosis_codes: Iterable[str],
    catalogue: Catalogue,
    today: datetime.date,
    history: FillHistory = NO_HISTORY,
) -> list[Finding]:
    """Every rule, on facts already read: the catalogue, the dose and patient rules, the
    product's BUD and excipients, the diagnosis codes, and the patient's other orders."""
    policy = current_policy()
    regimen = dataclasses.replace(regimen, capsule_strengths_mg=catalogue.capsule_strengths_mg)
    return [
        *catalogue.check(regimen),
        *dosing.check_prescription(regimen, patient, today=today, policy=policy),
        *fill_rules.check_products(regimen, catalogue.products_of(regimen), patient),
        *icd10.check_diagnosis_codes(diagnosis_codes),
        *fill_rules.check_history(history, today=today, policy=policy),
    ]


def finding_key(finding: Finding) -> str:
    """Identifies one finding, for the prescriber's tick next to each warning."""
    return f"{finding.code}@{finding.field}"


# --- The records a fill is checked against ------------------------------------------------------


def _suspended(prescriber) -> str | None:
    if prescriber is not None and prescriber.status == PrescriberStatus.SUSPENDED:
        return str(prescriber)
    return None


# A patient's open orders, as the duplicate-therapy rule reads them for every order and dose
# check: a JSON list that the patient's own read gathers (orders.selectors.clinic_patient), so
# that the patient and their open orders are one query; read by themselves for a patient read
# otherwise (compiled once: CompiledRead).
PATIENT_OPEN_ORDERS = json_rows(
    Order.objects.open(), "prescription__patient", "id", "created_at", "fill_number",
    "prescription__id", "prescription__dosage_form", "prescription__directions",
    "prescription__concentration_mg_per_ml",
)  # fmt: skip
_OPEN_ORDERS = CompiledRead(
    Patient.objects.annotate(open_orders=PATIENT_OPEN_ORDERS).values("open_orders"), "pk"
)


def _open_orders(
    patient, *, excluding: Order | None, prescription: Prescription | None, regimen: Regimen | None
) -> tuple[OpenOrder, ...]:
    """The patient's other open orders, oldest first. A refill's own prescription is left out:
    its fills are judged by the refill rules instead. The orders the patient's read gathered
    are used once: a later check of the same patient reads them again (one query)."""
    rows = patient.__dict__.pop("open_orders", None)
    if rows is None:
        rows = next(iter(_OPEN_ORDERS(pk=[patient.pk])), {"open_orders": []})["open_orders"]
    orders = json_values(Order, rows, order_by=("created_at", "id"))
    if excluding is not None:
        # The other orders of the same fill (a partial fill and its rest, a replacement) are
        # parts of it, not a second order.
        same_fill = (excluding.prescription_id, excluding.fill_number)
        orders = [
            order for order in orders
            if order["id"] != excluding.pk
            and (order["prescription__id"], order["fill_number"]) != same_fill
        ]  # fmt: skip
    if prescription is not None:
        orders = [order for order in orders if order["prescription__id"] != prescription.pk]
    wanted = None
    if regimen is not None:
        wanted = (regimen.dosage_form, dosing.directions(regimen), regimen.concentration_mg_per_ml)
    open_orders = []
    for order in orders:
        placed = timezone.localtime(order["created_at"])  # once per order: the date and the time
        identical = wanted == (
            order["prescription__dosage_form"],
            order["prescription__directions"],
            order["prescription__concentration_mg_per_ml"],
        )
        open_orders.append(
            OpenOrder(
                number=Order.number_of(order["id"]),
                placed_on=placed.date(),
                placed_at=placed.strftime("%m/%d/%Y %H:%M"),
                identical=identical,
            )
        )
    return tuple(open_orders)


def _refill_facts(prescription: Prescription, *, excluding: Order | None) -> dict:
    """What the refill rules read of a prescription's fills (one query)."""
    fills = prescription.orders.all()
    if excluding is not None:
        fills = fills.exclude(pk=excluding.pk).filter(fill_number__lt=excluding.fill_number)
    rows = list(
        fills.annotate(dispensed_at=Max("dispenses__dispensed_at"))
        .order_by("fill_number")
        .values("pk", "kind", "fill_number", "status", "created_at", "dispensed_at")
    )
    counted = [r for r in rows if r["status"] not in UNFILLED_STATUSES]
    used = sum(1 for r in counted if r["kind"] == OrderKind.REFILL)
    previous = counted[-1] if counted else None
    open_refill = next(
        (r for r in rows if r["kind"] == OrderKind.REFILL and r["status"] in OPEN_STATUSES), None
    )
    # The prescription is rejected when the pharmacy rejected its first fill.
    rejected = next(
        (r for r in rows if r["fill_number"] == 0 and r["status"] == OrderStatus.REJECTED), None
    )
    return {
        "refill": True,
        "previous_fill": previous
        and PreviousFill(
            number=Order.number_of(previous["pk"]),
            filled_on=timezone.localdate(previous["dispensed_at"] or previous["created_at"]),
            days_supply=prescription.days_supply,
        ),
        "open_refill": open_refill and Order.number_of(open_refill["pk"]),
        "rejected_order": rejected and Order.number_of(rejected["pk"]),
        "expires_on": prescription.expires_on,
        "refills_left": prescription.refills_authorized - used,
        "refills_authorized": prescription.refills_authorized,
    }


def fill_history(
    *,
    patient,
    prescriber,
    prescription: Prescription | None = None,
    order: Order | None = None,
    regimen: Regimen | None = None,
    refill: bool = False,
) -> FillHistory:
    """The facts of the records, as they are now: the patient's other open orders, the
    prescriber's standing and, for a refill, the prescription's earlier fills."""
    facts = {}
    if refill:
        facts = _refill_facts(prescription, excluding=order)
    return FillHistory(
        **facts,
        open_orders=_open_orders(
            patient,
            excluding=order,
            prescription=prescription if refill else None,
            regimen=None if refill else regimen,
        ),
        suspended_prescriber=_suspended(prescriber),
        licence=_licence_facts(prescriber, patient),
    )


def _licence_facts(prescriber, patient) -> fill_rules.LicenceFacts | None:
    """Who may serve the patient's state: the pharmacy (PHARMACY_LICENSED_STATES) and the
    prescriber (their licence there)."""
    if prescriber is None or not patient.state:
        return None
    licence = licence_in(prescriber, patient.state)
    return fill_rules.LicenceFacts(
        prescriber=str(prescriber),
        state=state_name(patient.state),
        pharmacy_ships_there=patient.state in settings.PHARMACY_LICENSED_STATES,
        holds_licence=licence is not None,
        licence_expires_on=licence.expires_on if licence is not None else None,
    )


# --- The decision -------------------------------------------------------------------------------


@dataclass(frozen=True)
class FillCheck:
    """The findings of every rule for one fill, and which of its warnings are confirmed.

    A warning is confirmed when it was confirmed before with the same message (the prescriber
    at ordering, or later), or is ticked now; duplicate therapy and an early refill also need a
    reason. A warning that is new, or that now says something else, needs confirming again."""

    findings: list[Finding]
    earlier: tuple[tuple[str, str], ...] = ()  # (key, message) of warnings confirmed before

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == Severity.ERROR]

    @property
    def warnings(self) -> list[Finding]:
        return dosing.warnings_of(self.findings)

    def new_warnings(self) -> list[Finding]:
        """The warnings not confirmed before: those the person must confirm now."""
        return [w for w in self.warnings if (finding_key(w), w.message) not in self.earlier]

    def unacknowledged(self, *, ticked: Iterable[str], reason: str = "") -> list[Finding]:
        ticked = set(ticked)
        return [
            w
            for w in self.new_warnings()
            if finding_key(w) not in ticked or (w.code in REASON_REQUIRED and not reason.strip())
        ]

    def acknowledgements(self, *, ticked: Iterable[str], reason: str = "") -> list[dict]:
        """The record of what was confirmed now: key, message and, where needed, the reason."""
        ticked = set(ticked)
        return [
            {
                "key": finding_key(w),
                "message": w.message,
                **({"reason": reason.strip()} if w.code in REASON_REQUIRED else {}),
            }
            for w in self.new_warnings()
            if finding_key(w) in ticked
        ]

    def refusal(self) -> str:
        """Why the fill cannot go ahead: every error's message."""
        return " ".join(f.message for f in self.errors)


def unconfirmed_message(unacknowledged: Iterable[Finding]) -> str:
    """What to tell the person who did not confirm these warnings (or gave no reason)."""
    unacknowledged = list(unacknowledged)
    message = "Tick each warning to confirm you have reviewed it: "
    message += "; ".join(w.message for w in unacknowledged)
    if any(w.code in REASON_REQUIRED for w in unacknowledged):
        message += " Write the reason for duplicate therapy or an early refill."
    return message


def _confirmed(*acknowledgement_lists: Iterable[dict]) -> tuple[tuple[str, str], ...]:
    return tuple(
        (entry["key"], entry["message"]) for entries in acknowledgement_lists for entry in entries
    )


def prescription_regimen(
    prescription: Prescription, schedule: str = FillSchedule.AS_WRITTEN
) -> Regimen:
    """The regimen a fill of the prescription dispenses, read from the database: as written, or
    the maintenance dose, with the quantity of its lines."""
    lines = prescription.lines.filter(phase=schedule).aggregate(total=Sum("quantity"))["total"]
    steps = tuple(dosing.Step(dose_mg=s.dose_mg, days=s.days) for s in prescription.steps.all())
    return fill_regimen(prescription, steps, schedule, quantity=lines)


def fill_regimen(
    prescription: Prescription,
    steps: tuple[dosing.Step, ...],
    schedule: str,
    quantity: Decimal | None = None,
) -> Regimen:
    """The regimen of a fill from a prescription's fields and its steps (read by the caller):
    the schedule as written, or a refill's maintenance dose."""
    written = Regimen(
        dosage_form=dosing.DosageForm(prescription.dosage_form),
        steps=steps,
        doses_per_day=prescription.doses_per_day,
        quantity=quantity,
        days_supply=prescription.days_supply,
        refills=prescription.refills_authorized,
        concentration_mg_per_ml=prescription.concentration_mg_per_ml,
        time_of_day=prescription.time_of_day,
    )
    if schedule != FillSchedule.MAINTENANCE:
        return written
    maintenance = dosing.maintenance_regimen(written)
    return maintenance if quantity is None else dataclasses.replace(maintenance, quantity=quantity)


def check_new_prescription(
    *,
    patient,
    prescriber,
    regimen: Regimen,
    diagnosis_codes: list[str],
    catalogue: "Catalogue",
    amending: Order | None = None,
    earlier: Iterable[dict] = (),
) -> FillCheck:
    """A prescription being written (the order form, the live check, an amendment): every
    rule against the patient record and the patient's other open orders as they are now."""
    history = fill_history(patient=patient, prescriber=prescriber, order=amending, regimen=regimen)
    findings = prescription_findings(
        regimen=regimen,
        patient=patient_facts(patient, diagnosis_codes),
        diagnosis_codes=diagnosis_codes,
        catalogue=catalogue,
        today=timezone.localdate(),
        history=history,
    )
    return FillCheck(findings, _confirmed(earlier))


def check_fill(
    *,
    prescription: Prescription,
    schedule: str,
    order: Order | None = None,
    catalogue: "Catalogue | None" = None,
) -> FillCheck:
    """A fill of a written prescription: a refill being requested (order None), or an order
    being verified or dispensed. Patient, prescriber and orders are read again now."""
    prescription = Prescription.objects.select_related("patient", "prescriber").get(
        pk=prescription.pk
    )
    refill = order.kind == OrderKind.REFILL if order is not None else True
    regimen = prescription_regimen(prescription, schedule)
    history = fill_history(
        patient=prescription.patient,
        prescriber=prescription.prescriber,
        prescription=prescription,
        order=order,
        regimen=regimen,
        refill=refill,
    )
    codes = list(prescription.diagnosis_codes)
    findings = prescription_findings(
        regimen=regimen,
        patient=patient_facts(prescription.patient, codes),
        diagnosis_codes=codes,
        catalogue=catalogue or Catalogue.load(),
        today=timezone.localdate(),
        history=history,
    )
    earlier = [prescription.acknowledged_warnings]
    earlier += list(prescription.orders.values_list("acknowledged_warnings", flat=True))
    return FillCheck(findings, _confirmed(*earlier))


# --- Saying which field a finding is about -------------------------------------------------------

_FIELD_LABELS = {
    "dosage_form": "Dosage form",
    "concentration_mg_per_ml": "Concentration",
    "steps": "Schedule",
    "doses_per_day": "Doses per day",
    "quantity": "Quantity",
    "days_supply": "Days' supply",
    "refills": "Refills",
    "diagnosis_codes": "Diagnosis codes",
    "patient.takes_opioids": "Patient record: opioids",
    "patient.medications": "Patient record: current medications",
    "patient.allergies": "Patient record: allergies",
    "patient.date_of_birth": "Patient record: date of birth",
    "patient.conditions": "Patient record: conditions",
    "patient.pregnant_or_breastfeeding": "Patient record: pregnancy or breast-feeding",
    "patient.liver_disease": "Patient record: liver disease",
    "patient.state": "Patient record: state",
    "patient.orders": "The patient's open orders",
    "prescriber": "Prescriber",
    "prescription": "Prescription",
    "refill": "Refill",
}
_STEP_PARTS = {"dose_mg": "dose", "days": "days"}


def field_label(field: str) -> str:
    """What a person calls the field a finding is about: 'steps.1.dose_mg' -> 'Schedule, step
    2 dose', 'patient.medications' -> 'Patient record: current medications'."""
    parts = field.split(".")
    if parts[0] == "steps" and len(parts) == 3 and parts[1].isdigit():
        return f"Schedule, step {int(parts[1]) + 1} {_STEP_PARTS.get(parts[2], parts[2])}"
    return _FIELD_LABELS.get(field) or _FIELD_LABELS.get(parts[0]) or field.replace("_", " ")


def finding_view(finding: Finding) -> dict[str, str | bool]:
    """A finding as the pages and the live check show it: with the field's name, its key for
    the tick, and whether confirming it needs a reason."""
    return {
        **finding.as_dict(),
        "field_label": field_label(finding.field),
        "key": finding_key(finding),
        "reason_required": finding.code in REASON_REQUIRED,
    }

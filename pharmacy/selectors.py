"""Reads of the pharmacy's records that pages, services and other apps' callers need: how much
of an order is dispensed, the latest label of an order, everything a recall reaches, and who saw
a patient's record. Writes are in the services (dispensing, notifications, recalls)."""

import csv
import io
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import TypeVar

from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.db.models import Count, Max, Min, Q, Subquery, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from core.numbers import quantity_text
from orders.checks import Catalogue
from orders.dosing import units_text
from orders.models import Order, OrderStatus, Patient, Prescription, PrescriptionLine
from prescribers.models import Licence, Prescriber

from .models import (
    UNRELEASED_BATCH_STATUSES,
    Batch,
    BatchIngredient,
    Delivery,
    DeliveryStatus,
    Dispense,
    LabelDocument,
    PrintJob,
    PulledDispense,
    Recall,
    RecallBatch,
    RecallNotice,
    RecallReplacement,
    WebhookDelivery,
)

# What a dispense reaches, loaded with it in one query.
DISPENSE_REACHES = (
    "batch",
    "line__formulation",
    "order__clinic",
    "order__prescription__patient",
    "order__prescription__prescriber",
)
CSV_HEADER = [
    "batch lot", "order number", "dispensed at", "units", "patient name",
    "patient date of birth", "prescriber", "prescriber NPI", "clinic", "clinic phone",
    "clinic label email",
]  # fmt: skip


# --- Dispensing ---------------------------------------------------------------------------------


def _lines_with_dispensed(order: Order) -> models.QuerySet:
    """The lines the order dispenses, each with `dispensed`: units given to this order."""
    return PrescriptionLine.objects.of_order(order).annotate(
        dispensed=Coalesce(
            Sum("dispenses__units", filter=Q(dispenses__order_id=order.pk)),
            Decimal("0"),
            output_field=models.DecimalField(max_digits=12, decimal_places=2),
        )
    )


def units_dispensed(order: Order) -> dict[int, Decimal]:
    """Line id -> units dispensed for this order so far (0 for a line not started). One query."""
    return dict(_lines_with_dispensed(order).values_list("pk", "dispensed"))


def order_fully_dispensed(order: Order) -> bool:
    """Whether every line of the order got at least its units (PrescriptionLine.objects.of_order).
    One query."""
    rows = _lines_with_dispensed(order).values_list("units", "dispensed")
    return all(dispensed >= units for units, dispensed in rows)


# --- The order at a glance ---------------------------------------------------------------------


@dataclass(frozen=True)
class Bottle:
    """A line the order dispenses, with the beyond-use limit of its product made today."""

    line: PrescriptionLine
    bud_limit: str  # "180 days (nonaqueous solid)"; "" for a product no longer made


@dataclass(frozen=True)
class OrderSummary:
    """What a pharmacist reads first on an order and beside the verification signature."""

    order: Order
    prescription: Prescription
    patient: Patient
    prescriber: Prescriber
    licence: Licence | None  # the prescriber's, in the patient's state
    licence_problem: str  # why that licence does not allow the order ("" when it does)
    bottles: list[Bottle]
    previous_fills: list[Order]  # of the same prescription, latest first


def order_summary(order: Order, *, lines: Iterable[PrescriptionLine] | None = None) -> OrderSummary:
    """The order at a glance: `lines` when the caller read them already (with their product),
    else one query; the licence and the previous fills are one query each."""
    prescription = order.prescription
    patient, prescriber = prescription.patient, prescription.prescriber
    if lines is None:
        lines = PrescriptionLine.objects.of_order(order).select_related("formulation")
    catalogue = Catalogue.current()
    bottles = [Bottle(line, catalogue.bud_limit_text(line.formulation_id)) for line in lines]
    licence = Licence.objects.filter(prescriber_id=prescriber.pk, state=patient.state).first()
    state = patient.get_state_display()
    if licence is None:
        problem = f"No licence in {state} on file."
    elif not licence.is_active(timezone.localdate()):
        problem = f"The {state} licence expired on {licence.expires_on:%m/%d/%Y}."
    else:
        problem = ""
    previous = (
        Order.objects.signed()
        .filter(prescription_id=prescription.pk, fill_number__lt=order.fill_number)
        .annotate(dispensed_at=Max("dispenses__dispensed_at"))
        .order_by("-fill_number")
    )
    return OrderSummary(
        order=order, prescription=prescription, patient=patient, prescriber=prescriber,
        licence=licence, licence_problem=problem, bottles=bottles, previous_fills=list(previous),
    )  # fmt: skip


# --- Labels -------------------------------------------------------------------------------------


def latest_label(order) -> LabelDocument | None:
    return LabelDocument.objects.filter(order=order).order_by("-version").first()


# --- The impact of a recall ---------------------------------------------------------------------


@dataclass(frozen=True)
class RecallImpact:
    """Everything a recall reaches. Each list is distinct and sorted: batches by lot number,
    dispenses by batch and time, orders by number, patients and prescribers by name, clinics
    by name. unreleased_batches are batches made from a recalled ingredient lot that were never
    released: their status stays, and they cannot be released any more."""

    recall: Recall
    batches: list[Batch]
    unreleased_batches: list[Batch]
    dispenses: list[Dispense]
    orders: list
    patients: list
    prescribers: list
    clinics: list
    notices: list[RecallNotice]
    units_dispensed: Decimal
    counts: dict[str, int]


Item = TypeVar("Item")


def _distinct(items: Iterable[Item], sort_key: Callable[[Item], tuple]) -> list[Item]:
    by_pk = {item.pk: item for item in items}
    return sorted(by_pk.values(), key=sort_key)


def _batches_of(recall: Recall):
    if recall.batch_id is not None:
        return Batch.objects.filter(pk=recall.batch_id)
    used = BatchIngredient.objects.filter(lot_id=recall.ingredient_lot_id).values("batch_id")
    return Batch.objects.filter(pk__in=used)


def recall_impact(recall: Recall) -> RecallImpact:
    """Trace a recall to everything it reaches, in three queries whatever its size."""
    batches = list(
        _batches_of(recall)
        .select_related("formulation_version__formulation")
        .order_by("lot_number")
    )
    dispenses = list(
        Dispense.objects.filter(batch_id__in=[batch.pk for batch in batches])
        .select_related(*DISPENSE_REACHES)
        .order_by("batch__lot_number", "dispensed_at", "pk")
    )
    orders = _distinct((d.order for d in dispenses), lambda o: (o.pk,))
    patients = _distinct(
        (o.prescription.patient for o in orders), lambda p: (p.last_name, p.first_name, p.pk)
    )
    prescribers = _distinct(
        (o.prescription.prescriber for o in orders), lambda p: (p.last_name, p.first_name, p.pk)
    )
    clinics = _distinct((o.clinic for o in orders), lambda c: (c.name, c.pk))
    unreleased = []
    if recall.ingredient_lot_id is not None:
        unreleased = [batch for batch in batches if batch.status in UNRELEASED_BATCH_STATUSES]
    lists = {
        "batches": batches, "dispenses": dispenses, "orders": orders, "patients": patients,
        "prescribers": prescribers, "clinics": clinics,
    }  # fmt: skip
    return RecallImpact(
        recall=recall,
        unreleased_batches=unreleased,
        notices=list(recall.notices.select_related("clinic", "acknowledged_by")),
        units_dispensed=sum((d.units for d in dispenses), Decimal(0)),
        counts={name: len(items) for name, items in lists.items()},
        **lists,
    )


def recall_notice_dispenses(notice: RecallNotice) -> list[Dispense]:
    """What the notice tells its clinic: the dispenses the recall reaches for that clinic's own
    orders (never another clinic's), by order and time. One query."""
    return list(
        Dispense.objects.filter(
            batch__in=_batches_of(notice.recall), order__clinic_id=notice.clinic_id
        )
        .select_related("batch", "order__prescription__patient")
        .order_by("order_id", "dispensed_at", "pk")
    )


def recall_notice_orders(notice: RecallNotice) -> list[Order]:
    """The clinic's orders that the recall reaches, by number."""
    return _distinct((d.order for d in recall_notice_dispenses(notice)), lambda o: (o.pk,))


def clinic_recall_notices(clinic_id: int):
    """The recalls the pharmacy notified the clinic of, newest first; those not yet confirmed
    by the clinic first of all (the dashboard lists them until a member confirms)."""
    return (
        RecallNotice.objects.filter(clinic_id=clinic_id)
        .select_related(
            "recall__batch__formulation_version__formulation",
            "recall__ingredient_lot__ingredient",
            "acknowledged_by",
        )
        .order_by(models.F("acknowledged_at").desc(nulls_first=True), "-recall__initiated_at")
    )


def unconfirmed_recall_notices(clinic_id: int) -> list[RecallNotice]:
    """The clinic's recall notices that no member has confirmed yet, oldest recall first, with
    what each recall is of: the banner of every portal page (one query)."""
    return list(
        RecallNotice.objects.filter(clinic_id=clinic_id, acknowledged_at__isnull=True)
        .select_related(
            "recall__batch__formulation_version__formulation", "recall__ingredient_lot__ingredient"
        )
        .order_by("recall__initiated_at", "pk")
    )


# --- Where a recall stands ----------------------------------------------------------------------

# The orders whose patient holds what was dispensed to them: a recall owes them a replacement.
# Orders still at the pharmacy (compounding, ready) have the recalled units pulled back instead.
PATIENT_HOLDS_STATUSES = (OrderStatus.SHIPPED, OrderStatus.DELIVERED)


@dataclass(frozen=True)
class AffectedOrder:
    """An order whose patient holds units of a batch the recall recalled: what it received of
    those batches, and its replacement for this recall (None: none yet)."""

    order: Order
    units: str  # "30 capsules of Naltrexone HCl 1.5 mg capsule (batch NX261101-C1.5-01)"
    replacement_id: int | None

    @property
    def replacement_number(self) -> str:
        return Order.number_of(self.replacement_id) if self.replacement_id else ""


@dataclass(frozen=True)
class PulledBack:
    """Units of a recalled batch pulled back from an order that had not shipped."""

    dispense: PulledDispense
    units: str  # "30 capsules of Naltrexone HCl 1.5 mg capsule"


@dataclass(frozen=True)
class RecallProgress:
    """What a recall did and what is left to do, for its page: the units each recalled batch
    set aside, the dispenses pulled back from orders not shipped, the orders owed a replacement
    with theirs, and each clinic's notice with its emails and its confirmation."""

    quarantine: dict[int, RecallBatch]  # by batch id: only the batches this recall recalled
    pulled: list[PulledBack]
    affected_orders: list[AffectedOrder]
    notices: list[RecallNotice]  # each with its deliveries (emails)

    @property
    def replacements_owed(self) -> int:
        return sum(1 for row in self.affected_orders if row.replacement_id is None)


def recall_notice_states(recall: Recall) -> list[RecallNotice]:
    """The recall's notices by clinic name, each with who confirmed it and its emails
    (`deliveries`, oldest first): two queries, whatever the number of clinics."""
    return list(
        recall.notices.select_related("clinic", "acknowledged_by")
        .prefetch_related(
            models.Prefetch("deliveries", queryset=Delivery.objects.order_by("created_at", "pk"))
        )
        .order_by("clinic__name", "pk")
    )


def recall_progress(impact: RecallImpact) -> RecallProgress:
    """Where the traced recall stands, in five queries whatever its size (the affected orders
    come from the impact's dispenses)."""
    recall = impact.recall
    quarantine = {row.batch_id: row for row in RecallBatch.objects.filter(recall=recall)}
    pulled = [
        PulledBack(dispense=row, units=_units_of(row.units, row.line))
        for row in PulledDispense.objects.filter(recalled_batch__recall=recall)
        .select_related("recalled_batch__batch", "order", "line__formulation")
        .order_by("order_id", "pk")
    ]
    replacements = dict(
        RecallReplacement.objects.filter(recall=recall).values_list("order_id", "replacement_id")
    )
    received: dict[int, list[Dispense]] = {}
    for dispense in impact.dispenses:
        if dispense.batch_id in quarantine and dispense.order.status in PATIENT_HOLDS_STATUSES:
            received.setdefault(dispense.order_id, []).append(dispense)
    affected = [
        AffectedOrder(
            order=dispenses[0].order,
            units="; ".join(
                f"{_units_of(d.units, d.line)} (batch {d.batch.lot_number})" for d in dispenses
            ),
            replacement_id=replacements.get(order_id),
        )
        for order_id, dispenses in sorted(received.items())
    ]
    return RecallProgress(
        quarantine=quarantine,
        pulled=pulled,
        affected_orders=affected,
        notices=recall_notice_states(recall),
    )


def _units_of(units: Decimal, line: PrescriptionLine) -> str:
    """'30 capsules of Naltrexone HCl 1.5 mg capsule' (the line's product read with it)."""
    formulation = line.formulation
    return f"{units_text(units, formulation.unit)} of {formulation.name}"


# Spreadsheet programs run a cell that starts with one of these as a formula (CSV injection,
# OWASP); names and emails typed on the portal are text, so such a cell gets a leading quote.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(text: str) -> str:
    return f"'{text}" if text.startswith(_FORMULA_START) else text


def recall_impact_csv(recall: Recall) -> str:
    """One row per dispense reached by the recall, for the pharmacist (contains PHI)."""
    return impact_csv(recall_impact(recall))


def impact_csv(impact: RecallImpact) -> str:
    """The CSV of an impact already traced: one row per dispense."""
    output = io.StringIO()
    writer = csv.writer(output)
    writer.writerow(CSV_HEADER)
    for dispense in impact.dispenses:
        order = dispense.order
        patient, prescriber = order.prescription.patient, order.prescription.prescriber
        clinic = order.clinic
        writer.writerow(
            [
                _cell(dispense.batch.lot_number),
                order.number,
                f"{timezone.localtime(dispense.dispensed_at):%Y-%m-%d %H:%M}",
                quantity_text(dispense.units),
                _cell(patient.full_name),
                patient.date_of_birth.isoformat(),
                _cell(str(prescriber)),
                prescriber.npi,
                _cell(clinic.name),
                _cell(str(clinic.phone)),
                _cell(clinic.label_email),
            ]
        )
    return output.getvalue()


# --- Who saw a patient's record -----------------------------------------------------------------


def _content_type_of(model) -> Subquery:
    # Found in the one query of the report (no content type lookup of its own).
    return Subquery(
        ContentType.objects.filter(
            app_label=model._meta.app_label, model=model._meta.model_name
        ).values("pk")
    )


def _about(model, ids) -> Q:
    return Q(content_type_id=_content_type_of(model), object_id__in=ids)


def about_patient(patient_id: int) -> Q:
    """Access events about the patient and everything of theirs: the patient, their
    prescriptions, orders and labels, and the recalls whose lists named them."""
    recalls = Recall.objects.filter(
        Q(batch__dispenses__order__prescription__patient_id=patient_id)
        | Q(ingredient_lot__uses__batch__dispenses__order__prescription__patient_id=patient_id)
    )
    return (
        Q(content_type_id=_content_type_of(Patient), object_id=patient_id)
        | _about(Prescription, Prescription.objects.filter(patient_id=patient_id).values("pk"))
        | _about(Order, Order.objects.filter(prescription__patient_id=patient_id).values("pk"))
        | _about(
            LabelDocument,
            LabelDocument.objects.filter(order__prescription__patient_id=patient_id).values("pk"),
        )
        | _about(Recall, recalls.values("pk"))
    )


# --- Health and metrics --------------------------------------------------------------------


def _age_seconds(since, now) -> int | None:
    return None if since is None else max(0, int((now - since).total_seconds()))


def _outbox_backlog(model, now) -> dict:
    """A table of the outbox's waiting, sending and failed rows, and how long the oldest waiting
    one has waited (None when none waits), in one query: counts and an age, nothing about
    anyone."""
    pending = Q(status=DeliveryStatus.PENDING)
    backlog = model.objects.aggregate(
        pending=Count("pk", filter=pending),
        sending=Count("pk", filter=Q(status=DeliveryStatus.SENDING)),
        failed=Count("pk", filter=Q(status=DeliveryStatus.FAILED)),
        oldest_pending=Min("created_at", filter=pending),
    )
    backlog["oldest_pending_seconds"] = _age_seconds(backlog.pop("oldest_pending"), now)
    return backlog


def email_backlog(*, now) -> dict:
    return _outbox_backlog(Delivery, now)


def webhook_backlog(*, now) -> dict:
    return _outbox_backlog(WebhookDelivery, now)


def print_job_backlog() -> dict:
    """Print jobs waiting, rendering and failed, in one query."""
    return PrintJob.objects.aggregate(
        queued=Count("pk", filter=Q(status=PrintJob.Status.QUEUED)),
        running=Count("pk", filter=Q(status=PrintJob.Status.RUNNING)),
        failed=Count("pk", filter=Q(status=PrintJob.Status.FAILED)),
    )

"""Reads of orders that the pharmacy's pages need, so that they write no query against this
app's models, and the refills coming due that the clinic's dashboard lists. What prescribers
can order now is the catalogue (checks.Catalogue.current())."""

import datetime
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from django.db.models import (
    Count,
    DurationField,
    Exists,
    ExpressionWrapper,
    F,
    Max,
    Min,
    OuterRef,
    QuerySet,
    Subquery,
    prefetch_related_objects,
)
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from core.compiled_reads import CompiledRead

from .checks import PATIENT_OPEN_ORDERS, current_policy
from .fill_rules import refill_due_on
from .models import (
    OPEN_STATUSES,
    UNFILLED_STATUSES,
    Order,
    OrderEvent,
    OrderKind,
    OrderStatus,
    Patient,
    Prescription,
)

# The patient an order or a dose check is for, with their open orders (which its rules read
# next), in one query on each of them: compiled once.
_CLINIC_PATIENTS = CompiledRead(
    Patient.objects.annotate(open_orders=PATIENT_OPEN_ORDERS), "pk", "clinic_id"
)

# A refill stays on the dashboard this long after the last supply ran out; after that the
# patient has probably stopped, and the prescription's page still offers the refill.
REFILL_DUE_SHOWN_AFTER_RUNNING_OUT = datetime.timedelta(days=30)


def clinic_patient(clinic_id: int, pk: int) -> Patient | None:
    """The clinic's patient with this id, or None (another clinic's patients are not found)."""
    return next(iter(_CLINIC_PATIENTS(pk=[pk], clinic_id=[clinic_id])), None)


def order_queue_ages(
    groups: Mapping[str, Iterable[OrderStatus]],
) -> dict[str, tuple[int, datetime.datetime | None]]:
    """Each group's count of signed orders and when its longest-waiting one entered its status
    (None for an empty group), every group in one query: a count and an oldest time per
    status, read from the index of open orders alone (never the finished history)."""
    groups = {name: set(statuses) for name, statuses in groups.items()}
    per_status = {
        status: (count, since)
        for status, count, since in Order.objects.signed()
        .filter(status__in=set().union(*groups.values()))
        .order_by()
        .values("status")
        .annotate(count=Count("*"), since=Min(Coalesce("status_changed_at", "created_at")))
        .values_list("status", "count", "since")
    }
    ages = {}
    for name, statuses in groups.items():
        found = [per_status[status] for status in statuses if status in per_status]
        oldest = min((since for _, since in found), default=None)
        ages[name] = (sum(count for count, _ in found), oldest)
    return ages


def turnarounds(since: datetime.datetime) -> list[datetime.timedelta]:
    """For each order shipped since then: the time from its submission (or signature) to its
    shipping, in no particular order. One query, whose cost follows the orders shipped since
    then (the shipping events by time, then each one's submission by order, both from an
    index); the database subtracts, since a time costs Python far more to read than a
    duration."""
    submitted = (
        OrderEvent.objects.filter(order=OuterRef("order"), to_status=OrderStatus.SUBMITTED)
        .order_by("created_at")
        .values("created_at")[:1]
    )
    wait = ExpressionWrapper(F("created_at") - Subquery(submitted), output_field=DurationField())
    waits = (
        OrderEvent.objects.filter(to_status=OrderStatus.SHIPPED, created_at__gte=since)
        .annotate(wait=wait)
        .order_by()
        .values_list("wait", flat=True)
    )
    return [wait for wait in waits if wait is not None]  # None: no submission recorded


def orders_per_day(since: datetime.date) -> dict[datetime.date, int]:
    """How many orders came in (signed or not) on each day since then, in the pharmacy's time
    zone; days without orders are absent. One query."""
    start = timezone.make_aware(datetime.datetime.combine(since, datetime.time.min))
    rows = (
        Order.objects.filter(created_at__gte=start)
        .annotate(day=TruncDate("created_at", tzinfo=timezone.get_current_timezone()))
        .values("day")
        .annotate(n=Count("pk"))
        .values_list("day", "n")
    )
    return dict(rows)


@dataclass(frozen=True)
class RefillDue:
    prescription: Prescription
    due_on: datetime.date  # from here the refill is no longer too soon
    runs_out_on: datetime.date  # the last fill's days' supply ends
    refills_left: int


def refillable_prescriptions(*, today: datetime.date) -> QuerySet[Prescription]:
    """The prescriptions whose next fill may be ordered as far as the prescription goes:
    refills left, not expired or rejected, no fill open or drafted, and a fill dispensed;
    annotated with the time of the last dispense (`last_dispensed_at`) and the refills used
    (`used`). Whether the refill is due yet is fill_rules.refill_due_on's."""
    fills = Order.objects.filter(prescription=OuterRef("pk"))
    refills_used = fills.refills_used().values("prescription").annotate(n=Count("pk")).values("n")
    last_dispensed = (
        fills.values("prescription").annotate(at=Max("dispenses__dispensed_at")).values("at")
    )
    return (
        Prescription.objects.filter(expires_on__gte=today)
        .exclude(Exists(fills.filter(status__in=OPEN_STATUSES)))
        .exclude(Exists(fills.filter(kind=OrderKind.NEW, status__in=UNFILLED_STATUSES)))
        .annotate(
            used=Coalesce(Subquery(refills_used), 0),
            last_dispensed_at=Subquery(last_dispensed),
        )
        .filter(used__lt=F("refills_authorized"), last_dispensed_at__isnull=False)
    )


def refills_due(
    clinic_id: int, *, prescriber_id: int | None = None, today: datetime.date | None = None
) -> list[RefillDue]:
    """The clinic's prescriptions (or one prescriber's) whose next fill is due: refillable
    (refillable_prescriptions) and the last fill dispensed long enough ago
    (fill_rules.refill_due_on), by the day the supply runs out. Two queries."""
    today = today or timezone.localdate()
    candidates = (
        refillable_prescriptions(today=today)
        .filter(patient__clinic_id=clinic_id)
        .select_related("patient")
        .defer("findings", "acknowledged_warnings", "directions", "reason_for_compounding")
    )
    if prescriber_id is not None:
        candidates = candidates.filter(prescriber_id=prescriber_id)
    policy = current_policy()
    due = []
    for prescription in candidates:
        filled_on = timezone.localdate(prescription.last_dispensed_at)
        runs_out_on = filled_on + datetime.timedelta(days=prescription.days_supply)
        due_on = refill_due_on(filled_on, prescription.days_supply, policy)
        if due_on <= today and today - runs_out_on <= REFILL_DUE_SHOWN_AFTER_RUNNING_OUT:
            left = prescription.refills_authorized - prescription.used
            due.append(RefillDue(prescription, due_on, runs_out_on, left))
    due.sort(key=lambda d: (d.runs_out_on, d.prescription.pk))
    prefetch_related_objects([d.prescription for d in due], "steps")  # the dose summary
    return due

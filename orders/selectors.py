"""Reads of orders that the pharmacy's pages need, so that they write no query against this
app's models, and the refills coming due that the clinic's dashboard lists. What prescribers
can order now is the catalogue (checks.Catalogue.current())."""

import datetime
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from django.db.models import (
    Count,
    Exists,
    F,
    Max,
    OuterRef,
    Q,
    Subquery,
    prefetch_related_objects,
)
from django.db.models.functions import Coalesce
from django.utils import timezone

from .checks import current_policy
from .fill_rules import refill_due_on
from .models import (
    OPEN_STATUSES,
    UNFILLED_STATUSES,
    Order,
    OrderKind,
    OrderStatus,
    Prescription,
)

# A refill stays on the dashboard this long after the last supply ran out; after that the
# patient has probably stopped, and the prescription's page still offers the refill.
REFILL_DUE_SHOWN_AFTER_RUNNING_OUT = datetime.timedelta(days=30)


def order_counts(groups: Mapping[str, Iterable[OrderStatus]]) -> dict[str, int]:
    """How many orders have one of each group's statuses, every group in one query."""
    return Order.objects.aggregate(
        **{
            name: Count("pk", filter=Q(status__in=list(statuses)))
            for name, statuses in groups.items()
        }
    )


@dataclass(frozen=True)
class RefillDue:
    prescription: Prescription
    due_on: datetime.date  # from here the refill is no longer too soon
    runs_out_on: datetime.date  # the last fill's days' supply ends
    refills_left: int


def refills_due(
    clinic_id: int, *, prescriber_id: int | None = None, today: datetime.date | None = None
) -> list[RefillDue]:
    """The clinic's prescriptions (or one prescriber's) whose next fill is due: refills left,
    not expired or rejected, no fill open or drafted, and the last fill dispensed long enough
    ago (fill_rules.refill_due_on), by the day the supply runs out. Two queries."""
    today = today or timezone.localdate()
    fills = Order.objects.filter(prescription=OuterRef("pk"))
    refills_used = fills.refills_used().values("prescription").annotate(n=Count("pk")).values("n")
    last_dispensed = (
        fills.values("prescription").annotate(at=Max("dispenses__dispensed_at")).values("at")
    )
    candidates = (
        Prescription.objects.filter(patient__clinic_id=clinic_id, expires_on__gte=today)
        .exclude(Exists(fills.filter(status__in=OPEN_STATUSES)))
        .exclude(Exists(fills.filter(kind=OrderKind.NEW, status__in=UNFILLED_STATUSES)))
        .annotate(
            used=Coalesce(Subquery(refills_used), 0),
            last_dispensed_at=Subquery(last_dispensed),
        )
        .filter(used__lt=F("refills_authorized"), last_dispensed_at__isnull=False)
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

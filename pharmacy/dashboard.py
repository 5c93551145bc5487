"""The admin index as the pharmacy's dashboard, beside the work queues (workbench.py):
turnaround from submission to shipping, orders per day as a chart, stock on
hand against recent demand, ingredient lots about to expire, and emails that failed or are
stuck. Counts and dates only, no patient data; a fixed number of queries whatever the size of
the tables.

The figures move by the hour, not the second, so the admin's index reads them through the cache
(`dashboard_cached`): computed at most once a minute per cache (six queries, whose cost
follows the last weeks' orders, never the whole history), while the work queues beside them
are read on every request."""

import datetime
import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, DecimalField, Q, Sum
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils import timezone

from core.numbers import quantity_text
from core.text import duration_text
from orders.checks import Catalogue
from orders.selectors import orders_per_day, turnarounds

from .models import Batch, BatchStatus, Delivery, DeliveryStatus, Dispense, IngredientLot, LotStatus

TURNAROUND_DAYS = 30  # submitted -> shipped, p50 and p90 over this window
ORDERS_CHART_DAYS = 60
DEMAND_DAYS = 14  # stock is low when it covers less than this many days of recent demand
LOT_EXPIRY_DAYS = 60
CACHE_KEY = "pharmacy:dashboard"
CACHE_SECONDS = 60


def percentile(values: Sequence[datetime.timedelta], share: float) -> datetime.timedelta | None:
    """The nearest-rank percentile: the smallest value with at least `share` of them at or
    below it (None without values)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(math.ceil(share * len(ordered)) - 1, 0)]


@dataclass(frozen=True)
class Day:
    day: datetime.date
    count: int
    x: float  # the bar's place and height in the chart's 600 x 150 drawing
    height: float

    @property
    def top(self) -> float:
        return round(150 - self.height, 1)


@dataclass(frozen=True)
class Stock:
    product: str
    unit: str
    on_hand: Decimal
    demand: Decimal  # dispensed in the last DEMAND_DAYS

    @property
    def low(self) -> bool:
        return self.on_hand < self.demand

    @property
    def days_of_cover(self) -> int | None:
        if not self.demand:
            return None
        return int(self.on_hand / (self.demand / DEMAND_DAYS))

    @property
    def on_hand_text(self) -> str:
        return f"{quantity_text(self.on_hand)} {self.unit}"

    @property
    def demand_text(self) -> str:
        return f"{quantity_text(self.demand)} {self.unit}"


def _orders_chart(today: datetime.date) -> list[Day]:
    first = today - datetime.timedelta(days=ORDERS_CHART_DAYS - 1)
    counts = orders_per_day(first)
    days = [first + datetime.timedelta(days=n) for n in range(ORDERS_CHART_DAYS)]
    peak = max(counts.values(), default=0) or 1
    width = 600 / ORDERS_CHART_DAYS
    return [
        Day(day, counts.get(day, 0), round(n * width, 1), round(140 * counts.get(day, 0) / peak, 1))
        for n, day in enumerate(days)
    ]


def _stock(today: datetime.date, now: datetime.datetime) -> list[Stock]:
    units = DecimalField(max_digits=14, decimal_places=2)
    on_hand = dict(
        Batch.objects.filter(status=BatchStatus.RELEASED, beyond_use_date__gte=today)
        .values("formulation_version__formulation")
        .annotate(units=Coalesce(Sum("units_remaining"), Decimal(0), output_field=units))
        .values_list("formulation_version__formulation", "units")
    )
    demand = dict(
        Dispense.objects.filter(dispensed_at__gte=now - datetime.timedelta(days=DEMAND_DAYS))
        .order_by()  # the default order, by order, would join every dispense's order
        .values("line__formulation")
        .annotate(units=Sum("units"))
        .values_list("line__formulation", "units")
    )
    return [
        Stock(f.name, f.unit, on_hand.get(f.pk, Decimal(0)), demand.get(f.pk, Decimal(0)))
        for f in Catalogue.current().formulations
    ]


def _failed_and_stuck_emails(now: datetime.datetime) -> dict:
    pending_before = now - datetime.timedelta(seconds=settings.OUTBOX_PENDING_AFTER)
    sending_before = now - datetime.timedelta(seconds=settings.OUTBOX_SENDING_AFTER)
    # Only the rows in these statuses (by the index on status), never the sent history.
    in_trouble = [DeliveryStatus.FAILED, DeliveryStatus.PENDING, DeliveryStatus.SENDING]
    counts = Delivery.objects.filter(status__in=in_trouble).aggregate(
        failed=Count("pk", filter=Q(status=DeliveryStatus.FAILED)),
        stuck=Count("pk", filter=Q(status=DeliveryStatus.PENDING, created_at__lt=pending_before)
                    | Q(status=DeliveryStatus.SENDING, claimed_at__lt=sending_before)),
    )  # fmt: skip
    changelist = reverse("admin:pharmacy_delivery_changelist")
    return {**counts, "failed_url": f"{changelist}?status__exact={DeliveryStatus.FAILED}"}


def _duration(elapsed: datetime.timedelta | None) -> str:
    return "" if elapsed is None else duration_text(elapsed)


def dashboard(*, now: datetime.datetime | None = None) -> dict:
    """Everything the admin index shows beside the app list."""
    now = now or timezone.now()
    today = timezone.localdate(now)
    waits = turnarounds(now - datetime.timedelta(days=TURNAROUND_DAYS))
    p50, p90 = percentile(waits, 0.5), percentile(waits, 0.9)
    lots = (
        IngredientLot.objects.filter(
            status__in=[LotStatus.QUARANTINE, LotStatus.RELEASED],
            expires_on__lte=today + datetime.timedelta(days=LOT_EXPIRY_DAYS),
        )
        .select_related("ingredient")
        .order_by("expires_on", "pk")
    )
    chart = _orders_chart(today)
    return {
        "now": now,
        "turnaround": {
            "days": TURNAROUND_DAYS,
            "shipped": len(waits),
            "p50": p50,
            "p90": p90,
            "p50_text": _duration(p50),
            "p90_text": _duration(p90),
        },
        "orders_chart": chart,
        "orders_chart_days": ORDERS_CHART_DAYS,
        "orders_chart_total": sum(day.count for day in chart),
        "stock": _stock(today, now),
        "demand_days": DEMAND_DAYS,
        "expiring_lots": [(lot, (lot.expires_on - today).days) for lot in lots],
        "lot_expiry_days": LOT_EXPIRY_DAYS,
        "emails": _failed_and_stuck_emails(now),
    }


def dashboard_cached() -> dict:
    """The dashboard as computed at most CACHE_SECONDS ago (its "now" says when)."""
    return cache.get_or_set(CACHE_KEY, dashboard, CACHE_SECONDS)

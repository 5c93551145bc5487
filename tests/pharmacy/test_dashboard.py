"""The admin index as a dashboard, checked against a known set of records: queue ages,
turnaround p50 and p90, orders per day, stock against demand, lots about to expire, emails that
failed or are stuck; and the page's query count does not grow with the records."""

import datetime
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from orders.models import Formulation, Order, OrderEvent, OrderStatus
from pharmacy.dashboard import CACHE_SECONDS, percentile
from pharmacy.models import BatchStatus, Delivery, DeliveryKind, DeliveryStatus, Dispense, LotStatus
from tests.factories import (
    TITRATION,
    BatchFactory,
    IngredientLotFactory,
    PatientFactory,
    PrescriberFactory,
    clinic_of,
    submit_order,
)
from tests.signing_in import verified_staff_login

pytestmark = [pytest.mark.django_db, pytest.mark.postgresql]
DAY = datetime.timedelta(days=1)
# The sign-in (the session, the user, its groups' permissions), the work queues, the licences to
# chase and the admin's recent actions: the index with the figures in the cache.
INDEX_QUERIES = 6
# Once a minute, the figures too: the turnaround, the orders per day, the stock on hand, the
# demand, the lots about to expire, the emails in trouble. The catalogue adds two (its records,
# their excipients) when it is read: in every test (inside the test's transaction), in a process
# once every 30 seconds.
FIGURES_QUERIES = 6


def at(moment: datetime.datetime, order: Order, **events: datetime.timedelta) -> Order:
    """The order came in `moment`; each named status event happened that long after it."""
    Order.objects.filter(pk=order.pk).update(created_at=moment, status_changed_at=moment)
    OrderEvent.objects.filter(order=order).update(created_at=moment)
    for status, after in events.items():
        event = OrderEvent.objects.create(order=order, from_status="", to_status=status)
        OrderEvent.objects.filter(pk=event.pk).update(created_at=moment + after)
    return order


@pytest.fixture
def records(clock, technician):
    now = timezone.now()  # 03/02/2026 14:00 UTC
    prescriber = PrescriberFactory()

    def order() -> Order:
        patient = PatientFactory(clinic=clinic_of(prescriber), takes_opioids=False,
                                 current_medications="")  # fmt: skip
        return submit_order(prescriber, patient, TITRATION)

    # Shipped 1, 2 and 10 days after submission within the last 30 days; one long before.
    for days in (1, 2, 10):
        at(now - 12 * DAY, order(), shipped=days * DAY)
    at(now - 60 * DAY, order(), shipped=2 * DAY)
    # Waiting for review: the longest for 3 days and 4 hours.
    waiting = at(now - 3 * DAY - datetime.timedelta(hours=4), order())
    at(now - DAY, order())
    Order.objects.exclude(pk__in=[waiting.pk]).filter(status="submitted").exclude(
        created_at__gte=now - 2 * DAY
    ).update(status=OrderStatus.SHIPPED)
    # Stock: 1.5 mg capsules, 100 on the shelf and 120 dispensed in the last 14 days (low);
    # 3 mg, 500 on the shelf and 14 dispensed (35 days of cover).
    capsule = {s: Formulation.objects.get(dosage_form="capsule", strength_mg=Decimal(s))
               for s in ("1.5", "3")}  # fmt: skip
    low = BatchFactory(formulation_version=capsule["1.5"].versions.get(status="approved"),
                       units_remaining=Decimal("100"))  # fmt: skip
    BatchFactory(formulation_version=capsule["3"].versions.get(status="approved"),
                 units_remaining=Decimal("500"))  # fmt: skip
    BatchFactory(formulation_version=low.formulation_version, units_remaining=Decimal("900"),
                 status=BatchStatus.QUARANTINED)  # not on hand  # fmt: skip
    for strength, units, days_ago in (("1.5", "120", 3), ("3", "14", 5), ("3", "60", 20)):
        line = waiting.prescription.lines.filter(formulation=capsule[strength]).first()
        dispense = Dispense.objects.create(
            order=waiting, line=line, batch=low, units=Decimal(units), dispensed_by=technician
        )
        Dispense.objects.filter(pk=dispense.pk).update(dispensed_at=now - days_ago * DAY)
    # Lots: one expires in 59 days, one in 61, one already rejected.
    soon = IngredientLotFactory(expires_on=timezone.localdate() + 59 * DAY)
    IngredientLotFactory(expires_on=timezone.localdate() + 61 * DAY)
    IngredientLotFactory(expires_on=timezone.localdate() + 5 * DAY, status=LotStatus.REJECTED)
    # Emails: one failed, one pending for an hour (stuck), one pending just now.
    for status, age in ((DeliveryStatus.FAILED, 0), (DeliveryStatus.PENDING, 3600),
                        (DeliveryStatus.PENDING, 0)):  # fmt: skip
        delivery = Delivery.objects.create(
            kind=DeliveryKind.LABEL_READY, recipient="a@b.test", subject_key=f"x:{status}:{age}",
            status=status,
        )  # fmt: skip
        Delivery.objects.filter(pk=delivery.pk).update(
            created_at=now - datetime.timedelta(seconds=age)
        )
    return {"now": now, "soon": soon}


def test_the_dashboard_shows_the_known_numbers(client, pharmacist, records):
    verified_staff_login(client, pharmacist)

    page = client.get(reverse("admin:index"))

    queues = {q["label"]: (q["count"], q.get("oldest")) for q in page.context["work_queues"]}
    assert queues["To review"] == (2, "3 d 4 h")
    assert queues["Ready to ship"] == (0, "")
    board = page.context["dashboard"]
    assert (board["turnaround"]["shipped"], board["turnaround"]["p50_text"],
            board["turnaround"]["p90_text"]) == (3, "2 d 0 h", "10 d 0 h")  # fmt: skip
    per_day = {day.day: day.count for day in board["orders_chart"] if day.count}
    today = timezone.localdate(records["now"])
    assert per_day == {today - 12 * DAY: 3, today - 3 * DAY: 1, today - DAY: 1}
    assert board["orders_chart_total"] == 5  # the order of 60 days ago is outside the chart
    assert len(board["orders_chart"]) == 60
    stock = {s.product: (s.on_hand_text, s.demand_text, s.days_of_cover, s.low)
             for s in board["stock"]}  # fmt: skip
    assert stock["Naltrexone HCl 1.5 mg capsule"] == ("100 capsule", "120 capsule", 11, True)
    assert stock["Naltrexone HCl 3 mg capsule"] == ("500 capsule", "14 capsule", 500, False)
    assert stock["Naltrexone HCl 4.5 mg capsule"] == ("0 capsule", "0 capsule", None, False)
    assert board["expiring_lots"] == [(records["soon"], 59)]
    assert (board["emails"]["failed"], board["emails"]["stuck"]) == (1, 1)
    html = page.content.decode()
    assert '<td id="turnaround-p90">10 d 0 h</td>' in html
    assert '<tr class="stock-low"><td>Naltrexone HCl 1.5 mg capsule</td>' in html
    assert 'role="img" aria-labelledby="orders-chart-title"' in html


def test_percentiles_are_nearest_rank():
    values = [datetime.timedelta(hours=h) for h in (5, 1, 3, 2, 4)]
    assert percentile(values, 0.5) == datetime.timedelta(hours=3)
    assert percentile(values, 0.9) == datetime.timedelta(hours=5)
    assert percentile([], 0.5) is None


def test_the_index_queries_do_not_grow_with_the_records(client, pharmacist, records):
    verified_staff_login(client, pharmacist)
    with CaptureQueriesContext(connection) as first:
        client.get(reverse("admin:index"))
    for _ in range(3):
        prescriber = PrescriberFactory()
        patient = PatientFactory(clinic=clinic_of(prescriber), takes_opioids=False,
                                 current_medications="")  # fmt: skip
        at(records["now"] - 5 * DAY, submit_order(prescriber, patient, TITRATION), shipped=DAY)
    cache.clear()
    with CaptureQueriesContext(connection) as again:
        client.get(reverse("admin:index"))
    with CaptureQueriesContext(connection) as cached:
        client.get(reverse("admin:index"))
    statements = "\n".join(query["sql"] for query in again.captured_queries)
    assert len(first) == len(again) == INDEX_QUERIES + FIGURES_QUERIES + 2, statements
    assert len(cached) == INDEX_QUERIES, "\n".join(q["sql"] for q in cached.captured_queries)


def test_the_figures_are_a_minute_old_at_most_and_the_queues_live(
    client, pharmacist, records, time_machine
):
    verified_staff_login(client, pharmacist)
    before = client.get(reverse("admin:index")).context
    prescriber = PrescriberFactory()
    patient = PatientFactory(clinic=clinic_of(prescriber), takes_opioids=False,
                             current_medications="")  # fmt: skip
    submit_order(prescriber, patient, TITRATION)

    cached = client.get(reverse("admin:index"))
    time_machine.move_to(before["dashboard"]["now"] + datetime.timedelta(seconds=CACHE_SECONDS + 1))
    later = client.get(reverse("admin:index")).context

    def to_review(context):
        return next(q["count"] for q in context["work_queues"] if q["label"] == "To review")

    assert (to_review(before), to_review(cached.context), to_review(later)) == (2, 3, 3)
    figures = [page["dashboard"] for page in (before, cached.context, later)]
    assert [board["orders_chart_total"] for board in figures] == [5, 5, 6]
    assert figures[1]["now"] == figures[0]["now"] < figures[2]["now"]
    as_of = timezone.localtime(figures[0]["now"]).strftime("%H:%M")
    assert f"Figures as of {as_of}" in cached.content.decode()

"""Counting long lists on PostgreSQL: exact up to a limit, the planner's estimate above it, in
one query either way (core/pagination.py); and the pinned query counts of the admin pages
that record who saw a patient's record, on PostgreSQL."""

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import DatabaseError, connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from core.pagination import EstimatedCountPaginator
from orders.models import Order
from pharmacy.admin_orders import OrderAdmin
from tests.factories import StaffFactory
from tests.pharmacy.test_admin_queries import access_events, make_world, orders
from tests.signing_in import verified_staff_login

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


@pytest.fixture
def twelve_orders(postgresql):
    orders(make_world(), 12)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE orders_order")  # the planner's row count: 12


def test_up_to_the_limit_the_count_is_exact(twelve_orders):
    paginator = EstimatedCountPaginator(Order.objects.all(), 5)
    paginator.exact_up_to = 12
    with CaptureQueriesContext(connection) as captured:
        assert paginator.count == 12
    assert paginator.estimated is False
    assert len(captured) == 1


def test_above_the_limit_the_planner_estimates_in_the_same_one_query(twelve_orders):
    paginator = EstimatedCountPaginator(Order.objects.all(), 5)
    paginator.exact_up_to = 5
    with CaptureQueriesContext(connection) as captured:
        assert paginator.count == 12  # the estimate, after ANALYZE
    assert paginator.estimated is True
    assert len(captured) == 1
    assert "portal_count_estimate" in captured[0]["sql"]


def test_a_filtered_list_is_estimated_by_its_filter(twelve_orders):
    first_six = list(Order.objects.order_by("pk").values_list("pk", flat=True)[:6])
    paginator = EstimatedCountPaginator(Order.objects.filter(pk__in=first_six), 5)
    paginator.exact_up_to = 3
    assert paginator.count == 6  # a unique key: the planner knows
    assert paginator.estimated is True


def test_the_admin_list_says_about_when_the_count_is_estimated(client, twelve_orders, monkeypatch):
    monkeypatch.setattr(OrderAdmin, "paginator", type("Small", (EstimatedCountPaginator,),
                                                      {"exact_up_to": 5}))  # fmt: skip
    verified_staff_login(client, StaffFactory(group="Pharmacist"))
    page = client.get(reverse("admin:orders_order_changelist")).content.decode()
    assert "about 12 orders" in page
    monkeypatch.setattr(OrderAdmin, "paginator", EstimatedCountPaginator)
    page = client.get(reverse("admin:orders_order_changelist")).content.decode()
    assert "12 orders" in page and "about 12" not in page


def test_a_list_that_can_match_nothing_counts_zero_without_a_query(postgresql):
    for nothing in (Order.objects.none(), Order.objects.filter(pk__in=[])):
        paginator = EstimatedCountPaginator(nothing, 5)
        with CaptureQueriesContext(connection) as captured:
            assert paginator.count == 0
        assert len(captured) == 0


def test_the_estimate_function_takes_only_a_select(postgresql):
    with pytest.raises(DatabaseError, match="takes a SELECT statement"), connection.cursor() as c:
        c.execute("SELECT portal_count_estimate('DELETE FROM orders_order')")


def test_pages_that_record_access_write_one_insert_within_their_pinned_count(client, postgresql):
    """The order page (8: its summary reads the prescriber's licence and the prescription's
    previous fills; 10 here, where the catalogue is read inside the test's transaction), the
    patient and prescription pages (7 with the content type lookup
    that a running server has cached: 6 there) each write their access event in one INSERT and
    nothing else; the report "Who saw this record" runs 6 and writes nothing."""
    world = make_world()
    access_events(world, 2)
    verified_staff_login(client, StaffFactory(group="Pharmacist"))
    order = Order.objects.select_related("prescription").order_by("pk").first()
    report = reverse("admin:core_accessevent_changelist")
    pages = [
        (reverse("admin:orders_order_change", args=[order.pk]), 10, 1),
        (reverse("admin:orders_patient_change", args=[order.prescription.patient_id]), 7, 1),
        (reverse("admin:orders_prescription_change", args=[order.prescription_id]), 7, 1),
        (f"{report}?patient={order.prescription.patient_id}", 6, 0),
    ]
    for url, expected, inserts in pages:
        ContentType.objects.clear_cache()
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url).status_code == 200
        assert len(captured) == expected, url
        writes = [q["sql"] for q in captured if q["sql"].startswith(("INSERT", "UPDATE", "DELETE"))]
        assert len(writes) == inserts, url
        assert all(sql.startswith('INSERT INTO "pharmacy_accessevent"') for sql in writes)

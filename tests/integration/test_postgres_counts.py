"""Counting long lists on PostgreSQL: exact up to a limit, the planner's estimate above it, in
one query either way (pharmacy/pagination.py)."""

import pytest
from django.db import DatabaseError, connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from orders.admin import OrderAdmin
from orders.models import Order
from pharmacy.pagination import EstimatedCountPaginator
from tests.factories import StaffFactory
from tests.pharmacy.test_admin_queries import make_world, orders
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


def test_the_estimate_function_takes_only_a_select(postgresql):
    with pytest.raises(DatabaseError, match="takes a SELECT statement"), connection.cursor() as c:
        c.execute("SELECT portal_count_estimate('DELETE FROM orders_order')")

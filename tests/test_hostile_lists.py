"""Searches and list filters take whatever the address holds without a server error, on
SQLite and on PostgreSQL (this file runs in both suites): a control character (PostgreSQL
refuses NUL in any text) is refused at the edge with a 400 that says why, and a search too long
to be a search finds nothing and says so instead of building a query the database refuses
(SQLite: "Expression tree is too large") or takes seconds over."""

import pytest
from django.contrib import admin
from django.db import connection
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.admin_search import SEARCH_TOO_LONG
from core.middleware import MESSAGE
from tests.factories import StaffFactory
from tests.signing_in import verified_staff_login

pytestmark = [pytest.mark.django_db, pytest.mark.postgresql]

PRESCRIBER_LISTS = ["patient_list", "order_list"]
CONTROL = ["\x00", "a\x00b", "\x01", "\x1f", "\x7f", "\n"]


def changelists() -> list[tuple[str, list[str]]]:
    """Every admin list: its URL name and the parameters its filters read."""
    found = []
    for model, model_admin in admin.site._registry.items():
        opts = model._meta
        filters = [f for f in model_admin.list_filter if isinstance(f, str)]
        params = ["q", *(f"{name}__exact" for name in filters), *filters]
        found.append((f"admin:{opts.app_label}_{opts.model_name}_changelist", params))
    return sorted(found)


@pytest.fixture
def staff_client(client):
    verified_staff_login(client, StaffFactory(is_superuser=True))
    return client


def test_every_list_of_the_admin_is_here():
    names = [name for name, _ in changelists()]
    assert len(names) == len(admin.site._registry) >= 15
    assert "admin:orders_order_changelist" in names


@pytest.mark.parametrize("character", CONTROL)
def test_a_control_character_in_a_prescriber_search_is_a_400_that_says_why(
    prescriber_client, character
):
    for name in PRESCRIBER_LISTS:
        response = prescriber_client.get(reverse(name), {"q": f"smith{character}"})
        assert response.status_code == 400
        assert MESSAGE in response.content.decode()


@pytest.mark.parametrize(("name", "params"), changelists(), ids=[n for n, _ in changelists()])
def test_a_nul_in_any_admin_search_or_filter_is_a_400(staff_client, name, params):
    url = reverse(name)
    assert staff_client.get(url).status_code == 200
    for param in params:
        response = staff_client.get(url, {param: "\x00"})
        assert response.status_code == 400, param
        assert MESSAGE in response.content.decode()
    assert staff_client.get(url, {"\x00": "x"}).status_code == 400  # in a name too


@pytest.mark.parametrize(("name", "params"), changelists(), ids=[n for n, _ in changelists()])
def test_a_search_of_two_thousand_words_finds_nothing_and_says_why(staff_client, name, params):
    response = staff_client.get(reverse(name), {"q": " ".join(["smith"] * 1900)}, follow=True)
    assert response.status_code == 200
    messages = [str(m) for m in response.context["messages"]]
    assert messages == [SEARCH_TOO_LONG]
    assert response.context["cl"].result_count == 0


def test_a_search_at_the_limit_still_searches(staff_client, prescriber):
    words = " ".join([prescriber.last_name] + ["x"] * 9)
    assert len(words.split()) == 10
    response = staff_client.get(reverse("admin:prescribers_prescriber_changelist"), {"q": words})
    assert [str(m) for m in response.context["messages"]] == []


@st.composite
def list_requests(draw):
    """A list page and an address of any text: a search, its filters, and a stray name."""
    lists = [(name, ["q", "status"]) for name in PRESCRIBER_LISTS] + changelists()
    name, params = draw(st.sampled_from(lists))
    values = st.text(max_size=300) | st.sampled_from(CONTROL) | st.just("x" * 5000)
    query = draw(st.dictionaries(st.sampled_from([*params, "p", "o", "zzz"]), values, max_size=3))
    return name, query


@settings(
    # Fewer on PostgreSQL, where each request is slower; every list and hostile text is drawn.
    max_examples=150 if connection.vendor == "sqlite" else 60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(request=list_requests())
def test_no_address_of_a_list_makes_a_server_error(client, prescriber, request):
    name, query = request
    if name.startswith("admin:"):
        verified_staff_login(client, StaffFactory(is_superuser=True))
    else:
        client.force_login(prescriber.user)
    response = client.get(reverse(name), query)
    assert response.status_code in (200, 302, 400), (name, query)

import io

import pytest
from django.core.management import call_command
from django.urls import reverse

from orders.models import Order
from tests.signing_in import verified_staff_login

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo_orders(settings):
    settings.DEBUG = True
    call_command("seed_demo", stdout=io.StringIO())
    return list(Order.objects.order_by("pk"))


def test_seed_makes_orders_in_several_states(demo_orders):
    assert [(o.clinic.name, o.status) for o in demo_orders] == [
        ("Maple Grove Integrative Clinic", "submitted"),
        ("Maple Grove Integrative Clinic", "on_hold"),
        ("Maple Grove Integrative Clinic", "cancelled"),
        ("Lakeside Family Medicine", "shipped"),
        ("Lakeside Family Medicine", "ready"),
    ]
    shipped = demo_orders[3]
    assert shipped.prescription.rx_number == str(7000000 + shipped.prescription_id)
    assert [int(d.units) for d in shipped.dispenses.all()] == [14, 30]


@pytest.mark.parametrize("staff", ["pharmacist", "technician"])
def test_staff_see_prescriptions_and_orders_read_only(request, client, demo_orders, staff):
    verified_staff_login(client, request.getfixturevalue(staff))
    order = demo_orders[0]
    for url in (
        reverse("admin:orders_order_changelist"),
        reverse("admin:orders_order_change", args=[order.pk]),
        reverse("admin:orders_prescription_changelist"),
        reverse("admin:orders_prescription_change", args=[order.prescription_id]),
        reverse("admin:orders_formulation_changelist"),
    ):
        assert client.get(url).status_code == 200, url
    before = Order.objects.get(pk=order.pk).status
    client.post(reverse("admin:orders_order_change", args=[order.pk]), {"status": "cancelled"})
    assert Order.objects.get(pk=order.pk).status == before


def test_admin_finds_an_order_by_its_number(client, pharmacist, demo_orders):
    verified_staff_login(client, pharmacist)
    target = demo_orders[2]  # any one of them
    response = client.get(reverse("admin:orders_order_changelist"), {"q": target.number})
    assert [o.pk for o in response.context["cl"].result_list] == [target.pk]


def test_admin_order_list_oldest_first(client, pharmacist, demo_orders):
    verified_staff_login(client, pharmacist)
    response = client.get(reverse("admin:orders_order_changelist"))
    # The order of the demo's diary was placed three weeks before the others.
    oldest_first = sorted(demo_orders, key=lambda order: (order.created_at, order.pk))
    assert oldest_first[0].prescription.patient.last_name == "Otherclinic"
    assert [o.pk for o in response.context["cl"].result_list] == [o.pk for o in oldest_first]


def test_seed_is_idempotent_for_orders(demo_orders):
    call_command("seed_demo", stdout=io.StringIO())
    again = list(Order.objects.order_by("pk").values_list("pk", "status"))
    assert again == [(o.pk, o.status) for o in demo_orders]


def test_history_is_shown_and_cannot_be_reverted(client, superuser, patient):
    old_name = patient.first_name
    patient.first_name = "Renamed"
    patient.save()
    version = patient.history.earliest("history_date")
    verified_staff_login(client, superuser)
    url = reverse("admin:orders_patient_simple_history", args=[patient.pk, version.history_id])

    assert client.get(reverse("admin:orders_patient_history", args=[patient.pk])).status_code == 200
    page = client.get(url)
    assert page.status_code == 200
    assert page.context["revert_disabled"] is True

    response = client.post(url, {"first_name": old_name})
    assert response.status_code == 403
    patient.refresh_from_db()
    assert patient.first_name == "Renamed"
    assert patient.history.count() == 2


@pytest.mark.parametrize(
    "term",
    ["Lakeside", "NX", "otherclinic", "rx"],
)
def test_admin_searches_orders_by_what_staff_look_for(client, pharmacist, demo_orders, term):
    verified_staff_login(client, pharmacist)
    if term == "rx":
        term = demo_orders[3].prescription.rx_number
    response = client.get(reverse("admin:orders_order_changelist"), {"q": term})
    found = [o.pk for o in response.context["cl"].result_list]
    assert found and len(found) == len(set(found))
    assert demo_orders[3].pk in found

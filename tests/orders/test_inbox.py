"""The dashboard leads with what needs action; the order list shows drug and strength and
filters by status, patient or number and dates; "Order again" starts a new order from a past
prescription."""

import datetime

import pytest
from django.urls import reverse

from orders.models import Order, OrderStatus
from orders.services import order_start_review
from pharmacy.fulfilment import order_hold
from tests.factories import PatientFactory, StaffFactory, clinic_of, order_form
from tests.orders.test_ordering import create_url, submit

pytestmark = pytest.mark.django_db


@pytest.fixture
def ordered(prescriber_client, prescriber):
    patient = PatientFactory(clinic=clinic_of(prescriber), takes_opioids=False,
                             current_medications="", last_name="Inboxer")  # fmt: skip
    return patient, submit(prescriber_client, patient)


def test_the_dashboard_leads_with_the_pharmacys_questions(prescriber_client, ordered):
    _, order = ordered
    pharmacist = StaffFactory(group="Pharmacist")
    order_hold(order=order_start_review(order=order, actor=pharmacist), actor=pharmacist,
               question="Has the patient stopped tramadol?")  # fmt: skip

    page = prescriber_client.get(reverse("home"))

    assert list(page.context["questions"]) == [order]
    assert f"{order.number}</a> for" in page.content.decode()
    assert "on hold until you answer" in page.content.decode()


def test_the_order_list_shows_drug_and_strength_and_filters_by_date(
    clock, prescriber_client, ordered, django_assert_num_queries
):
    patient, first = ordered
    second = submit(prescriber_client, PatientFactory(
        clinic=patient.clinic, takes_opioids=False, current_medications="", last_name="Later",
    ))  # fmt: skip
    # The first came in three days earlier (the clock stands at 03/02/2026).
    three_days_ago = first.created_at - datetime.timedelta(days=3)
    Order.objects.filter(pk=first.pk).update(created_at=three_days_ago)
    url = reverse("order_list")

    page = prescriber_client.get(url)
    assert "Naltrexone HCl capsules, 1.5 \u2192 4.5 mg" in page.content.decode()

    def numbers(**params):
        return [o.number for o in prescriber_client.get(url, params).context["orders"]]

    assert numbers(since="2026-03-01") == [second.number]
    assert numbers(until="2026-02-28") == [first.number]
    assert numbers(since="2026-02-27", until="2026-03-02", status="submitted") == [
        second.number, first.number,
    ]  # fmt: skip
    refused = prescriber_client.get(url, {"since": "2026-03-05", "until": "2026-03-01"})
    assert refused.context["filters"].errors == {
        "until": ["The end date is before the start date."]
    }
    assert len(refused.context["orders"]) == 2  # nothing filtered while the filters are wrong
    bad = prescriber_client.get(url, {"since": "not a date", "status": "nonsense"})
    assert set(bad.context["filters"].errors) == {"since", "status"}
    # session, user, clinics, count, page with patients, their schedules' steps
    with django_assert_num_queries(6):
        prescriber_client.get(url)


def test_order_again_starts_a_new_order_from_a_past_prescription(prescriber_client, ordered):
    patient, order = ordered

    page = prescriber_client.get(create_url(patient), {"from": order.pk})

    initial = page.context["form"].initial
    assert (initial["steps"], initial["quantity"], initial["days_supply"]) == (
        "1.5 x 14, 3 x 14, 4.5 x 30", 58, 58,
    )  # fmt: skip
    assert initial["diagnosis_codes"] == "M79.7"
    assert (
        'id="order-again"'
        in prescriber_client.get(reverse("order_detail", args=[order.pk])).content.decode()
    )
    # Another patient's order, or a number that is none: not found; nothing is written.
    other = PatientFactory(clinic=patient.clinic)
    assert prescriber_client.get(create_url(other), {"from": order.pk}).status_code == 404
    assert prescriber_client.get(create_url(patient), {"from": "x"}).status_code == 200
    assert Order.objects.count() == 1

    again = prescriber_client.post(create_url(patient), {
        **order_form(), "idempotency_key": "6f1c3a2e-3a39-4f7a-9d1e-0b7f4c2d9e11",
        "acknowledge": "duplicate.open_order@patient.orders",
        "reason": "Second supply for travel.",
    })  # fmt: skip
    assert again.status_code == 302
    assert Order.objects.filter(status=OrderStatus.SUBMITTED).count() == 2

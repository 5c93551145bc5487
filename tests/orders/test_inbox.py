"""The dashboard leads with what needs action; the order list shows drug and strength and
filters by status, patient or number and dates; "Order again" starts a new order from a past
prescription."""

import dataclasses
import datetime
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from orders.dosing import DosageForm, Regimen, Step
from orders.models import Order, OrderKind, OrderStatus, Prescription
from orders.services import order_start_review
from pharmacy.fulfilment import order_hold
from pharmacy.models import Dispense
from tests.factories import (
    BatchFactory,
    MembershipFactory,
    PatientFactory,
    PrescriberFactory,
    StaffFactory,
    clinic_of,
    order_form,
    submit_order,
)
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
    # session, user, clinics, the recall banner, count, page with patients, their schedules'
    # steps
    with django_assert_num_queries(7):
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


# --- Refills coming due -------------------------------------------------------------------------

MONTHLY = Regimen(
    dosage_form=DosageForm.CAPSULE, steps=(Step(Decimal("4.5"), 30),), doses_per_day=1,
    quantity=Decimal("30"), days_supply=30, refills=2,
)  # fmt: skip


def filled(prescriber, last_name: str, *, days_ago: int, regimen=MONTHLY, clinic=None) -> Order:
    """A first fill shipped to the clinic, dispensed days_ago (the clock's today)."""
    patient = PatientFactory(clinic=clinic or clinic_of(prescriber), last_name=last_name,
                             takes_opioids=False, current_medications="")  # fmt: skip
    order = submit_order(prescriber, patient, regimen)
    Order.objects.filter(pk=order.pk).update(status=OrderStatus.SHIPPED)
    dispensed(order, days_ago=days_ago)
    return order


def dispensed(order: Order, *, days_ago: int) -> None:
    dispense = Dispense.objects.create(
        order=order, line=order.prescription.lines.first(), batch=BatchFactory(),
        units=Decimal("30"), dispensed_by=StaffFactory(group="Technician"),
    )  # fmt: skip
    at = timezone.now() - datetime.timedelta(days=days_ago)
    Dispense.objects.filter(pk=dispense.pk).update(dispensed_at=at)


def test_the_dashboard_lists_the_refills_that_are_due_until_a_month_after_running_out(
    clock, prescriber_client, prescriber, django_assert_num_queries
):
    # A 30-day supply: due from day 24 (80 %), runs out on day 30, listed until day 60.
    due = filled(prescriber, "Duesoon", days_ago=24)
    filled(prescriber, "Ranout", days_ago=45)
    filled(prescriber, "Tooearly", days_ago=23)
    filled(prescriber, "Longgone", days_ago=61)
    filled(prescriber, "Norefills", days_ago=40,
                        regimen=dataclasses.replace(MONTHLY, refills=0))  # fmt: skip
    expired = filled(prescriber, "Expired", days_ago=40)
    Prescription.objects.filter(pk=expired.prescription_id).update(
        expires_on=datetime.date(2026, 3, 1)
    )
    drafted = filled(prescriber, "Drafted", days_ago=40)
    Order.objects.filter(pk=drafted.pk).update(status=OrderStatus.CANCELLED)  # not counted
    Order.objects.create(
        prescription=drafted.prescription, clinic=drafted.clinic, kind=OrderKind.REFILL,
        fill_number=1, status=OrderStatus.DRAFT, signer=prescriber, ship_to="clinic",
        created_by=prescriber.user,
    )  # fmt: skip

    # A refill shipped 25 days ago: the next is due from it, with one refill left.
    refilled = filled(prescriber, "Refilled", days_ago=70)
    refill = Order.objects.create(
        prescription=refilled.prescription, clinic=refilled.clinic, kind=OrderKind.REFILL,
        fill_number=1, status=OrderStatus.SHIPPED, ship_to="clinic", created_by=prescriber.user,
    )  # fmt: skip
    dispensed(refill, days_ago=25)

    page = prescriber_client.get(reverse("home"))

    listed = [(d.prescription.patient.last_name, d.due_on, d.runs_out_on, d.refills_left)
              for d in page.context["refills_due"]]  # fmt: skip
    assert listed == [
        ("Ranout", datetime.date(2026, 2, 9), datetime.date(2026, 2, 15), 2),
        ("Refilled", datetime.date(2026, 3, 1), datetime.date(2026, 3, 7), 1),
        ("Duesoon", datetime.date(2026, 3, 2), datetime.date(2026, 3, 8), 2),
    ]
    html = page.content.decode()
    assert "Ran out on 02/15/2026 · 2 refills left" in html
    assert "Supply runs out on 03/07/2026 · 1 refill left" in html
    assert "Supply runs out on 03/08/2026 · 2 refills left" in html
    assert f'href="{reverse("prescription_refill", args=[due.prescription_id])}"' in html
    # The twelve of an empty dashboard, and the schedules of the recent orders and of the
    # refills due: not one more for another refill listed.
    with django_assert_num_queries(14):
        prescriber_client.get(reverse("home"))
    filled(prescriber, "Another", days_ago=27)
    with django_assert_num_queries(14):
        assert len(prescriber_client.get(reverse("home")).context["refills_due"]) == 4


def test_a_prescriber_sees_their_own_refills_due_and_the_staff_see_the_clinics(
    clock, client, prescriber
):
    colleague = PrescriberFactory()
    MembershipFactory(user=colleague.user, clinic=clinic_of(prescriber))
    mine = filled(prescriber, "Mine", days_ago=25)
    theirs = filled(colleague, "Theirs", days_ago=26, clinic=clinic_of(prescriber))
    nurse = MembershipFactory(clinic=clinic_of(prescriber), role="staff").user

    def listed(user):
        client.force_login(user)
        return [d.prescription.pk for d in client.get(reverse("home")).context["refills_due"]]

    assert listed(prescriber.user) == [mine.prescription_id]
    assert listed(nurse) == [theirs.prescription_id, mine.prescription_id]

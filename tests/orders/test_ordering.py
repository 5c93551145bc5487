import datetime
import uuid
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from orders.models import Formulation, Order, OrderEvent, OrderStatus, Prescription
from orders.services import prescription_expiry
from tests.factories import PatientFactory, clinic_of, order_form

pytestmark = pytest.mark.django_db


@pytest.fixture
def order_patient(prescriber):
    """A patient with nothing that raises a patient warning."""
    return PatientFactory(
        clinic=clinic_of(prescriber), date_of_birth=datetime.date(1975, 3, 9), takes_opioids=False,
        current_medications="Vitamin D 1000 IU daily",
    )  # fmt: skip


def order_data(**overrides):
    return order_form(**{"idempotency_key": str(uuid.uuid4()), **overrides})


def create_url(patient):
    return reverse("order_create", args=[patient.pk])


def nothing_written():
    return Prescription.objects.count() == 0 and Order.objects.count() == 0


def test_catalogue_offers_what_the_pharmacy_makes():
    capsules = Formulation.objects.filter(dosage_form="capsule").values_list(
        "strength_mg", flat=True
    )
    assert [f"{s.normalize():f}" for s in capsules] == [
        "0.5", "1", "1.5", "2", "2.5", "3", "3.5", "4", "4.5",
    ]  # fmt: skip
    others = Formulation.objects.exclude(dosage_form="capsule").values_list(
        "dosage_form", "concentration_mg_per_ml", "unit"
    )
    assert sorted((f, f"{c.normalize():f}", u) for f, c, u in others) == [
        ("oral_liquid", "1", "mL"),
        ("sublingual_drops", "1", "mL"),
        ("topical_cream", "0.5", "mL"),
    ]


def test_titration_order_is_written_with_one_line_per_strength(
    prescriber_client, prescriber, order_patient
):
    response = prescriber_client.post(create_url(order_patient), order_data())

    order = Order.objects.get()
    assert response["Location"] == reverse("order_detail", args=[order.pk])
    assert order.number == f"LDN-{order.pk:06d}"
    assert (order.status, order.kind, order.fill_number, order.ship_to) == (
        "submitted", "new", 0, "clinic",
    )  # fmt: skip
    assert order.clinic == clinic_of(prescriber)
    prescription = order.prescription
    assert prescription.prescriber == prescriber
    assert prescription.directions == (
        "Take 1 capsule (1.5 mg) at bedtime for 14 days, then 1 capsule (3 mg) at bedtime for "
        "14 days, then 1 capsule (4.5 mg) at bedtime for 30 days."
    )
    assert [(f"{s.dose_mg.normalize():f}", s.days) for s in prescription.steps.all()] == [
        ("1.5", 14), ("3", 14), ("4.5", 30),
    ]  # fmt: skip
    assert [(line.formulation.name, int(line.quantity)) for line in order.lines()] == [
        ("Naltrexone HCl 1.5 mg capsule", 14),
        ("Naltrexone HCl 3 mg capsule", 14),
        ("Naltrexone HCl 4.5 mg capsule", 30),
    ]
    # A refill continues at the maintenance dose: 4.5 mg for the whole days' supply.
    maintenance = prescription.lines.filter(phase="maintenance")
    assert [(line.formulation.name, int(line.quantity)) for line in maintenance] == [
        ("Naltrexone HCl 4.5 mg capsule", 58),
    ]
    assert prescription.diagnosis_codes == ["M79.7"]
    assert prescription.written_on == timezone.localdate()
    today = timezone.localdate()
    assert prescription.expires_on == prescription_expiry(today)
    assert prescription.expires_on.year == today.year + 1
    assert prescription.acknowledged_warnings == []
    event = OrderEvent.objects.get()
    assert (event.order, event.actor, event.from_status, event.to_status) == (
        order, prescriber.user, "", "submitted",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("written", "expires"),
    [
        (datetime.date(2026, 11, 22), datetime.date(2027, 11, 22)),
        (datetime.date(2028, 2, 29), datetime.date(2029, 2, 28)),
        (datetime.date(2027, 3, 1), datetime.date(2028, 3, 1)),  # across a leap day
    ],
)
def test_prescriptions_expire_one_calendar_year_after_written(written, expires):
    assert prescription_expiry(written) == expires


def test_liquid_order_has_one_line_in_ml(prescriber_client, order_patient):
    # 35 days: the oral liquid's beyond-use date (aqueous, preserved: USP <795>).
    prescriber_client.post(
        create_url(order_patient),
        order_data(
            dosage_form="oral_liquid",
            concentration_mg_per_ml="1",
            steps="1.5 x 14, 3 x 21",
            quantity="84",
            days_supply="35",
        ),
    )
    (line,) = Order.objects.get().lines()
    assert (line.formulation.name, f"{line.quantity.normalize():f}") == (
        "Naltrexone HCl 1 mg/mL oral liquid", "84",
    )  # fmt: skip


def test_an_error_blocks_with_the_numbers(prescriber_client, order_patient):
    response = prescriber_client.post(
        create_url(order_patient), order_data(steps="6 x 30", quantity="30", days_supply="30")
    )

    assert response.status_code == 200
    errors = response.context["form"].errors["steps"]
    assert any(
        "Daily dose 6 mg is above the LDN maximum of 5 mg" in message for message in errors
    ), errors
    assert nothing_written()


def test_quantity_mismatch_is_an_error_on_quantity(prescriber_client, order_patient):
    response = prescriber_client.post(create_url(order_patient), order_data(quantity="40"))
    assert response.context["form"].errors["quantity"] == [
        "Quantity 40 capsules does not match the schedule, which needs 58 capsules (within 10 %)."
    ]
    assert nothing_written()


def test_warnings_must_each_be_acknowledged(prescriber_client, order_patient):
    # 5 mg a day is above the usual 4.5 mg maximum (a warning); no 5 mg capsule, so a liquid,
    # of 35 days at most (its beyond-use date).
    data = order_data(
        dosage_form="oral_liquid", concentration_mg_per_ml="1",
        steps="1.5 x 7, 3 x 7, 4.5 x 7, 5 x 14", quantity="133", days_supply="35",
    )  # fmt: skip

    first = prescriber_client.post(create_url(order_patient), data)

    form = first.context["form"]
    keys = [key for key, _ in form.fields["acknowledge"].choices]
    assert keys == ["dose.above_usual@steps.3.dose_mg"]
    assert list(form.errors) == ["acknowledge"]
    assert form.errors["acknowledge"][0].startswith("Tick each warning")
    assert nothing_written()

    second = prescriber_client.post(create_url(order_patient), {**data, "acknowledge": keys})

    order = Order.objects.get()
    assert second["Location"] == reverse("order_detail", args=[order.pk])
    assert [w["key"] for w in order.prescription.acknowledged_warnings] == keys


def test_submitting_twice_makes_one_order(prescriber_client, order_patient):
    data = order_data()
    first = prescriber_client.post(create_url(order_patient), data)
    second = prescriber_client.post(create_url(order_patient), data)

    assert Order.objects.count() == 1
    assert first["Location"] == second["Location"]


def test_the_same_form_again_returns_its_order_even_when_the_rules_now_refuse(
    prescriber_client, order_patient
):
    data = order_data()
    first = prescriber_client.post(create_url(order_patient), data)
    order_patient.takes_opioids = True  # the same form would now be refused
    order_patient.save()

    second = prescriber_client.post(create_url(order_patient), data)

    assert Order.objects.count() == 1
    assert second.status_code == 302
    assert second["Location"] == first["Location"]


def test_opioids_block_the_order(prescriber_client, prescriber):
    patient = PatientFactory(clinic=clinic_of(prescriber), takes_opioids=True)
    response = prescriber_client.post(create_url(patient), order_data())
    (message,) = response.context["form"].non_field_errors()
    assert "opioid" in message.lower()
    assert nothing_written()


@pytest.mark.parametrize(
    ("field", "value", "error_field"),
    [
        ("steps", "4,5 x 14", "steps"),
        ("steps", "", "steps"),
        ("steps", "NaN x 14", "steps"),
        ("steps", "0 x 58", "steps"),
        ("steps", "1e9 x 58", "steps"),
        ("steps", "1.5 x 0", "steps"),
        ("steps", "1.5 x 400", "days_supply"),  # the schedule lasts 400 days, not the 58 given
        ("quantity", "abc", "quantity"),
        ("quantity", "-5", "quantity"),
        ("days_supply", "400", "days_supply"),
        ("refills", "12", "refills"),
        ("dosage_form", "eye_drops", "dosage_form"),
        ("diagnosis_codes", "G35", "diagnosis_codes"),
        ("diagnosis_codes", "", "diagnosis_codes"),
        ("needed_by", "2001-01-01", "needed_by"),
        ("idempotency_key", "not-a-uuid", "idempotency_key"),
    ],
)
def test_bad_input_gets_a_message_and_writes_nothing(
    prescriber_client, order_patient, field, value, error_field
):
    response = prescriber_client.post(create_url(order_patient), order_data(**{field: value}))
    assert response.status_code == 200
    assert error_field in response.context["form"].errors
    assert nothing_written()


def test_concentration_the_pharmacy_does_not_make(prescriber_client, order_patient):
    response = prescriber_client.post(
        create_url(order_patient),
        order_data(dosage_form="oral_liquid", concentration_mg_per_ml="2", quantity="99"),
    )
    assert "concentration_mg_per_ml" in response.context["form"].errors
    assert nothing_written()


def test_another_clinics_patient_is_not_found(prescriber_client, other_prescriber):
    theirs = PatientFactory(clinic=clinic_of(other_prescriber))
    assert prescriber_client.get(create_url(theirs)).status_code == 404
    assert prescriber_client.post(create_url(theirs), order_data()).status_code == 404
    assert nothing_written()


def submit(client, patient, **overrides) -> Order:
    client.post(create_url(patient), order_data(**overrides), follow=True)  # shows the message
    return Order.objects.latest("pk")


# A refill asked for right after the first fill comes before 80 % of its supply has passed:
# the prescriber confirms the early refill with a reason.
EARLY = {"acknowledge": ["refill.too_soon@refill"], "reason": "The patient travels next week."}


def request_refill(client, order, **data):
    return client.post(
        reverse("prescription_refill", args=[order.prescription_id]),
        {"ship_to": "clinic", "idempotency_key": uuid.uuid4(), **EARLY, **data},
    )


def test_order_detail_shows_prescription_and_timeline(prescriber_client, order_patient):
    order = submit(prescriber_client, order_patient)
    page = prescriber_client.get(reverse("order_detail", args=[order.pk])).content.decode()
    assert order.number in page
    assert "Take 1 capsule (1.5 mg) at bedtime for 14 days" in page
    assert 'id="timeline"' in page and "Prescription written and submitted." in page


def test_cancel_while_submitted(prescriber_client, order_patient, prescriber):
    order = submit(prescriber_client, order_patient)
    url = reverse("order_cancel", args=[order.pk])

    prescriber_client.post(url, {"reason": "Patient changed their mind"}, follow=True)

    order.refresh_from_db()
    assert order.status == OrderStatus.CANCELLED
    event = order.events.last()
    assert (event.from_status, event.to_status, event.note, event.actor) == (
        "submitted", "cancelled", "Patient changed their mind", prescriber.user,
    )  # fmt: skip

    again = prescriber_client.post(url, follow=True)
    assert [str(m) for m in again.context["messages"]] == [
        "An order that is cancelled cannot become cancelled."
    ]
    assert order.events.count() == 2


def test_other_clinic_cannot_see_or_cancel(client, prescriber_client, order_patient,
                                           other_prescriber):  # fmt: skip
    order = submit(prescriber_client, order_patient)
    client.force_login(other_prescriber.user)
    assert client.get(reverse("order_detail", args=[order.pk])).status_code == 404
    assert client.post(reverse("order_cancel", args=[order.pk])).status_code == 404
    order.refresh_from_db()
    assert order.status == OrderStatus.SUBMITTED


def test_refills_until_none_are_left(prescriber_client, order_patient):
    order = submit(prescriber_client, order_patient, refills="1")

    refill = request_refill(prescriber_client, order, ship_to="patient")

    refill_order = Order.objects.latest("pk")
    assert refill["Location"] == reverse("order_detail", args=[refill_order.pk])
    assert (refill_order.kind, refill_order.fill_number, refill_order.ship_to) == (
        "refill", 1, "patient",
    )  # fmt: skip
    assert refill_order.acknowledged_warnings[0]["reason"] == "The patient travels next week."
    Order.objects.filter(pk=refill_order.pk).update(status=OrderStatus.SHIPPED)  # not open

    refused = request_refill(prescriber_client, order)
    assert refused.status_code == 200
    assert refused.context["form"].non_field_errors() == [
        "Refills: No refills left: 1 authorized, all used. Please write a new prescription."
    ]
    assert Order.objects.count() == 2


def test_expired_prescription_is_not_refilled(prescriber_client, order_patient):
    order = submit(prescriber_client, order_patient)
    Prescription.objects.filter(pk=order.prescription_id).update(
        expires_on=timezone.localdate() - datetime.timedelta(days=1)
    )
    response = request_refill(prescriber_client, order)

    (message,) = response.context["form"].non_field_errors()
    assert message.startswith("Prescription: This prescription expired on ")
    assert Order.objects.count() == 1


def test_cancelled_refill_gives_the_refill_back(prescriber_client, order_patient):
    order = submit(prescriber_client, order_patient, refills="1")
    request_refill(prescriber_client, order)
    refill = Order.objects.latest("pk")
    prescriber_client.post(reverse("order_cancel", args=[refill.pk]))

    request_refill(prescriber_client, order)

    assert list(Order.objects.order_by("pk").values_list("fill_number", "status")) == [
        (0, "submitted"), (1, "cancelled"), (2, "submitted"),
    ]  # fmt: skip


def test_order_list_filters_searches_and_keeps_its_query_count(
    prescriber_client, prescriber, order_patient, django_assert_num_queries
):
    first = submit(prescriber_client, order_patient)
    other_patient = PatientFactory(clinic=clinic_of(prescriber), last_name="Zebrafield",
                                   takes_opioids=False, current_medications="")  # fmt: skip
    second = submit(prescriber_client, other_patient)
    prescriber_client.post(reverse("order_cancel", args=[second.pk]))
    url = reverse("order_list")

    def numbers(**params):
        return [o.number for o in prescriber_client.get(url, params).context["orders"]]

    assert numbers() == [second.number, first.number]
    assert numbers(status="cancelled") == [second.number]
    assert numbers(q="zebra") == [second.number]
    assert numbers(q=first.number) == [first.number]
    assert numbers(q=str(first.pk)) == [first.number]
    # session, user, clinics, the recall banner, count, page with patients, the page's
    # schedules (drug and dose)
    with django_assert_num_queries(7):
        prescriber_client.get(url)
    for _ in range(5):
        submit(prescriber_client, order_patient)
    with django_assert_num_queries(7):
        prescriber_client.get(url)


def test_rounded_capsule_total_goes_onto_the_largest_line(prescriber_client, order_patient):
    # The schedule needs 32 capsules; 30 is within 10 %: the 3 mg line gives up two.
    submit(prescriber_client, order_patient, steps="3 x 30, 1.5 x 2", quantity="30",
           days_supply="32")  # fmt: skip
    lines = Order.objects.get().lines()
    assert [(line.formulation.strength_mg.normalize(), int(line.quantity)) for line in lines] == [
        (Decimal("3"), 28), (Decimal("1.5"), 2),
    ]  # fmt: skip


def test_no_refill_of_a_prescription_whose_fills_were_all_cancelled(
    prescriber_client, order_patient
):
    order = submit(prescriber_client, order_patient, refills="3")
    prescriber_client.post(reverse("order_cancel", args=[order.pk]), follow=True)
    response = prescriber_client.post(
        reverse("prescription_refill", args=[order.prescription_id]),
        {"ship_to": "clinic", "idempotency_key": uuid.uuid4()},
    )
    assert response.status_code == 200
    assert response.context["form"].non_field_errors() == [
        "Prescription: Every fill of this prescription was cancelled; submit a new order instead."
    ]
    assert Order.objects.count() == 1


@pytest.mark.parametrize(
    ("needed_by", "message"),
    [
        ("\uff12\uff10\uff12\uff17-01-05", "Enter the date in ordinary digits (0-9)."),
        ("9999-12-31", "The date needed by must be within 365 days from today."),
        ("2026-02-28", "The date needed by cannot be in the past."),
    ],
)
def test_needed_by_is_a_date_the_pharmacy_can_plan_for(
    prescriber_client, order_patient, clock, needed_by, message
):
    response = prescriber_client.post(create_url(order_patient), order_data(needed_by=needed_by))
    assert response.status_code == 200
    assert response.context["form"].errors["needed_by"] == [message]
    assert nothing_written()


def test_needed_by_a_year_from_today_is_taken(prescriber_client, order_patient, clock):
    a_year = (timezone.localdate() + datetime.timedelta(days=365)).isoformat()
    response = prescriber_client.post(create_url(order_patient), order_data(needed_by=a_year))
    assert response.status_code == 302
    assert Order.objects.get().needed_by.isoformat() == a_year

"""Every step of an order runs the rules again against the records as they are at that moment:
refills, amendments, the pharmacist's verification and dispensing, through the one place that
decides whether a prescription may be filled now (orders/checks.py). And what may be ordered at
all: only products the pharmacy can make, for no longer than their beyond-use date."""

import datetime
import uuid
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from orders import dosing
from orders.checks import fill_history
from orders.dosing import DosageForm, Regimen, Step
from orders.models import (
    FillSchedule,
    Formulation,
    FormulationIngredient,
    FormulationVersion,
    FormulationVersionStatus,
    Order,
    OrderEvent,
    OrderKind,
    OrderStatus,
    Prescription,
)
from orders.selectors import clinic_patient
from orders.services import (
    PrescriptionNotAccepted,
    RefillRefused,
    order_amend,
    order_start_review,
    order_verify,
    patient_update,
    prescription_refill,
)
from pharmacy.dispensing import dispense_allocate, dispense_from_batch
from pharmacy.fulfilment import order_hold, order_reject
from pharmacy.models import Dispense
from prescribers.services import prescriber_reinstate, prescriber_suspend
from tests.factories import (
    TEST_PASSWORD,
    TITRATION,
    BatchFactory,
    FormulationVersionFactory,
    IngredientFactory,
    PatientFactory,
    clinic_of,
    order_form,
    submit_order,
)
from tests.signing_in import verified_staff_login

pytestmark = pytest.mark.django_db

EARLY = {"acknowledged": ["refill.too_soon@refill"], "reason": "The patient travels."}


@pytest.fixture
def patient(prescriber):
    return PatientFactory(
        clinic=clinic_of(prescriber),
        created_by=prescriber.user,
        takes_opioids=False,
        current_medications="Vitamin D",
        date_of_birth=datetime.date(1970, 5, 5),
    )


@pytest.fixture
def order(prescriber, patient) -> Order:
    return submit_order(prescriber, patient, TITRATION)


def refill(prescriber, order, **extra) -> Order:
    return prescription_refill(
        prescription=order.prescription,
        actor=prescriber.user,
        ship_to="clinic",
        needed_by=None,
        idempotency_key=uuid.uuid4(),
        **{**EARLY, **extra},
    )


def codes(findings) -> list[str]:
    return [f.code for f in findings]


def stock(order: Order) -> None:
    """A released batch of each product the order dispenses, with a BUD past its supply."""
    for line in order.lines():
        version = FormulationVersion.objects.get(
            formulation=line.formulation, status=FormulationVersionStatus.APPROVED
        )
        BatchFactory(
            formulation_version=version,
            beyond_use_date=timezone.localdate() + datetime.timedelta(days=170),
        )


def verified(order: Order, pharmacist) -> Order:
    order = order_start_review(order=order, actor=pharmacist)
    return order_verify(order=order, actor=pharmacist, password=TEST_PASSWORD)


# --- 1. Refills, amendments and verification run the rules against the record now -------------


def test_a_refill_for_a_patient_who_now_takes_opioids_is_refused(prescriber, patient, order):
    patient_update(patient=patient, actor=prescriber.user, takes_opioids=True)

    with pytest.raises(RefillRefused) as refused:
        refill(prescriber, order)

    assert codes(refused.value.errors) == ["opioid.current"]
    assert str(refused.value).startswith("The patient takes opioids: naltrexone blocks opioids")
    assert Order.objects.count() == 1


def test_a_refill_page_shows_why_it_is_refused(prescriber_client, prescriber, patient, order):
    patient_update(patient=patient, actor=prescriber.user, current_medications="Norco 5/325")
    url = reverse("prescription_refill", args=[order.prescription_id])

    page = prescriber_client.get(url)

    assert page.status_code == 200
    errors = page.context["form"].refusals
    assert errors[0].startswith(
        "Patient record: current medications: The medication list names an opioid (Norco 5/325: "
        "hydrocodone)"
    )
    response = prescriber_client.post(
        url,
        {
            "ship_to": "clinic",
            "idempotency_key": uuid.uuid4(),
            "acknowledge": "refill.too_soon@refill",
            "reason": "Travel.",
        },
    )
    assert response.status_code == 200
    assert Order.objects.count() == 1


def test_a_refill_needs_a_new_warning_confirmed_but_not_an_old_one(prescriber, patient):
    patient = patient_update(patient=patient, actor=prescriber.user, pregnant_or_breastfeeding=True)
    order = submit_order(prescriber, patient, TITRATION)  # pregnancy confirmed at ordering
    patient_update(patient=patient, actor=prescriber.user, liver_disease=True)  # new since

    with pytest.raises(PrescriptionNotAccepted) as refused:
        refill(prescriber, order)
    assert codes(refused.value.unacknowledged) == ["liver.disease"]
    assert Order.objects.count() == 1

    made = refill(
        prescriber,
        order,
        acknowledged=["refill.too_soon@refill", "liver.disease@patient.liver_disease"],
    )

    assert [w["key"] for w in made.acknowledged_warnings] == [
        "liver.disease@patient.liver_disease",
        "refill.too_soon@refill",
    ]
    assert made.acknowledged_warnings[1]["reason"] == "The patient travels."
    assert "pregnancy.or_breastfeeding" in codes_of(made.findings)


def codes_of(stored: list[dict]) -> list[str]:
    return [finding["code"] for finding in stored]


def test_an_amendment_is_checked_against_the_patient_record_now(
    prescriber, patient, order, pharmacist
):
    order = order_hold(
        order=order_start_review(order=order, actor=pharmacist),
        actor=pharmacist,
        question="Lower the start?",
    )
    patient_update(patient=patient, actor=prescriber.user, takes_opioids=True)
    lower = Regimen(
        **{**TITRATION.__dict__, "steps": (Step(Decimal("1"), 28), Step(Decimal("4.5"), 30))}
    )

    with pytest.raises(PrescriptionNotAccepted) as refused:
        order_amend(
            order=order,
            actor=prescriber.user,
            regimen=lower,
            diagnosis_codes=["M79.7"],
            reason_for_compounding="Strength",
            acknowledged=[],
            answer="Lower start.",
        )

    assert codes(refused.value.errors) == ["opioid.current"]
    order.refresh_from_db()
    assert order.status == OrderStatus.ON_HOLD
    assert order.prescription.steps.count() == 3


def test_verification_is_refused_with_the_reason_when_the_record_changed(
    prescriber, patient, order, pharmacist
):
    order = order_start_review(order=order, actor=pharmacist)
    patient_update(patient=patient, actor=prescriber.user, allergies="Naltrexone (hives)")
    events = OrderEvent.objects.count()

    with pytest.raises(ValidationError) as refused:
        order_verify(order=order, actor=pharmacist, password=TEST_PASSWORD)

    assert refused.value.messages == [
        f"Order {order.number} cannot be verified: The patient's allergies name Naltrexone "
        "(hives): LDN is naltrexone, so it cannot be given."
    ]
    order.refresh_from_db()
    assert (order.status, order.prescription.rx_number) == (OrderStatus.IN_REVIEW, None)
    assert OrderEvent.objects.count() == events


def test_the_verify_page_shows_what_the_rules_say_now(
    client, prescriber, patient, order, pharmacist
):
    order = order_start_review(order=order, actor=pharmacist)
    patient_update(patient=patient, actor=prescriber.user, takes_opioids=True)
    verified_staff_login(client, pharmacist)

    page = client.get(reverse("admin:orders_order_move", args=[order.pk, "verified"]))

    html = page.content.decode()
    assert 'id="fill-check-blocked"' in html
    assert "Error · Patient record: opioids:</strong> The patient takes opioids" in html


def test_a_new_warning_at_verification_is_confirmed_by_the_pharmacist(
    prescriber, patient, order, pharmacist
):
    order = order_start_review(order=order, actor=pharmacist)
    patient_update(patient=patient, actor=prescriber.user, conditions=["Z94.0"])  # transplant

    with pytest.raises(ValidationError, match="Confirm each new warning before verifying"):
        order_verify(order=order, actor=pharmacist, password=TEST_PASSWORD)
    key = "immunosuppression.present@patient.conditions"
    order = order_verify(order=order, actor=pharmacist, password=TEST_PASSWORD, acknowledged=[key])

    event = order.events.get(to_status=OrderStatus.VERIFIED)
    assert [w["key"] for w in event.parameters["acknowledged_warnings"]] == [key]
    assert event.signature_meaning == "verified prescription"


# --- 4. Conditions of the patient, thyroid and immunosuppressants -------------------------------


def test_hashimotos_on_the_patients_problem_list_warns_for_any_diagnosis(
    prescriber, patient, prescriber_client
):
    patient_update(
        patient=patient,
        actor=prescriber.user,
        conditions=["E06.3"],
        current_medications="Synthroid 75 mcg",
    )

    response = prescriber_client.post(
        reverse("order_create", args=[patient.pk]),
        order_form(idempotency_key=str(uuid.uuid4()), diagnosis_codes="M79.7"),
    )

    assert response.status_code == 200
    choices = dict(response.context["form"].fields["acknowledge"].choices)
    assert choices == {
        "thyroid.hashimoto_replacement@patient.medications": (
            "Patient record: current medications: Hashimoto's thyroiditis (E06.3) on thyroid "
            "replacement (Synthroid 75 mcg: levothyroxine): start low; the thyroid dose may "
            "need lowering, so watch for signs of over-replacement."
        )
    }
    assert Order.objects.count() == 0


# --- 5. Allergies -----------------------------------------------------------------------------


def test_an_allergy_to_an_excipient_of_the_product_is_a_warning_naming_it(prescriber, patient):
    capsule = Formulation.objects.get(dosage_form="capsule", strength_mg=Decimal("4.5"))
    version = FormulationVersionFactory(formulation=capsule)
    lactose = IngredientFactory(name="lactose monohydrate", kind="excipient")
    FormulationIngredient.objects.create(
        version=version, ingredient=lactose, amount_per_unit=Decimal("100")
    )
    patient = patient_update(patient=patient, actor=prescriber.user, allergies="Lactose (bloating)")

    with pytest.raises(PrescriptionNotAccepted) as refused:
        submit_order(prescriber, patient, TITRATION, reviewed=False)

    (warning,) = refused.value.unacknowledged
    assert (warning.code, warning.field) == ("allergy.excipient", "patient.allergies")
    assert warning.message == (
        "The patient's allergies may include an excipient of Naltrexone HCl 4.5 mg capsule: "
        "lactose monohydrate. Confirm it is safe, or choose another product."
    )


# --- 6. Duplicate therapy, refill too soon, one refill, maintenance -------------------------------


def test_a_second_open_order_for_the_patient_needs_a_reason(prescriber, patient, order):
    other = Regimen(
        **{
            **TITRATION.__dict__,
            "steps": (Step(Decimal("1.5"), 30),),
            "quantity": Decimal("30"),
            "days_supply": 30,
        }
    )

    with pytest.raises(PrescriptionNotAccepted) as refused:
        submit_order(prescriber, patient, other, reviewed=False)
    (warning,) = refused.value.unacknowledged
    assert warning.message == (
        f"The patient has another open LDN order ({order.number} of "
        f"{timezone.localdate():%m/%d/%Y}): duplicate therapy. Give the reason for another one."
    )

    second = submit_order(prescriber, patient, other)  # ticked, with a reason
    (confirmed,) = second.prescription.acknowledged_warnings
    assert confirmed == {
        "key": "duplicate.open_order@patient.orders",
        "message": warning.message,
        "reason": "Reviewed by the test.",
    }


def test_a_tick_without_a_reason_does_not_confirm_duplicate_therapy(prescriber, patient, order):
    with pytest.raises(PrescriptionNotAccepted) as refused:
        refill(prescriber, order, reason="  ")
    assert codes(refused.value.unacknowledged) == ["refill.too_soon"]
    assert Order.objects.count() == 1


def test_a_refill_is_due_when_80_percent_of_the_supply_has_passed(
    prescriber, order, pharmacist, technician, time_machine
):
    stock(order)
    dispense_allocate(order=verified(order, pharmacist), actor=technician)
    # 58 days' supply: due 47 days after the fill (80 %, rounded up).
    time_machine.move_to(timezone.now() + datetime.timedelta(days=46))
    with pytest.raises(PrescriptionNotAccepted) as refused:
        refill(prescriber, order, acknowledged=[], reason="")
    assert codes(refused.value.unacknowledged) == ["refill.too_soon"]

    time_machine.move_to(timezone.now() + datetime.timedelta(days=1))
    made = refill(prescriber, order, acknowledged=[], reason="")
    assert made.acknowledged_warnings == []


def test_a_refill_continues_at_the_maintenance_dose_unless_titrated_again(
    prescriber, patient, order, pharmacist
):
    first = refill(prescriber, order)
    assert first.schedule == FillSchedule.MAINTENANCE
    assert [(line.formulation.name, int(line.quantity)) for line in first.lines()] == [
        ("Naltrexone HCl 4.5 mg capsule", 58)
    ]
    order_reject(
        order=order_start_review(order=first, actor=pharmacist), actor=pharmacist, reason="Not now."
    )

    again = refill(prescriber, order, retitrate=True)

    assert again.schedule == FillSchedule.AS_WRITTEN
    assert [int(line.quantity) for line in again.lines()] == [14, 14, 30]
    assert again.events.get().note == "Refill requested: titrate again from the first step."


def test_only_one_refill_is_open_at_a_time(prescriber, order):
    first = refill(prescriber, order)

    with pytest.raises(RefillRefused) as refused:
        refill(prescriber, order)

    assert str(refused.value) == (
        f"Refill {first.number} of this prescription is still open: one refill at a time."
    )
    assert Order.objects.filter(kind="refill").count() == 1


# --- 7. Rejected prescriptions, suspended prescribers -----------------------------------------


def test_a_rejected_prescription_cannot_be_refilled(prescriber, order, pharmacist):
    order_reject(
        order=order_start_review(order=order, actor=pharmacist),
        actor=pharmacist,
        reason="Wrong patient.",
    )

    with pytest.raises(RefillRefused) as refused:
        refill(prescriber, order)

    assert str(refused.value) == (
        f"The pharmacy rejected this prescription ({order.number}): it cannot be refilled; "
        "please write a new one."
    )
    assert Order.objects.count() == 1


def test_a_suspended_prescribers_open_orders_are_held(
    client, prescriber, order, pharmacist, technician, superuser
):
    other = submit_order(prescriber, PatientFactory(clinic=clinic_of(prescriber)), TITRATION)
    stock(other)
    other = verified(other, pharmacist)
    order = order_start_review(order=order, actor=pharmacist)
    prescriber_suspend(prescriber=prescriber, actor=superuser, reason="Licence under review.")
    held = f"{prescriber}'s account is suspended: the pharmacy fills none of their prescriptions"

    with pytest.raises(ValidationError, match=held):
        order_verify(order=order, actor=pharmacist, password=TEST_PASSWORD)
    with pytest.raises(ValidationError, match=held):
        dispense_allocate(order=other, actor=technician)
    assert Dispense.objects.count() == 0
    verified_staff_login(client, pharmacist)
    page = client.get(reverse("admin:orders_order_change", args=[order.pk])).content.decode()
    assert 'id="prescriber-suspended"' in page

    prescriber_reinstate(prescriber=prescriber, actor=superuser)
    assert order_verify(order=order, actor=pharmacist, password=TEST_PASSWORD).status == "verified"


def test_a_suspended_prescribers_refill_is_refused_with_that_reason(prescriber, order):
    prescriber.status = "suspended"  # the refill service runs for a prescriber signed in
    prescriber.save()  # before the suspension: the rules read the account as it is now
    prescriber.status = "approved"  # (the object in memory, as a stale session would hold)

    with pytest.raises(RefillRefused) as refused:
        refill(prescriber, order)

    assert codes(refused.value.errors) == ["prescriber.suspended"]


# --- 8. The catalogue: only what the pharmacy can make, with its beyond-use limit ------------


def test_a_strength_without_an_approved_formulation_record_is_not_offered(
    prescriber_client, patient
):
    FormulationVersion.objects.filter(formulation__strength_mg=Decimal("2")).delete()
    FormulationVersion.objects.filter(formulation__dosage_form="sublingual_drops").delete()

    page = prescriber_client.get(reverse("order_create", args=[patient.pk]))
    response = prescriber_client.post(
        reverse("order_create", args=[patient.pk]),
        order_form(
            idempotency_key=str(uuid.uuid4()),
            steps="1.5 x 14, 2 x 30",
            quantity="44",
            days_supply="44",
        ),
    )

    form = page.context["form"]
    assert [value for value, _ in form.fields["dosage_form"].choices] == [
        "capsule",
        "oral_liquid",
        "topical_cream",
    ]
    assert page.context["bud_limits"]["capsule"].keys() == {
        "0.5",
        "1",
        "1.5",
        "2.5",
        "3",
        "3.5",
        "4",
        "4.5",
    }
    assert response.context["form"].errors["steps"] == [
        "No 2 mg capsule in step 2: capsules come in 0.5, 1, 1.5, 2.5, 3, 3.5, 4 and 4.5 mg."
    ]
    assert Order.objects.count() == 0


def test_the_order_form_shows_each_products_beyond_use_limit(prescriber_client, patient):
    page = prescriber_client.get(reverse("order_create", args=[patient.pk]))

    assert page.context["bud_limits"]["oral_liquid"] == {"1": "35 days (aqueous, preserved)"}
    assert page.context["bud_limits"]["capsule"]["1.5"] == "180 days (nonaqueous solid)"
    assert 'id="bud-limits"' in page.content.decode()


def test_staff_see_what_is_orderable_its_limit_and_its_stock(client, pharmacist):
    capsule = Formulation.objects.get(dosage_form="capsule", strength_mg=Decimal("1.5"))
    BatchFactory(
        formulation_version=FormulationVersionFactory(formulation=capsule),
        units_remaining=Decimal("120"),
    )
    FormulationVersion.objects.filter(formulation__dosage_form="topical_cream").delete()
    verified_staff_login(client, pharmacist)

    page = client.get(reverse("admin:orders_formulation_changelist"))

    rows = {
        row[0]: row[4:]
        for row in page.context["cl"].result_list.values_list(
            "name", "dosage_form", "unit", "is_active", "approved_category", "stock"
        )
    }
    assert rows["Naltrexone HCl 1.5 mg capsule"] == ("nonaqueous_solid", Decimal("120"))
    assert rows["Naltrexone HCl 0.5 mg/mL topical cream"] == (None, Decimal("0"))
    html = page.content.decode()
    assert "180 days (nonaqueous solid)" in html and "120 capsules" in html
    assert "no approved record" in html


# --- 10. Dispensing -----------------------------------------------------------------------------


def test_manual_dispensing_refuses_a_batch_whose_bud_ends_before_the_supply(
    prescriber, patient, pharmacist, technician
):
    short = Regimen(
        **{
            **TITRATION.__dict__,
            "steps": (Step(Decimal("1.5"), 30),),
            "quantity": Decimal("30"),
            "days_supply": 30,
        }
    )
    order = verified(submit_order(prescriber, patient, short), pharmacist)
    capsule = Formulation.objects.get(dosage_form="capsule", strength_mg=Decimal("1.5"))
    batch = BatchFactory(
        formulation_version=FormulationVersionFactory(formulation=capsule),
        beyond_use_date=timezone.localdate() + datetime.timedelta(days=29),
    )

    with pytest.raises(ValidationError) as refused:
        dispense_from_batch(
            order=order,
            line=order.lines().get(),
            batch=batch,
            units=Decimal("30"),
            actor=technician,
        )

    end = timezone.localdate() + datetime.timedelta(days=30)
    assert refused.value.messages == [
        f"Batch {batch.lot_number}'s BUD {batch.beyond_use_date:%Y-%m-%d} is before the end of "
        f"the 30-day supply ({end:%Y-%m-%d}): choose a batch with a later BUD, or dispense a "
        "partial fill."
    ]
    batch.refresh_from_db()
    assert batch.units_remaining == Decimal("100") and Dispense.objects.count() == 0


def test_dispensing_is_refused_when_the_patient_now_takes_opioids(
    prescriber, patient, order, pharmacist, technician
):
    stock(order)
    order = verified(order, pharmacist)
    patient_update(patient=patient, actor=prescriber.user, takes_opioids=True)

    with pytest.raises(ValidationError, match=r"cannot be dispensed: The patient takes opioids"):
        dispense_allocate(order=order, actor=technician)
    assert Dispense.objects.count() == 0
    # The pharmacist can still hold the verified order with a question.
    held = order_hold(order=order, actor=pharmacist, question="Has the patient stopped?")
    assert held.status == OrderStatus.ON_HOLD


def test_dispense_from_stock_is_not_offered_once_every_line_is_dispensed(
    client, order, pharmacist, technician
):
    stock(order)
    order = verified(order, pharmacist)
    verified_staff_login(client, technician)
    url = reverse("admin:orders_order_change", args=[order.pk])
    assert "Dispense from stock" in client.get(url).content.decode()

    dispense_allocate(order=order, actor=technician)

    assert "Dispense from stock" not in client.get(url).content.decode()


# --- 2. The patient form -----------------------------------------------------------------------


def test_the_patient_form_refuses_no_opioids_above_a_list_that_names_one(
    prescriber_client, patient
):
    url = reverse("patient_update", args=[patient.pk])
    page = prescriber_client.get(url)
    data = {
        **page.context["form"].initial,
        "takes_opioids": "no",
        "current_medications": "Tramadol50mg at night",
        "phone": "+12175550144",
        "date_of_birth": "1970-05-05",
        "conditions": "e063, Z94.0",
    }

    response = prescriber_client.post(url, data)

    assert response.context["form"].errors == {
        "takes_opioids": [
            "The current medications name an opioid (Tramadol50mg at night), but the answer here "
            'is "No". Answer "Yes" if the patient takes it, or remove it from the list if they '
            "have stopped."
        ]
    }
    patient.refresh_from_db()
    assert (patient.current_medications, patient.conditions) == ("Vitamin D", [])

    saved = prescriber_client.post(url, {**data, "takes_opioids": "yes"})
    assert saved.status_code == 302
    patient.refresh_from_db()
    assert (patient.takes_opioids, patient.conditions) == (True, ["E06.3", "Z94.0"])


def test_conditions_must_be_icd10_codes(prescriber_client, patient):
    url = reverse("patient_update", args=[patient.pk])
    data = {
        **prescriber_client.get(url).context["form"].initial,
        "takes_opioids": "no",
        "phone": "+12175550144",
        "date_of_birth": "1970-05-05",
        "conditions": "E06.3, hashimoto",
    }

    response = prescriber_client.post(url, data)

    assert response.context["form"].errors == {
        "conditions": ["Not an ICD-10-CM code: HASHIMOTO. Write codes such as E06.3."]
    }


def test_the_medication_screen_names_the_opioids(prescriber_client):
    response = prescriber_client.post(
        reverse("medication_screen"),
        {"medications": "Metformin\nPercocet10/325, bupe 8mg"},
        content_type="application/json",
    )

    assert response.json()["opioids"] == [
        {"written": "Percocet10/325", "drug": "oxycodone", "class": "opioid agonist"},
        {"written": "bupe 8mg", "drug": "buprenorphine", "class": "partial opioid agonist"},
    ]
    assert response.json()["contradiction"].startswith(
        "The current medications name an opioid (Percocet10/325: oxycodone; bupe 8mg: "
        "buprenorphine)"
    )


def test_the_other_open_orders_leave_out_the_orders_of_the_fill_being_checked(
    prescriber, patient, order
):
    """Duplicate therapy counts the patient's other open orders: not the order being checked,
    not the other orders of its fill (the rest of a partial fill), and for a refill not its own
    prescription's fills; a closed order is none of them."""
    rest = Order.objects.create(
        prescription=order.prescription, clinic_id=order.clinic_id, kind=OrderKind.REMAINDER,
        follows=order, fill_number=order.fill_number, ship_to=order.ship_to,
        created_by=prescriber.user,
        status=OrderStatus.SUBMITTED,
    )  # fmt: skip
    later_fill = Order.objects.create(
        prescription=order.prescription, clinic_id=order.clinic_id, kind=OrderKind.REFILL,
        follows=order, fill_number=order.fill_number + 1, ship_to=order.ship_to,
        created_by=prescriber.user,
        status=OrderStatus.SUBMITTED,
    )  # fmt: skip
    other = submit_order(prescriber, patient, TITRATION)
    closed = submit_order(prescriber, patient, TITRATION)
    Order.objects.filter(pk=closed.pk).update(status=OrderStatus.CANCELLED)

    def open_numbers(**kwargs) -> list[str]:
        history = fill_history(patient=patient, prescriber=prescriber, **kwargs)
        return [open_order.number for open_order in history.open_orders]

    assert open_numbers() == [order.number, rest.number, later_fill.number, other.number]
    assert open_numbers(order=order) == [later_fill.number, other.number]
    assert open_numbers(order=rest) == [later_fill.number, other.number]
    assert open_numbers(order=later_fill, prescription=order.prescription, refill=True) == [
        other.number
    ]
    assert open_numbers(order=other) == [order.number, rest.number, later_fill.number]


LIQUID = Regimen(
    dosage_form=DosageForm.ORAL_LIQUID, concentration_mg_per_ml=Decimal("2.5"),
    steps=(Step(Decimal("4.5"), 30),), doses_per_day=1, quantity=Decimal("54"), days_supply=30,
    refills=0,
)  # fmt: skip


def test_the_open_orders_read_with_the_patient_are_those_read_alone_and_used_once(
    prescriber, patient, order
):
    """The order page, the live dose check and the API read the patient with their open orders
    (clinic_patient, one query): the rules see the same orders as when they read them alone,
    to the minute and to the concentration's last digit, and only once. A later check of the
    same patient reads them again, so an order placed in between is not missed."""
    liquid = submit_order(prescriber, patient, TITRATION)
    Prescription.objects.filter(pk=liquid.prescription_id).update(
        dosage_form=DosageForm.ORAL_LIQUID, concentration_mg_per_ml=Decimal("2.500"),
        directions=dosing.directions(LIQUID),
    )  # fmt: skip
    checked = {"patient": patient, "prescriber": prescriber, "regimen": LIQUID}

    with CaptureQueriesContext(connection) as alone:
        read_alone = fill_history(**checked).open_orders
    read_with = clinic_patient(patient.clinic_id, patient.pk)
    with CaptureQueriesContext(connection) as gathered:
        read_together = fill_history(**{**checked, "patient": read_with}).open_orders

    assert read_together == read_alone
    assert [(o.number, o.identical) for o in read_alone] == [
        (order.number, False),
        (liquid.number, True),
    ]
    placed = timezone.localtime(order.created_at)
    assert read_alone[0].placed_at == placed.strftime("%m/%d/%Y %H:%M")
    assert len(gathered) == len(alone) - 1

    later = submit_order(prescriber, patient, TITRATION)
    again = fill_history(**{**checked, "patient": read_with}).open_orders
    assert [o.number for o in again] == [order.number, liquid.number, later.number]

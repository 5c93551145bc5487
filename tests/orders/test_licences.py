"""State licences: a prescription is accepted, refilled and verified only for a patient in a
state where the prescriber holds an active licence and the pharmacy is licensed to ship
(PHARMACY_LICENSED_STATES); otherwise it is refused with the reason, as the prescriber types and
on submit, and nothing is written."""

import datetime
import uuid

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from orders.fill_rules import FillHistory, LicenceFacts, check_history
from orders.models import Order, Prescription
from orders.services import (
    RefillRefused,
    order_start_review,
    order_verify,
    prescription_refill,
)
from prescribers.models import Licence
from tests.factories import (
    TEST_PASSWORD,
    TITRATION,
    LicenceFactory,
    MembershipFactory,
    PatientFactory,
    StaffFactory,
    clinic_of,
    order_form,
    submit_order,
)

pytestmark = pytest.mark.django_db

TODAY = datetime.date(2026, 12, 5)
DOSE_CHECK = {  # what the order form's live check sends, for a patient on file
    "dosage_form": "capsule", "steps": [{"dose_mg": "1.5", "days": 30}], "doses_per_day": 1,
    "quantity": "30", "days_supply": 30, "refills": 1, "diagnosis_codes": ["M79.7"],
}  # fmt: skip


# --- The rule ------------------------------------------------------------------------------------


def facts(**overrides) -> FillHistory:
    fields = {
        "prescriber": "Lena Ortiz, NP", "state": "Wisconsin", "pharmacy_ships_there": True,
        "holds_licence": True, "licence_expires_on": TODAY,
    }  # fmt: skip
    return FillHistory(licence=LicenceFacts(**{**fields, **overrides}))


def findings(history: FillHistory) -> list[tuple[str, str, str]]:
    return [(f.code, f.field, f.message) for f in check_history(history, today=TODAY)]


def test_an_active_licence_where_the_pharmacy_ships_passes():
    assert findings(facts()) == []  # it expires at the end of today
    assert findings(facts(licence_expires_on=None)) == []  # expiry not on file yet
    assert findings(FillHistory()) == []  # no patient state to judge (an inline dose check)


def test_each_refusal_says_why():
    assert findings(facts(pharmacy_ships_there=False)) == [(
        "pharmacy.state", "patient.state",
        "The pharmacy is not licensed to dispense to patients in Wisconsin: it cannot fill "
        "this prescription.",
    )]  # fmt: skip
    assert findings(facts(holds_licence=False, licence_expires_on=None)) == [(
        "licence.missing", "prescriber",
        "Lena Ortiz, NP holds no licence in Wisconsin on file with the pharmacy: a "
        "prescription is filled only where its prescriber is licensed.",
    )]  # fmt: skip
    yesterday = TODAY - datetime.timedelta(days=1)
    assert findings(facts(licence_expires_on=yesterday)) == [(
        "licence.expired", "prescriber",
        "Lena Ortiz, NP's Wisconsin licence expired on 12/04/2026: a prescription is filled "
        "only while its prescriber's licence is active.",
    )]  # fmt: skip
    both = findings(facts(pharmacy_ships_there=False, holds_licence=False))
    assert [code for code, *_ in both] == ["pharmacy.state", "licence.missing"]


# --- On the order form, the live check and the services ------------------------------------------


def patient_in(prescriber, state: str):
    return PatientFactory(
        clinic=clinic_of(prescriber), state=state, takes_opioids=False, current_medications="",
        date_of_birth=datetime.date(1975, 3, 9),
    )  # fmt: skip


def submit(client, patient):
    return client.post(
        reverse("order_create", args=[patient.pk]), order_form(idempotency_key=str(uuid.uuid4()))
    )


def refused_codes(response) -> list[str]:
    form = response.context["form"]
    return [f.code for f in form.findings if f.severity == "error"]


@pytest.mark.parametrize(
    ("state", "code"),
    [("WI", "licence.missing"), ("CA", "pharmacy.state")],
    ids=["no-licence-there", "pharmacy-not-licensed-there"],
)
def test_an_order_for_a_patient_in_another_state_is_refused_with_the_reason(
    prescriber_client, prescriber, state, code
):
    if state == "CA":  # the prescriber is licensed there, the pharmacy is not
        LicenceFactory(prescriber=prescriber, state="CA")
    patient = patient_in(prescriber, state)

    response = submit(prescriber_client, patient)

    assert response.status_code == 200
    assert refused_codes(response) == [code]
    (message,) = response.context["form"].non_field_errors()
    assert message.startswith(("Prescriber: ", "Patient record: state: "))
    assert Prescription.objects.count() == Order.objects.count() == 0
    # The live check as the prescriber types says the same.
    checked = prescriber_client.post(
        reverse("dose_check"), {**DOSE_CHECK, "patient_id": patient.pk},
        content_type="application/json",
    )  # fmt: skip
    assert code in [f["code"] for f in checked.json()["findings"] if f["severity"] == "error"]


def test_a_licence_added_for_that_state_lets_the_order_through(prescriber_client, prescriber):
    patient = patient_in(prescriber, "WI")
    LicenceFactory(prescriber=prescriber, state="WI", expires_on=timezone.localdate())

    response = submit(prescriber_client, patient)

    order = Order.objects.get()
    assert response["Location"] == reverse("order_detail", args=[order.pk])


def test_an_expired_licence_refuses_refills_and_holds_verification(prescriber, patient):
    order = submit_order(prescriber, patient, TITRATION)
    Licence.objects.filter(prescriber=prescriber).update(
        expires_on=timezone.localdate() - datetime.timedelta(days=1)
    )

    with pytest.raises(RefillRefused) as refill:
        prescription_refill(
            prescription=order.prescription, actor=prescriber.user, ship_to="clinic",
            needed_by=None, idempotency_key=uuid.uuid4(),
            acknowledged=["refill.too_soon@refill"], reason="Travels.",
        )  # fmt: skip
    assert [f.code for f in refill.value.errors] == ["licence.expired"]
    pharmacist = StaffFactory(group="Pharmacist")
    in_review = order_start_review(order=order, actor=pharmacist)
    with pytest.raises(ValidationError, match="licence expired on"):
        order_verify(order=in_review, actor=pharmacist, password=TEST_PASSWORD)
    assert Order.objects.get(pk=order.pk).status == "in_review"


def test_the_live_check_of_clinic_staff_checks_the_licence_of_the_prescriber_chosen_to_sign(
    client, prescriber, other_prescriber
):
    """A nurse drafting for a prescriber without a Wisconsin licence learns it as they type,
    not only on saving the draft; a prescriber of another clinic is not theirs to name."""
    patient = patient_in(prescriber, "WI")
    nurse = MembershipFactory(clinic=clinic_of(prescriber), role="staff").user
    client.force_login(nurse)

    def codes(**extra):
        answer = client.post(reverse("dose_check"),
                             {**DOSE_CHECK, "patient_id": patient.pk, **extra},
                             content_type="application/json")  # fmt: skip
        return answer.status_code, answer.json()

    status, body = codes(signer_id=prescriber.pk)
    assert status == 200
    assert [f["code"] for f in body["findings"] if f["severity"] == "error"] == ["licence.missing"]
    status, body = codes()  # not chosen yet: nothing to say about a licence
    assert (status, [f["code"] for f in body["findings"]]) == (200, [])
    refused = {"errors": [{"field": "signer_id",
                           "message": "Choose a prescriber of this clinic to sign."}]}  # fmt: skip
    assert codes(signer_id=other_prescriber.pk) == (400, refused)
    assert codes(signer_id="1") == (400, refused)
    assert Order.objects.count() == 0

import json

import pytest
from django.test import Client
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orders.models import Order, Patient, Prescription
from tests.factories import PatientFactory, clinic_of

pytestmark = pytest.mark.django_db

URL = reverse("dose_check")
EXAMPLE = {
    "dosage_form": "capsule",
    "steps": [{"dose_mg": "1.5", "days": 14}, {"dose_mg": "3", "days": 14},
              {"dose_mg": "4.5", "days": 30}],
    "doses_per_day": 1,
    "quantity": "58",
    "days_supply": 58,
    "refills": 2,
    "patient": {"date_of_birth": "1980-04-02", "takes_opioids": False, "medications": "",
                "pregnant_or_breastfeeding": False, "liver_disease": False},
    "diagnosis_codes": ["M79.7"],
}  # fmt: skip


FULL_WIDTH_YEAR = "\uff11\uff19\uff18\uff10-04-02"  # 1980 in full-width digits


def check(client, payload, **extra):
    body = payload if isinstance(payload, str | bytes) else json.dumps(payload)
    return client.post(URL, body, content_type="application/json", **extra)


def test_example_request_answers_as_documented(prescriber_client):
    response = check(prescriber_client, EXAMPLE)

    assert response.status_code == 200
    assert response.json() == {
        "ok": True,
        "findings": [],
        "directions": "Take 1 capsule (1.5 mg) at bedtime for 14 days, then 1 capsule (3 mg) at "
        "bedtime for 14 days, then 1 capsule (4.5 mg) at bedtime for 30 days.",
        "quantity_needed": "58",
        "days_in_schedule": 58,
        "capsule_lines": [
            {"strength_mg": "1.5", "quantity": 14},
            {"strength_mg": "3", "quantity": 14},
            {"strength_mg": "4.5", "quantity": 30},
        ],
        "refill_plan": "Each refill continues at the maintenance dose (4.5 mg): 58 capsules for "
        "58 days.",
        "products": [
            {
                "name": f"Naltrexone HCl {strength} mg capsule",
                "bud_days": 180,
                "bud_category": "nonaqueous solid",
            }
            for strength in ("1.5", "3", "4.5")
        ],
    }
    assert Prescription.objects.count() == 0 and Order.objects.count() == 0


def test_errors_make_ok_false(prescriber_client):
    payload = {**EXAMPLE, "steps": [{"dose_mg": "6", "days": 58}]}
    body = check(prescriber_client, payload).json()
    assert body["ok"] is False
    above = [f for f in body["findings"] if f["code"] == "dose.above_max"]
    assert [(f["severity"], f["field"]) for f in above] == [("error", "steps.0.dose_mg")]
    assert set(above[0]) == {
        "code",
        "severity",
        "field",
        "message",
        "source",
        "field_label",
        "key",
        "reason_required",
    }
    assert (above[0]["field_label"], above[0]["key"], above[0]["reason_required"]) == (
        "Schedule, step 1 dose",
        "dose.above_max@steps.0.dose_mg",
        False,
    )


def test_warnings_alone_keep_ok_true(prescriber_client):
    payload = {**EXAMPLE, "patient": {**EXAMPLE["patient"], "pregnant_or_breastfeeding": True}}
    body = check(prescriber_client, payload).json()
    assert body["ok"] is True
    assert {f["severity"] for f in body["findings"]} == {"warning"}


def test_patient_of_own_clinic_by_id(prescriber_client, prescriber):
    patient = PatientFactory(clinic=clinic_of(prescriber), takes_opioids=True)
    payload = {k: v for k, v in EXAMPLE.items() if k != "patient"} | {"patient_id": patient.pk}
    body = check(prescriber_client, payload).json()
    assert body["ok"] is False
    assert "patient.takes_opioids" in {f["field"] for f in body["findings"]}


def test_patient_of_another_clinic_is_not_found(prescriber_client, other_prescriber):
    theirs = PatientFactory(clinic=clinic_of(other_prescriber))
    payload = {k: v for k, v in EXAMPLE.items() if k != "patient"} | {"patient_id": theirs.pk}
    assert check(prescriber_client, payload).status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ("{not json", ""),
        ('{"dosage_form": NaN}', ""),
        ("[]", ""),
        ({**EXAMPLE, "dosage_form": "eye_drops"}, "dosage_form"),
        ({k: v for k, v in EXAMPLE.items() if k != "steps"}, "steps"),
        ({**EXAMPLE, "steps": []}, "steps"),
        ({**EXAMPLE, "steps": [{"dose_mg": "4,5", "days": 14}]}, "steps.0.dose_mg"),
        ({**EXAMPLE, "steps": [{"dose_mg": "NaN", "days": 14}]}, "steps.0.dose_mg"),
        ({**EXAMPLE, "steps": [{"dose_mg": "1e9", "days": 14}]}, "steps.0.dose_mg"),
        ({**EXAMPLE, "steps": [{"dose_mg": True, "days": 14}]}, "steps.0.dose_mg"),
        ({**EXAMPLE, "steps": ["1.5 x 14"]}, "steps.0"),
        ({**EXAMPLE, "doses_per_day": "once"}, "doses_per_day"),
        ({**EXAMPLE, "quantity": [58]}, "quantity"),
        ({**EXAMPLE, "dosage_form": "oral_liquid"}, "concentration_mg_per_ml"),
        ({**EXAMPLE, "diagnosis_codes": "M79.7"}, "diagnosis_codes"),
        ({**EXAMPLE, "patient": {"takes_opioids": "no"}}, "patient.takes_opioids"),
        ({**EXAMPLE, "patient_id": 1}, "patient"),
        ({**EXAMPLE, "patient": {**EXAMPLE["patient"], "date_of_birth": "02/04/1980"}},
         "patient.date_of_birth"),
        # Not a text date: refused, never read as "unknown" (which would skip the age rules).
        *(({**EXAMPLE, "patient": {**EXAMPLE["patient"], "date_of_birth": born}},
           "patient.date_of_birth")
          for born in (19800402, None, 1980.0, ["1980-04-02"], FULL_WIDTH_YEAR, "1980-02-30")),
        ({**EXAMPLE, "patient": {k: v for k, v in EXAMPLE["patient"].items()
                                 if k != "date_of_birth"}}, "patient.date_of_birth"),
    ],
)  # fmt: skip
def test_malformed_requests_get_400_with_what_is_wrong(prescriber_client, body, field):
    response = check(prescriber_client, body)
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert field in [error["field"] for error in errors], errors
    assert all(error["message"] for error in errors)


def test_numbers_or_strings_give_the_same_answer(prescriber_client):
    as_numbers = {
        **EXAMPLE,
        "steps": [{"dose_mg": 1.5, "days": 14}, {"dose_mg": 3, "days": 14},
                  {"dose_mg": 4.5, "days": 30}],
        "quantity": 58,
    }  # fmt: skip
    assert check(prescriber_client, as_numbers).json() == check(prescriber_client, EXAMPLE).json()


def test_needs_csrf_token(prescriber):
    client = Client(enforce_csrf_checks=True)
    client.force_login(prescriber.user)
    assert check(client, EXAMPLE).status_code == 403


def test_needs_a_signed_in_prescriber(client, pharmacist):
    assert check(client, EXAMPLE).status_code == 302  # to the sign-in page
    client.force_login(pharmacist)
    assert check(client, EXAMPLE).status_code == 403


def test_only_post(prescriber_client):
    assert prescriber_client.get(URL).status_code == 405


scalar = (
    st.none() | st.booleans() | st.integers() | st.text(max_size=8)
    | st.decimals(allow_nan=False, allow_infinity=False, places=3).map(str)
)  # fmt: skip
json_value = st.recursive(
    scalar,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=8,
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    changes=st.dictionaries(
        st.sampled_from([*sorted(EXAMPLE), "patient_id"]), json_value, max_size=4
    )
)
def test_any_json_gets_200_or_400_never_a_server_error(prescriber_client, changes):
    response = check(prescriber_client, {**EXAMPLE, **changes})
    assert response.status_code in (200, 400, 404)
    assert Order.objects.count() == 0


CONCENTRATIONS = st.sampled_from(["0.5", "1", "2.5"])


def liquid(concentration: str) -> dict:
    return {"dosage_form": "oral_liquid", "concentration_mg_per_ml": concentration}


step = st.fixed_dictionaries({
    "dose_mg": st.sampled_from(["0.5", "1", "1.5", "2.25", "3", "4.5", "6", "9"]),
    "days": st.integers(min_value=1, max_value=60),
})  # fmt: skip


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    steps=st.lists(step, min_size=1, max_size=4),
    form=st.just({"dosage_form": "capsule"}) | CONCENTRATIONS.map(liquid),
    doses_per_day=st.integers(min_value=1, max_value=3),
    refills=st.integers(min_value=0, max_value=12),
    days_supply=st.integers(min_value=1, max_value=120),
    with_record=st.booleans(),
)
def test_the_answer_without_a_quantity_holds_for_the_quantity_it_needs(
    prescriber_client, prescriber, steps, form, doses_per_day, refills, days_supply, with_record
):
    """The order form fills the quantity in from the answer to a schedule without one, and
    shows that answer's findings, with no second request (static/js/order_form.js): so the
    answer must be the same as the one for the schedule with that quantity."""
    body = {**EXAMPLE, **form, "steps": steps, "doses_per_day": doses_per_day,
            "refills": refills, "days_supply": days_supply}  # fmt: skip
    if with_record:
        del body["patient"]
        body["patient_id"] = _a_patient_of(prescriber).pk
    answer = check(prescriber_client, {**body, "quantity": None})
    assert answer.status_code == 200
    without = answer.json()
    assert without["quantity_needed"] is not None  # every schedule drawn here is complete
    filled = check(prescriber_client, {**body, "quantity": without["quantity_needed"]})
    assert filled.json() == without


def _a_patient_of(prescriber):
    """The same patient for every example (each example does not roll back its own rows)."""
    found = Patient.objects.filter(clinic=clinic_of(prescriber)).first()
    return found or PatientFactory(clinic=clinic_of(prescriber), takes_opioids=False)

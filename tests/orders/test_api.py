"""The partner API as a clinic's developer uses it: a key made in the portal, the dose check,
patients, orders with an Idempotency-Key, the timeline, cancelling, refills, the label, rate
limits, and errors as RFC 9457 problem details naming the field."""

import datetime
import json
from decimal import Decimal

import pytest
from django.core.files.base import ContentFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from core.models import AccessAction, AccessEvent
from orders.models import Order, OrderEvent, OrderStatus, Patient, Prescription
from orders.services import order_sign
from pharmacy.models import LabelDocument
from prescribers.api_keys import api_key_create, api_key_revoke
from prescribers.models import IdempotentRequest
from prescribers.services import prescriber_suspend
from tests.api_clients import api_client
from tests.factories import (
    TEST_PASSWORD,
    PatientFactory,
    PrescriberFactory,
    StaffFactory,
    clinic_of,
)
from tests.orders.test_dose_check import EXAMPLE

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"
ORDER = {
    "dosage_form": "capsule",
    "steps": [{"dose_mg": "1.5", "days": 14}, {"dose_mg": "3", "days": 14},
              {"dose_mg": "4.5", "days": 30}],
    "doses_per_day": 1,
    "quantity": "58",
    "days_supply": 58,
    "refills": 2,
    "diagnosis_codes": ["M79.7"],
}  # fmt: skip


def problem(response) -> dict:
    assert response["Content-Type"] == PROBLEM
    return response.json()


def post_order(api, body, key="first-try"):
    return api.post(reverse("api-order-list"), body, format="json", HTTP_IDEMPOTENCY_KEY=key)


# --- Keys ---------------------------------------------------------------------------------------


def test_without_a_key_the_answer_is_401_with_how_to_authenticate(client):
    response = api_client(None).get(reverse("api-order-list"))
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Api-Key realm="api"'
    assert problem(response) == {
        "type": "http://testserver/api/v1/problems/not-authenticated/",
        "title": "An API key is needed.",
        "status": 401,
        "detail": "Authentication credentials were not provided.",
        "instance": "/api/v1/orders/",
    }
    type_page = Client().get(problem(response)["type"])
    assert type_page.json()["title"] == "An API key is needed."


@pytest.mark.parametrize("header", ["Api-Key nope.nope", "Api-Key", "Bearer x.y", "Api-Key a.b c"])
def test_a_wrong_key_is_refused(header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get(reverse("api-order-list"))
    assert response.status_code == 401
    assert problem(response)["type"].endswith("/problems/invalid-key/")


def test_the_key_is_stored_hashed_and_found_by_its_prefix(key):
    row, raw = key
    prefix, secret = raw.split(".")
    assert row.prefix == prefix and len(secret) == 32
    assert raw not in row.hashed_key and row.hashed_key.startswith("sha512$$")
    assert api_client(raw).get(reverse("api-order-list")).status_code == 200
    assert api_client(f"{prefix}.{'x' * 32}").get(reverse("api-order-list")).status_code == 401


def test_a_revoked_key_and_the_key_of_a_suspended_prescriber_stop_working(key, prescriber):
    row, raw = key
    _, other_raw = api_key_create(
        clinic=clinic_of(prescriber), actor=prescriber.user, name="Second"
    )
    api_key_revoke(key=row, actor=prescriber.user)
    assert api_client(raw).get(reverse("api-order-list")).status_code == 401
    assert api_client(other_raw).get(reverse("api-order-list")).status_code == 200
    prescriber_suspend(prescriber=prescriber, actor=StaffFactory(group="Pharmacist"), reason="x")
    assert api_client(other_raw).get(reverse("api-order-list")).status_code == 401


def test_the_rate_limit_answers_429_with_retry_after(api, settings):
    settings.API_RATE_LIMIT = "3/minute"
    codes = [api.get(reverse("api-order-list")).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    response = api.get(reverse("api-order-list"))
    assert problem(response)["type"].endswith("/problems/too-many-requests/")
    assert 0 < int(response["Retry-After"]) <= 60


# --- The dose check -----------------------------------------------------------------------------


def test_the_dose_check_answers_as_the_order_form_does(api, prescriber_client):
    web = prescriber_client.post(reverse("dose_check"), EXAMPLE, content_type="application/json")
    response = api.post(reverse("api-dose-check"), EXAMPLE, format="json")
    assert response.status_code == 200
    assert response.json() == web.json()
    assert response.json()["directions"].startswith("Take ")


def test_the_dose_check_of_a_patient_of_another_clinic_is_404(api, other_prescriber):
    theirs = PatientFactory(clinic=clinic_of(other_prescriber))
    body = {k: v for k, v in EXAMPLE.items() if k != "patient"} | {"patient_id": theirs.pk}
    assert problem(api.post(reverse("api-dose-check"), body, format="json"))["status"] == 404


def test_invalid_input_names_each_field_with_a_pointer(api):
    body = {**EXAMPLE, "steps": [{"dose_mg": "4,5", "days": 14}, {"dose_mg": True, "days": "x"}],
            "dosage_form": "eye_drops"}  # fmt: skip
    response = api.post(reverse("api-dose-check"), body, format="json")
    assert response.status_code == 400
    body = problem(response)
    assert body["type"] == "http://testserver/api/v1/problems/invalid-input/"
    assert [(e["field"], e["pointer"]) for e in body["errors"]] == [
        ("dosage_form", "#/dosage_form"),
        ("steps.0.dose_mg", "#/steps/0/dose_mg"),
        ("steps.1.dose_mg", "#/steps/1/dose_mg"),
        ("steps.1.days", "#/steps/1/days"),
    ]
    assert body["errors"][1]["detail"] == "Enter a number (as a JSON number or a string)."


@pytest.mark.parametrize(
    "body", ["{not json", "[" * 100_000 + "]" * 100_000, b'{"a": 1}'.decode().encode("utf-16")]
)
def test_a_body_that_is_not_json_is_a_problem(api, body):
    response = api.post(reverse("api-dose-check"), body, content_type="application/json")
    assert response.status_code == 400
    assert problem(response)["type"].endswith("/problems/invalid-json/")


# --- Patients -----------------------------------------------------------------------------------

PATIENT = {
    "first_name": "Avery", "last_name": "Testpatient", "date_of_birth": "1980-04-02", "sex": "F",
    "phone": "+12175550123", "address_line1": "1 Demo Street", "address_line2": "",
    "city": "Springfield", "state": "IL", "postal_code": "62701", "allergies": "NKDA",
    "current_medications": "", "takes_opioids": False, "conditions": ["M79.7"],
}  # fmt: skip


def test_a_patient_is_added_read_found_and_changed(api, prescriber):
    created = api.post(reverse("api-patient-list"), PATIENT, format="json")
    assert created.status_code == 201, created.json()
    patient = Patient.objects.get()
    assert (patient.clinic_id, patient.created_by) == (clinic_of(prescriber).pk, prescriber.user)
    assert created.json() | {"created_at": None, "updated_at": None} == {
        "id": patient.pk, **PATIENT, "pregnant_or_breastfeeding": False,
        "liver_disease": False, "created_at": None, "updated_at": None,
    }  # fmt: skip
    url = reverse("api-patient-detail", args=[patient.pk])
    assert api.get(url).json()["last_name"] == "Testpatient"
    found = api.get(reverse("api-patient-list"), {"q": "avery test"}).json()
    assert [p["id"] for p in found["results"]] == [patient.pk]
    assert api.get(reverse("api-patient-list"), {"q": "nobody"}).json()["results"] == []
    changed = api.patch(url, {"allergies": "Penicillin"}, format="json")
    assert changed.status_code == 200 and changed.json()["allergies"] == "Penicillin"
    patient.refresh_from_db()
    assert patient.allergies == "Penicillin"
    events = AccessEvent.objects.filter(action=AccessAction.VIEWED_PATIENT, object_id=patient.pk)
    # made (the answer shows the record), read, found, changed
    assert [e.path for e in events.order_by("pk")] == ["/api/v1/patients/", url,
                                                       "/api/v1/patients/", url]  # fmt: skip
    assert {e.user for e in events} == {patient.created_by}


def test_a_patient_with_a_bad_field_is_refused_and_nothing_written(api):
    body = {**PATIENT, "takes_opioids": "no", "date_of_birth": "2999-01-01", "state": "ZZ",
            "postal_code": "6270"}  # fmt: skip
    response = api.post(reverse("api-patient-list"), body, format="json")
    assert response.status_code == 400
    assert {e["field"] for e in problem(response)["errors"]} == {
        "takes_opioids",
        "date_of_birth",
        "state",
        "postal_code",
    }
    assert Patient.objects.count() == 0


def test_another_clinics_patient_is_404_and_unchanged(api, other_prescriber):
    theirs = PatientFactory(clinic=clinic_of(other_prescriber), allergies="NKDA")
    url = reverse("api-patient-detail", args=[theirs.pk])
    assert api.get(url).status_code == 404
    assert api.patch(url, {"allergies": "x"}, format="json").status_code == 404
    theirs.refresh_from_db()
    assert theirs.allergies == "NKDA"
    assert api.get(reverse("api-patient-list")).json()["results"] == []
    assert not AccessEvent.objects.exists()


# --- Orders -------------------------------------------------------------------------------------


def test_an_order_needs_an_idempotency_key(api, patient):
    response = api.post(
        reverse("api-order-list"), {**ORDER, "patient_id": patient.pk}, format="json"
    )
    assert response.status_code == 400
    assert problem(response)["type"].endswith("/problems/idempotency-key-missing/")
    assert not Order.objects.exists()


def test_an_order_from_a_key_that_does_not_sign_is_a_draft_for_its_owner(api, patient, prescriber):
    response = post_order(api, {**ORDER, "patient_id": patient.pk})
    assert response.status_code == 201, response.json()
    order = Order.objects.get()
    assert (order.status, order.signer, order.created_by) == (
        OrderStatus.DRAFT,
        prescriber,
        prescriber.user,
    )
    assert response["Location"] == f"http://testserver/api/v1/orders/{order.pk}/"
    body = response.json()
    assert (body["id"], body["number"], body["status"], body["patient_id"]) == (
        order.pk,
        order.number,
        "draft",
        patient.pk,
    )
    assert [s["dose_mg"] for s in body["prescription"]["steps"]] == ["1.500", "3.000", "4.500"]
    event = OrderEvent.objects.get(order=order)
    via = f"API key Clinic EHR ({api_key_prefix(api)}\u2026)"
    assert event.parameters["via"] == via
    assert event.detail == (
        f"Prescription written and submitted: drafted for {prescriber} to sign. (sent with {via})"
    )
    # The prescriber signs it in the portal: it reaches the pharmacy.
    order_sign(orders=[order], actor=prescriber.user, password=TEST_PASSWORD)
    assert api.get(reverse("api-order-detail", args=[order.pk])).json()["status"] == "submitted"


def api_key_prefix(api) -> str:
    return api._credentials["HTTP_AUTHORIZATION"].split()[1].split(".")[0]


def test_a_key_that_signs_submits_the_order_to_the_pharmacy(signing_api, patient, prescriber):
    response = post_order(signing_api, {**ORDER, "patient_id": patient.pk})
    assert response.status_code == 201, response.json()
    assert Order.objects.get().status == OrderStatus.SUBMITTED


@pytest.mark.parametrize("signs", [False, True], ids=["draft", "signed"])
def test_the_answer_to_an_order_is_the_order_as_it_reads_afterwards(
    api, signing_api, patient, prescriber, signs
):
    # The answer is made from what the order's transaction wrote, not read back: it must be
    # what reading the order gives.
    needed_by = (timezone.localdate() + datetime.timedelta(days=10)).isoformat()
    body = {**ORDER, "patient_id": patient.pk, "ship_to": "patient", "needed_by": needed_by}
    client = signing_api if signs else api
    created = post_order(client, body)
    assert created.status_code == 201, created.json()
    assert created.json() == client.get(created["Location"]).json()
    assert created.json()["status"] == ("submitted" if signs else "draft")
    assert created.json()["needed_by"] == needed_by
    # A draft names the prescriber asked to sign it; a signed order has no one to ask.
    assert created.json()["signer"] == (None if signs else str(prescriber))


def test_a_key_that_signs_needs_the_owners_password(prescriber):
    with pytest.raises(Exception, match="password is not correct"):
        api_key_create(
            clinic=clinic_of(prescriber), actor=prescriber.user, name="x", can_sign=True,
            password="wrong",
        )  # fmt: skip


def test_a_retry_gets_the_first_answer_and_another_body_with_the_key_is_422(api, patient):
    body = {**ORDER, "patient_id": patient.pk}
    first = post_order(api, body)
    again = post_order(api, body)
    assert again.status_code == 201 and again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json() and again["Location"] == first["Location"]
    other = post_order(api, {**body, "refills": 1})
    assert other.status_code == 422
    assert problem(other)["type"].endswith("/problems/idempotency-key-reused/")
    assert Order.objects.count() == 1 and Prescription.objects.count() == 1
    assert IdempotentRequest.objects.count() == 1


def test_the_rules_refusal_names_the_findings_and_the_corrected_order_may_use_the_key(api, patient):
    body = {**ORDER, "patient_id": patient.pk, "steps": [{"dose_mg": "50", "days": 30}],
            "quantity": "30", "days_supply": 30}  # fmt: skip
    refused = post_order(api, body)
    assert refused.status_code == 422
    body_of = problem(refused)
    assert body_of["type"].endswith("/problems/prescription-not-accepted/")
    errors = [f for f in body_of["findings"] if f["severity"] == "error"]
    assert errors and {f["field"] for f in errors} == {"steps.0.dose_mg"}
    assert not Order.objects.exists() and not IdempotentRequest.objects.exists()
    assert post_order(api, {**ORDER, "patient_id": patient.pk}).status_code == 201


def test_an_order_for_another_clinics_patient_is_refused(api, other_prescriber):
    theirs = PatientFactory(clinic=clinic_of(other_prescriber))
    response = post_order(api, {**ORDER, "patient_id": theirs.pk})
    assert response.status_code == 400
    assert [e["field"] for e in problem(response)["errors"]] == ["patient_id"]
    assert not Order.objects.exists()


def test_orders_are_listed_by_cursor_with_filters(api, patient, django_assert_num_queries):
    for i in range(3):
        post_order(api, {**ORDER, "patient_id": patient.pk, "refills": i}, key=f"k{i}")
    ids = list(Order.objects.order_by("-pk").values_list("pk", flat=True))
    first = api.get(reverse("api-order-list"), {"limit": 2}).json()
    assert [o["id"] for o in first["results"]] == ids[:2]
    second = api.get(first["next"]).json()
    assert [o["id"] for o in second["results"]] == ids[2:] and second["next"] is None
    assert api.get(reverse("api-order-list"), {"status": "submitted"}).json()["results"] == []
    drafts = api.get(reverse("api-order-list"), {"status": "draft", "patient_id": patient.pk})
    assert len(drafts.json()["results"]) == 3
    bad = api.get(reverse("api-order-list"), {"status": "nonsense"})
    assert bad.status_code == 400 and problem(bad)["errors"][0]["field"] == "status"
    # the key with its owner still prescribing (one query), orders, steps, access events:
    # whatever the count of rows
    with django_assert_num_queries(4):
        api.get(reverse("api-order-list"))


def test_an_order_is_cancelled_and_a_cancelled_one_cannot_be_again(api, patient):
    order_id = post_order(api, {**ORDER, "patient_id": patient.pk}).json()["id"]
    url = reverse("api-order-cancel", args=[order_id])
    response = api.post(url, {"reason": "Patient changed their mind"}, format="json")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    again = api.post(url, {}, format="json")
    assert again.status_code == 409
    assert problem(again)["detail"] == "An order that is cancelled cannot become cancelled."


def test_the_timeline_lists_the_orders_events(api, patient):
    order_id = post_order(api, {**ORDER, "patient_id": patient.pk}).json()["id"]
    api.post(reverse("api-order-cancel", args=[order_id]), {}, format="json")
    timeline = api.get(reverse("api-order-timeline", args=[order_id])).json()
    assert [(e["kind"], e["from_status"], e["to_status"]) for e in timeline] == [
        ("drafted", "", "draft"),
        ("status_changed", "draft", "cancelled"),
    ]


def test_another_clinics_order_is_404_everywhere(api, other_prescriber):
    _, their_raw = api_key_create(
        clinic=clinic_of(other_prescriber), actor=other_prescriber.user, name="Theirs"
    )
    theirs = PatientFactory(clinic=clinic_of(other_prescriber))
    their_order = post_order(api_client(their_raw), {**ORDER, "patient_id": theirs.pk}).json()["id"]
    for name in ("api-order-detail", "api-order-timeline", "api-order-label"):
        assert api.get(reverse(name, args=[their_order])).status_code == 404
    assert api.post(reverse("api-order-cancel", args=[their_order])).status_code == 404
    assert Order.objects.get(pk=their_order).status == OrderStatus.DRAFT


def test_the_label_is_the_latest_pdf_once_printed(signing_api, patient):
    order_id = post_order(signing_api, {**ORDER, "patient_id": patient.pk}).json()["id"]
    url = reverse("api-order-label", args=[order_id])
    assert problem(signing_api.get(url))["status"] == 404
    for version in (1, 2):  # as the pharmacy's rendering keeps them (tests/pharmacy/test_labels)
        label = LabelDocument(order_id=order_id, version=version)
        label.file.save(f"label-v{version}.pdf", ContentFile(b"%%PDF-1.7 v%d" % version))
    response = signing_api.get(url, HTTP_ACCEPT="application/pdf")
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"].endswith(f'filename="label-LDN-{order_id:06d}.pdf"')
    assert b"".join(response.streaming_content) == b"%PDF-1.7 v2"
    assert AccessEvent.objects.filter(action=AccessAction.DOWNLOADED_LABEL).count() == 1


def test_a_refill_is_requested_by_prescription(signing_api, patient, prescriber):
    order_id = post_order(signing_api, {**ORDER, "patient_id": patient.pk}).json()["id"]
    order = Order.objects.get(pk=order_id)
    Order.objects.filter(pk=order_id).update(status=OrderStatus.SHIPPED)
    url = reverse("api-prescription-refills", args=[order.prescription_id])
    response = signing_api.post(
        url, {"reason": "Reviewed"}, format="json", HTTP_IDEMPOTENCY_KEY="r1"
    )
    assert response.status_code in (201, 422), response.json()
    if response.status_code == 422:  # an early refill must be acknowledged
        findings = problem(response)["unacknowledged"]
        response = signing_api.post(
            url, {"acknowledged": findings, "reason": "Reviewed"}, format="json",
            HTTP_IDEMPOTENCY_KEY="r1",
        )  # fmt: skip
    assert response.status_code == 201, response.json()
    assert (response.json()["kind"], response.json()["fill_number"]) == ("refill", 1)
    assert Order.objects.filter(prescription_id=order.prescription_id).count() == 2


def test_numbers_as_json_numbers_or_strings_make_the_same_order(api, patient):
    as_numbers = {**ORDER, "patient_id": patient.pk, "quantity": 58,
                  "steps": [{"dose_mg": 1.5, "days": 14}, {"dose_mg": 3, "days": 14},
                            {"dose_mg": 4.5, "days": 30}]}  # fmt: skip
    assert post_order(api, as_numbers).status_code == 201
    steps = Prescription.objects.get().steps.values_list("dose_mg", flat=True)
    assert list(steps) == [Decimal("1.5"), Decimal("3"), Decimal("4.5")]


def test_the_schema_and_its_page_are_served_without_a_key(client):
    schema = client.get(reverse("api_schema"), HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    paths = json.loads(schema.content)["paths"]
    assert "/api/v1/orders/" in paths and "/api/v1/dose-check/" in paths
    page = client.get(reverse("api_docs"))
    assert page.status_code == 200 and b"swagger-ui" in page.content


def test_the_api_of_a_prescriber_of_two_clinics_is_the_keys_clinic(db):
    both = PrescriberFactory()
    first = clinic_of(both)
    second = PrescriberFactory().user.memberships.get().clinic
    both.user.memberships.create(clinic=second, role="prescriber", status="active")
    _, raw = api_key_create(clinic=second, actor=both.user, name="Second clinic")
    theirs = PatientFactory(clinic=first)
    assert api_client(raw).get(reverse("api-patient-detail", args=[theirs.pk])).status_code == 404

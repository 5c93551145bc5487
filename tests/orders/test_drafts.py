"""Clinic staff draft orders and refills for a prescriber of the clinic; the prescriber signs
them (singly or several at once) with their password; only signed orders reach the pharmacy."""

import uuid

import pytest
from django.core.exceptions import PermissionDenied
from django.test import Client
from django.urls import reverse

from orders import signing_views
from orders.models import Order, OrderEvent, OrderEventKind, OrderKind, OrderStatus, Prescription
from orders.services import (
    PrescriptionNotAccepted,
    SignerRefused,
    SigningRefused,
    order_fill_check,
    order_sign,
    order_submit,
    prescription_refill,
)
from prescribers.models import MembershipRole
from tests.factories import (
    TEST_PASSWORD,
    TITRATION,
    MembershipFactory,
    PatientFactory,
    PrescriberFactory,
    order_form,
)

pytestmark = pytest.mark.django_db

# 5 mg a day is above the usual 4.5 mg maximum: a warning the prescriber confirms when signing.
ABOVE_USUAL = order_form(
    dosage_form="oral_liquid", concentration_mg_per_ml="1",
    steps="1.5 x 7, 3 x 7, 4.5 x 7, 5 x 14", quantity="133", days_supply="35",
)  # fmt: skip
ABOVE_USUAL_KEY = "dose.above_usual@steps.3.dose_mg"


@pytest.fixture
def staff_client(client, clinic_staff):
    client.force_login(clinic_staff)
    return client


@pytest.fixture
def staff_patient(clinic, clinic_staff):
    return PatientFactory(clinic=clinic, created_by=clinic_staff)


def draft(staff, patient, signer, regimen=TITRATION) -> Order:
    return order_submit(
        actor=staff, patient=patient, regimen=regimen, diagnosis_codes=["M79.7"],
        reason_for_compounding="Strength not available commercially", ship_to="clinic",
        needed_by=None, acknowledged=[], idempotency_key=uuid.uuid4(), signer=signer,
    )  # fmt: skip


def refill_of(order, actor, signer=None) -> Order:
    return prescription_refill(
        prescription=order.prescription, actor=actor, ship_to="clinic", needed_by=None,
        idempotency_key=uuid.uuid4(), signer=signer,
    )  # fmt: skip


def state() -> list:
    return [
        list(Order.objects.order_by("pk").values_list("status", "acknowledged_warnings")),
        list(OrderEvent.objects.order_by("pk").values_list("kind", "to_status")),
        list(Prescription.objects.order_by("pk").values_list("written_on", "findings")),
    ]


def test_staff_draft_a_new_order_for_a_prescriber_of_the_clinic(
    staff_client, clinic_staff, prescriber, staff_patient
):
    response = staff_client.post(
        reverse("order_create", args=[staff_patient.pk]),
        {**ABOVE_USUAL, "idempotency_key": str(uuid.uuid4()), "signer": str(prescriber.pk)},
    )

    order = Order.objects.get()
    assert response["Location"] == reverse("order_detail", args=[order.pk])
    assert (order.status, order.signer, order.created_by) == (
        OrderStatus.DRAFT, prescriber, clinic_staff,
    )  # fmt: skip
    # The warning waits for the prescriber; nothing is confirmed by the staff.
    assert [f["code"] for f in order.prescription.findings if f["severity"] == "warning"] == [
        "dose.above_usual"
    ]
    assert order.prescription.acknowledged_warnings == []
    assert order.prescription.prescriber == prescriber
    event = order.events.get()
    assert (event.kind, event.actor, event.to_status) == (
        OrderEventKind.DRAFTED, clinic_staff, OrderStatus.DRAFT,
    )  # fmt: skip
    assert event.title == f"Drafted for {prescriber} to sign"
    page = staff_client.get(response["Location"]).content.decode()
    assert f"it waits for <strong>{prescriber}</strong> to review and sign it" in page
    assert "Review and sign" not in page  # only the prescriber signs


def test_the_staff_order_form_names_the_signer_and_asks_no_acknowledgement(
    staff_client, prescriber, staff_patient
):
    page = staff_client.get(reverse("order_create", args=[staff_patient.pk]))

    form = page.context["form"]
    assert list(form.fields["signer"].queryset) == [prescriber]
    assert "acknowledge" not in form.fields
    assert 'id="draft-note"' in page.content.decode()


def test_a_draft_is_refused_on_an_error_and_without_a_signer(
    staff_client, clinic_staff, prescriber, other_prescriber, staff_patient
):
    url = reverse("order_create", args=[staff_patient.pk])
    key, signer = str(uuid.uuid4()), str(prescriber.pk)
    too_few = staff_client.post(
        url, {**order_form(quantity="40"), "idempotency_key": key, "signer": signer}
    )
    assert too_few.context["form"].errors["quantity"][0].startswith("Quantity 40 capsules")

    elsewhere = staff_client.post(
        url, {**order_form(), "idempotency_key": key, "signer": str(other_prescriber.pk)}
    )
    assert elsewhere.context["form"].errors["signer"] == [
        "Select a valid choice. That choice is not one of the available choices."
    ]
    with pytest.raises(SignerRefused, match="Choose a prescriber of this clinic"):
        draft(clinic_staff, staff_patient, other_prescriber)
    with pytest.raises(SignerRefused):
        draft(clinic_staff, staff_patient, None)
    assert not Order.objects.exists()
    assert not Prescription.objects.exists()


def test_staff_of_another_clinic_cannot_draft(prescriber, patient):
    outsider = MembershipFactory(role=MembershipRole.STAFF).user
    with pytest.raises(PermissionDenied):
        draft(outsider, patient, prescriber)
    assert not Order.objects.exists()


def test_the_pharmacy_sees_no_draft(pharmacist_client, clinic_staff, prescriber, staff_patient):
    order = draft(clinic_staff, staff_patient, prescriber)

    changelist = pharmacist_client.get(reverse("admin:orders_order_changelist"))
    assert list(changelist.context["cl"].result_list) == []
    page = pharmacist_client.get(reverse("admin:orders_order_change", args=[order.pk]))
    assert page.status_code == 302  # the admin's "not found" goes back to the list
    prescriptions = pharmacist_client.get(reverse("admin:orders_prescription_changelist"))
    assert list(prescriptions.context["cl"].result_list) == []
    move = pharmacist_client.post(
        reverse("admin:orders_order_move", args=[order.pk, "submitted"]),
        {"password": TEST_PASSWORD},
    )
    assert move.status_code == 404
    order.refresh_from_db()
    assert order.status == OrderStatus.DRAFT


def test_a_prescriber_signs_two_drafts_at_once(
    client, clinic_staff, prescriber, staff_patient, clock
):
    first = draft(clinic_staff, staff_patient, prescriber)
    other = PatientFactory(clinic=staff_patient.clinic, created_by=clinic_staff)
    second = draft(clinic_staff, other, prescriber)
    client.force_login(prescriber.user)

    page = client.get(reverse("order_sign"))
    assert [d["order"] for d in page.context["drafts"]] == [first, second]
    response = client.post(
        reverse("order_sign"),
        {"order": [first.pk, second.pk], "password": TEST_PASSWORD},
    )

    assert response["Location"] == reverse("order_sign")
    for order in (first, second):
        order.refresh_from_db()
        assert order.status == OrderStatus.SUBMITTED
        event = order.events.last()
        assert (event.kind, event.actor, event.from_status) == (
            OrderEventKind.SIGNED, prescriber.user, OrderStatus.DRAFT,
        )  # fmt: skip
        assert event.signed_by == f"{prescriber.user.get_full_name()} <{prescriber.user.email}>"
        assert event.signature_meaning == "prescribed: signed and submitted to the pharmacy"
        assert event.title == f"Signed by {prescriber} and submitted"
        assert order.prescription.written_on.isoformat() == "2026-03-02"
    signed = client.get(reverse("order_sign"))
    assert f"Signed 2 orders ({first.number}, {second.number})" in signed.content.decode()
    assert signed.context["drafts"] == []


def test_a_warning_is_confirmed_at_signing_or_nothing_is_signed(
    client, clinic_staff, prescriber, staff_patient, monkeypatch
):
    plain = draft(clinic_staff, staff_patient, prescriber)
    client.force_login(prescriber.user)
    staff = Client()
    staff.force_login(clinic_staff)
    other = PatientFactory(clinic=staff_patient.clinic, created_by=clinic_staff)
    staff.post(
        reverse("order_create", args=[other.pk]),
        {**ABOVE_USUAL, "idempotency_key": str(uuid.uuid4()), "signer": str(prescriber.pk)},
    )
    warned = Order.objects.get(prescription__dosage_form="oral_liquid")
    before = state()

    refused = client.post(
        reverse("order_sign"), {"order": [plain.pk, warned.pk], "password": TEST_PASSWORD}
    )

    assert refused.status_code == 200
    problems = {d["order"].pk: d["problem"] for d in refused.context["drafts"]}
    assert problems[plain.pk] == ""
    assert problems[warned.pk].startswith(
        f"Order {warned.number}: Tick each warning to confirm you have reviewed it: "
    )
    assert state() == before  # one signature is never half applied

    # The refusal shows what the signature's own check found: the rules do not run again for
    # the drafts it checked (the page asks them only of a draft it did not check).
    checked = []

    def counted_check(order):
        checked.append(order.pk)
        return order_fill_check(order)

    monkeypatch.setattr(signing_views, "order_fill_check", counted_check)
    third = draft(clinic_staff, PatientFactory(clinic=staff_patient.clinic), prescriber)
    again = client.post(
        reverse("order_sign"), {"order": [plain.pk, warned.pk], "password": TEST_PASSWORD}
    )
    assert checked == [third.pk]
    shown = {d["order"].pk: [w["key"] for w in d["warnings"]] for d in again.context["drafts"]}
    assert shown == {plain.pk: [], warned.pk: [ABOVE_USUAL_KEY], third.pk: []}

    client.post(reverse("order_sign"), {
        "order": [plain.pk, warned.pk], "password": TEST_PASSWORD,
        f"ack-{warned.pk}": ABOVE_USUAL_KEY,
    })  # fmt: skip

    warned.refresh_from_db()
    assert warned.status == OrderStatus.SUBMITTED
    assert [w["key"] for w in warned.prescription.acknowledged_warnings] == [ABOVE_USUAL_KEY]
    plain.refresh_from_db()
    assert plain.status == OrderStatus.SUBMITTED


def test_a_wrong_password_signs_nothing(client, clinic_staff, prescriber, staff_patient):
    order = draft(clinic_staff, staff_patient, prescriber)
    client.force_login(prescriber.user)
    before = state()

    page = client.post(reverse("order_sign"), {"order": [order.pk], "password": "not it"})

    assert page.context["password_error"] == "The password is not correct: nothing was signed."
    assert state() == before
    nothing = client.post(reverse("order_sign"), {"password": TEST_PASSWORD})
    assert nothing.context["password_error"] == "Choose the orders to sign."
    assert state() == before


def test_only_the_named_prescriber_signs(clinic, clinic_staff, prescriber, staff_patient):
    colleague = PrescriberFactory(clinic=clinic)
    order = draft(clinic_staff, staff_patient, prescriber)
    before = state()

    with pytest.raises(SigningRefused) as refused:
        order_sign(orders=[order], actor=colleague.user, password=TEST_PASSWORD)
    assert refused.value.problems == {
        order.pk: f"Order {order.number} is drafted for another prescriber to sign."
    }
    for outsider in (clinic_staff, PrescriberFactory().user):
        with pytest.raises(PermissionDenied):
            order_sign(orders=[order], actor=outsider, password=TEST_PASSWORD)
    assert state() == before
    # The colleague's page does not list it, and a forged choice of it signs nothing.
    colleague_client = Client()
    colleague_client.force_login(colleague.user)
    page = colleague_client.post(
        reverse("order_sign"), {"order": [order.pk], "password": TEST_PASSWORD}
    )
    assert page.context["drafts"] == []
    assert state() == before


def test_a_signed_draft_cannot_be_signed_again(clinic_staff, prescriber, staff_patient):
    order = draft(clinic_staff, staff_patient, prescriber)
    order_sign(orders=[order], actor=prescriber.user, password=TEST_PASSWORD)
    before = state()

    with pytest.raises(SigningRefused, match="no longer awaiting a signature"):
        order_sign(orders=[order], actor=prescriber.user, password=TEST_PASSWORD)
    assert state() == before


def test_staff_draft_a_refill_and_the_prescriber_signs_it(clinic_staff, prescriber, staff_patient):
    first = draft(clinic_staff, staff_patient, prescriber)
    with pytest.raises(PrescriptionNotAccepted, match="not signed yet"):
        refill_of(first, clinic_staff, signer=prescriber)
    order_sign(orders=[first], actor=prescriber.user, password=TEST_PASSWORD)
    Order.objects.filter(pk=first.pk).update(status=OrderStatus.DELIVERED)

    refill = refill_of(first, clinic_staff, signer=prescriber)

    assert (refill.kind, refill.status, refill.signer) == (
        OrderKind.REFILL, OrderStatus.DRAFT, prescriber,
    )  # fmt: skip
    # The draft holds the prescription's one open refill.
    with pytest.raises(PrescriptionNotAccepted, match="is still open: one refill at a time"):
        refill_of(first, prescriber.user)
    # Filled today: the refill is early, which the prescriber confirms with a reason.
    signed = order_sign(
        orders=[refill], actor=prescriber.user, password=TEST_PASSWORD,
        acknowledged={refill.pk: ["refill.too_soon@refill"]},
        reasons={refill.pk: "The patient travels."},
    )  # fmt: skip
    assert [o.status for o in signed] == [OrderStatus.SUBMITTED]
    assert [(w["key"], w["reason"]) for w in signed[0].acknowledged_warnings] == [
        ("refill.too_soon@refill", "The patient travels.")
    ]


def test_staff_or_the_prescriber_discard_a_draft(client, clinic_staff, prescriber, staff_patient):
    order = draft(clinic_staff, staff_patient, prescriber)
    client.force_login(clinic_staff)

    client.post(reverse("order_cancel", args=[order.pk]), {"reason": "Wrong patient."})

    order.refresh_from_db()
    assert order.status == OrderStatus.CANCELLED
    assert order.events.last().actor == clinic_staff


def test_staff_cannot_amend_answer_or_cancel_a_signed_order(
    client, clinic_staff, prescriber, staff_patient
):
    order = draft(clinic_staff, staff_patient, prescriber)
    order_sign(orders=[order], actor=prescriber.user, password=TEST_PASSWORD)
    client.force_login(clinic_staff)
    before = state()

    assert client.get(reverse("order_amend", args=[order.pk])).status_code == 403
    client.post(reverse("order_cancel", args=[order.pk]), {"reason": "no"})
    assert client.get(reverse("order_sign")).status_code == 403
    assert state() == before


def test_the_dashboard_leads_with_drafts(client, clinic_staff, prescriber, staff_patient):
    order = draft(clinic_staff, staff_patient, prescriber)
    client.force_login(prescriber.user)
    page = client.get(reverse("home")).content.decode()
    assert "Awaiting your signature" in page and order.number in page
    client.force_login(clinic_staff)
    page = client.get(reverse("home")).content.decode()
    assert "Drafts awaiting a signature" in page and f"for {prescriber}" in page


def test_a_staff_refill_names_its_signer(clinic_staff, prescriber, staff_patient):
    first = draft(clinic_staff, staff_patient, prescriber)
    order_sign(orders=[first], actor=prescriber.user, password=TEST_PASSWORD)
    Order.objects.filter(pk=first.pk).update(status=OrderStatus.DELIVERED)

    with pytest.raises(SignerRefused):
        refill_of(first, clinic_staff)
    assert Order.objects.count() == 1

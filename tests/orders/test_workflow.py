"""The pharmacy's order workflow: the transition matrix, the e-signature, hold and answer,
and the admin's move buttons and work queues."""

import datetime
import re
from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse

from orders.dosing import DosageForm, Regimen, Step
from orders.models import FormulationVersion, Order, OrderEvent, OrderStatus, Prescription
from orders.services import order_transition, rx_number_for
from orders.workflow import SERVICE_MOVES, TRANSITIONS, Role
from pharmacy.fulfilment import order_move
from pharmacy.labels import label_barcodes
from pharmacy.models import Dispense
from tests.factories import (
    TEST_PASSWORD,
    BatchFactory,
    FormulationVersionFactory,
    PatientFactory,
    PrescriberFactory,
    clinic_of,
    submit_order,
)
from tests.pharmacy.test_scanning import scanned_form
from tests.signing_in import verified_staff_login

pytestmark = pytest.mark.django_db
S = OrderStatus

REGIMEN = Regimen(
    dosage_form=DosageForm.CAPSULE, steps=(Step(Decimal("1.5"), 14), Step(Decimal("3"), 30)),
    doses_per_day=1, quantity=Decimal("44"), days_supply=44, refills=2,
)  # fmt: skip
INPUTS = {
    "password": TEST_PASSWORD, "text": "Please confirm the patient stopped tramadol.",
    "carrier": "UPS", "tracking_number": "1Z999AA10123456784",
}  # fmt: skip


def submitted_order(prescriber) -> Order:
    patient = PatientFactory(
        clinic=clinic_of(prescriber), takes_opioids=False, current_medications="",
        date_of_birth=datetime.date(1970, 5, 5),
    )  # fmt: skip
    return submit_order(prescriber, patient, REGIMEN)


def stock_for(order: Order) -> list:
    """A released batch of each product the order needs (100 units each)."""
    made = []
    for line in order.lines():
        version = FormulationVersion.objects.filter(
            formulation=line.formulation, status="approved"
        ).first() or FormulationVersionFactory(formulation=line.formulation)
        made.append(BatchFactory(formulation_version=version))
    return made


def dispense_fully(order: Order) -> None:
    """Every line dispensed, and the Rx number verification gives (the labels need it)."""
    for line, batch in zip(order.lines(), stock_for(order), strict=True):
        Dispense.objects.create(order=order, line=line, batch=batch, units=line.quantity,
                                dispensed_by=batch.compounded_by)  # fmt: skip
    Prescription.objects.filter(pk=order.prescription_id).update(
        rx_number=rx_number_for(order.prescription_id)
    )


def inputs_for(order: Order, to_status: S) -> dict:
    """What each move's form gets; the final check scans the order's labels."""
    if to_status == S.READY:
        return {**INPUTS, "labels": "\n".join(label_barcodes(order))}
    return INPUTS


def with_status(order: Order, status: S) -> Order:
    # A draft awaits its prescriber's signature (the prescriber who wrote it, here).
    signer = order.prescription.prescriber if status == S.DRAFT else None
    Order.objects.filter(pk=order.pk).update(status=status, signer=signer)
    order.refresh_from_db()
    return order


@pytest.fixture
def actors(prescriber, other_prescriber, pharmacist, technician):
    return {
        "prescriber": prescriber.user,
        "other clinic's prescriber": other_prescriber.user,
        "technician": technician,
        "pharmacist": pharmacist,
    }


ROLE_OF = {"prescriber": Role.PRESCRIBER, "technician": Role.TECHNICIAN,
           "pharmacist": Role.PHARMACIST, "other clinic's prescriber": None}  # fmt: skip


@pytest.mark.parametrize("from_status", list(S))
@pytest.mark.parametrize("to_status", list(S))
def test_transition_matrix(prescriber, actors, from_status, to_status):
    """Every status x target x role: allowed moves happen with one event; others change
    nothing."""
    if from_status == to_status:
        return
    order = with_status(submitted_order(prescriber), from_status)
    if to_status == S.READY:
        dispense_fully(order)  # the final check needs every line dispensed
    move = TRANSITIONS.get((from_status, to_status))
    # A move that a service makes (a recall's) is no move of the admin's buttons for anyone.
    by_service = move is not None and move.needs in SERVICE_MOVES
    for name, actor in actors.items():
        events_before = OrderEvent.objects.filter(order=order).count()
        allowed = move is not None and not by_service and ROLE_OF[name] in move.roles
        if allowed:
            order_move(
                order=order, to_status=to_status, actor=actor, inputs=inputs_for(order, to_status)
            )
            order.refresh_from_db()
            assert order.status == to_status, (name, from_status, to_status)
            assert OrderEvent.objects.filter(order=order).count() == events_before + 1
            event = order.events.last()
            assert (event.actor, event.from_status, event.to_status) == (
                actor, from_status, to_status,
            )  # fmt: skip
            order = with_status(order, from_status)  # back, for the next actor
        else:
            error = PermissionDenied if move is not None and not by_service else ValidationError
            with pytest.raises(error):
                order_move(
                    order=order,
                    to_status=to_status,
                    actor=actor,
                    inputs=inputs_for(order, to_status),
                )
            order.refresh_from_db()
            assert order.status == from_status
            assert OrderEvent.objects.filter(order=order).count() == events_before


def test_verification_is_an_electronic_signature_and_gives_the_rx_number(prescriber, pharmacist):
    order = with_status(submitted_order(prescriber), S.IN_REVIEW)

    with pytest.raises(ValidationError, match="The password is not correct"):
        order_move(order=order, to_status=S.VERIFIED, actor=pharmacist,
                   inputs={"password": "wrong-password"})  # fmt: skip
    order.refresh_from_db()
    assert order.status == S.IN_REVIEW
    assert order.events.count() == 1
    assert Prescription.objects.get().rx_number is None

    order_move(order=order, to_status=S.VERIFIED, actor=pharmacist,
               inputs={"password": TEST_PASSWORD})  # fmt: skip

    event = order.events.last()
    assert event.signed_by == f"{pharmacist.get_full_name()} <{pharmacist.email}>"
    assert event.signature_meaning == "verified prescription"
    assert event.actor == pharmacist
    prescription = Prescription.objects.get()
    assert prescription.rx_number == str(7000000 + prescription.pk)


def test_a_technician_cannot_verify_even_with_the_right_password(prescriber, technician):
    order = with_status(submitted_order(prescriber), S.IN_REVIEW)
    with pytest.raises(PermissionDenied):
        order_move(order=order, to_status=S.VERIFIED, actor=technician,
                   inputs={"password": TEST_PASSWORD})  # fmt: skip
    order.refresh_from_db()
    assert (order.status, order.events.count()) == (S.IN_REVIEW, 1)
    assert Prescription.objects.get().rx_number is None


@pytest.mark.parametrize(
    ("to_status", "inputs", "message"),
    [
        (S.ON_HOLD, {"text": "  "}, "Write the question for the prescriber."),
        (S.REJECTED, {"text": ""}, "Write the reason for rejecting the order."),
    ],
)
def test_hold_and_reject_need_words(prescriber, pharmacist, to_status, inputs, message):
    order = with_status(submitted_order(prescriber), S.IN_REVIEW)
    with pytest.raises(ValidationError, match=re.escape(message)):
        order_move(order=order, to_status=to_status, actor=pharmacist, inputs=inputs)
    assert order.events.count() == 1


def test_shipping_needs_carrier_and_tracking(prescriber, technician):
    order = with_status(submitted_order(prescriber), S.READY)
    with pytest.raises(ValidationError, match=r"Write the tracking number\."):
        order_move(order=order, to_status=S.SHIPPED, actor=technician, inputs={"carrier": "UPS"})
    order_move(order=order, to_status=S.SHIPPED, actor=technician, inputs=INPUTS)
    order.refresh_from_db()
    assert (order.carrier, order.tracking_number) == ("UPS", "1Z999AA10123456784")


def test_prescriber_answers_a_hold_on_the_order_page(prescriber_client, prescriber, pharmacist):
    order = with_status(submitted_order(prescriber), S.IN_REVIEW)
    order_move(order=order, to_status=S.ON_HOLD, actor=pharmacist,
               inputs={"text": "Has the patient stopped tramadol?"})  # fmt: skip
    page = prescriber_client.get(reverse("order_detail", args=[order.pk])).content.decode()
    assert "Has the patient stopped tramadol?" in page
    assert reverse("order_answer", args=[order.pk]) in page

    prescriber_client.post(reverse("order_answer", args=[order.pk]),
                           {"answer": "Yes, three weeks ago."})  # fmt: skip

    order.refresh_from_db()
    assert order.status == S.IN_REVIEW
    assert list(order.events.values_list("to_status", "note")) == [
        ("submitted", "Prescription written and submitted."),
        ("on_hold", "Has the patient stopped tramadol?"),
        ("in_review", "Yes, three weeks ago."),
    ]


def amend_data(**overrides):
    data = {
        "dosage_form": "capsule", "concentration_mg_per_ml": "", "steps": "1 x 14, 2 x 30",
        "doses_per_day": "1", "time_of_day": "morning", "quantity": "44", "days_supply": "44",
        "refills": "1", "diagnosis_codes": "M79.7", "reason_for_compounding": "Low strength.",
        "answer": "Starting lower, in the morning.",
    }  # fmt: skip
    return {**data, **overrides}


def test_prescriber_amends_the_prescription_in_answer(prescriber_client, prescriber, pharmacist):
    order = with_status(submitted_order(prescriber), S.ON_HOLD)
    url = reverse("order_amend", args=[order.pk])
    assert prescriber_client.get(url).context["form"].initial["steps"] == "1.5 x 14, 3 x 30"

    refused = prescriber_client.post(url, amend_data(steps="6 x 44"))
    assert "steps" in refused.context["form"].errors
    order.refresh_from_db()
    assert order.status == S.ON_HOLD

    prescriber_client.post(url, amend_data())

    order.refresh_from_db()
    assert order.status == S.IN_REVIEW
    prescription = order.prescription
    assert prescription.directions == (
        "Take 1 capsule (1 mg) in the morning for 14 days, then 1 capsule (2 mg) in the morning "
        "for 30 days."
    )
    assert [int(line.quantity) for line in order.lines()] == [14, 30]
    assert prescription.history.count() == 2  # the first version is kept
    assert order.events.last().note.startswith("Starting lower, in the morning.")


def test_another_clinic_cannot_answer(client, prescriber, other_prescriber):
    order = with_status(submitted_order(prescriber), S.ON_HOLD)
    client.force_login(other_prescriber.user)
    assert client.post(reverse("order_answer", args=[order.pk]), {"answer": "x"}).status_code == 404
    assert client.get(reverse("order_amend", args=[order.pk])).status_code == 404
    order.refresh_from_db()
    assert order.status == S.ON_HOLD


def test_admin_takes_an_order_from_submitted_to_delivered(
    client, prescriber, pharmacist, technician
):
    order = submitted_order(prescriber)

    def move(user, to_status, **data):
        verified_staff_login(client, user)
        url = reverse("admin:orders_order_move", args=[order.pk, to_status])
        assert client.get(url).status_code == 200
        response = client.post(url, data)
        assert response.status_code == 302, response.content.decode()[:500]
        order.refresh_from_db()
        assert order.status == to_status

    move(pharmacist, S.IN_REVIEW)
    move(pharmacist, S.VERIFIED, password=TEST_PASSWORD)
    stock_for(order)
    verified_staff_login(client, technician)
    client.post(reverse("admin:orders_order_dispense", args=[order.pk]), scanned_form(order))
    order.refresh_from_db()
    assert order.status == S.COMPOUNDING  # dispensing started it
    assert [int(d.units) for d in order.dispenses.all()] == [14, 30]
    move(pharmacist, S.READY, labels="\n".join(label_barcodes(order)))
    move(technician, S.SHIPPED, carrier="UPS", tracking_number="1Z1")
    move(technician, S.DELIVERED)

    client.force_login(prescriber.user)
    timeline = client.get(reverse("order_detail", args=[order.pk])).context["events"]
    assert [event.to_status for event in timeline] == [
        "submitted", "in_review", "verified", "compounding", "ready", "shipped", "delivered",
    ]  # fmt: skip


def test_the_final_check_needs_every_line_dispensed(prescriber, pharmacist):
    order = with_status(submitted_order(prescriber), S.COMPOUNDING)
    with pytest.raises(ValidationError, match="is not fully dispensed yet"):
        order_move(order=order, to_status=S.READY, actor=pharmacist, inputs={})
    order.refresh_from_db()
    assert (order.status, order.events.count()) == (S.COMPOUNDING, 1)


def test_admin_move_refuses_a_wrong_password_on_the_form(client, prescriber, pharmacist):
    order = with_status(submitted_order(prescriber), S.IN_REVIEW)
    verified_staff_login(client, pharmacist)
    url = reverse("admin:orders_order_move", args=[order.pk, S.VERIFIED])
    response = client.post(url, {"password": "not-it"})
    assert response.status_code == 200
    assert response.context["form"].non_field_errors() == [
        "The password is not correct: the order was not verified."
    ]
    order.refresh_from_db()
    assert order.status == S.IN_REVIEW


def test_admin_shows_only_the_moves_of_the_role(client, prescriber, pharmacist, technician):
    order = with_status(submitted_order(prescriber), S.IN_REVIEW)
    page = reverse("admin:orders_order_change", args=[order.pk])
    verified_staff_login(client, pharmacist)
    assert [m.label for _, m in client.get(page).context["moves"]] == [
        "Verify", "Put on hold", "Reject", "Cancel",
    ]  # fmt: skip
    verified_staff_login(client, technician)
    assert client.get(page).context["moves"] == []
    url = reverse("admin:orders_order_move", args=[order.pk, S.VERIFIED])
    client.post(url, {"password": TEST_PASSWORD})
    order.refresh_from_db()
    assert (order.status, order.events.count()) == (S.IN_REVIEW, 1)


def test_work_queues_on_the_admin_index(client, pharmacist):
    prescriber = PrescriberFactory()
    for status in (S.SUBMITTED, S.IN_REVIEW, S.ON_HOLD, S.VERIFIED, S.READY, S.READY, S.SHIPPED):
        with_status(submitted_order(prescriber), status)
    verified_staff_login(client, pharmacist)
    queues = client.get(reverse("admin:index")).context["work_queues"]
    assert [(q["label"], q["count"]) for q in queues] == [
        ("To review", 2), ("On hold (waiting for the prescriber)", 1),
        ("To compound and dispense", 1), ("Ready to ship", 2),
        ("Prescribers' licences expired (their orders for that state wait)", 0),
        ("Prescribers' licences expiring within 30 days", 0),
    ]  # fmt: skip
    listed = client.get(queues[0]["url"]).context["cl"].result_list
    assert [o.status for o in listed] == ["submitted", "in_review"]  # oldest first


@pytest.mark.parametrize(
    ("from_status", "to_status"),
    [(S.IN_REVIEW, S.VERIFIED), (S.IN_REVIEW, S.ON_HOLD), (S.IN_REVIEW, S.REJECTED),
     (S.ON_HOLD, S.IN_REVIEW), (S.READY, S.SHIPPED), (S.COMPOUNDING, S.READY)],
)  # fmt: skip
def test_a_move_that_needs_a_form_cannot_be_made_without_it(prescriber, pharmacist, from_status,
                                                            to_status):  # fmt: skip
    """Even a caller holding a stale order, or calling the generic transition, cannot verify
    without a signature, ship without tracking or pass the final check undispensed."""
    order = with_status(submitted_order(prescriber), from_status)
    with pytest.raises(ValidationError, match="needs its own form"):
        order_transition(order=order, to_status=to_status, actor=pharmacist)
    order.refresh_from_db()
    assert (order.status, order.events.count()) == (from_status, 1)


def test_order_move_follows_the_stored_status_not_a_stale_object(prescriber, pharmacist):
    stale = submitted_order(prescriber)
    Order.objects.filter(pk=stale.pk).update(status=S.IN_REVIEW)  # someone started the review
    with pytest.raises(ValidationError, match="The password is not correct"):
        order_move(order=stale, to_status=S.VERIFIED, actor=pharmacist, inputs={})
    assert Order.objects.get(pk=stale.pk).status == S.IN_REVIEW

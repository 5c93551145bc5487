"""The admin's order page reads the order and every related row it shows in one query
(core/json_rows.py); these tests check that what it shows is still exact."""

import datetime
import re
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from core.json_rows import instances, json_rows, values
from orders.dosing import DosageForm, Regimen, Step
from orders.models import Order, OrderEvent, OrderStatus
from orders.services import order_start_review, prescription_refill
from pharmacy.fulfilment import order_final_check
from pharmacy.labels import label_barcodes
from pharmacy.models import Delivery, Dispense, LabelDocument
from tests.factories import PatientFactory, clinic_of, submit_order
from tests.pharmacy.test_labels import TITRATION, dispensed, stock_titration, submitted
from tests.signing_in import verified_staff_login

pytestmark = pytest.mark.django_db

MONTHLY = Regimen(
    dosage_form=DosageForm.CAPSULE, steps=(Step(Decimal("4.5"), 30),), doses_per_day=1,
    quantity=Decimal("30"), days_supply=30, refills=2,
)  # fmt: skip


@pytest.fixture
def titration_order(prescriber, pharmacist, technician):
    """Verified and dispensed: three capsule strengths, each from its own batch."""
    stock_titration()
    return dispensed(submitted(prescriber, TITRATION), pharmacist, technician)


def table_rows(html: str, table_id: str) -> list[list[str]]:
    body = re.search(rf'<table id="{table_id}">.*?<tbody>(.*?)</tbody>', html, re.S).group(1)
    return [
        [" ".join(re.sub(r"<[^>]+>", " ", cell).split())
         for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)
    ]  # fmt: skip


def test_the_order_page_shows_every_dispense_label_email_and_event(
    client, titration_order, pharmacist, technician, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):  # renders the label, sends the mail
        order = order_final_check(order=titration_order, actor=pharmacist,
                                  scans=label_barcodes(titration_order))  # fmt: skip
    verified_staff_login(client, pharmacist)

    html = client.get(reverse("admin:orders_order_change", args=[order.pk])).content.decode()

    dispenses = Dispense.objects.filter(order=order).select_related("batch", "line__formulation")
    assert table_rows(html, "dispenses") == [
        [d.line.formulation.name, d.batch.lot_number, f"{d.units.normalize():f}",
         technician.get_full_name(), timezone.localtime(d.dispensed_at).strftime("%Y-%m-%d %H:%M")]
        for d in dispenses.order_by("pk")
    ]  # fmt: skip
    label = LabelDocument.objects.get(order=order)
    assert table_rows(html, "labels") == [
        ["version 1", timezone.localtime(label.created_at).strftime("%Y-%m-%d %H:%M")]
    ]
    # Served by the admin (which records the download), never straight from the media folder.
    label_url = reverse("admin:orders_order_label", args=[order.pk, label.version])
    assert f'href="{label_url}"' in html
    assert label.file.url not in html
    delivery = Delivery.objects.get(order=order)
    assert table_rows(html, "deliveries") == [
        [delivery.get_kind_display(), delivery.recipient, delivery.get_status_display(),
         str(delivery.attempts), timezone.localtime(delivery.sent_at).strftime("%Y-%m-%d %H:%M"),
         ""]  # sent: no reason to show
    ]  # fmt: skip
    events = OrderEvent.objects.filter(order=order).select_related("actor").order_by("pk")
    timeline = table_rows(html, "timeline")
    assert [row[1:5] for row in timeline] == [
        [e.title, str(e.actor or ""), e.get_from_status_display(), e.get_to_status_display()]
        for e in events
    ]
    # The final check, then the worker's label and its email (no person: the pharmacy).
    assert [row[1:3] for row in timeline][-3:] == [
        ["Ready", pharmacist.get_full_name()],
        ["Label ready to download (version 1)", ""],
        ["Emailed: label ready", ""],
    ]
    lines = order.lines().select_related("formulation").order_by("position")
    assert len(lines) == 3
    assert table_rows(html, "summary-bottles") == [
        [line.formulation.name, f"{line.quantity.normalize():f} capsule", "58",
         "180 days (nonaqueous solid)"]
        for line in lines
    ]  # fmt: skip


def test_the_order_page_leads_with_the_clinical_summary_then_the_moves_then_the_record(
    client, prescriber, pharmacist
):
    patient = PatientFactory(
        clinic=clinic_of(prescriber), first_name="Ada", last_name="Summary",
        date_of_birth=datetime.date(1970, 5, 5), takes_opioids=False,
        allergies="Sulfa drugs", current_medications="Metformin 500 mg", conditions=["M79.7"],
    )  # fmt: skip
    first = submit_order(prescriber, patient, MONTHLY)
    Order.objects.filter(pk=first.pk).update(status=OrderStatus.SHIPPED)
    refill = prescription_refill(
        prescription=first.prescription, actor=prescriber.user, ship_to="clinic",
        acknowledged=["refill.too_soon@refill"], reason="Travel.", needed_by=None,
        idempotency_key=None,
    )  # fmt: skip
    verified_staff_login(client, pharmacist)

    html = client.get(reverse("admin:orders_order_change", args=[refill.pk])).content.decode()

    summary = html.index('id="order-summary"')
    assert summary < html.index('id="order-moves"') < html.index(">Record</h2>")
    assert html.index(">Record</h2>") < html.index('id="dispenses"')
    assert '<fieldset class="module aligned collapse"' in html
    text = " ".join(re.sub(r"<[^>]+>", " ", html[summary:]).split())
    age = patient.age
    assert f"Ada Summary , {age} years (born 05/05/1970), female · Illinois" in text
    assert "Takes opioids no Allergies Sulfa drugs Medications Metformin 500 mg" in text
    assert "Conditions M79.7" in text
    licence = prescriber.licences.get()
    assert (
        f"{prescriber.first_name} {prescriber.last_name}, {prescriber.get_credentials_display()}"
        f" · NPI {prescriber.npi}"
    ) in text
    assert f"Licence in Illinois {licence.number}, expires {licence.expires_on:%m/%d/%Y}" in text
    assert "Account Approved" in text
    assert "Prescription: refill 1 of 2" in text
    assert table_rows(html, "summary-bottles") == [
        ["Naltrexone HCl 4.5 mg capsule", "30 capsule", "30", "180 days (nonaqueous solid)"]
    ]
    ordered = f"{timezone.localtime(first.created_at):%m/%d/%Y}"
    assert table_rows(html, "summary-fills") == [
        [first.number, "original", "Shipped", ordered, "not dispensed"]
    ]
    assert "(this refill) Refill too soon" in text and "Reason: Travel." in text


def test_the_verify_page_shows_the_summary_beside_the_signature_and_what_is_signed(
    client, prescriber, pharmacist
):
    order = order_start_review(order=submitted(prescriber, TITRATION), actor=pharmacist)
    verified_staff_login(client, pharmacist)

    page = client.get(reverse("admin:orders_order_move", args=[order.pk, "verified"]))

    html = page.content.decode()
    assert html.index('class="sign-beside"') < html.index('id="order-summary"')
    assert html.index('id="order-summary"') < html.index('id="what-you-sign"')
    signed = " ".join(re.sub(r"<[^>]+>", " ", html[html.index('id="what-you-sign"') :]).split())
    patient = order.prescription.patient
    assert (
        f"As {pharmacist.get_full_name()} , now: verified prescription : order {order.number} "
        f"for {patient.first_name} {patient.last_name} (born "
        f"{patient.date_of_birth:%m/%d/%Y}), prescribed by {order.prescription.prescriber}: "
        "14 capsule of Naltrexone HCl 1.5 mg capsule; 14 capsule of Naltrexone HCl 3 mg "
        "capsule; 30 capsule of Naltrexone HCl 4.5 mg capsule, 58 days' supply, directions "
        f"\u201c{order.prescription.directions}\u201d"
    ) in signed


def test_json_rows_give_back_exact_values_and_missing_relations_as_none(titration_order):
    order = titration_order
    OrderEvent.objects.create(order=order, to_status=OrderStatus.VERIFIED, note="No actor")
    annotated = type(order).objects.annotate(
        dispensed=json_rows(Dispense.objects, "order", "id", "units", "dispensed_at",
                            "batch__lot_number", "line__formulation__name"),
        timeline=json_rows(OrderEvent.objects, "order", "id", "created_at", "to_status",
                           "actor__email"),
    ).get(pk=order.pk)  # fmt: skip

    made = instances(Dispense, annotated.dispensed)
    stored = list(Dispense.objects.filter(order=order).order_by("pk"))
    assert [(d.pk, d.units, d.dispensed_at, d.batch.lot_number, d.line.formulation.name)
            for d in made] == [
        (d.pk, d.units, d.dispensed_at, d.batch.lot_number, d.line.formulation.name)
        for d in stored
    ]  # fmt: skip
    assert all(isinstance(d.units, Decimal) for d in made)
    assert all(d.dispensed_at.tzinfo is not None for d in made)
    events = instances(OrderEvent, annotated.timeline, ("created_at", "pk"))
    assert events[-1].note == "" and events[-1].actor is None  # only the fields asked for
    assert events[0].actor.email == order.created_by.email
    assert all(isinstance(e.created_at, datetime.datetime) for e in events)


def test_json_rows_as_values_are_what_the_instances_carry(titration_order):
    """values(): the same Python values as instances() (a Decimal, an aware time, None for a
    missing relation), by path and in order, without making instances."""
    order = titration_order
    OrderEvent.objects.create(order=order, to_status=OrderStatus.VERIFIED, note="No actor")
    annotated = type(order).objects.annotate(
        dispensed=json_rows(Dispense.objects, "order", "id", "units", "dispensed_at",
                            "batch__lot_number"),
        timeline=json_rows(OrderEvent.objects, "order", "id", "created_at", "actor__email"),
    ).get(pk=order.pk)  # fmt: skip

    rows = values(Dispense, annotated.dispensed, order_by=("dispensed_at", "id"))
    stored = Dispense.objects.filter(order=order).order_by("dispensed_at", "pk")
    assert rows == [
        {"id": d.pk, "units": d.units, "dispensed_at": d.dispensed_at,
         "batch__lot_number": d.batch.lot_number}
        for d in stored
    ]  # fmt: skip
    assert rows and all(isinstance(row["units"], Decimal) for row in rows)
    assert all(row["dispensed_at"].tzinfo is not None for row in rows)
    events = values(OrderEvent, annotated.timeline, order_by=("created_at", "id"))
    assert [(e["id"], e["created_at"], e["actor__email"]) for e in events] == list(
        order.events.order_by("created_at", "pk").values_list("pk", "created_at", "actor__email")
    )
    assert events[-1]["actor__email"] is None
    assert values(OrderEvent, [], order_by=("id",)) == []


def test_status_names_never_codes_in_events_and_the_field_history(client, prescriber, pharmacist):
    order = order_start_review(order=submitted(prescriber, TITRATION), actor=pharmacist)
    verified_staff_login(client, pharmacist)

    event = order.events.get(to_status=OrderStatus.IN_REVIEW)
    assert str(event) == f"{order}: Submitted \u2192 In review"
    history = client.get(reverse("admin:orders_order_history", args=[order.pk])).content.decode()
    changes = " ".join(re.sub(r"<[^>]+>", " ", history).split())
    assert "Status: Submitted &nbsp;&rarr;&nbsp;&nbsp;In review" in changes
    assert "in_review" not in changes
    assert "compares them" not in changes  # the template's comment stays a comment

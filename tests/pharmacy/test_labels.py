"""Prescription labels: what each label says (read back from the PDF), the barcode (decoded from
a 300 dpi raster), escaping, the restricted URL fetcher, one document for many orders, fonts
subset by HarfBuzz, and fonts and stylesheets built once per process."""

import dataclasses
import datetime
import gc
import io
import logging
import re
import uuid
import weakref
from decimal import Decimal

import pypdfium2
import pytest
import zxingcpp
from django.conf import settings
from django.test import override_settings
from django.utils import timezone
from django.utils.html import escape
from pypdf import PdfReader
from weasyprint import HTML
from weasyprint.document import Document

from orders import dosing
from orders.bud import BudCategory, label_storage
from orders.dosing import DosageForm, Regimen, Step
from orders.models import Formulation, Order, OrderKind, OrderStatus, Prescription
from orders.services import order_start_review, prescription_refill, prescription_refills_left
from pharmacy import labels
from pharmacy.dispensing import dispense_allocate
from pharmacy.fulfilment import order_move, order_reject
from pharmacy.models import Batch
from pharmacy.recalls import batch_recall
from tests.factories import (
    TEST_PASSWORD,
    TITRATION,
    BatchFactory,
    FormulationVersionFactory,
    PatientFactory,
    StaffFactory,
    clinic_of,
    submit_order,
)

pytestmark = pytest.mark.django_db

TODAY = timezone.localdate()
BUD_EARLY = TODAY + datetime.timedelta(days=120)
BUD_LATE = TODAY + datetime.timedelta(days=170)
ROOM_OR_FRIDGE = "Store at room temperature or in a refrigerator"
FRIDGE = "Refrigerate (store in a refrigerator)"
CHILDREN = labels.CHILDREN

# One label per bottle, each with that bottle's dose, days and when the next one starts.
BOTTLE_DIRECTIONS = [
    "Take 1 capsule (1.5 mg) at bedtime for 14 days, then start the 3 mg bottle.",
    "From day 15 (after the 1.5 mg bottle), take 1 capsule (3 mg) at bedtime for 14 days, then "
    "start the 4.5 mg bottle.",
    "From day 29 (after the 3 mg bottle), take 1 capsule (4.5 mg) at bedtime; continue nightly.",
]
# An unpreserved oral liquid: 14 days at most (its beyond-use date, USP <795>), refrigerated.
LIQUID = Regimen(
    dosage_form=DosageForm.ORAL_LIQUID, concentration_mg_per_ml=Decimal("1"),
    steps=(Step(Decimal("1.5"), 7), Step(Decimal("3"), 7)), doses_per_day=1,
    quantity=Decimal("31.5"), days_supply=14, refills=0,
)  # fmt: skip
LIQUID_DIRECTIONS = (
    "Take 1.5 mL (1.5 mg) by mouth at bedtime for 7 days, then 3 mL (3 mg) by mouth at bedtime; "
    "continue nightly."
)


# --- Making verified, dispensed orders ------------------------------------------------------


@pytest.fixture
def named_prescriber(prescriber):
    prescriber.first_name, prescriber.last_name, prescriber.credentials = "Lena", "Ortiz", "NP"
    prescriber.save()
    return prescriber


@pytest.fixture
def pharmacist(db):
    return StaffFactory(group="Pharmacist", first_name="Pat", last_name="Quincy")


def capsule_version(strength: str):
    formulation = Formulation.objects.get(dosage_form="capsule", strength_mg=Decimal(strength))
    return FormulationVersionFactory(
        formulation=formulation, storage=ROOM_OR_FRIDGE,
        auxiliary_labels=[labels.OPIOID_WARNING, CHILDREN],
    )  # fmt: skip


def stock_titration() -> None:
    """Batches of the three strengths; the 1.5 mg line will come from two of them."""
    v15, v3, v45 = capsule_version("1.5"), capsule_version("3"), capsule_version("4.5")
    BatchFactory(formulation_version=v15, lot_number="LDN15-B", beyond_use_date=BUD_EARLY,
                 units_remaining=Decimal("10"))  # fmt: skip
    BatchFactory(formulation_version=v15, lot_number="LDN15-A", beyond_use_date=BUD_LATE)
    BatchFactory(formulation_version=v3, lot_number="LDN30-A", beyond_use_date=BUD_LATE)
    BatchFactory(formulation_version=v45, lot_number="LDN45-A", beyond_use_date=BUD_LATE)


def stock_product(name: str, lot: str, **record):
    """A released batch of 1000 mL of a liquid, drops or cream, by a record of its own."""
    record.setdefault("auxiliary_labels", ["Do not take with opioid pain or cough medicines."])
    version = FormulationVersionFactory(
        formulation=Formulation.objects.get(name=name), storage=record.pop("storage", ""),
        **record,
    )  # fmt: skip
    BatchFactory(formulation_version=version, lot_number=lot, beyond_use_date=BUD_LATE,
                 planned_units=Decimal("1000"), units_remaining=Decimal("1000"))  # fmt: skip


def stock_liquid():
    stock_product(
        "Naltrexone HCl 1 mg/mL oral liquid",
        "LIQ-7",
        bud_category="aqueous_unpreserved",
        storage="Protect from light",
    )


def submitted(prescriber, regimen: Regimen, **patient_fields) -> Order:
    patient = PatientFactory(
        clinic=clinic_of(prescriber), created_by=prescriber.user,
        **{"first_name": "Ada", "last_name": "Quill",
           "date_of_birth": datetime.date(1970, 5, 5), **patient_fields},
    )  # fmt: skip
    return submit_order(prescriber, patient, regimen)


def verify(order: Order, pharmacist) -> Order:
    order = order_start_review(order=order, actor=pharmacist)
    return order_move(order=order, to_status=OrderStatus.VERIFIED, actor=pharmacist,
                      inputs={"password": TEST_PASSWORD})  # fmt: skip


def dispensed(order: Order, pharmacist, technician) -> Order:
    order = verify(order, pharmacist)
    dispense_allocate(order=order, actor=technician)
    return order


@pytest.fixture
def titration_order(named_prescriber, pharmacist, technician) -> Order:
    stock_titration()
    return dispensed(submitted(named_prescriber, TITRATION), pharmacist, technician)


@pytest.fixture
def liquid_order(named_prescriber, pharmacist, technician) -> Order:
    stock_liquid()
    return dispensed(submitted(named_prescriber, LIQUID), pharmacist, technician)


# --- Reading the PDF back -------------------------------------------------------------------


def page_texts(pdf: bytes) -> list[str]:
    """Each page's text with runs of white space (line breaks) made single spaces."""
    return [" ".join(page.extract_text().split()) for page in PdfReader(io.BytesIO(pdf)).pages]


def decoded_barcodes(pdf: bytes, page_index: int = 0) -> list[str]:
    document = pypdfium2.PdfDocument(pdf)
    image = document[page_index].render(scale=300 / 72).to_pil()
    results = zxingcpp.read_barcodes(image)
    assert all(result.format == zxingcpp.BarcodeFormat.Code128 for result in results)
    return [result.text for result in results]


def us_date(day: datetime.date) -> str:
    return day.strftime("%m/%d/%Y")


@pytest.fixture
def fetched_urls(monkeypatch) -> list[str]:
    """Every URL WeasyPrint asks the label fetcher for (the fetcher still decides)."""
    asked = []
    real_fetch = labels.StaticFilesOnlyFetcher.fetch

    def recording_fetch(self, url, headers=None):
        asked.append(url)
        return real_fetch(self, url, headers)

    monkeypatch.setattr(labels.StaticFilesOnlyFetcher, "fetch", recording_fetch)
    return asked


# --- What the label says --------------------------------------------------------------------


def test_a_three_strength_titration_has_a_label_per_bottle_with_its_own_directions(
    titration_order,
):
    prescription = Prescription.objects.get()
    rx = prescription.rx_number
    assert rx == str(settings.RX_NUMBER_START + prescription.pk)

    pdf = labels.render_label_pdf(titration_order)

    texts = page_texts(pdf)
    assert len(texts) == 3
    header = f"{settings.PHARMACY_NAME} · {settings.PHARMACY_ADDRESS} · {settings.PHARMACY_PHONE}"
    expiry = us_date(prescription.expires_on)
    common = [
        header,
        f"Rx {rx} · Original fill",
        f"Filled {us_date(TODAY)} · RPh PQ",  # the verifying pharmacist's initials
        "Ada Quill DOB 05/05/1970",
        "Prescriber: Lena Ortiz, NP",
        f"Refills remaining: 2 · Rx expires {expiry}",
        "Compounded preparation",
        ROOM_OR_FRIDGE,
        f"{labels.OPIOID_WARNING} {CHILDREN}",
    ]
    per_bottle = [
        ["Naltrexone HCl 1.5 mg capsule · Qty 14 capsules",
         f"Do not use after {us_date(BUD_EARLY)}", "Lot LDN15-B, LDN15-A", BOTTLE_DIRECTIONS[0],
         f"{rx}|0|LDN15-B"],
        ["Naltrexone HCl 3 mg capsule · Qty 14 capsules",
         f"Do not use after {us_date(BUD_LATE)}", "Lot LDN30-A", BOTTLE_DIRECTIONS[1],
         f"{rx}|0|LDN30-A"],
        ["Naltrexone HCl 4.5 mg capsule · Qty 30 capsules",
         f"Do not use after {us_date(BUD_LATE)}", "Lot LDN45-A", BOTTLE_DIRECTIONS[2],
         f"{rx}|0|LDN45-A"],
    ]  # fmt: skip
    others = ["1.5 mg", "3 mg", "4.5 mg"]
    for text, own, strength in zip(texts, per_bottle, others, strict=True):
        for expected in common + own:
            assert expected in text, (expected, text)
        assert text.count(labels.OPIOID_WARNING) == 1  # the version's copy is deduplicated
        assert "Shake well" not in text and "Refrigerate" not in text
        # Never the whole ramp-up: no other bottle's dose "for N days" on this label.
        assert "for 30 days" not in text and "Fill 0" not in text
        assert text.count("1 capsule (") == 1, text  # this bottle's one dose only
        assert f"1 capsule ({strength})" in text


def test_label_pages_are_plain_values(titration_order):
    prescription = Prescription.objects.get()
    pages = labels.label_pages(titration_order)

    assert [(p.drug, p.quantity, p.lot_numbers, p.beyond_use_date) for p in pages] == [
        ("Naltrexone HCl 1.5 mg capsule", "14 capsules", ("LDN15-B", "LDN15-A"), BUD_EARLY),
        ("Naltrexone HCl 3 mg capsule", "14 capsules", ("LDN30-A",), BUD_LATE),
        ("Naltrexone HCl 4.5 mg capsule", "30 capsules", ("LDN45-A",), BUD_LATE),
    ]
    assert [p.directions_text for p in pages] == BOTTLE_DIRECTIONS
    first = pages[0]
    assert first.rx_and_fill == f"Rx {prescription.rx_number} · Original fill"
    assert first.barcode_payload == f"{prescription.rx_number}|0|LDN15-B"
    assert (first.patient_name, first.patient_date_of_birth) == (
        "Ada Quill", datetime.date(1970, 5, 5),
    )  # fmt: skip
    assert (first.prescriber, first.pharmacist_initials) == ("Lena Ortiz, NP", "PQ")
    assert (first.refills_remaining, first.rx_expires_on) == (2, prescription.expires_on)
    assert (first.date_filled, first.storage) == (TODAY, ROOM_OR_FRIDGE)
    assert first.warnings == (labels.OPIOID_WARNING, CHILDREN)
    assert (first.pharmacy_name, first.pharmacy_address, first.pharmacy_phone) == (
        settings.PHARMACY_NAME, settings.PHARMACY_ADDRESS, settings.PHARMACY_PHONE,
    )  # fmt: skip


def test_an_oral_liquid_gives_the_volume_first_and_says_refrigerate_and_shake_well(
    liquid_order,
):
    rx = Prescription.objects.get().rx_number

    pdf = labels.render_label_pdf(liquid_order)

    [text] = page_texts(pdf)
    for expected in [
        f"Rx {rx} · Original fill",
        "Naltrexone HCl 1 mg/mL oral liquid · Qty 31.5 mL",
        LIQUID_DIRECTIONS,
        "Refills remaining: 0",
        f"Do not use after {us_date(BUD_LATE)}",
        # The storage comes from the BUD category (unpreserved aqueous: refrigerate), with
        # what the record adds.
        f"{FRIDGE}; Protect from light",
        "Lot LIQ-7",
        f"{labels.OPIOID_WARNING} {CHILDREN} Shake well Refrigerate",
    ]:
        assert expected in text, (expected, text)
    assert text.count("opioid") == 1  # "...medicines." of the version is the same warning
    assert "For external use only" not in text
    assert decoded_barcodes(pdf) == [f"{rx}|0|LIQ-7"]


def test_a_cream_is_for_external_use_and_never_shaken(named_prescriber, pharmacist, technician):
    stock_product(
        "Naltrexone HCl 0.5 mg/mL topical cream",
        "CRM-1",
        bud_category="aqueous_preserved",
        antimicrobial_preservative=True,
        auxiliary_labels=[SHAKE_WELL_TYPED_BY_HAND],
    )
    cream = Regimen(
        dosage_form=DosageForm.TOPICAL_CREAM,
        concentration_mg_per_ml=Decimal("0.5"),
        steps=(Step(Decimal("1"), 30),),
        doses_per_day=1,
        quantity=Decimal("60"),
        days_supply=30,
        refills=0,
    )
    order = dispensed(submitted(named_prescriber, cream), pharmacist, technician)

    [page] = labels.label_pages(order)

    assert page.directions_text == ("Apply 2 mL (1 mg) to the skin at bedtime; continue nightly.")
    assert page.warnings == (labels.OPIOID_WARNING, CHILDREN, labels.EXTERNAL_USE)


SHAKE_WELL_TYPED_BY_HAND = "Shake well."


def test_a_refill_label_says_refill_n_of_m_and_continues_at_the_maintenance_dose(
    titration_order, named_prescriber, pharmacist, technician
):
    prescription = Prescription.objects.get()
    refill = prescription_refill(
        prescription=prescription, actor=named_prescriber.user, ship_to="clinic",
        needed_by=None, idempotency_key=uuid.uuid4(),
        acknowledged=["refill.too_soon@refill"], reason="Travelling.",
    )  # fmt: skip
    refill = dispensed(refill, pharmacist, technician)

    [page] = labels.label_pages(refill)  # one bottle: the maintenance dose only
    assert (refill.kind, page.rx_and_fill) == (
        OrderKind.REFILL,
        f"Rx {page.rx_number} · Refill 1 of 2",
    )
    assert (page.drug, page.quantity) == ("Naltrexone HCl 4.5 mg capsule", "58 capsules")
    assert page.directions_text == "Take 1 capsule (4.5 mg) at bedtime; continue nightly."
    # The portal counts the same: 1 of 2 refills left.
    assert page.refills_remaining == prescription_refills_left(prescription) == 1
    assert page.barcode_payload == f"{page.rx_number}|1|LDN45-A"
    # The first fill's label, printed again, still says what it said.
    assert labels.label_pages(titration_order)[0].refills_remaining == 2
    assert labels.label_pages(titration_order)[0].fill == "Original fill"


def test_a_rejected_or_cancelled_refill_is_not_counted_on_the_next_label(
    titration_order, named_prescriber, pharmacist, technician
):
    prescription = Prescription.objects.get()
    early = {"acknowledged": ["refill.too_soon@refill"], "reason": "Travelling."}
    first = prescription_refill(
        prescription=prescription,
        actor=named_prescriber.user,
        ship_to="clinic",
        needed_by=None,
        idempotency_key=uuid.uuid4(),
        **early,
    )
    first = order_start_review(order=first, actor=pharmacist)
    order_reject(order=first, actor=pharmacist, reason="Too soon after the first fill.")
    second = prescription_refill(
        prescription=prescription,
        actor=named_prescriber.user,
        ship_to="clinic",
        needed_by=None,
        idempotency_key=uuid.uuid4(),
        **early,
    )
    second = dispensed(second, pharmacist, technician)

    [page] = labels.label_pages(second)
    assert (second.fill_number, page.fill, page.refills_remaining) == (2, "Refill 1 of 2", 1)
    assert prescription_refills_left(prescription) == 1


def test_a_recalled_batch_has_no_label(titration_order, pharmacist):
    # Shipped: the recall of an order's batch while the order is still at the pharmacy pulls its
    # units back instead (tests/pharmacy/test_recalls.py).
    Order.objects.filter(pk=titration_order.pk).update(status=OrderStatus.SHIPPED)
    batch = Batch.objects.get(lot_number="LDN45-A")
    batch_recall(batch=batch, actor=pharmacist, reason="Out-of-specification assay.")

    with pytest.raises(labels.LabelRefused, match=r"batch LDN45-A was recalled"):
        labels.render_label_pdf(titration_order)


def test_a_long_liquid_titration_prints_on_two_pages_and_cuts_nothing(
    named_prescriber, pharmacist, technician
):
    stock_product(
        "Naltrexone HCl 1 mg/mL oral liquid",
        "LIQ-9",
        bud_category="aqueous_preserved",
        antimicrobial_preservative=True,
    )
    # Ten 3-day steps of 0.5 to 2.75 mg, then 3 mg: eleven phrases on one bottle's label.
    schedule = (*(Step(Decimal(n) / 4, 3) for n in range(2, 12)), Step(Decimal("3"), 5))
    regimen = Regimen(
        dosage_form=DosageForm.ORAL_LIQUID,
        concentration_mg_per_ml=Decimal("1"),
        steps=schedule,
        doses_per_day=1,
        quantity=Decimal("63.8"),
        days_supply=35,
        refills=0,
    )
    order = dispensed(submitted(named_prescriber, regimen), pharmacist, technician)

    texts = page_texts(labels.render_label_pdf(order))

    assert len(texts) == 2  # one bottle, its label on two pages
    assert "(continued on the next label)" in texts[0]
    assert texts[1].count("(continued)") == 1
    written = " ".join(labels.label_pages(order)[0].directions)
    printed = (
        " ".join(texts).replace("(continued on the next label) ", "").replace("(continued) ", "")
    )
    assert all(phrase in printed for phrase in labels.label_pages(order)[0].directions)
    assert written.endswith("3 mL (3 mg) by mouth at bedtime; continue nightly.")
    for text in texts:  # each page is a whole label: who, what, lot and BUD
        assert "Ada Quill" in text and "Lot LIQ-9" in text and "Do not use after" in text


# --- Barcode and page size ------------------------------------------------------------------


def test_barcode_scans_at_300_dpi(titration_order):
    rx = Prescription.objects.get().rx_number
    pdf = labels.render_label_pdf(titration_order)

    assert decoded_barcodes(pdf, 0) == [f"{rx}|0|LDN15-B"]
    assert decoded_barcodes(pdf, 2) == [f"{rx}|0|LDN45-A"]


def test_a_long_payload_still_fits_and_scans():
    payload = "7000004|12|" + "L" * 30  # the longest lot number a batch may have
    svg = labels.barcode_svg(payload)
    assert svg.startswith("<svg") and payload not in svg  # no text: nothing to escape
    page = labels.LabelPage(
        **{**_a_page_fields(), "lot_numbers": ("L" * 30,), "fill_number": 12,
           "rx_number": "7000004"},
    )  # fmt: skip
    pdf = labels.render_pages_pdf([page])
    assert decoded_barcodes(pdf) == [payload]


def _a_page_fields() -> dict:
    return {
        "pharmacy_name": "P", "pharmacy_address": "A", "pharmacy_phone": "1",
        "rx_number": "7000001", "fill_number": 0, "fill": "Original fill", "date_filled": TODAY,
        "patient_name": "N", "patient_date_of_birth": datetime.date(1970, 1, 1),
        "prescriber": "D, MD", "pharmacist_initials": "PQ",
        "drug": "Naltrexone HCl 1.5 mg capsule", "quantity": "1 capsule",
        "directions": ("Take.",), "refills_remaining": 0, "rx_expires_on": TODAY,
        "beyond_use_date": TODAY, "storage": "S", "lot_numbers": ("L1",),
        "warnings": (labels.OPIOID_WARNING,),
    }  # fmt: skip


def page_size(pdf: bytes) -> tuple[float, float]:
    box = PdfReader(io.BytesIO(pdf)).pages[0].mediabox
    return (float(box.width), float(box.height))


def test_pages_are_4_by_2_inches(liquid_order):
    assert settings.LABEL_PAGE_SIZE == "4in 2in"
    assert page_size(labels.render_label_pdf(liquid_order)) == (288.0, 144.0)


@pytest.fixture
def fresh_stylesheets():
    labels.label_stylesheets.cache_clear()
    yield
    labels.label_stylesheets.cache_clear()  # the next test gets the default page size again


def test_the_page_size_comes_from_settings(settings, fresh_stylesheets):
    settings.LABEL_PAGE_SIZE = "4in 3in"
    assert page_size(labels.render_pages_pdf([labels.LabelPage(**_a_page_fields())])) == (
        288.0, 216.0,
    )  # fmt: skip


def test_a_page_size_that_is_not_one_is_refused(settings, fresh_stylesheets):
    settings.LABEL_PAGE_SIZE = "4in 2in; } body { display: none"
    with pytest.raises(ValueError, match="LABEL_PAGE_SIZE is not a CSS page size"):
        labels.label_stylesheets()


def test_an_overridden_page_size_takes_effect_without_clearing_the_cached_stylesheets():
    page = labels.LabelPage(**_a_page_fields())
    labels.render_pages_pdf([page])  # the stylesheets of the default size are cached

    with override_settings(LABEL_PAGE_SIZE="4in 3in"):
        assert page_size(labels.render_pages_pdf([page])) == (288.0, 216.0)
    assert page_size(labels.render_pages_pdf([page])) == (288.0, 144.0)


def squeezed(text: str) -> str:
    """Text without white space: a long word wrapped on the label reads back with breaks."""
    return "".join(text.split())


def test_a_patient_name_of_194_characters_wraps_smaller_on_each_bottles_label(
    named_prescriber, pharmacist, technician
):
    first, last = "Anneliese " * 9 + "Maria", "Quillfeather" * 8  # 95 and 96 characters
    stock_titration()
    order = dispensed(
        submitted(named_prescriber, TITRATION, first_name=first, last_name=last),
        pharmacist, technician,
    )  # fmt: skip

    pdf = labels.render_label_pdf(order)

    texts = page_texts(pdf)
    assert len(texts) == 3  # one label per bottle, nothing continued
    for text, directions in zip(texts, BOTTLE_DIRECTIONS, strict=True):
        assert squeezed(f"{first} {last}") in squeezed(text)
        assert squeezed(directions) in squeezed(text)
    rx = Prescription.objects.get().rx_number
    assert [decoded_barcodes(pdf, i) for i in range(3)] == [
        [f"{rx}|0|LDN15-B"], [f"{rx}|0|LDN30-A"], [f"{rx}|0|LDN45-A"],
    ]  # fmt: skip
    printed, _ = labels.fitted_labels(labels.label_pages(order))
    assert [label.fit for label in printed] == [1, 1, 1]  # the name set smaller on each label


def test_a_short_name_keeps_the_usual_size(titration_order):
    printed, document = labels.fitted_labels(labels.label_pages(titration_order))
    assert [label.fit for label in printed] == [0, 0, 0]
    assert len(document.pages) == 3


TWELVE_STEPS = Regimen(
    dosage_form=DosageForm.ORAL_LIQUID, concentration_mg_per_ml=Decimal("1"),
    steps=tuple(Step(Decimal(n) / 2, 3) for n in range(1, 13)), doses_per_day=1,
    quantity=Decimal("120"), days_supply=36, refills=0,
)  # fmt: skip
# Names as long as their fields allow, each one word that must break: Patient.first_name and
# last_name (100 each), the prescriber's first_name and last_name (150 each).
LONGEST_PATIENT = ("Quillfeather" * 9)[:100] + " " + ("Anneliese" * 12)[:100]
LONGEST_PRESCRIBER = ("Bartholomew" * 14)[:150] + " " + ("Featherstonehaugh" * 9)[:150]
# What the pharmacy's records put on a label at their longest: Formulation.name (120),
# FormulationVersion.storage (200) after the category's storage, Batch.lot_number (30) of two
# batches, and every warning a liquid can carry.
LONGEST_RECORDS = {
    "drug": ("Naltrexone hydrochloride " * 5)[:120],
    "storage": label_storage(BudCategory.AQUEOUS_UNPRESERVED, ("Protect from light " * 11)[:200]),
    "lot_numbers": (("LDN2026A" * 4)[:30], ("LDN2026B" * 4)[:30]),
    "warnings": (labels.OPIOID_WARNING, labels.CHILDREN, labels.SHAKE_WELL, labels.REFRIGERATE),
}


@pytest.mark.parametrize(
    ("fields", "count", "fit"),
    [
        ({}, 2, 0),  # a long titration: a continuation label at the usual size
        ({"patient_name": LONGEST_PATIENT}, 2, 2),
        ({"prescriber": f"{LONGEST_PRESCRIBER}, MD"}, 2, 3),
        (LONGEST_RECORDS, 3, 3),
        ({"patient_name": LONGEST_PATIENT, "prescriber": f"{LONGEST_PRESCRIBER}, MD"}, 4, 3),
    ],
    ids=["titration", "patient", "prescriber", "records", "both-names"],
)
def test_the_longest_text_a_label_takes_prints_whole_on_whole_labels(fields, count, fit):
    """A twelve-step titration with each kind of longest text: shared out over whole labels,
    each with the name, the drug, the lot, the BUD and a barcode that scans, every phrase of the
    directions printed once and in order, the text set smaller only as far as needed."""
    directions = dosing.label_directions(TWELVE_STEPS, None)
    assert len(directions) == 12
    page = labels.LabelPage(**{**_a_page_fields(), "directions": directions, **fields})

    printed, document = labels.fitted_labels([page])
    pdf = document.write_pdf()

    assert [label.fit for label in printed] == [fit] * count
    texts = [squeezed(text) for text in page_texts(pdf)]
    assert len(texts) == count
    whole = [page.patient_name, page.prescriber, page.drug, page.storage, *page.lot_numbers,
             *page.warnings, f"Donotuseafter{us_date(TODAY)}"]  # fmt: skip
    for i, text in enumerate(texts):
        assert [value for value in whole if squeezed(value) not in text] == [], i
        assert decoded_barcodes(pdf, i) == [f"7000001|0|{page.lot_numbers[0]}"]
    printed_text = "".join(texts)
    positions = [printed_text.index(squeezed(phrase)) for phrase in directions]
    assert positions == sorted(positions)
    assert all(printed_text.count(squeezed(phrase)) == 1 for phrase in directions)


def test_every_text_at_its_longest_at_once_is_refused_not_cut():
    """The limit: both names and every record's text at their longest on one 4 x 2 in label
    do not fit even at the smallest size in one column. The label is refused (its email fails
    once, with this reason, for a pharmacist to see) rather than printed cut."""
    page = labels.LabelPage(**{
        **_a_page_fields(), **LONGEST_RECORDS, "patient_name": LONGEST_PATIENT,
        "prescriber": f"{LONGEST_PRESCRIBER}, MD",
    })  # fmt: skip
    with pytest.raises(labels.LabelDoesNotFit, match=r"at the smallest size"):
        labels.render_pages_pdf([page])


def test_text_that_does_not_fit_even_on_more_pages_is_refused_not_cut():
    page = labels.LabelPage(**{**_a_page_fields(), "directions": ("Take it. " * 120,)})
    with pytest.raises(labels.LabelDoesNotFit, match=r"does not fit its page"):
        labels.render_pages_pdf([page])


# --- Escaping and the URL fetcher -----------------------------------------------------------


def test_markup_in_names_is_printed_as_text_and_fetches_nothing(
    named_prescriber, pharmacist, technician, fetched_urls
):
    named_prescriber.first_name = '<img src="file:///etc/passwd">'
    named_prescriber.save()
    stock_liquid()
    order = dispensed(
        submitted(named_prescriber, LIQUID, first_name="<script>alert(1)</script>",
                  current_medications='<img src="file:///etc/passwd">'),
        pharmacist, technician,
    )  # fmt: skip

    html = labels.render_labels_html(labels.label_pages(order))
    pdf = labels.render_label_pdf(order)

    assert "<script>" not in html and "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Quill" in html
    [text] = page_texts(pdf)
    assert "<script>alert(1)</script> Quill" in text
    assert 'Prescriber: <img src="file:///etc/passwd"> Ortiz, NP' in text
    assert not [url for url in fetched_urls if not url.startswith(labels.static_prefix())]


def test_the_fetcher_refuses_markup_that_reached_weasyprint(fetched_urls, caplog):
    """What the escaping above prevents: an <img> in the HTML asks the fetcher, which refuses."""
    html = HTML(string='<p>x</p><img src="file:///etc/passwd"><img src="data:image/png;base64,AA">',
                base_url=labels.static_prefix(), url_fetcher=labels.url_fetcher())  # fmt: skip
    with caplog.at_level(logging.ERROR, logger="weasyprint"):
        html.write_pdf()
    assert fetched_urls == ["file:///etc/passwd", "data:image/png;base64,AA"]
    refused = [r.getMessage() for r in caplog.records if "LabelResourceRefused" in r.getMessage()]
    assert len(refused) == 2, caplog.records


# Markup that would load something if it reached WeasyPrint as markup: a local file, a
# stylesheet, a CSS url(), a frame, an object, an SVG image and a CSS @import.
MARKUP = [
    '<img src="file:///etc/passwd">',
    "<link rel=stylesheet href=//x.test/c>",
    "<b style=background:url(//x.test/b)>",
    "<iframe src=http://x.test/f>",
    "<object data=http://x.test/o>",
    "<svg><image href=//x.test/s /></svg>",
    '<style>@import "//x.test/i";</style>',
]
TEXT_FIELDS = [
    field.name for field in dataclasses.fields(labels.LabelPage)
    if field.type in (str, tuple[str, ...])
]  # fmt: skip


def test_every_text_field_of_a_label_is_checked():
    assert TEXT_FIELDS == [
        "pharmacy_name", "pharmacy_address", "pharmacy_phone", "rx_number", "fill",
        "patient_name", "prescriber", "pharmacist_initials", "drug", "quantity", "directions",
        "storage", "lot_numbers", "warnings",
    ]  # fmt: skip


@pytest.mark.parametrize("markup", MARKUP)
@pytest.mark.parametrize("field", TEXT_FIELDS)
def test_markup_in_any_label_field_is_printed_as_text_and_loads_nothing(
    field, markup, fetched_urls
):
    value = (markup,) if field in ("lot_numbers", "warnings", "directions") else markup
    page = labels.LabelPage(**{**_a_page_fields(), field: value})

    html = labels.render_labels_html([page])
    pdf = labels.render_pages_pdf([page])

    assert escape(markup) in html
    assert markup not in html
    [text] = page_texts(pdf)
    assert "".join(markup.split()) in "".join(text.split())
    prefix = labels.static_prefix()
    own_files = {prefix + "labels/label.css", prefix + "labels/fonts.css",
                 prefix + "fonts/lato/Lato-Regular.ttf",
                 prefix + "fonts/lato/Lato-Bold.ttf"}  # fmt: skip
    assert set(fetched_urls) <= own_files  # the stylesheets' own files, when first built


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "http://example.com/x.png",
        "https://example.com/x.css",
        "data:text/plain,hello",
        "ftp://example.com/x",
        "about:blank",
    ],
)
def test_fetcher_refuses_anything_but_static_files(url):
    with pytest.raises(labels.LabelResourceRefused):
        labels.url_fetcher().fetch(url)


@pytest.mark.parametrize(
    "path", ["../../etc/passwd", "%2e%2e/%2e%2e/etc/passwd", "/etc/passwd", "nope/none.css"]
)
def test_fetcher_refuses_paths_outside_the_static_files(path):
    with pytest.raises(labels.LabelResourceRefused):
        labels.url_fetcher().fetch(labels.static_prefix() + path)


def test_fetcher_serves_the_static_label_files():
    prefix = labels.static_prefix()
    assert prefix == "https://labels.invalid/static/"
    css = labels.url_fetcher().fetch(prefix + "labels/label.css")
    fonts = labels.url_fetcher().fetch(prefix + "labels/fonts.css")
    font = labels.url_fetcher().fetch(prefix + "fonts/lato/Lato-Bold.ttf")
    assert css.content_type == "text/css" and b'@import url("fonts.css");' in css.read()
    assert fonts.content_type == "text/css" and b"@font-face" in fonts.read()
    assert font.read()[:4] == b"\x00\x01\x00\x00"  # a TrueType font


def test_only_lato_is_embedded(liquid_order):
    pdf = labels.render_label_pdf(liquid_order)
    fonts = {
        str(font.get_object()["/BaseFont"])
        for font in PdfReader(io.BytesIO(pdf)).pages[0]["/Resources"]["/Font"].values()
    }
    # Subset fonts are named "/ABCDEF+<PostScript name>"; Lato Regular's is "Lato".
    assert sorted(name.split("+", 1)[1] for name in fonts) == ["Lato", "Lato-Bold"]


# --- Many orders, errors ----------------------------------------------------------------------


def test_many_orders_are_the_pages_of_one_document(
    titration_order, liquid_order, named_prescriber, pharmacist, technician
):
    second_liquid = dispensed(submitted(named_prescriber, LIQUID), pharmacist, technician)
    orders = [titration_order, liquid_order, second_liquid]

    pdf = labels.render_labels_pdf(orders)

    texts = page_texts(pdf)
    assert len(texts) == 3 + 1 + 1
    rx_numbers = [Prescription.objects.get(pk=o.prescription_id).rx_number for o in orders]
    assert [re.search(r"Rx (\d+) · Original fill", text)[1] for text in texts] == [
        rx_numbers[0], rx_numbers[0], rx_numbers[0], rx_numbers[1], rx_numbers[2],
    ]  # fmt: skip


@pytest.fixture
def weasyprint_watched(monkeypatch):
    """What WeasyPrint's layout and writing saw of the cycle collector and the render lock,
    every collection that ran (its generation, and whether WeasyPrint was at work then), and
    the documents laid out (weakly: whether they are still in memory)."""
    seen = {"calls": [], "collections": [], "working": False, "documents": []}

    def watched(method):
        def call(self, *args, **kwargs):
            seen["calls"].append((gc.isenabled(), labels._RENDER_LOCK.locked()))
            seen["working"] = True
            try:
                answer = method(self, *args, **kwargs)
            finally:
                seen["working"] = False
            for document in (self, answer):
                known = any(ref() is document for ref in seen["documents"])
                if isinstance(document, Document) and not known:
                    seen["documents"].append(weakref.ref(document))
            return answer

        return call

    def collected(phase, info):
        if phase == "start":
            seen["collections"].append((info["generation"], seen["working"]))

    monkeypatch.setattr(HTML, "render", watched(HTML.render))
    monkeypatch.setattr(Document, "write_pdf", watched(Document.write_pdf))
    gc.callbacks.append(collected)
    yield seen
    gc.callbacks.remove(collected)


def test_weasyprint_works_under_the_lock_with_the_cycle_collector_held(
    liquid_order, weasyprint_watched
):
    assert gc.isenabled()
    gc.collect()  # what was there before
    weasyprint_watched["collections"].clear()
    pdf = labels.render_label_pdf(liquid_order)
    collections = list(weasyprint_watched["collections"])
    documents = [document() for document in weasyprint_watched["documents"]]
    left_unreachable = gc.collect()

    assert len(page_texts(pdf)) == 1
    # The layout, then the writing: each under the lock, the collector off.
    assert weasyprint_watched["calls"] == [(False, True), (False, True)]
    assert [working for _, working in collections] == [False] * len(collections)
    assert gc.isenabled()
    assert not labels._RENDER_LOCK.locked()
    # Let go of before the hold ended, the document (some 2,700 objects in cycles here) was
    # freed by the collection that ended it, of the youngest generation, within the render:
    # what a full collection finds afterwards is a few objects of the read, not the document.
    assert collections[-1] == (0, False)
    assert documents == [None]
    assert left_unreachable < 100


def test_a_batch_holds_the_collector_across_its_parts_and_frees_each_parts_garbage(
    titration_order, liquid_order, weasyprint_watched
):
    done = []

    def progress(count, total):
        done.append((count, total, gc.isenabled(), len(weasyprint_watched["collections"])))

    gc.collect()  # what was there before
    weasyprint_watched["collections"].clear()
    pdf = labels.render_labels_pdf([titration_order, liquid_order], progress=progress, chunk=1)
    collections = list(weasyprint_watched["collections"])
    documents = [document() for document in weasyprint_watched["documents"]]
    left_unreachable = gc.collect()

    assert len(page_texts(pdf)) == 3 + 1
    # Held from the first part's read to the last page written: no collection ran on its own
    # meanwhile, only one of the youngest generation after each part was laid out, one of the
    # two youngest once the PDF was written and the documents let go of (the parts' documents
    # had outlived the first), and the hold's own.
    assert done == [(1, 2, False, 1), (2, 2, False, 2)]
    assert collections == [(0, False), (0, False), (1, False), (0, False)]
    assert [collector for collector, _ in weasyprint_watched["calls"]] == [False] * 3
    assert gc.isenabled()
    # Each part's document and the one they were put together in: freed, with the batch.
    assert documents == [None] * 3
    assert left_unreachable == 0


def test_the_collector_is_left_as_it_was_found():
    gc.disable()
    try:
        with labels.collector_held():
            assert not gc.isenabled()
        assert not gc.isenabled()  # held off by someone else: not turned on, nor run
    finally:
        gc.enable()

    with pytest.raises(labels.LabelDoesNotFit), labels.collector_held():
        raise labels.LabelDoesNotFit("a label that fails midway")
    assert gc.isenabled()


def test_no_orders_no_document():
    with pytest.raises(ValueError, match="There are no labels to print"):
        labels.render_labels_pdf([])


def test_an_unverified_order_has_no_label(named_prescriber, pharmacist):
    order = submitted(named_prescriber, TITRATION)
    with pytest.raises(ValueError, match=r"has no Rx number yet"):
        labels.label_pages(order)
    with pytest.raises(ValueError, match=r"has no Rx number yet"):
        labels.render_label_pdf(order)


def test_a_verified_order_not_yet_dispensed_has_no_label(named_prescriber, pharmacist):
    order = verify(submitted(named_prescriber, TITRATION), pharmacist)
    with pytest.raises(ValueError, match=r"Naltrexone HCl 1\.5 mg capsule is not dispensed yet"):
        labels.render_label_pdf(order)


# --- Fonts: HarfBuzz subsetting, built once -------------------------------------------------

FONTTOOLS_FALLBACK = "Using fontTools instead of HarfBuzz-Subset"  # weasyprint/pdf/fonts.py


def weasyprint_records(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("weasyprint")]


def test_fonts_are_subset_by_harfbuzz_not_fonttools(titration_order, liquid_order, caplog):
    with caplog.at_level(logging.DEBUG, logger="weasyprint"):
        labels.render_labels_pdf([titration_order, liquid_order])

    fallbacks = [r for r in weasyprint_records(caplog) if FONTTOOLS_FALLBACK in r.getMessage()]
    assert fallbacks == []
    # Nor any other complaint (a font or stylesheet not loaded, a bad CSS rule, an id that
    # several labels share).
    problems = [r.getMessage() for r in weasyprint_records(caplog) if r.levelno >= logging.WARNING]
    assert problems == []


def test_the_fonttools_check_sees_a_fallback(liquid_order, caplog, monkeypatch):
    """Without HarfBuzz-Subset, WeasyPrint logs the fallback that the test above looks for."""
    monkeypatch.setattr("weasyprint.pdf.fonts.harfbuzz_subset", None)
    with caplog.at_level(logging.WARNING, logger="weasyprint"):
        labels.render_label_pdf(liquid_order)
    assert any(FONTTOOLS_FALLBACK in r.getMessage() for r in weasyprint_records(caplog))


def test_fonts_and_stylesheets_are_built_once(liquid_order, fetched_urls):
    for cached in (labels.label_stylesheets, labels.font_configuration):
        cached.cache_clear()

    first = labels.render_label_pdf(liquid_order)
    fetched_by_first = list(fetched_urls)
    second = labels.render_label_pdf(liquid_order)

    assert labels.font_configuration.cache_info().misses == 1
    assert labels.label_stylesheets.cache_info().misses == 1
    assert labels.label_stylesheets.cache_info().hits >= 1
    prefix = labels.static_prefix()
    assert sorted(fetched_by_first) == [
        prefix + "fonts/lato/Lato-Bold.ttf",
        prefix + "fonts/lato/Lato-Regular.ttf",
        prefix + "labels/fonts.css",
        prefix + "labels/label.css",
    ]
    assert fetched_urls == fetched_by_first  # the second render fetched nothing
    assert page_texts(first) == page_texts(second)

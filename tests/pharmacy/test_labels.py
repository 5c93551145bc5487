"""Prescription labels: what each label says (read back from the PDF), the barcode (decoded from
a 300 dpi raster), escaping, the restricted URL fetcher, one document for many orders, fonts
subset by HarfBuzz, and fonts and stylesheets built once per process."""

import dataclasses
import datetime
import io
import logging
import uuid
from decimal import Decimal

import pypdfium2
import pytest
import zxingcpp
from django.conf import settings
from django.utils import timezone
from django.utils.html import escape
from pypdf import PdfReader
from weasyprint import HTML

from orders.dosing import DosageForm, Regimen, Step
from orders.models import Order, OrderKind, OrderStatus, Prescription
from orders.services import (
    order_move,
    order_start_review,
    order_submit,
    prescription_refill,
)
from pharmacy import labels
from pharmacy.dispensing import dispense_allocate
from pharmacy.models import Formulation
from tests.factories import (
    TEST_PASSWORD,
    BatchFactory,
    FormulationVersionFactory,
    PatientFactory,
)

pytestmark = pytest.mark.django_db

TODAY = timezone.localdate()
BUD_EARLY = TODAY + datetime.timedelta(days=120)
BUD_LATE = TODAY + datetime.timedelta(days=170)
ROOM_OR_FRIDGE = "Store at room temperature or in a refrigerator"
FRIDGE = "Store in a refrigerator"
CHILDREN = "Keep out of reach of children"

TITRATION = Regimen(
    dosage_form=DosageForm.CAPSULE,
    steps=(Step(Decimal("1.5"), 14), Step(Decimal("3"), 14), Step(Decimal("4.5"), 30)),
    doses_per_day=1, quantity=Decimal("58"), days_supply=58, refills=2,
)  # fmt: skip
TITRATION_DIRECTIONS = (
    "Take 1.5 mg (1 capsule) at bedtime for 14 days, then 3 mg (1 capsule) at bedtime for "
    "14 days, then 4.5 mg (1 capsule) at bedtime for 30 days."
)
LIQUID = Regimen(
    dosage_form=DosageForm.ORAL_LIQUID, concentration_mg_per_ml=Decimal("1"),
    steps=(Step(Decimal("3"), 66),), doses_per_day=1, quantity=Decimal("198"), days_supply=66,
    refills=0,
)  # fmt: skip
LIQUID_DIRECTIONS = "Take 3 mg (3 mL) by mouth at bedtime for 66 days."


# --- Making verified, dispensed orders ------------------------------------------------------


@pytest.fixture
def named_prescriber(prescriber):
    prescriber.first_name, prescriber.last_name, prescriber.credentials = "Lena", "Ortiz", "NP"
    prescriber.save()
    return prescriber


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


def stock_liquid():
    version = FormulationVersionFactory(
        formulation=Formulation.objects.get(name="Naltrexone HCl 1 mg/mL oral liquid"),
        bud_category="aqueous_unpreserved", storage=FRIDGE,
        auxiliary_labels=["Do not take with opioid pain or cough medicines."],
    )  # fmt: skip
    BatchFactory(formulation_version=version, lot_number="LIQ-7", beyond_use_date=BUD_LATE,
                 planned_units=Decimal("1000"), units_remaining=Decimal("1000"))  # fmt: skip


def submitted(prescriber, regimen: Regimen, **patient_fields) -> Order:
    patient = PatientFactory(
        clinic=prescriber.clinic, created_by=prescriber.user,
        **{"first_name": "Ada", "last_name": "Quill",
           "date_of_birth": datetime.date(1970, 5, 5), **patient_fields},
    )  # fmt: skip
    return order_submit(
        actor=prescriber.user, patient=patient, regimen=regimen, diagnosis_codes=["M79.7"],
        reason_for_compounding="Strength not available", ship_to="clinic", needed_by=None,
        acknowledged=[], idempotency_key=uuid.uuid4(),
    )  # fmt: skip


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


def test_titration_has_a_label_per_strength_with_every_element(titration_order):
    prescription = Prescription.objects.get()
    rx = prescription.rx_number
    assert rx == str(settings.RX_NUMBER_START + prescription.pk)
    assert prescription.directions == TITRATION_DIRECTIONS

    pdf = labels.render_label_pdf(titration_order)

    texts = page_texts(pdf)
    assert len(texts) == 3
    header = f"{settings.PHARMACY_NAME} · {settings.PHARMACY_ADDRESS} · {settings.PHARMACY_PHONE}"
    expiry = us_date(prescription.expires_on)
    common = [
        header,
        f"Rx {rx} · Fill 0",
        f"Filled {us_date(TODAY)}",
        "Ada Quill DOB 05/05/1970",
        TITRATION_DIRECTIONS,
        "Prescriber: Lena Ortiz, NP",
        f"Refills remaining: 2 · Rx expires {expiry}",
        "Compounded preparation",
        ROOM_OR_FRIDGE,
        f"{labels.OPIOID_WARNING} {CHILDREN}",
    ]
    per_page = [
        ["Naltrexone HCl 1.5 mg capsule · Qty 14 capsules",
         f"Do not use after {us_date(BUD_EARLY)}", "Lot LDN15-B, LDN15-A"],
        ["Naltrexone HCl 3 mg capsule · Qty 14 capsules",
         f"Do not use after {us_date(BUD_LATE)}", "Lot LDN30-A"],
        ["Naltrexone HCl 4.5 mg capsule · Qty 30 capsules",
         f"Do not use after {us_date(BUD_LATE)}", "Lot LDN45-A"],
    ]  # fmt: skip
    for text, own in zip(texts, per_page, strict=True):
        for expected in common + own:
            assert expected in text, (expected, text)
        assert text.count(labels.OPIOID_WARNING) == 1  # the version's copy is deduplicated
        assert "Shake well" not in text
        assert "Refrigerate" not in text


def test_label_pages_are_plain_values(titration_order):
    prescription = Prescription.objects.get()
    pages = labels.label_pages(titration_order)

    assert [(p.drug, p.quantity, p.lot_numbers, p.beyond_use_date) for p in pages] == [
        ("Naltrexone HCl 1.5 mg capsule", "14 capsules", ("LDN15-B", "LDN15-A"), BUD_EARLY),
        ("Naltrexone HCl 3 mg capsule", "14 capsules", ("LDN30-A",), BUD_LATE),
        ("Naltrexone HCl 4.5 mg capsule", "30 capsules", ("LDN45-A",), BUD_LATE),
    ]
    first = pages[0]
    assert first.rx_and_fill == f"Rx {prescription.rx_number} · Fill 0"
    assert first.barcode_payload == f"{prescription.rx_number}|0|LDN15-B"
    assert (first.patient_name, first.patient_date_of_birth) == (
        "Ada Quill", datetime.date(1970, 5, 5),
    )  # fmt: skip
    assert (first.prescriber, first.directions) == ("Lena Ortiz, NP", TITRATION_DIRECTIONS)
    assert (first.refills_remaining, first.rx_expires_on) == (2, prescription.expires_on)
    assert (first.date_filled, first.storage) == (TODAY, ROOM_OR_FRIDGE)
    assert first.warnings == (labels.OPIOID_WARNING, CHILDREN)
    assert (first.pharmacy_name, first.pharmacy_address, first.pharmacy_phone) == (
        settings.PHARMACY_NAME, settings.PHARMACY_ADDRESS, settings.PHARMACY_PHONE,
    )  # fmt: skip


def test_oral_liquid_has_one_label_with_shake_well_and_refrigerate(liquid_order):
    rx = Prescription.objects.get().rx_number

    pdf = labels.render_label_pdf(liquid_order)

    [text] = page_texts(pdf)
    for expected in [
        f"Rx {rx} · Fill 0",
        "Naltrexone HCl 1 mg/mL oral liquid · Qty 198 mL",
        LIQUID_DIRECTIONS,
        "Refills remaining: 0",
        f"Do not use after {us_date(BUD_LATE)}",
        FRIDGE,
        "Lot LIQ-7",
        f"{labels.OPIOID_WARNING} Shake well Refrigerate",
    ]:
        assert expected in text, (expected, text)
    assert text.count("opioid") == 1  # "...medicines." of the version is the same warning
    assert decoded_barcodes(pdf) == [f"{rx}|0|LIQ-7"]


def test_a_refill_label_counts_its_own_fill(titration_order, named_prescriber, pharmacist,
                                            technician):  # fmt: skip
    prescription = Prescription.objects.get()
    refill = prescription_refill(
        prescription=prescription, actor=named_prescriber.user, ship_to="clinic",
        needed_by=None, idempotency_key=uuid.uuid4(),
    )  # fmt: skip
    refill = dispensed(refill, pharmacist, technician)

    [first, *_] = labels.label_pages(refill)
    assert (refill.kind, first.rx_and_fill) == (OrderKind.REFILL, f"Rx {first.rx_number} · Fill 1")
    assert first.refills_remaining == 1
    assert first.barcode_payload == f"{first.rx_number}|1|LDN15-A"  # LDN15-B is used up
    # The first fill's label, printed again, still says what it said.
    assert labels.label_pages(titration_order)[0].refills_remaining == 2


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
        "rx_number": "7000001", "fill_number": 0, "date_filled": TODAY, "patient_name": "N",
        "patient_date_of_birth": datetime.date(1970, 1, 1), "prescriber": "D, MD",
        "drug": "Naltrexone HCl 1.5 mg capsule", "quantity": "1 capsule", "directions": "Take.",
        "refills_remaining": 0, "rx_expires_on": TODAY, "beyond_use_date": TODAY,
        "storage": "S", "lot_numbers": ("L1",), "warnings": (labels.OPIOID_WARNING,),
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


def test_text_that_does_not_fit_is_refused_not_cut():
    page = labels.LabelPage(**{**_a_page_fields(), "directions": "Take it. " * 120})
    with pytest.raises(labels.LabelDoesNotFit, match=r"took \d+ pages instead of 1"):
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
        "pharmacy_name", "pharmacy_address", "pharmacy_phone", "rx_number", "patient_name",
        "prescriber", "drug", "quantity", "directions", "storage", "lot_numbers", "warnings",
    ]  # fmt: skip


@pytest.mark.parametrize("markup", MARKUP)
@pytest.mark.parametrize("field", TEXT_FIELDS)
def test_markup_in_any_label_field_is_printed_as_text_and_loads_nothing(
    field, markup, fetched_urls
):
    value = (markup,) if field in ("lot_numbers", "warnings") else markup
    page = labels.LabelPage(**{**_a_page_fields(), field: value})

    html = labels.render_labels_html([page])
    pdf = labels.render_pages_pdf([page])

    assert escape(markup) in html
    assert markup not in html
    [text] = page_texts(pdf)
    assert "".join(markup.split()) in "".join(text.split())
    prefix = labels.static_prefix()
    own_files = {prefix + "labels/label.css", prefix + "fonts/lato/Lato-Regular.ttf",
                 prefix + "fonts/lato/Lato-Bold.ttf"}  # fmt: skip
    assert set(fetched_urls) <= own_files


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
    font = labels.url_fetcher().fetch(prefix + "fonts/lato/Lato-Bold.ttf")
    assert css.content_type == "text/css" and b"@font-face" in css.read()
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
    assert [text.split(" · Fill")[0].rsplit("Rx ", 1)[1] for text in texts] == [
        rx_numbers[0], rx_numbers[0], rx_numbers[0], rx_numbers[1], rx_numbers[2],
    ]  # fmt: skip


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
        prefix + "labels/label.css",
    ]
    assert fetched_urls == fetched_by_first  # the second render fetched nothing
    assert page_texts(first) == page_texts(second)

"""Prescription labels as PDF: one label (one page) per product line of a dispensed order.

label_pages() gathers what the label shows as plain values;
a Django template (autoescaped) lays it out and WeasyPrint prints it with the label's own small
stylesheet. The font configuration and the stylesheets are built once per process (WeasyPrint
docs, "Improve rendering speed and memory use"), and WeasyPrint may load nothing but
the portal's own static files.

pharmacy/zpl.py prints the same values as ZPL II for thermal printers, and fits a label whose
text does not fit the same way (fitted_label).
"""

import contextlib
import dataclasses
import datetime
import functools
import gc
import mimetypes
import posixpath
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

from barcode.codex import Code128
from django.conf import settings
from django.contrib.staticfiles import finders
from django.core.exceptions import SuspiciousFileOperation
from django.core.signals import setting_changed
from django.db.models import Count, Exists, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce, Concat
from django.dispatch import receiver
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe
from weasyprint import CSS, HTML
from weasyprint.document import Document
from weasyprint.text.fonts import FontConfiguration
from weasyprint.urls import URLFetcher, URLFetcherResponse

from core.compiled_reads import CompiledRead
from core.json_rows import json_rows
from orders import dosing
from orders.bud import BudCategory, label_storage
from orders.checks import fill_regimen
from orders.dosing import DosageForm
from orders.models import (
    UNFILLED_STATUSES,
    Order,
    OrderEvent,
    OrderKind,
    OrderQuantity,
    OrderStatus,
    Prescription,
    PrescriptionLine,
    PrescriptionStep,
)

from .models import BatchStatus, Dispense

OPIOID_WARNING = "Do not take with opioid pain or cough medicines"
CHILDREN = "Keep out of reach of children"
SHAKE_WELL = "Shake well"
REFRIGERATE = "Refrigerate"
EXTERNAL_USE = "For external use only"
CONTINUED = "continued on the next label"
# What the fill line of a label adds for an order that follows another of the same fill.
FILL_PARTS = {OrderKind.REMAINDER: "rest of a partial fill", OrderKind.REPLACEMENT: "replacement"}
TEMPLATE = "labels/label.html"
STYLESHEET = "labels/label.css"  # a static file

# Static files are addressed under an origin that never resolves (.invalid is reserved,
# RFC 2606); the URL fetcher maps these URLs to files found by the staticfiles finders.
_LABEL_ORIGIN = "https://labels.invalid/"
_PAGE_SIZE = re.compile(r"[A-Za-z0-9. ]+")  # "4in 2in", "102mm 51mm", "A7 landscape"

# Code 128 (encoded by python-barcode, drawn here) in whole printer dots at 300 dpi so that the
# bars stay sharp when a 300 dpi label printer rasterises the page; quiet zones of 10 modules
# (ISO/IEC 15417).
# The page margins (label.css) are whole dots too: 0.07 in and 0.09 in.
_DPI = 300
_BARCODE_MAX_DOTS = 1140  # 3.8 in: a 4 in label's width inside its margins
_BARCODE_HEIGHT_DOTS = 72  # 0.24 in
_QUIET_ZONE_MODULES = 10
_BAR_WIDTH_REDUCTION = 0.05  # dots
_BAR = re.compile("1+")  # a run of dark modules: one bar

# The cached FontConfiguration (a Pango font map) is shared by every render, and WeasyPrint
# promises no thread safety for that: one document at a time per process (rendering()).
_RENDER_LOCK = threading.Lock()

# The sizes a label's text may be set at (label.css: .fit-0 to .fit-3), largest first.
FIT_LEVELS = (0, 1, 2, 3)
# A label and one continuation fit around a bottle or vial; a label that would need more at
# one size is set smaller.
LABELS_PER_BOTTLE = 2


class LabelResourceRefused(ValueError):
    """A label asked for something other than one of the portal's own static files."""


class LabelDoesNotFit(ValueError):
    """A label's text ran past its pages."""


class LabelRefused(ValueError):
    """A label that must not be printed (a recalled batch, an unverified order, ...)."""


@dataclass(frozen=True)
class LabelPage:
    """Everything one label shows, as plain values (the template formats the dates). A bottle
    whose directions do not fit one label gets a second page (`continuation`) that repeats who
    and what it is for and carries the rest of the directions."""

    pharmacy_name: str
    pharmacy_address: str
    pharmacy_phone: str
    rx_number: str
    fill_number: int  # 0 for the original fill
    fill: str  # "Original fill", "Refill 1 of 2"
    date_filled: datetime.date  # the local day of the order's last dispense
    patient_name: str
    patient_date_of_birth: datetime.date
    prescriber: str  # "Jane Doe, MD"
    pharmacist_initials: str  # of the pharmacist who verified the order
    drug: str  # "Naltrexone HCl 1.5 mg capsule": name, strength and dosage form
    quantity: str  # "14 capsules", "198 mL"
    directions: tuple[str, ...]  # this bottle's phrases, printed one after the other
    refills_remaining: int
    rx_expires_on: datetime.date
    beyond_use_date: datetime.date
    storage: str
    lot_numbers: tuple[str, ...]
    warnings: tuple[str, ...]
    continuation: bool = False  # the second page of a bottle's label
    continued: bool = False  # the directions go on on the next page
    fit: int = 0  # how much smaller its text is set to fit the page (one of FIT_LEVELS)

    @property
    def rx_and_fill(self) -> str:
        return f"Rx {self.rx_number} · {self.fill}"

    @property
    def directions_text(self) -> str:
        return " ".join(self.directions)

    @property
    def barcode_payload(self) -> str:
        return f"{self.rx_number}|{self.fill_number}|{self.lot_numbers[0]}"


# --- What the label says --------------------------------------------------------------------


def label_pages(order: Order) -> list[LabelPage]:
    """One label per bottle (each strength is its own container), in line order.

    Raises LabelRefused when the order has no Rx number yet, a line has nothing dispensed, or
    a batch it was dispensed from was recalled: labels are printed for verified, dispensed
    orders of usable batches."""
    return labels_of_orders([order])[0]


def bottle_pages(pages: Iterable[LabelPage]) -> list[LabelPage]:
    """One label per bottle: a continuation label repeats its bottle's barcode and lot."""
    return [page for page in pages if not page.continuation]


def label_barcodes(order: Order) -> list[str]:
    """What a scanner reads off the order's printed labels: each bottle's barcode once."""
    return [page.barcode_payload for page in bottle_pages(label_pages(order))]


def labels_of_orders(orders: list[Order]) -> list[list[LabelPage]]:
    """label_pages() of each order, read with two queries for all of them together."""
    # Each dispense with its line, batch, order and prescription: the order and prescription
    # are read again, as verification sets the Rx number with an UPDATE that an Order already
    # in memory (and its cached prescription) does not see. Sorted here rather than by the
    # database: an ORDER BY through the line's join costs more to build than the sort.
    dispenses = sorted(
        _LABEL_DISPENSES(order_id=[order.pk for order in orders]),
        key=lambda dispense: (dispense.order_id, dispense.line.position, dispense.pk),
    )
    # order -> line -> its dispenses; lines in position order (dicts keep insertion order)
    dispensed: dict[int, dict[int, list[Dispense]]] = {order.pk: {} for order in orders}
    for dispense in dispenses:
        dispensed[dispense.order_id].setdefault(dispense.line_id, []).append(dispense)
    return [_label_pages(order, dispensed[order.pk]) for order in orders]


def _steps(rows: list[dict]) -> tuple[dosing.Step, ...]:
    """The prescription's schedule, from the rows the label's query read with it."""
    ordered = sorted(rows, key=lambda row: row["position"])
    return tuple(dosing.Step(dose_mg=Decimal(r["dose_mg"]), days=r["days"]) for r in ordered)


def _label_pages(order: Order, dispensed: dict[int, list[Dispense]]) -> list[LabelPage]:
    if not dispensed:
        _refuse_undispensed(order, dispensed=())
    first = next(iter(dispensed.values()))[0]
    order, prescription = first.order, first.order.prescription
    if not prescription.rx_number:
        _refuse_unverified(order)
    if len(dispensed) < first.line_count:
        _refuse_undispensed(order, dispensed=dispensed)
    recalled = [
        d.batch.lot_number
        for ds in dispensed.values()
        for d in ds
        if d.batch.status == BatchStatus.RECALLED
    ]
    if recalled:
        raise LabelRefused(
            f"Order {order.number}: batch {', '.join(_unique(recalled))} was recalled; its "
            "labels cannot be printed."
        )

    last_dispensed_at = max(d.dispensed_at for ds in dispensed.values() for d in ds)
    patient = prescription.patient
    refills = prescription.refills_authorized
    fill = "Original fill"
    if order.fill_number > 0:
        fill = f"Refill {first.refills_used} of {refills}"
    # A fill given in parts, or given again: the patient learns that more follows.
    if first.partial:
        fill += " (partial: the rest follows)"
    elif order.kind in FILL_PARTS:
        fill += f" ({FILL_PARTS[order.kind]})"
    regimen = fill_regimen(prescription, _steps(first.schedule), order.schedule)
    common = {
        "pharmacy_name": settings.PHARMACY_NAME,
        "pharmacy_address": settings.PHARMACY_ADDRESS,
        "pharmacy_phone": settings.PHARMACY_PHONE,
        "rx_number": prescription.rx_number,
        "fill_number": order.fill_number,
        "fill": fill,
        "date_filled": timezone.localdate(last_dispensed_at),
        "patient_name": patient.full_name,
        "patient_date_of_birth": patient.date_of_birth,
        "prescriber": str(prescription.prescriber),
        "pharmacist_initials": _initials(first.verified_by or ""),
        "refills_remaining": max(refills - first.refills_used, 0),
        "rx_expires_on": prescription.expires_on,
    }
    return [
        LabelPage(**common, **_line_fields(order, regimen, dispenses[0].line, dispenses))
        for dispenses in dispensed.values()
    ]


def _initials(name: str) -> str:
    """'Pat Pharmacist' -> 'PP'."""
    return "".join(word[0].upper() for word in name.split() if word[:1].isalpha())


def _refuse_unverified(order: Order):
    raise LabelRefused(
        f"Order {order.number} has no Rx number yet: labels are printed for verified, "
        "dispensed orders."
    )


def _refuse_undispensed(order: Order, *, dispensed: Iterable[int]):
    """Why an order has no labels, or not a label for each line (an error, not the rule)."""
    if not Prescription.objects.filter(pk=order.prescription_id, rx_number__gt="").exists():
        _refuse_unverified(order)
    lines = PrescriptionLine.objects.of_order(Order.objects.get(pk=order.pk))
    line = lines.exclude(pk__in=list(dispensed)).select_related("formulation").first()
    if line is None:
        raise LabelRefused(f"Order {order.number} has no product lines to label.")
    raise LabelRefused(
        f"Order {order.number}: {line.formulation.name} is not dispensed yet; labels are "
        "printed for verified, dispensed orders."
    )


def _count(queryset) -> Coalesce:
    """The number of rows of a correlated queryset, as a subquery (0 when none)."""
    counted = queryset.order_by().values(group=Value(1)).annotate(count=Count("pk"))
    return Coalesce(Subquery(counted.values("count")), 0)


# The refills used once an order's fill is made: refill orders that count (not cancelled or
# rejected, as the portal counts them: Order.objects.refills_used), but only up to this fill,
# so that a reprinted label of an earlier fill says what it said then.
_REFILLS_USED = _count(
    Order.objects.refills_used().filter(
        prescription=OuterRef("order__prescription"),
        fill_number__lte=OuterRef("order__fill_number"),
    )
)
# The order's lines: its prescription's lines of its schedule, but those it leaves to another
# order of the same fill (PrescriptionLine.objects.of_order).
_LINE_COUNT = _count(
    PrescriptionLine.objects.filter(
        prescription=OuterRef("order__prescription"), phase=OuterRef("order__schedule")
    ).exclude(
        Exists(
            OrderQuantity.objects.filter(
                order=OuterRef(OuterRef("order")), line=OuterRef("pk"), units=0
            )
        )
    )
)
# Whether the rest of this order's fill follows as another order.
_PARTIAL = Exists(
    Order.objects.filter(follows=OuterRef("order"), kind=OrderKind.REMAINDER).exclude(
        status__in=UNFILLED_STATUSES
    )
)
# The prescription's schedule: each bottle's label says its own steps.
_SCHEDULE = json_rows(
    PrescriptionStep.objects, "prescription", "position", "dose_mg", "days",
    outer="order__prescription",
)  # fmt: skip
# The pharmacist whose signature verified the order (many state boards want their initials).
# The fill's verification covers the orders that follow it (the rest of a partial fill, a
# replacement), which have no signature of their own.
_VERIFIED_BY = Subquery(
    OrderEvent.objects.filter(
        order__prescription=OuterRef("order__prescription"),
        order__fill_number=OuterRef("order__fill_number"),
        to_status=OrderStatus.VERIFIED,
    )
    .exclude(signed_by="")
    .order_by("-created_at", "-pk")
    .annotate(name=Concat("actor__first_name", Value(" "), "actor__last_name"))
    .values("name")[:1]
)

# What a label prints; a field used on a label and missing here costs a query per label.
_DISPENSE_FIELDS = (
    "units", "dispensed_at", "line", "line__position", "line__formulation",
    "line__formulation__name", "line__formulation__dosage_form", "line__formulation__unit",
    "line__formulation__strength_mg", "batch", "batch__lot_number", "batch__status",
    "batch__beyond_use_date", "batch__formulation_version",
    "batch__formulation_version__bud_category", "batch__formulation_version__storage",
    "batch__formulation_version__auxiliary_labels", "order", "order__kind", "order__schedule",
    "order__fill_number", "order__prescription", "order__prescription__rx_number",
    "order__prescription__refills_authorized", "order__prescription__expires_on",
    "order__prescription__dosage_form", "order__prescription__concentration_mg_per_ml",
    "order__prescription__doses_per_day", "order__prescription__time_of_day",
    "order__prescription__days_supply", "order__prescription__patient",
    "order__prescription__patient__first_name", "order__prescription__patient__last_name",
    "order__prescription__patient__date_of_birth", "order__prescription__prescriber",
    "order__prescription__prescriber__first_name", "order__prescription__prescriber__last_name",
    "order__prescription__prescriber__credentials",
)  # fmt: skip


# The dispenses a label is read from, by order: its SQL compiled once per process and number of
# orders (CompiledRead), as compiling the nine tables and five subqueries costs Django more than
# PostgreSQL takes to run them. Only the fields a label prints are read (a patient's other
# fields, phone numbers and JSON lists cost time to load).
_LABEL_DISPENSES = CompiledRead(
    Dispense.objects.select_related(
        "order__prescription__patient", "order__prescription__prescriber",
        "line__formulation", "batch__formulation_version",
    )
    .only(*_DISPENSE_FIELDS)
    .annotate(
        refills_used=_REFILLS_USED, line_count=_LINE_COUNT, verified_by=_VERIFIED_BY,
        schedule=_SCHEDULE, partial=_PARTIAL,
    ),
    "order_id",
)  # fmt: skip


def _line_fields(order: Order, regimen: dosing.Regimen, line, dispenses: list[Dispense]) -> dict:
    formulation = line.formulation
    batches = [dispense.batch for dispense in dispenses]
    if any(batch.beyond_use_date is None for batch in batches):
        raise LabelRefused(
            f"Order {order.number}: a batch dispensed for {formulation.name} has no "
            "beyond-use date."
        )
    versions = [batch.formulation_version for batch in batches]
    warnings = [OPIOID_WARNING, CHILDREN]
    for version in versions:
        warnings.extend(version.auxiliary_labels or [])
    if formulation.dosage_form == DosageForm.TOPICAL_CREAM:
        warnings.append(EXTERNAL_USE)
    elif formulation.dosage_form != DosageForm.CAPSULE:
        warnings.append(SHAKE_WELL)
    if any(version.bud == BudCategory.AQUEOUS_UNPRESERVED for version in versions):
        warnings.append(REFRIGERATE)
    if formulation.dosage_form == DosageForm.TOPICAL_CREAM:
        # Never "Shake well" on a cream, whatever a record's auxiliary labels say.
        warnings = [w for w in warnings if _key(w) != _key(SHAKE_WELL)]
    strength = formulation.strength_mg if formulation.dosage_form == DosageForm.CAPSULE else None
    return {
        "drug": formulation.name,
        "quantity": dosing.units_text(sum(d.units for d in dispenses), formulation.unit),
        "directions": dosing.label_directions(regimen, strength),
        "beyond_use_date": min(batch.beyond_use_date for batch in batches),
        "storage": "; ".join(_unique(label_storage(v.bud, v.storage) for v in versions)),
        "lot_numbers": tuple(_unique(batch.lot_number for batch in batches)),
        "warnings": tuple(_unique(warnings)),
    }


def _key(text: str) -> str:
    return (text or "").strip().rstrip(".").casefold()


def _unique(texts: Iterable[str]) -> list[str]:
    """Non-blank texts in order, each once (ignoring case, surrounding space and a final stop)."""
    seen: set[str] = set()
    kept = []
    for text in texts:
        text = (text or "").strip()
        key = _key(text)
        if text and key not in seen:
            seen.add(key)
            kept.append(text)
    return kept


# --- Barcode --------------------------------------------------------------------------------


def barcode_svg(payload: str) -> str:
    """Inline SVG markup of a Code 128 barcode of `payload`, at most 3.8 in wide and 0.24 in
    high, with no text (the Rx number and lot are printed as text on the label).

    Bars are 3 printer dots wide (0.254 mm) at 300 dpi, or 2 dots for a long payload; a payload
    too long even at 2 dots raises ValueError rather than printing an unreadable barcode."""
    # A new object each time: python-barcode's Code 128 keeps encoder state between builds.
    modules = Code128(payload).build()[0]  # "1101001000...": one character per module
    for dots in (3, 2):
        if (len(modules) + 2 * _QUIET_ZONE_MODULES) * dots <= _BARCODE_MAX_DOTS:
            return _svg_in_printer_dots(modules, dots)
    raise ValueError(f"The barcode of {payload!r} is too long to fit a label.")


def _svg_in_printer_dots(modules: str, dots: int) -> str:
    """The barcode's modules drawn in whole printer dots, as one path.

    The user unit is one dot (viewBox) and every edge is a whole dot, so no bar edge drifts off
    a 300 dpi printer's dot grid; each bar is narrowed by a twentieth of a dot on both sides
    (bar width reduction) so that a rasteriser rounding outwards cannot widen it by a dot.

    One <path> instead of a <rect> per bar: inline in HTML every SVG element is also styled as
    an HTML element, which costs layout time for nothing."""
    width, height = (len(modules) + 2 * _QUIET_ZONE_MODULES) * dots, _BARCODE_HEIGHT_DOTS
    bars = []
    for run in _BAR.finditer(modules):
        left = (_QUIET_ZONE_MODULES + run.start()) * dots + _BAR_WIDTH_REDUCTION
        bar_width = len(run.group()) * dots - 2 * _BAR_WIDTH_REDUCTION
        bars.append(f"M{left:g} 0h{bar_width:g}v{height}h-{bar_width:g}z")
    path = "".join(bars)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width * 72 / _DPI:.2f}pt" height="{height * 72 / _DPI:.2f}pt">'  # 1 dot = 0.24 pt
        f'<rect width="{width}" height="{height}" fill="white"/>'
        f'<path fill="black" d="{path}"/></svg>'
    )


# --- Loading resources ----------------------------------------------------------------------


def static_prefix() -> str:
    """The absolute URL under which labels see the static files (also their base URL)."""
    return urljoin(_LABEL_ORIGIN, settings.STATIC_URL)


class StaticFilesOnlyFetcher(URLFetcher):
    """WeasyPrint's URL fetcher for labels: serves the portal's static files (found by the
    staticfiles finders) and refuses every other URL: file:, http(s):, data: and the rest."""

    def fetch(self, url, headers=None):
        prefix = static_prefix()
        if not url.startswith(prefix):
            raise LabelResourceRefused(f"Labels load only the portal's static files, not {url!r}.")
        relative = posixpath.normpath(unquote(urlsplit(url[len(prefix) :]).path))
        if relative.startswith(("/", "..")) or relative == ".":
            raise LabelResourceRefused(f"Not a static file: {url!r}.")
        try:
            found = finders.find(relative)
        except SuspiciousFileOperation as error:
            raise LabelResourceRefused(f"Not a static file: {url!r}.") from error
        if not found:
            raise LabelResourceRefused(f"No static file {relative!r}.")
        content_type = mimetypes.guess_type(relative)[0] or "application/octet-stream"
        return URLFetcherResponse(
            url, body=Path(found).read_bytes(), headers={"Content-Type": content_type}
        )


@contextlib.contextmanager
def collector_held():
    """Python's cycle collector held off meanwhile, then run once over the youngest generation:
    around a document's layout and writing, which make thousands of objects (boxes, styles,
    lines of text) that live until the PDF is written.

    Left on, the collector runs every 700 new objects and goes over the survivors again and
    again; every tenth run also goes over the documents laid out earlier, and now and then a
    run goes over the whole process. Held off, it does not run meanwhile, and afterwards it
    goes over what was made once, here, so that what a render costs is paid by the render.
    Let go of the document before the hold ends: that run then frees it. A document still held
    would outlive the run into an older generation, which only the collector's own runs free.
    Held within a hold, it runs only when the outer hold ends."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()
            gc.collect(0)


@contextlib.contextmanager
def rendering():
    """WeasyPrint's turn to lay out or write a document: one at a time in this process (the
    shared font configuration), with the cycle collector held (collector_held)."""
    with _RENDER_LOCK, collector_held():
        yield


@functools.cache
def url_fetcher() -> StaticFilesOnlyFetcher:
    return StaticFilesOnlyFetcher()


@functools.cache
def font_configuration() -> FontConfiguration:
    return FontConfiguration()


@functools.cache
def label_stylesheets() -> tuple[CSS, ...]:
    """The label's stylesheet (with its Lato @font-face rules, fetched here once) and the page
    size from settings.LABEL_PAGE_SIZE."""
    page_size = settings.LABEL_PAGE_SIZE.strip()
    if not _PAGE_SIZE.fullmatch(page_size):
        raise ValueError(f"LABEL_PAGE_SIZE is not a CSS page size: {page_size!r}")
    fonts = font_configuration()
    return (
        CSS(url=static_prefix() + STYLESHEET, url_fetcher=url_fetcher(), font_config=fonts),
        CSS(string=f"@page {{ size: {page_size}; }}", url_fetcher=url_fetcher(), font_config=fonts),
    )


# What the stylesheets are built from: a test that overrides one of these gets them built again.
_STYLESHEET_SETTINGS = frozenset(
    {"LABEL_PAGE_SIZE", "STATIC_URL", "STATIC_ROOT", "STATICFILES_DIRS", "STATICFILES_FINDERS"}
)


@receiver(setting_changed)
def _stylesheet_settings_changed(*, setting: str, **kwargs) -> None:
    if setting in _STYLESHEET_SETTINGS:
        label_stylesheets.cache_clear()


# --- Rendering ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _PrintedLabel:
    page: LabelPage
    barcode: SafeString


def render_labels_html(pages: Iterable[LabelPage]) -> str:
    """The HTML of the labels, one <section> per label; every value is escaped by the template
    except the barcode SVG, which this module makes (it contains no text)."""
    labels = [_PrintedLabel(page, mark_safe(barcode_svg(page.barcode_payload))) for page in pages]
    return render_to_string(TEMPLATE, {"labels": labels, "continued": CONTINUED})


def render_pages_pdf(pages: list[LabelPage]) -> bytes:
    """One PDF document with one page per label (a long label may take two)."""
    with collector_held():  # over the layout and the writing together
        document = render_pages_document(pages)
        with rendering():
            pdf = document.write_pdf()
        del document  # let go of before the hold ends: its collection frees it
    return pdf


def render_pages_document(pages: list[LabelPage]):
    """The laid-out WeasyPrint document of these labels (write_pdf() makes the PDF)."""
    return fitted_labels(pages)[1]


def fitted_labels(pages: list[LabelPage]) -> tuple[list[LabelPage], Document]:
    """The labels as printed, one per page, and their laid-out WeasyPrint document.

    A label whose text runs past its page is laid out again (fitted_label): its directions are
    shared out over whole labels (who, what, lot, BUD and barcode on each, "continued on the
    next label"), and its text is set smaller when that saves labels beyond LABELS_PER_BOTTLE
    or when nothing fits otherwise (FIT_LEVELS). Text is never cut off: a label that cannot
    fit even at the smallest size is refused (LabelDoesNotFit)."""
    if not pages:
        raise ValueError("There are no labels to print.")
    document = _laid_out(pages)
    if len(document.pages) == len(pages):
        return pages, document
    overflowing = _overflowing(document, len(pages))
    pages = [
        part
        for i, page in enumerate(pages)
        for part in (fitted_label(page, fits=_fits_a_page) if i in overflowing else [page])
    ]
    document = _laid_out(pages)
    if len(document.pages) != len(pages):
        raise LabelDoesNotFit(
            f"The labels took {len(document.pages)} pages instead of {len(pages)}: a "
            "label's text does not fit its page."
        )
    return pages, document


def _laid_out(pages: list[LabelPage]):
    markup = render_labels_html(pages)
    with rendering():
        html = HTML(string=markup, base_url=static_prefix(), url_fetcher=url_fetcher())
        return html.render(stylesheets=label_stylesheets(), font_config=font_configuration())


def _overflowing(document, count: int) -> set[int]:
    """The labels (by index) that took more than one page: each label's section has an id,
    and WeasyPrint lists the ids of the elements on each page (on every page they span)."""
    starts: dict[int, int] = {}
    for number, page in enumerate(document.pages):
        for anchor in page.anchors:
            if anchor.startswith("label-"):
                starts.setdefault(int(anchor.removeprefix("label-")), number)
    ends = [*(starts.get(i + 1, len(document.pages)) for i in range(count))]
    return {i for i in range(count) if ends[i] - starts.get(i, 0) > 1}


def _fits_a_page(page: LabelPage) -> bool:
    """Whether WeasyPrint lays the label out on one page."""
    return len(_laid_out([page]).pages) == 1


def fitted_label(page: LabelPage, *, fits: Callable[[LabelPage], bool]) -> list[LabelPage]:
    """The label as whole labels that each fit a page, at the largest text size that needs at
    most LABELS_PER_BOTTLE of them, or else at the largest size that needs the fewest: long
    directions at the usual size go on a continuation label, and the text shrinks when a long
    name (or a long titration) would need more labels than that, or nothing fits at all.

    `fits(label)` says whether one label fits its page as the printer's format lays it out
    (the PDF's WeasyPrint layout, the thermal printer's ZPL layout in pharmacy/zpl.py)."""
    best: list[LabelPage] = []
    for fit in FIT_LEVELS:
        parts = split_label(dataclasses.replace(page, fit=fit), fits=fits)
        if parts and (not best or len(parts) < len(best)):
            best = parts
        if best and len(best) <= LABELS_PER_BOTTLE:
            break
    if not best:
        raise LabelDoesNotFit(
            f"A label of {page.drug} does not fit its page even with one phrase of directions "
            "and its text at the smallest size."
        )
    return best


def split_label(page: LabelPage, *, fits: Callable[[LabelPage], bool]) -> list[LabelPage]:
    """The label as whole labels that each fit a page (`fits`), the directions shared out in
    order, as many phrases on each as fit; none when one phrase alone does not fit."""
    parts, rest = [], list(page.directions)
    while rest:
        for take in range(len(rest), 0, -1):
            part = dataclasses.replace(
                page,
                directions=tuple(rest[:take]),
                continuation=bool(parts),
                continued=take < len(rest),
            )
            if fits(part):
                break
        else:
            return []
        parts.append(part)
        rest = rest[take:]
    return parts


def render_label_pdf(order: Order) -> bytes:
    """The labels of one order: one PDF, a page per prescription line."""
    return render_pages_pdf(label_pages(order))


def render_labels_pdf(orders: Iterable[Order], *, progress=None, chunk: int = 25) -> bytes:
    """The labels of many orders as the pages of ONE document, each font subset embedded once
    instead of once per order. Laid out `chunk` orders at a time so that progress(done, total)
    can be reported for large selections."""
    orders = list(orders)
    if not orders:
        raise ValueError("There are no labels to print.")
    # Held over the whole batch, so that the documents laid out so far are not gone over again
    # (measured: about 4 ms of the 28 a label took in a batch of 100). What a part made and
    # left is freed as the part is done; the documents, once the PDF is written.
    with collector_held():
        documents = []
        for start in range(0, len(orders), chunk):
            part = orders[start : start + chunk]
            pages = [page for pages in labels_of_orders(part) for page in pages]
            documents.append(render_pages_document(pages))
            gc.collect(0)
            if progress is not None:
                progress(start + len(part), len(orders))
        with rendering():
            pdf = documents[0].copy([page for d in documents for page in d.pages]).write_pdf()
        del documents
        gc.collect(1)
    return pdf

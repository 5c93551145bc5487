"""Prescription labels as ZPL II, for thermal label printers at 203 or 300 dpi.

The labels say what the PDF labels say (pharmacy/labels.py gathers it as LabelPage values) and
carry the same Code 128 payload; one ^XA...^XZ format per label, sized for
settings.LABEL_PAGE_SIZE. No WeasyPrint: the text is laid out here, field by field, in ZPL's
scalable font 0 at explicit sizes, each text in a ^FB field block whose lines this module
breaks itself (with a width estimate that is never narrower than the printer's, see
_ADVANCES), so that the printer never wraps a line again and never runs out of lines. A label
whose directions do not fit goes on whole continuation labels, or is set smaller, exactly as
the PDF does (labels.fitted_label); a label that cannot fit at all is refused
(LabelDoesNotFit), never cut off.
"""

import dataclasses
import functools
import re
import unicodedata
from collections.abc import Iterable
from typing import NamedTuple

from django.conf import settings

from orders.models import Order

from .labels import CONTINUED, LabelDoesNotFit, LabelPage, fitted_label, labels_of_orders

DPIS = (203, 300)
CONTENT_TYPE = "application/x-zpl"


class LabelSizeRefused(ValueError):
    """settings.LABEL_PAGE_SIZE is not a size a thermal label printer can be given."""


# --- The label's size and the printer's dots ------------------------------------------------

_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(in|mm)\s+(\d+(?:\.\d+)?)\s*(in|mm)\s*")
_MM_PER_INCH = 25.4


def label_size_dots(page_size: str, dpi: int) -> tuple[int, int]:
    """The label's width and length in printer dots, from a size such as "4in 2in" or
    "102mm 51mm" (width first). Named sizes ("A7 landscape") and other units are refused:
    a label printer is told its label in dots."""
    if dpi not in DPIS:
        raise LabelSizeRefused(
            f"Thermal labels are printed at {DPIS[0]} or {DPIS[1]} dpi, not {dpi}."
        )
    match = _SIZE.fullmatch(page_size or "")
    if match is None:
        raise LabelSizeRefused(
            f"LABEL_PAGE_SIZE {page_size!r} is not a label size for a thermal printer: give "
            'its width and height in inches or millimetres, such as "4in 2in" or "102mm 51mm".'
        )
    width, length = (
        round(float(number) / (_MM_PER_INCH if unit == "mm" else 1) * dpi)
        for number, unit in (match.group(1, 2), match.group(3, 4))
    )
    if not width or not length:
        raise LabelSizeRefused(f"LABEL_PAGE_SIZE {page_size!r} has no area.")
    return width, length


@dataclasses.dataclass(frozen=True)
class _Geometry:
    """A label's size and margins in the printer's dots."""

    dpi: int
    width: int
    length: int

    def dots(self, points: float) -> int:
        """Points (1/72 in) as whole dots at the printer's resolution."""
        return _dots(points, self.dpi)

    @property
    def margin_x(self) -> int:
        return round(0.09 * self.dpi)  # label.css's page margins: 0.09 in and 0.07 in

    @property
    def margin_y(self) -> int:
        return round(0.07 * self.dpi)


@functools.lru_cache(maxsize=256)
def _dots(points: float, dpi: int) -> int:
    return round(points * dpi / 72)


# --- Text sizes and widths ------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Sizes:
    """The text sizes of one fit level, in points as label.css sets them (font 0's height in
    dots is its whole character cell, ZPL II Programming Guide, "Scalable Fonts": the same
    measure as a point size)."""

    header: float
    rx: float
    filled: float
    patient: float
    drug: float
    directions: float
    long_directions: float
    text: float
    bud: float
    warnings: float
    barcode: float
    line_height: float = 1.18  # label.css: 1.18, and 1.1 once everything is set smaller
    one_column: bool = False  # and the rx, patient and prescriber lines each in one line


# As label.css's .fit-0 to .fit-3 (labels.FIT_LEVELS): first the patient's name and the
# headings smaller, then everything (nothing under 5 pt; patient, drug and directions 6 pt),
# then one column across the whole label. 5 pt is 14 dots at 203 dpi, above font 0's
# smallest height of 10 dots.
_USUAL = _Sizes(
    header=5.5,
    rx=7.5,
    filled=6,
    patient=8.5,
    drug=7.5,
    directions=7,
    long_directions=6,
    text=6,
    bud=6.5,
    warnings=5.5,
    barcode=5,
)
_SMALL = _Sizes(
    header=5,
    rx=6,
    filled=5,
    patient=6,
    drug=6,
    directions=6,
    long_directions=6,
    text=5,
    bud=5,
    warnings=5,
    barcode=5,
    line_height=1.1,
)
_FIT_SIZES = {
    0: _USUAL,
    1: dataclasses.replace(_USUAL, rx=6.5, patient=7, drug=6.5),
    2: _SMALL,
    3: dataclasses.replace(_SMALL, one_column=True),
}
_LONG_DIRECTIONS = 150  # characters: set smaller at fit 0 and 1, as label.html does

# How wide a character of font 0 prints, per 1000 of the font's height: the advance widths of
# Helvetica Bold (Adobe's Core 14 font metrics, Helvetica-Bold.afm). Font 0 is CG Triumvirate
# Bold Condensed, a condensed cut of a Helvetica-class design, so at the same height each of
# its characters is narrower than Helvetica Bold's (a box around "Sample Text" at ^A0N,30,30
# measures about 112 dots in the Labelary ZPL viewer; these widths give 177): a line measured
# with them never runs past its block on the printer. A character not listed is measured as
# its base letter (é as e), or else as a whole em (the widest any Helvetica Bold character is).
_WIDTHS = (
    (238, "'"),
    (278, " ,./I\\ijl·"),
    (280, "|"),
    (333, "!()-:;[]`ft"),
    (389, "*r{}"),
    (474, '"'),
    (500, "z"),
    (556, "#$0123456789J_aceksvxy"),
    (584, "+<=>^~"),
    (611, "?FLTZbdghnopqu"),
    (667, "EPSVXY"),
    (722, "&ABCDHKNRU"),
    (778, "GOQw"),
    (833, "M"),
    (889, "%m"),
    (944, "W"),
    (975, "@"),
)
_ADVANCES = {char: width for width, chars in _WIDTHS for char in chars}
_EM = 1000


def _advance(char: str) -> int:
    width = _ADVANCES.get(char)
    if width is None:
        base = unicodedata.normalize("NFD", char)[:1]
        width = _ADVANCES.get(base, _EM)
    return width


@functools.lru_cache(maxsize=4096)
def _word_width(word: str) -> int:
    """A word's width in 1/1000 of the font's height (words repeat from label to label)."""
    return sum(_advance(char) for char in word)


_SPACE = _ADVANCES[" "]


def text_width(text: str, height: int) -> float:
    """The most dots `text` takes in font 0 at `height` dots (see _ADVANCES)."""
    return sum(_advance(char) for char in text) * height / _EM


@functools.lru_cache(maxsize=8192)
def wrap(text: str, width: int, height: int) -> tuple[str, ...]:
    """The text's lines in a block `width` dots wide, at `height` dots: broken between words,
    and a word longer than a line broken where it must (as label.css's overflow-wrap); none
    when not even one character fits. (Kept: most of a label's text is on every label.)"""
    limit = width * _EM // height  # a line's width in 1/1000 of the height
    words = text.split()
    if sum(map(_word_width, words)) + _SPACE * (len(words) - 1) <= limit:
        return (" ".join(words),) if words else ()
    lines: list[str] = []
    line: list[str] = []
    used = 0
    for word in words:
        size = _word_width(word)
        if line and used + _SPACE + size <= limit:
            line.append(word)
            used += _SPACE + size
            continue
        if line:
            lines.append(" ".join(line))
        while size > limit:  # a word wider than the line: as much of it as fits on each
            taken, taken_size = 0, 0
            while taken < len(word) and taken_size + _advance(word[taken]) <= limit:
                taken_size += _advance(word[taken])
                taken += 1
            if not taken:
                return ()
            lines.append(word[:taken])
            word, size = word[taken:], size - taken_size
        line, used = [word], size
    if line:
        lines.append(" ".join(line))
    return tuple(lines)


# --- Fields ---------------------------------------------------------------------------------

# What ^FD data cannot hold as it is: ZPL's control characters (^ and ~), the hex indicator (_),
# the backslash (with & it breaks the line in a ^FB block), everything outside printable ASCII.
_UNSAFE = re.compile(r"[^ -~]|[\\^_~]")


def _escaped(match: re.Match, *, block: bool) -> str:
    char = match.group()
    if char == "\\" and block:
        return "\\\\"
    if char < " " or char == "\x7f":  # a control character prints as a space
        return " "
    return "".join(f"_{byte:02X}" for byte in char.encode())


def _escaped_in_block(match: re.Match) -> str:
    return _escaped(match, block=True)


def _escaped_in_field(match: re.Match) -> str:
    return _escaped(match, block=False)


@functools.lru_cache(maxsize=8192)
def field_data(text: str, *, block: bool = True) -> str:
    """Text as ^FD data after ^FH: the ZPL control characters ^ and ~, the hex indicator _ and
    every character outside printable ASCII as hex escapes (_5E; UTF-8 bytes under ^CI28). In a
    ^FB block a backslash is doubled (a backslash and & would break the line there)."""
    return _UNSAFE.sub(_escaped_in_block if block else _escaped_in_field, text)


class _Text(NamedTuple):
    x: int
    y: int
    width: int
    height: int  # of the font, in dots
    lines: tuple[str, ...]
    spacing: int  # dots added between lines

    @property
    def block_height(self) -> int:
        return len(self.lines) * self.height + (len(self.lines) - 1) * self.spacing

    def zpl(self) -> str:
        data = "\\&".join(field_data(line) for line in self.lines)
        return (
            f"^FO{self.x},{self.y}^A0N,{self.height},{self.height}"
            f"^FB{self.width},{len(self.lines)},{self.spacing},L,0^FH_^FD{data}^FS"
        )


class _Box(NamedTuple):
    """A line or a frame (^GB): `thickness` equal to the width or height draws a line."""

    x: int
    y: int
    width: int
    height: int
    thickness: int

    def zpl(self) -> str:
        return f"^FO{self.x},{self.y}^GB{self.width},{self.height},{self.thickness}^FS"


class _Barcode(NamedTuple):
    x: int
    y: int
    module: int  # dots per narrow bar (^BY)
    height: int
    payload: str

    def zpl(self) -> str:
        # Mode N with start code B (>:) given: every character one symbol of subset B, so its
        # width is known here (code128_modules); > itself is written >< in that mode.
        data = field_data(self.payload, block=False).replace(">", "><")
        return f"^FO{self.x},{self.y}^BY{self.module}^BCN,{self.height},N,N,N,N^FH_^FD>:{data}^FS"


# --- Code 128 -------------------------------------------------------------------------------

_QUIET_ZONE_MODULES = 10  # on each side (ISO/IEC 15417)
# The bar widths tried, widest first: never narrower than 0.17 mm (2 dots at 300 dpi, the
# PDF label's narrowest), so that a thermal print scans as well as the PDF's.
_MODULE_DOTS = {203: (3, 2), 300: (4, 3, 2)}
_BARCODE_HEIGHT_IN = 0.24  # as the PDF label's


def code128_modules(payload: str) -> int:
    """The modules of `payload` in Code 128 subset B: a start, a symbol per character and the
    check symbol (11 modules each), and the stop (13)."""
    if not payload or any(not " " <= char <= "~" for char in payload):
        raise ValueError(f"The barcode of {payload!r} is not printable ASCII.")
    return 11 * (len(payload) + 2) + 13


def _barcode_module(payload: str, geometry: _Geometry, width: int) -> int:
    modules = code128_modules(payload) + 2 * _QUIET_ZONE_MODULES
    for dots in _MODULE_DOTS[geometry.dpi]:
        if modules * dots <= width:
            return dots
    raise LabelDoesNotFit(
        f"The barcode of {payload!r} is too long for a label {width} dots wide at "
        f"{geometry.dpi} dpi: print it at a higher resolution or as a PDF."
    )


# --- Laying out a label ---------------------------------------------------------------------


def _date(day) -> str:
    return f"{day.month:02}/{day.day:02}/{day.year}"  # as label.html's m/d/Y


def _directions(page: LabelPage) -> str:
    text = page.directions_text
    if page.continuation:
        text = f"(continued) {text}"
    if page.continued:
        text = f"{text} ({CONTINUED})"
    return text


def _joined(*texts: str) -> str:
    return " · ".join(text for text in texts if text)


class _Column:
    """Text blocks stacked from the top of a column; `full` once one did not fit."""

    __slots__ = ("bottom", "dpi", "fields", "full", "line_height", "width", "x", "y")

    def __init__(self, geometry: _Geometry, sizes: _Sizes, x: int, y: int, width: int, bottom: int):
        self.dpi, self.x, self.y, self.width, self.bottom = geometry.dpi, x, y, width, bottom
        self.line_height = sizes.line_height
        self.fields: list = []
        self.full = False

    def text(self, text: str, points: float, *, gap: float = 1.5) -> None:
        if self.full or not text.strip():
            return
        height = _dots(points, self.dpi)
        lines = wrap(text, self.width, height)
        field = _Text(self.x, self.y, self.width, height, lines, self.spacing(height))
        if not lines or self.y + field.block_height > self.bottom:
            self.full = True
            return
        self.fields.append(field)
        self.y += field.block_height + _dots(gap, self.dpi)

    def framed(self, texts: Iterable[str], points: float) -> None:
        """Texts one under the other in a frame (the warnings)."""
        texts = [text for text in texts if text.strip()]
        if self.full or not texts:
            return
        rule, pad = max(1, _dots(0.5, self.dpi)), _dots(1, self.dpi)
        inner = self.width - 2 * (rule + pad)
        height = _dots(points, self.dpi)
        wrapped = [wrap(text, inner, height) for text in texts]
        if not all(wrapped):
            self.full = True
            return
        lines = tuple(line for text_lines in wrapped for line in text_lines)
        x, y = self.x + rule + pad, self.y + rule + pad
        field = _Text(x, y, inner, height, lines, self.spacing(height))
        frame_height = field.block_height + 2 * (rule + pad)
        if self.y + frame_height > self.bottom:
            self.full = True
            return
        self.fields += [_Box(self.x, self.y, self.width, frame_height, rule), field]
        self.y += frame_height + _dots(1.5, self.dpi)

    def spacing(self, height: int) -> int:
        """The dots between two lines of a block (^FB), as the line height says."""
        return max(1, round(height * (self.line_height - 1)))


def _layout(page: LabelPage, geometry: _Geometry) -> list | None:
    """The fields of one label, or None when its text does not fit the label."""
    sizes = _FIT_SIZES[page.fit]
    dots = geometry.dots
    left, top = geometry.margin_x, geometry.margin_y
    width, bottom = geometry.width - 2 * left, geometry.length - top
    rule = max(1, dots(0.5))

    def column(x: int, y: int, column_width: int, column_bottom: int) -> _Column:
        return _Column(geometry, sizes, x, y, column_width, column_bottom)

    # The barcode and its text at the foot of the label, across it.
    payload = page.barcode_payload
    module = _barcode_module(payload, geometry, width)
    bar_height = round(_BARCODE_HEIGHT_IN * geometry.dpi)
    foot = column(left, 0, width, geometry.length)
    foot.text(payload, sizes.barcode)
    (caption,) = foot.fields
    bar_y = bottom - caption.block_height - dots(0.5) - bar_height
    caption = caption._replace(y=bar_y + bar_height + dots(0.5))
    barcode = _Barcode(left + _QUIET_ZONE_MODULES * module, bar_y, module, bar_height, payload)

    header = column(left, top, width, bar_y)
    pharmacy = _joined(page.pharmacy_name, page.pharmacy_address, page.pharmacy_phone)
    header.text(pharmacy, sizes.header, gap=1)
    if header.full:
        return None
    fields = [*header.fields, _Box(left, header.y, width, rule, rule)]
    columns_top, columns_bottom = header.y + rule + dots(2), bar_y - dots(3)
    if columns_top >= columns_bottom:
        return None

    if sizes.one_column:
        main = side = column(left, columns_top, width, columns_bottom)
    else:
        side_width = round(width * 0.34)  # label.css: 1.3 in of a 4 in label's 3.82 in
        side_x = left + width - side_width
        main = column(left, columns_top, side_x - dots(5) - left, columns_bottom)
        pad = rule + dots(4)
        side = column(side_x + pad, columns_top, side_width - pad, columns_bottom)
        fields.append(_Box(side_x, columns_top, rule, columns_bottom - columns_top, rule))

    filled = f"Filled {_date(page.date_filled)}"
    if page.pharmacist_initials:
        filled += f" · RPh {page.pharmacist_initials}"
    born = f"DOB {_date(page.patient_date_of_birth)}"
    prescriber = f"Prescriber: {page.prescriber}"
    refills = (
        f"Refills remaining: {page.refills_remaining} · Rx expires {_date(page.rx_expires_on)}"
    )
    if sizes.one_column:  # as label.html's lines, each one block
        main.text(_joined(page.rx_and_fill, filled), sizes.rx, gap=0.5)
        main.text(_joined(page.patient_name, born), sizes.patient, gap=0.5)
    else:
        main.text(page.rx_and_fill, sizes.rx, gap=0.5)
        main.text(filled, sizes.filled)
        main.text(page.patient_name, sizes.patient, gap=0.5)
        main.text(born, sizes.filled)
    main.text(f"{page.drug} · Qty {page.quantity}", sizes.drug)
    long_directions = len(page.directions_text) > _LONG_DIRECTIONS
    main.text(_directions(page), sizes.long_directions if long_directions else sizes.directions)
    if sizes.one_column:
        main.text(_joined(prescriber, refills), sizes.text)
    else:
        main.text(prescriber, sizes.text, gap=0.5)
        main.text(refills, sizes.text)

    beyond_use = f"Do not use after {_date(page.beyond_use_date)}"
    lots = f"Lot {', '.join(page.lot_numbers)}"
    if sizes.one_column:
        side.text(_joined("Compounded preparation", beyond_use, page.storage, lots), sizes.text)
        side.framed([_joined(*page.warnings)], sizes.warnings)
    else:
        side.text("Compounded preparation", sizes.text, gap=0.5)
        side.text(beyond_use, sizes.bud)
        side.text(page.storage, sizes.text)
        side.text(lots, sizes.text)
        side.framed(page.warnings, sizes.warnings)
    if main.full or side.full:
        return None
    fields += main.fields
    if side is not main:
        fields += side.fields
    return [*fields, barcode, caption]


def _format(fields: list, geometry: _Geometry) -> str:
    """One label format: UTF-8 field data (^CI28), the label's size, its fields."""
    body = "\n".join(field.zpl() for field in fields)
    return f"^XA\n^CI28\n^PW{geometry.width}\n^LL{geometry.length}\n^LH0,0\n{body}\n^XZ\n"


# --- Rendering ------------------------------------------------------------------------------


@functools.lru_cache(maxsize=16)
def _geometry(page_size: str, dpi: int) -> _Geometry:
    return _Geometry(dpi, *label_size_dots(page_size, dpi))


def fitted_zpl_labels(pages: list[LabelPage], *, dpi: int) -> list[tuple[LabelPage, list]]:
    """Each label as printed with its fields: a label whose text does not fit is shared out
    over whole labels or set smaller (labels.fitted_label), or refused (LabelDoesNotFit)."""
    if not pages:
        raise ValueError("There are no labels to print.")
    geometry = _geometry(settings.LABEL_PAGE_SIZE, dpi)
    laid: dict[LabelPage, list | None] = {}

    def fits(page: LabelPage) -> bool:
        if page not in laid:
            laid[page] = _layout(page, geometry)
        return laid[page] is not None

    printed = []
    for page in pages:
        for part in [page] if fits(page) else fitted_label(page, fits=fits):
            printed.append((part, laid[part]))
    return printed


def render_pages_zpl(pages: list[LabelPage], *, dpi: int) -> str:
    """The labels as ZPL II, one ^XA...^XZ format per label, for a printer at `dpi`."""
    geometry = _geometry(settings.LABEL_PAGE_SIZE, dpi)
    return "".join(_format(fields, geometry) for _, fields in fitted_zpl_labels(pages, dpi=dpi))


def render_labels_zpl(orders: Iterable[Order], *, dpi: int, progress=None, chunk: int = 25) -> str:
    """The labels of many orders as ZPL II, read `chunk` orders at a time so that
    progress(done, total) can be reported, as labels.render_labels_pdf does."""
    orders = list(orders)
    if not orders:
        raise ValueError("There are no labels to print.")
    parts = []
    for start in range(0, len(orders), chunk):
        part = orders[start : start + chunk]
        pages = [page for pages in labels_of_orders(part) for page in pages]
        parts.append(render_pages_zpl(pages, dpi=dpi))
        if progress is not None:
            progress(start + len(part), len(orders))
    return "".join(parts)

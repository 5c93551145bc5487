"""Labels as ZPL II for thermal printers: read back with a small parser of the ZPL itself (the
commands between carets, the field data decoded as a printer decodes it), every element of a
known label, the barcode's payload, the label's size in dots at 203 and 300 dpi, every field
inside the label, long directions on continuation labels, escaping, and refusals."""

import dataclasses
import datetime
import re

import pytest

from orders import dosing
from pharmacy import labels, zpl
from tests.orders.test_label_printing import printable_orders
from tests.pharmacy.test_labels import (
    LONGEST_PATIENT,
    LONGEST_PRESCRIBER,
    TWELVE_STEPS,
)

OPIOIDS, CHILDREN = labels.OPIOID_WARNING, labels.CHILDREN
KNOWN = labels.LabelPage(
    pharmacy_name="Demo Compounding Pharmacy",
    pharmacy_address="1 Example Plaza, Springfield, IL 62701",
    pharmacy_phone="(217) 555-0100",
    rx_number="7000123",
    fill_number=1,
    fill="Refill 1 of 2",
    date_filled=datetime.date(2026, 12, 1),
    patient_name="Ada Quill",
    patient_date_of_birth=datetime.date(1970, 5, 5),
    prescriber="Lena Ortiz, NP",
    pharmacist_initials="PQ",
    drug="Naltrexone HCl 1.5 mg capsule",
    quantity="30 capsules",
    directions=("Take 1 capsule (1.5 mg) by mouth at bedtime; continue nightly.",),
    refills_remaining=1,
    rx_expires_on=datetime.date(2027, 11, 30),
    beyond_use_date=datetime.date(2027, 5, 30),
    storage="Store at room temperature or in a refrigerator",
    lot_numbers=("LDN15-A", "LDN15-B"),
    warnings=(OPIOIDS, CHILDREN),
)
# What the known label prints, field by field, top to bottom: the main column, then the side.
KNOWN_TEXTS = [
    "Demo Compounding Pharmacy · 1 Example Plaza, Springfield, IL 62701 · (217) 555-0100",
    "Rx 7000123 · Refill 1 of 2",
    "Filled 12/01/2026 · RPh PQ",
    "Ada Quill",
    "DOB 05/05/1970",
    "Naltrexone HCl 1.5 mg capsule · Qty 30 capsules",
    "Take 1 capsule (1.5 mg) by mouth at bedtime; continue nightly.",
    "Prescriber: Lena Ortiz, NP",
    "Refills remaining: 1 · Rx expires 11/30/2027",
    "Compounded preparation",
    "Do not use after 05/30/2027",
    "Store at room temperature or in a refrigerator",
    "Lot LDN15-A, LDN15-B",
    f"{OPIOIDS} {CHILDREN}",  # in a frame, each warning on lines of its own
    "7000123|1|LDN15-A",  # under the barcode
]
SIZES = {  # LABEL_PAGE_SIZE, dpi: ^PW, ^LL in dots
    ("4in 2in", 203): (812, 406),
    ("4in 2in", 300): (1200, 600),
    ("4in 3in", 203): (812, 609),
    ("102mm 51mm", 203): (815, 408),  # 102 / 25.4 * 203 = 815.2, 51 mm: 407.6
    ("102mm 51mm", 300): (1205, 602),
}


# --- Reading ZPL back ---------------------------------------------------------------------------

COMMANDS = {"XA", "CI", "PW", "LL", "LH", "FO", "A", "FB", "FH", "FD", "FS", "GB", "BY", "BC", "XZ"}


@dataclasses.dataclass
class Field:
    x: int
    y: int
    font: tuple[str, str, int, int] | None = None  # name, orientation, height, width
    block: tuple[int, int, int, str, int] | None = None  # ^FB width, lines, spacing, ...
    hex_indicator: str | None = None
    data: str | None = None
    box: tuple[int, int, int] | None = None  # ^GB width, height, thickness
    module: int | None = None  # ^BY
    barcode: tuple[str, ...] | None = None  # ^BC parameters

    @property
    def lines(self) -> list[str]:
        return decoded(self.data, self.hex_indicator, block=True)

    @property
    def text(self) -> str:
        return " ".join(self.lines)

    @property
    def payload(self) -> str:
        """A ^BC field's data as the symbol encodes it: start code B (>:) given, and > written
        >< (ZPL's invocation characters), after the ^FH escapes."""
        assert self.data.startswith(">:")
        (raw,) = decoded(self.data[2:], self.hex_indicator, block=False)
        return raw.replace("><", ">")

    @property
    def extent(self) -> tuple[int, int]:
        """How far right and down the field reaches, in dots."""
        if self.box is not None:
            width, height, _ = self.box
            return self.x + width, self.y + height
        if self.barcode is not None:
            modules = 11 * (len(self.payload) + 2) + 13  # Code 128 subset B with its stop
            return self.x + modules * self.module, self.y + int(self.barcode[1])
        width, lines, spacing, _, _ = self.block
        height = self.font[2]
        return self.x + width, self.y + lines * height + (lines - 1) * spacing


@dataclasses.dataclass
class Label:
    width: int
    length: int
    fields: list[Field]

    @property
    def texts(self) -> list[Field]:
        return [f for f in self.fields if f.font is not None]

    @property
    def barcode(self) -> Field:
        (field,) = [f for f in self.fields if f.barcode is not None]
        return field


def decoded(data: str, indicator: str | None, *, block: bool) -> list[str]:
    """Field data as printed: hex escapes after the ^FH indicator are bytes (UTF-8, ^CI28);
    in a ^FB block a backslash and & breaks the line and two backslashes are one."""
    lines, line, i = [], bytearray(), 0
    while i < len(data):
        if indicator and data[i] == indicator:
            line += bytes.fromhex(data[i + 1 : i + 3])
            i += 3
        elif block and data.startswith("\\&", i):
            lines.append(line.decode())
            line, i = bytearray(), i + 2
        elif block and data.startswith("\\\\", i):
            line += b"\\"
            i += 2
        else:
            assert data[i] != "\\" or not block, data
            line += data[i].encode("ascii")
            i += 1
    lines.append(line.decode())
    return lines


def parsed(zpl_text: str) -> list[Label]:
    """Each ^XA...^XZ format, split on its ^ commands."""
    assert "~" not in zpl_text  # no control command, no tilde in any data
    formats = re.findall(r"\^XA.*?\^XZ\n", zpl_text, re.DOTALL)
    assert "".join(formats) == zpl_text
    return [label_of(text) for text in formats]


def label_of(text: str) -> Label:
    size: dict[str, int] = {}
    fields: list[Field] = []
    field = None
    for chunk in text.split("^")[1:]:
        chunk = chunk.rstrip("\n")
        name, params = ("A", chunk[1:]) if chunk.startswith("A") else (chunk[:2], chunk[2:])
        assert name in COMMANDS, chunk
        if name in ("PW", "LL"):
            size[name] = int(params)
        elif name == "CI":
            assert params == "28"  # UTF-8
        elif name == "LH":
            assert params == "0,0"
        elif name == "FO":
            field = Field(*map(int, params.split(",")))
        elif name == "A":
            height, width = params[3:].split(",")
            field.font = (params[0], params[1], int(height), int(width))
        elif name == "FB":
            width, lines, spacing, justify, indent = params.split(",")
            field.block = (int(width), int(lines), int(spacing), justify, int(indent))
        elif name == "FH":
            field.hex_indicator = params
        elif name == "FD":
            field.data = params
        elif name == "GB":
            field.box = tuple(map(int, params.split(",")))
        elif name == "BY":
            field.module = int(params)
        elif name == "BC":
            field.barcode = tuple(params.split(","))
        elif name == "FS":
            fields.append(field)
            field = None
    return Label(size["PW"], size["LL"], fields)


def render(pages: list[labels.LabelPage], dpi: int = 203) -> list[Label]:
    return parsed(zpl.render_pages_zpl(pages, dpi=dpi))


def squeezed(text: str) -> str:
    return "".join(text.split())


# --- What a label says --------------------------------------------------------------------------


@pytest.mark.parametrize("dpi", [203, 300])
def test_a_label_says_what_the_pdf_label_says(dpi):
    (label,) = render([KNOWN], dpi)
    assert [field.text for field in label.texts] == KNOWN_TEXTS
    assert {field.font for field in label.texts} <= {
        ("0", "N", height, height) for height in range(10, 60)
    }  # font 0, upright, as wide as high
    # The warnings framed, each starting a line of its own.
    (warnings,) = [field for field in label.texts if field.text == KNOWN_TEXTS[-2]]
    assert " ".join(warnings.lines[:-1]) == OPIOIDS and warnings.lines[-1] == CHILDREN
    (frame,) = [field for field in label.fields if is_frame(field)]
    assert frame.x < warnings.x and frame.y < warnings.y
    assert all(a > b for a, b in zip(frame.extent, warnings.extent, strict=True))


def is_frame(field: Field) -> bool:
    """A ^GB wider and higher than its line: a frame, not a rule."""
    if field.box is None:
        return False
    width, height, thickness = field.box
    return width > thickness and height > thickness


@pytest.mark.parametrize("dpi", [203, 300])
def test_the_barcode_carries_the_pdf_labels_payload(dpi):
    (label,) = render([KNOWN], dpi)
    barcode = label.barcode
    assert barcode.payload == KNOWN.barcode_payload == "7000123|1|LDN15-A"
    assert barcode.barcode == ("N", str(round(0.24 * dpi)), "N", "N", "N", "N")
    assert barcode.hex_indicator == "_"
    # The widest bars that keep it and its quiet zones (10 modules each) on the label.
    assert barcode.module == {203: 3, 300: 4}[dpi]
    right, _ = barcode.extent
    assert barcode.x >= 10 * barcode.module
    assert right + 10 * barcode.module <= label.width


def test_a_long_payload_gets_narrower_bars_and_one_too_long_is_refused():
    page = dataclasses.replace(KNOWN, lot_numbers=("NX261101-C1.5-01",))
    (label,) = render([page], 203)
    assert label.barcode.module == 2  # 0.25 mm: 3 dots would not fit
    assert label.barcode.payload == "7000123|1|NX261101-C1.5-01"

    longest = dataclasses.replace(KNOWN, lot_numbers=(("LDN2026A" * 4)[:30],))
    with pytest.raises(labels.LabelDoesNotFit, match=r"too long for a label 776 dots wide"):
        zpl.render_pages_zpl([longest], dpi=203)
    (label,) = render([longest], 300)  # 2 dots at 300 dpi: as narrow as the PDF's bars
    assert (label.barcode.module, label.barcode.payload) == (2, longest.barcode_payload)


@pytest.mark.parametrize(("page_size", "dpi"), list(SIZES))
def test_the_label_size_in_dots(settings, page_size, dpi):
    settings.LABEL_PAGE_SIZE = page_size
    (label,) = render([KNOWN], dpi)
    assert (label.width, label.length) == SIZES[page_size, dpi]
    assert [field.text for field in label.texts] == KNOWN_TEXTS


def fields_inside(label: Label) -> None:
    """Every field starts on the label and its block, frame or bars end on it; every text
    block has exactly its lines (^FB would print more over its last one), each within its
    block's width by the module's estimate; and no two text blocks overlap."""
    for field in label.fields:
        right, bottom = field.extent
        assert field.x >= 0 and field.y >= 0, field
        assert right <= label.width and bottom <= label.length, field
    for field in label.texts:
        width, lines, *_ = field.block
        assert lines == len(field.lines) >= 1
        height = field.font[2]
        assert all(zpl.text_width(line, height) <= width for line in field.lines), field
    boxes = [(f.x, f.y, *f.extent) for f in label.texts]
    for i, (x1, y1, r1, b1) in enumerate(boxes):
        for x2, y2, r2, b2 in boxes[i + 1 :]:
            assert r1 <= x2 or r2 <= x1 or b1 <= y2 or b2 <= y1, (boxes[i], (x2, y2, r2, b2))


# Labels that need every way of fitting: continuation labels at the usual size, text set
# smaller, one column, names as long as their fields allow.
TWELVE = dosing.label_directions(TWELVE_STEPS, None)
HARD = {
    "known": KNOWN,
    "titration": dataclasses.replace(KNOWN, directions=TWELVE),
    "patient": dataclasses.replace(KNOWN, directions=TWELVE, patient_name=LONGEST_PATIENT),
    "prescriber": dataclasses.replace(
        KNOWN, directions=TWELVE, prescriber=f"{LONGEST_PRESCRIBER}, MD"
    ),
    "both-names": dataclasses.replace(
        KNOWN,
        directions=TWELVE,
        patient_name=LONGEST_PATIENT,
        prescriber=f"{LONGEST_PRESCRIBER}, MD",
    ),
}


@pytest.mark.parametrize("dpi", [203, 300])
@pytest.mark.parametrize("page_size", ["4in 2in", "102mm 51mm", "4in 3in"])
@pytest.mark.parametrize("name", list(HARD))
def test_every_field_lies_inside_the_label(settings, name, page_size, dpi):
    settings.LABEL_PAGE_SIZE = page_size
    for label in render([HARD[name]], dpi):
        fields_inside(label)


@pytest.mark.parametrize("dpi", [203, 300])
def test_long_directions_go_on_continuation_labels(dpi):
    page = HARD["titration"]
    printed = zpl.fitted_zpl_labels([page], dpi=dpi)
    first, second = render([page], dpi)

    assert [part.fit for part, _ in printed] == [0, 0]  # at the usual size
    directions = [label.texts[6].text for label in (first, second)]
    assert directions[0].endswith(" (continued on the next label)")
    assert directions[1].startswith("(continued) ")
    phrases = [
        directions[0].removesuffix(" (continued on the next label)"),
        directions[1].removeprefix("(continued) "),
    ]
    assert " ".join(phrases) == " ".join(TWELVE)  # every phrase once, in order
    for label in (first, second):  # who and what on each, with the lot, the BUD and the barcode
        texts = [field.text for field in label.texts]
        who_and_what = {"Ada Quill", "Rx 7000123 · Refill 1 of 2", "Lot LDN15-A, LDN15-B"}
        assert who_and_what | {"Do not use after 05/30/2027"} <= set(texts)
        assert label.barcode.payload == page.barcode_payload


@pytest.mark.parametrize("dpi", [203, 300])
@pytest.mark.parametrize("name", ["patient", "prescriber", "both-names"])
def test_the_longest_names_print_whole_set_smaller(name, dpi):
    page = HARD[name]
    printed = zpl.fitted_zpl_labels([page], dpi=dpi)
    rendered = render([page], dpi)

    assert len(rendered) == len(printed) >= 2
    assert {part.fit for part, _ in printed} == {3}  # one column, nothing under 5 pt
    shown = [squeezed(" ".join(f.text for f in label.texts)) for label in rendered]
    for text in shown:
        assert squeezed(page.patient_name) in text
        assert squeezed(page.prescriber) in text
    assert squeezed(" ".join(TWELVE)) in "".join(
        squeezed(" ".join(part.directions)) for part, _ in printed
    )


def test_a_label_that_cannot_fit_is_refused(settings):
    settings.LABEL_PAGE_SIZE = "2in 1in"
    with pytest.raises(labels.LabelDoesNotFit, match="does not fit its page"):
        zpl.render_pages_zpl([HARD["both-names"]], dpi=300)


# --- Escaping and refusals ----------------------------------------------------------------------


def test_control_characters_in_a_name_are_escaped():
    name = "Ann^XZ ~JA Tilde_x \\& Brontë"
    (label,) = render([dataclasses.replace(KNOWN, patient_name=name)])

    patient = label.texts[3]
    assert patient.data == "Ann_5EXZ _7EJA Tilde_5Fx \\\\& Bront_C3_AB"
    assert patient.text == name  # one line: the \& is text, not a line break
    assert len(label.fields) == len(render([KNOWN])[0].fields)  # no field was ended early


@pytest.mark.parametrize(
    "page_size", ["A7 landscape", "4in", "10cm 5cm", "4in 2in 1in", "4in; 2in", "0in 2in", ""]
)
def test_a_page_size_a_label_printer_cannot_take_is_refused(settings, page_size):
    settings.LABEL_PAGE_SIZE = page_size
    with pytest.raises(zpl.LabelSizeRefused, match="LABEL_PAGE_SIZE"):
        zpl.render_pages_zpl([KNOWN], dpi=203)


def test_only_203_and_300_dpi():
    with pytest.raises(zpl.LabelSizeRefused, match="203 or 300 dpi, not 600"):
        zpl.render_pages_zpl([KNOWN], dpi=600)


# --- From the orders ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_labels_of_orders_with_their_progress(prescriber):
    orders = printable_orders(prescriber, 3)  # two lines each
    seen = []

    zpl_text = zpl.render_labels_zpl(
        orders, dpi=203, chunk=2, progress=lambda done, total: seen.append((done, total))
    )

    assert seen == [(2, 3), (3, 3)]
    printed = parsed(zpl_text)
    pages = [page for order in orders for page in labels.label_pages(order)]
    assert [label.barcode.payload for label in printed] == [p.barcode_payload for p in pages]
    for label, page in zip(printed, pages, strict=True):
        texts = [field.text for field in label.texts]
        assert page.patient_name in texts and page.rx_and_fill in texts
        fields_inside(label)

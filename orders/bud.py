"""Beyond-use dates of compounded nonsterile preparations, as pure functions: the BUD of a
batch, which BUD category a master formulation record may claim for its dosage form, and the
storage line that follows from the category.

No Django, no database and no clock: the caller passes every date in, so a BUD computed today
and recomputed next year from the same record comes out the same.
"""

import datetime
import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from core.numbers import quantity_text

SOURCE = "USP <795> (2023 revision, official 1 Nov 2023)"

# The label's storage line for each category. "Refrigerate" is the word the label must show for
# an unpreserved aqueous preparation (USP <795>: 14 days, in a refrigerator).
_REFRIGERATOR = "Refrigerate (store in a refrigerator)"
_ROOM_OR_REFRIGERATOR = "Store at room temperature or in a refrigerator"

# USP <795>: a preparation with a water activity (aw) of 0.6 or above is aqueous; below 0.6 it
# is nonaqueous. Not a pharmacy setting: it is the chapter's definition of the categories.
AQUEOUS_WATER_ACTIVITY = Decimal("0.6")


class BudCategory(StrEnum):
    """The categories of the USP <795> BUD table; each knows its label, days and storage."""

    AQUEOUS_UNPRESERVED = "aqueous_unpreserved"
    AQUEOUS_PRESERVED = "aqueous_preserved"
    NONAQUEOUS_LIQUID = "nonaqueous_liquid"
    NONAQUEOUS_SOLID = "nonaqueous_solid"

    @property
    def label(self) -> str:
        return _TABLE[self].label

    @property
    def days(self) -> int:
        return _TABLE[self].days

    @property
    def storage(self) -> str:
        return _TABLE[self].storage

    @property
    def refrigeration_required(self) -> bool:
        return _TABLE[self].storage == _REFRIGERATOR

    @property
    def is_aqueous(self) -> bool:
        return self in (BudCategory.AQUEOUS_UNPRESERVED, BudCategory.AQUEOUS_PRESERVED)

    @property
    def described(self) -> str:
        """'aqueous, preserved (35 days)': how messages name a category."""
        return f"{self.label} ({self.days} days)"


@dataclass(frozen=True)
class _TableRow:
    label: str
    days: int
    storage: str


# USP <795> (2023 revision, official 1 Nov 2023), BUD table for preparations without
# stability data: the longest BUD each category may get, and how it is stored.
_TABLE: dict[BudCategory, _TableRow] = {
    # Water activity >= 0.6, no antimicrobial preservative: 14 days, refrigerated (USP <795>).
    BudCategory.AQUEOUS_UNPRESERVED: _TableRow("aqueous, not preserved", 14, _REFRIGERATOR),
    # Water activity >= 0.6 with a preservative: 35 days (USP <795>).
    BudCategory.AQUEOUS_PRESERVED: _TableRow("aqueous, preserved", 35, _ROOM_OR_REFRIGERATOR),
    # Water activity < 0.6, liquid: 90 days (USP <795>).
    BudCategory.NONAQUEOUS_LIQUID: _TableRow("nonaqueous liquid", 90, _ROOM_OR_REFRIGERATOR),
    # Other nonaqueous forms (capsules, tablets, troches, powders, anhydrous topicals):
    # 180 days (USP <795>).
    BudCategory.NONAQUEOUS_SOLID: _TableRow("nonaqueous solid", 180, _ROOM_OR_REFRIGERATOR),
}


@dataclass(frozen=True)
class LotExpiry:
    """The expiry of one ingredient lot used in a batch."""

    ingredient: str
    lot_number: str
    expires_on: datetime.date


@dataclass(frozen=True)
class BeyondUseDate:
    """A BUD and the steps that led to it, in order, for the record and the pharmacist."""

    date: datetime.date
    category: BudCategory
    reasons: tuple[str, ...]

    @property
    def explanation(self) -> str:
        return ", ".join(self.reasons)


class BudRefused(ValueError):
    """No BUD can be given; the message says why, in plain words."""


def beyond_use_date(
    *,
    category: BudCategory,
    compounded_on: datetime.date,
    lots: Iterable[LotExpiry] = (),
    shortened_to: datetime.date | None = None,
    compounding_date_is_day_one: bool = False,
) -> BeyondUseDate:
    """The BUD of a batch of `category` compounded on `compounded_on`.

    The table date (USP <795>) is capped by the earliest expiry among the ingredient `lots`
    (USP <795>: a BUD is never later than the expiry of any component), then optionally
    shortened by the pharmacist. Raises BudRefused when a lot has expired by the compounding
    date or when `shortened_to` would lengthen the BUD or not be after the compounding date.
    """
    category = BudCategory(category)  # a stored value ("nonaqueous_solid") works too
    _require_date(compounded_on, "compounded_on")
    lots = tuple(lots)
    for lot in lots:
        _require_date(lot.expires_on, f"expiry of lot {lot.lot_number}")
        if lot.expires_on <= compounded_on:
            raise BudRefused(
                f"{lot.ingredient} lot {lot.lot_number} expired on {lot.expires_on.isoformat()},"
                f" on or before the compounding date {compounded_on.isoformat()}:"
                " it cannot be used."
            )

    # Default: the compounding date is day 0, so 180 days after 1 March is 28 August.
    # The day-one setting counts the compounding date itself as day 1 (a pharmacy setting).
    days_after = category.days - 1 if compounding_date_is_day_one else category.days
    date = compounded_on + datetime.timedelta(days=days_after)
    day_one_note = "; compounding date counted as day 1" if compounding_date_is_day_one else ""
    reasons = [f"{category.days} days ({category.label}, USP <795>{day_one_note})"]

    if lots:
        # min() keeps the first of equal expiries, so ties name the first lot given.
        earliest = min(lots, key=lambda lot: lot.expires_on)
        if earliest.expires_on < date:  # an expiry on the table date itself changes nothing
            date = earliest.expires_on
            reasons.append(
                f"capped by {earliest.ingredient} lot {earliest.lot_number}"
                f" expiring {earliest.expires_on.isoformat()}"
            )

    if shortened_to is not None:
        _require_date(shortened_to, "shortened_to")
        if shortened_to <= compounded_on:
            raise BudRefused(
                f"A beyond-use date must be after the compounding date"
                f" {compounded_on.isoformat()}: {shortened_to.isoformat()} is not."
            )
        if shortened_to > date:
            # Lengthening needs recorded stability data (USP <795>), which this does not model.
            raise BudRefused(
                f"The beyond-use date can only be shortened, never lengthened:"
                f" {shortened_to.isoformat()} is later than {date.isoformat()},"
                f" the latest allowed date."
            )
        if shortened_to < date:  # the same date is no shortening, so no reason for it
            date = shortened_to
            reasons.append(f"shortened by the pharmacist to {shortened_to.isoformat()}")

    return BeyondUseDate(date=date, category=category, reasons=tuple(reasons))


def _require_date(value: object, what: str) -> None:
    # A datetime is a date subclass, but mixing it with dates breaks comparisons and hides a
    # time zone choice: the caller decides the local calendar day.
    if not isinstance(value, datetime.date) or isinstance(value, datetime.datetime):
        raise TypeError(f"{what} must be a datetime.date, not {type(value).__name__}")


# --- The BUD category and storage of a master formulation record -------------------------------


@dataclass(frozen=True)
class RecordProblem:
    """Why a master formulation record cannot be written as it stands: a stable code, the
    field it concerns, a plain-language message with the numbers, and its source."""

    code: str
    field: str
    message: str
    source: str = SOURCE


# Dosage forms by what USP <795> makes of them (values of pharmacy.models.DosageForm).
# "Other nonaqueous dosage forms" (180 days): capsules, tablets, granules, powders, troches,
# suppositories and nonaqueous topicals. Only capsules are in the catalogue today.
SOLID_FORMS = frozenset({"capsule", "tablet", "troche", "powder"})
# Taken by mouth, so "oral liquids" of the table: aqueous, or nonaqueous (90 days) when aw < 0.6.
ORAL_LIQUID_FORMS = frozenset({"oral_liquid", "sublingual_drops"})
# Aqueous unless anhydrous (aw < 0.6), then an "other nonaqueous dosage form" (180 days).
TOPICAL_FORMS = frozenset({"topical_cream"})
_FORM_NAMES = {
    "capsule": "capsules",
    "tablet": "tablets",
    "troche": "troches",
    "powder": "powders",
    "oral_liquid": "oral liquids",
    "sublingual_drops": "sublingual drops",
    "topical_cream": "topical creams",
}
_AQUEOUS_CHOICES = "aqueous (14 days, or 35 days preserved)"


def category_problems(
    *,
    dosage_form: str,
    category: BudCategory | str,
    water_activity: Decimal | None,
    preserved: bool,
) -> list[RecordProblem]:
    """What is wrong with claiming `category` for a preparation of `dosage_form` with this
    measured water activity (None: not measured) and with or without an antimicrobial
    preservative; an empty list when the category fits.

    A shorter BUD than the preparation could have is always allowed (an oral liquid may stay
    "aqueous, not preserved" whatever its water activity); a longer one needs the evidence
    the table asks for: a preservative for 35 days, aw below 0.6 for the nonaqueous rows.
    """
    category = BudCategory(category)
    if dosage_form not in _FORM_NAMES:
        raise ValueError(f"Unknown dosage form: {dosage_form!r}")
    forms = _FORM_NAMES[dosage_form]
    problems = []
    aqueous_by_measure = water_activity is not None and water_activity >= AQUEOUS_WATER_ACTIVITY
    if aqueous_by_measure and not category.is_aqueous:
        problems.append(
            RecordProblem(
                "bud.water_activity_aqueous",
                "bud_category",
                f"A water activity of {quantity_text(water_activity)} is"
                f" {AQUEOUS_WATER_ACTIVITY} or above, so the preparation is aqueous (USP <795>):"
                f" it cannot be {category.described}.",
            )
        )
    if dosage_form in SOLID_FORMS:
        if category != BudCategory.NONAQUEOUS_SOLID:
            problems.append(
                RecordProblem(
                    "bud.solid_form",
                    "bud_category",
                    f"{forms.capitalize()} are nonaqueous solids: their BUD category is"
                    f" {BudCategory.NONAQUEOUS_SOLID.described}, not {category.described}.",
                )
            )
        return problems
    if dosage_form in ORAL_LIQUID_FORMS and category == BudCategory.NONAQUEOUS_SOLID:
        problems.append(
            RecordProblem(
                "bud.liquid_not_solid",
                "bud_category",
                f"A liquid can never be {category.described}: {forms} are {_AQUEOUS_CHOICES},"
                f" or {BudCategory.NONAQUEOUS_LIQUID.described} with a water activity below"
                f" {AQUEOUS_WATER_ACTIVITY} recorded.",
            )
        )
    if dosage_form in TOPICAL_FORMS and category == BudCategory.NONAQUEOUS_LIQUID:
        # USP <795> gives 90 days to nonaqueous *oral* liquids only; a nonaqueous topical is one
        # of the "other nonaqueous dosage forms" (180 days). So a cream is never this row.
        problems.append(
            RecordProblem(
                "bud.topical_not_oral_liquid",
                "bud_category",
                f"{category.described.capitalize()} is the category of nonaqueous oral liquids"
                f" (USP <795>): {forms} are {_AQUEOUS_CHOICES}, or"
                f" {BudCategory.NONAQUEOUS_SOLID.described} when anhydrous, with a water"
                f" activity below {AQUEOUS_WATER_ACTIVITY} recorded.",
            )
        )
    if category == BudCategory.AQUEOUS_PRESERVED and not preserved:
        problems.append(
            RecordProblem(
                "bud.preservative_missing",
                "bud_category",
                f"{category.described.capitalize()} needs an antimicrobial preservative, and the"
                f" record declares none: declare it, or choose"
                f" {BudCategory.AQUEOUS_UNPRESERVED.described}, stored in a refrigerator.",
            )
        )
    nonaqueous_claim = (
        dosage_form in ORAL_LIQUID_FORMS and category == BudCategory.NONAQUEOUS_LIQUID
    ) or (dosage_form in TOPICAL_FORMS and category == BudCategory.NONAQUEOUS_SOLID)
    if nonaqueous_claim and water_activity is None:
        problems.append(
            RecordProblem(
                "bud.water_activity_missing",
                "bud_category",
                f"{forms.capitalize()} are {category.described} only with a measured water"
                f" activity below {AQUEOUS_WATER_ACTIVITY} (USP <795>), and none is recorded.",
            )
        )
    return problems


@dataclass(frozen=True)
class _StorageClause:
    """One instruction of a record's storage text and what it says about temperature: for each
    of refrigerator, room temperature and freezing, True (store so), False (do not) or None
    (not mentioned)."""

    text: str
    refrigerator: bool | None
    room_temperature: bool | None
    freezing: bool | None
    cool_place: bool | None = None

    @property
    def about_temperature(self) -> bool:
        return (self.refrigerator, self.room_temperature) != (None, None) or bool(self.freezing)


# Clauses end at ";", a new line, a full stop, or a comma / "and" before the next instruction
# ("Refrigerate and protect from light"); "between 2 and 8 °C" and "2.5" are not split.
_INSTRUCTION = r"(?:keep|store|protect|avoid|do|don't|never|refrigerate|discard|shake)\b"
_CLAUSE_END = re.compile(
    rf"\s*(?:[;\n]|\.(?:\s+|$)|,?\s+and\s+(?={_INSTRUCTION})|,\s*(?={_INSTRUCTION}))\s*", re.I
)
_NEGATION = re.compile(
    r"\b(?:do\s+not|don't|never|not|no|avoid|without|protect(?:ed)?\s+from|away\s+from)\b", re.I
)
_RANGE = r"\s*(?:-|\u2013|to|and)\s*"  # "2-8", "2\u20138" (en dash), "2 to 8", "2 and 8"
_REFRIGERATOR_WORDS = re.compile(rf"refrigerat|\bfridge\b|\b2{_RANGE}8\s*°?\s*C\b", re.I)
_ROOM_TEMPERATURE_WORDS = re.compile(
    rf"room[\s-]+temp|\bCRT\b|\bambient\b|\b(?:15|20){_RANGE}(?:25|30)\s*°?\s*C\b", re.I
)
# A "cool place" (8-15 °C) is no refrigerator: refused where one is required, otherwise an
# instruction of its own ("Store in a cool, dry place").
_COOL_WORDS = re.compile(r"\bcool\b", re.I)
_FREEZING_WORDS = re.compile(r"freez|frozen", re.I)


_NOT_NEEDED = re.compile(r"\b(?:needed|required|necessary)\b", re.I)


def _storage_clauses(record_storage: str) -> list[_StorageClause]:
    clauses = []
    for text in _CLAUSE_END.split(record_storage or ""):
        text = text.strip().rstrip(".").strip()
        if not text:
            continue

        def says(words: re.Pattern, text=text) -> bool | None:
            found = words.search(text)
            if found is None:
                return None
            return _NEGATION.search(text, 0, found.start()) is None  # "do not" before it

        refrigerator, room_temperature = says(_REFRIGERATOR_WORDS), says(_ROOM_TEMPERATURE_WORDS)
        if refrigerator is False and _NOT_NEEDED.search(text):
            # "No refrigeration needed" does not forbid a refrigerator: it allows room temperature.
            refrigerator, room_temperature = None, True
        clauses.append(
            _StorageClause(
                text=text,
                refrigerator=refrigerator,
                room_temperature=room_temperature,
                freezing=says(_FREEZING_WORDS),
                cool_place=says(_COOL_WORDS),
            )
        )
    return clauses


def storage_problems(category: BudCategory | str, record_storage: str) -> list[RecordProblem]:
    """Instructions of a record's storage text that contradict its BUD category (USP <795>
    storage), one problem each; an empty list when none does.

    The label prints the category's storage line, so the record may not forbid what that line
    allows nor allow what it forbids: room temperature (or "do not refrigerate") where a
    refrigerator is required; "do not refrigerate" or "not at room temperature" where the
    category allows both (the pharmacist's instruction would be lost or contradicted on the
    label: such a preparation needs its own stability data); and freezing everywhere, as no
    USP <795> category of nonsterile preparations is stored frozen. "Do not freeze" is fine.
    """
    category = BudCategory(category)
    where = (
        "in a refrigerator"
        if category.refrigeration_required
        else "at room temperature or in a refrigerator"
    )
    problems = []
    for clause in _storage_clauses(record_storage):
        if clause.freezing:
            code, message = (
                "storage.freezing",
                (
                    f'"{clause.text}": no USP <795> category of nonsterile preparations is stored'
                    f" frozen; {category.described} is stored {where}."
                ),
            )
        elif category.refrigeration_required and (
            clause.room_temperature or clause.cool_place or clause.refrigerator is False
        ):
            code, message = (
                "storage.refrigeration_required",
                (
                    f'"{clause.text}" contradicts the storage of {category.described}: USP <795>'
                    " requires a refrigerator."
                ),
            )
        elif not category.refrigeration_required and False in (
            clause.refrigerator,
            clause.room_temperature,
        ):
            code, message = (
                "storage.contradicts_category",
                (
                    f'"{clause.text}" contradicts the storage of {category.described}: USP <795>'
                    " allows room temperature or a refrigerator, and the label says so."
                ),
            )
        else:
            continue
        problems.append(RecordProblem(code, "storage", message))
    return problems


def label_storage(category: BudCategory | str, record_storage: str) -> str:
    """The storage line of a label: the category's storage (USP <795>) first, then the record's
    own instructions that add something ("Protect from light", "Do not freeze"). What the
    record says about refrigerator or room temperature only restates the category (or, if it
    contradicts it, is refused where the record is written), so it is left out and the line
    never contradicts the category."""
    category = BudCategory(category)
    parts = [category.storage]
    seen = {category.storage.casefold()}
    for clause in _storage_clauses(record_storage):
        if clause.about_temperature or (category.refrigeration_required and clause.cool_place):
            continue
        text = clause.text[:1].upper() + clause.text[1:]
        if text.casefold() not in seen:
            seen.add(text.casefold())
            parts.append(text)
    return "; ".join(parts)

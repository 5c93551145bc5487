"""Beyond-use dates of compounded nonsterile preparations, as pure functions.

No Django, no database and no clock: the caller passes every date in, so a BUD computed today
and recomputed next year from the same record comes out the same.
"""

import datetime
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

SOURCE = "USP <795> (2023 revision, official 1 Nov 2023)"

_REFRIGERATOR = "Store in a refrigerator"
_ROOM_OR_REFRIGERATOR = "Store at room temperature or in a refrigerator"


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

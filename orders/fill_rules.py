"""Whether a prescription may be filled now, beyond the dose and the patient: the product's
beyond-use date against the days' supply, the product's excipients against the patient's
allergies, other open orders (duplicate therapy), a refill that comes too soon or while another
is open, a rejected prescription, a suspended prescriber, a patient in a state where the
prescriber holds no active licence or the pharmacy may not ship.

Pure functions over plain facts, like dosing.py: the caller (checks.py) reads the facts from the
database, and every finding carries its code, severity, field, message and source."""

import datetime
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass

from .dosing import (
    DEFAULT_POLICY,
    SOURCE_PHARMACY,
    SOURCE_STATE_LAW,
    SOURCE_USP_795,
    DosingPolicy,
    Finding,
    PatientFacts,
    Regimen,
    Severity,
)

# Where a prescription may be filled (503A: the prescription must be valid, and state boards of
# pharmacy license a pharmacy for each state it ships to).
SOURCE_PRESCRIBER_LICENCE = "state law: a prescriber prescribes where licensed"
SOURCE_PHARMACY_LICENCE = "state boards of pharmacy: a licence for each state shipped to"
# Warnings that the prescriber confirms with a reason, not only a tick.
REASON_REQUIRED = frozenset({"duplicate.open_order", "refill.too_soon"})


@dataclass(frozen=True)
class Product:
    """A product of the catalogue, as the rules need it."""

    name: str  # "Naltrexone HCl 1 mg/mL oral liquid"
    bud_days: int  # the longest days' supply its beyond-use date allows (USP <795>)
    bud_label: str  # "aqueous, preserved"
    excipients: tuple[str, ...] = ()


@dataclass(frozen=True)
class OpenOrder:
    """Another order of the patient that the pharmacy is still working on."""

    number: str
    placed_on: datetime.date
    placed_at: str = ""  # local date and time, as people read it: "03/02/2026 14:05"
    identical: bool = False  # the same product and schedule as the one being written


@dataclass(frozen=True)
class PreviousFill:
    number: str
    filled_on: datetime.date  # the day it was dispensed, or ordered while not dispensed yet
    days_supply: int


@dataclass(frozen=True)
class LicenceFacts:
    """The patient's state, whether the pharmacy is licensed to ship there, and the licence the
    prescriber holds there (its expiry; None when not on file)."""

    prescriber: str  # "Lena Ortiz, NP"
    state: str  # the patient's state, as people read it: "Illinois"
    pharmacy_ships_there: bool
    holds_licence: bool
    licence_expires_on: datetime.date | None = None


@dataclass(frozen=True)
class FillHistory:
    """What the records say about the patient's orders, the prescription and the prescriber."""

    refill: bool = False
    open_orders: tuple[OpenOrder, ...] = ()
    previous_fill: PreviousFill | None = None  # of this prescription (refills)
    open_refill: str | None = None  # the number of this prescription's refill still open
    suspended_prescriber: str | None = None  # the prescriber's name, while suspended
    licence: "LicenceFacts | None" = None  # the patient's state and who may serve it
    rejected_order: str | None = None  # a fill of this prescription that the pharmacy rejected
    expires_on: datetime.date | None = None  # refills
    refills_left: int | None = None  # refills
    refills_authorized: int | None = None  # refills


def _error(code: str, field: str, message: str, source: str) -> Finding:
    return Finding(code, Severity.ERROR, field, message, source)


def _warning(code: str, field: str, message: str, source: str) -> Finding:
    return Finding(code, Severity.WARNING, field, message, source)


def _date(day: datetime.date) -> str:
    return f"{day:%m/%d/%Y}"


# --- The products -----------------------------------------------------------------------------


def check_products(
    regimen: Regimen, products: tuple[Product, ...], patient: PatientFacts
) -> list[Finding]:
    """The days' supply against each product's beyond-use date, and the patient's allergies
    against each product's excipients."""
    return [*_check_bud(regimen, products), *_check_excipients(products, patient)]


def _check_bud(regimen: Regimen, products: tuple[Product, ...]) -> Iterator[Finding]:
    """A supply never outlasts its BUD: the patient would take doses past it (USP <795>)."""
    days = regimen.days_supply
    for product in products:
        if days > product.bud_days:
            message = f"Days' supply {days} days is longer than the beyond-use date of "
            message += f"{product.name}: {product.bud_days} days ({product.bud_label}). Order "
            message += f"at most {product.bud_days} days; refills continue the supply."
            yield _error("days_supply.beyond_bud", "days_supply", message, SOURCE_USP_795)


_WORD = re.compile(r"[a-z]+")
# Words of an allergy list that say how, not to what.
_ALLERGY_WORDS = frozenset(
    _WORD.findall(
        """allergy allergic allergies reaction reactions rash hives itching itch intolerance
        intolerant sensitivity sensitive severe mild anaphylaxis swelling nausea upset known
        drug drugs none with from that this"""
    )
)
# Words of an ingredient's name that say what kind of thing it is, not what it is made of.
_INGREDIENT_WORDS = frozenset(
    _WORD.findall(
        """oral vehicle base solution suspension suspending preserved unpreserved powder grade
        capsule capsules liquid cream filler"""
    )
)


def _words(text: str, ignore: frozenset[str]) -> set[str]:
    """The words of at least 4 letters that say what something is, without a plural "s"."""
    words = _WORD.findall(text.lower())
    return {word.removesuffix("s") for word in words if len(word) >= 4 and word not in ignore}


def _allergic_to(allergies: set[str], excipient: str) -> bool:
    """An allergy word that is a word of the excipient's name, or the heart of one ("paraben"
    in "methylparaben")."""
    words = _words(excipient, _INGREDIENT_WORDS)
    return any(a == w or (len(a) >= 6 and a in w) for a in allergies for w in words)


def _check_excipients(products: tuple[Product, ...], patient: PatientFacts) -> Iterator[Finding]:
    """An allergy to an excipient of the chosen product is a warning that names it."""
    allergies = _words(patient.allergies, _ALLERGY_WORDS)
    if not allergies:
        return
    for product in products:
        named = [e for e in product.excipients if _allergic_to(allergies, e)]
        if named:
            message = f"The patient's allergies may include an excipient of {product.name}: "
            message += f"{', '.join(named)}. Confirm it is safe, or choose another product."
            yield _warning("allergy.excipient", "patient.allergies", message, SOURCE_PHARMACY)


# --- The records ------------------------------------------------------------------------------


def check_history(
    history: FillHistory, *, today: datetime.date, policy: DosingPolicy = DEFAULT_POLICY
) -> list[Finding]:
    return [
        *_check_prescriber(history, today),
        *_check_refill(history, today, policy),
        *_check_open_orders(history),
    ]


def _check_prescriber(history: FillHistory, today: datetime.date) -> Iterator[Finding]:
    if history.suspended_prescriber:
        message = f"{history.suspended_prescriber}'s account is suspended: the pharmacy fills "
        message += "none of their prescriptions until it is reinstated."
        yield _error("prescriber.suspended", "prescriber", message, SOURCE_PHARMACY)
    facts = history.licence
    if facts is None:
        return
    if not facts.pharmacy_ships_there:
        message = f"The pharmacy is not licensed to dispense to patients in {facts.state}: it "
        message += "cannot fill this prescription."
        yield _error("pharmacy.state", "patient.state", message, SOURCE_PHARMACY_LICENCE)
    if not facts.holds_licence:
        message = f"{facts.prescriber} holds no licence in {facts.state} on file with the "
        message += "pharmacy: a prescription is filled only where its prescriber is licensed."
        yield _error("licence.missing", "prescriber", message, SOURCE_PRESCRIBER_LICENCE)
    elif facts.licence_expires_on is not None and facts.licence_expires_on < today:
        message = f"{facts.prescriber}'s {facts.state} licence expired on "
        message += f"{_date(facts.licence_expires_on)}: a prescription is filled only while "
        message += "its prescriber's licence is active."
        yield _error("licence.expired", "prescriber", message, SOURCE_PRESCRIBER_LICENCE)


def refill_due_on(
    filled_on: datetime.date, days_supply: int, policy: DosingPolicy = DEFAULT_POLICY
) -> datetime.date:
    """The day the next fill is due: once refill_due_fraction of the supply has passed (earlier
    is a refill too soon)."""
    return filled_on + datetime.timedelta(days=math.ceil(days_supply * policy.refill_due_fraction))


def _check_refill(history: FillHistory, today: datetime.date, policy) -> Iterator[Finding]:
    if not history.refill:
        return
    if history.rejected_order:
        message = f"The pharmacy rejected this prescription ({history.rejected_order}): it "
        message += "cannot be refilled; please write a new one."
        yield _error("prescription.rejected", "prescription", message, SOURCE_PHARMACY)
    if history.expires_on is not None and today > history.expires_on:
        message = f"This prescription expired on {_date(history.expires_on)}; please write a "
        message += "new one."
        yield _error("prescription.expired", "prescription", message, SOURCE_STATE_LAW)
    if history.refills_left is not None and history.refills_left <= 0:
        message = f"No refills left: {history.refills_authorized} authorized, all used. Please "
        message += "write a new prescription."
        yield _error("refills.none_left", "refills", message, SOURCE_STATE_LAW)
    if history.open_refill:
        message = f"Refill {history.open_refill} of this prescription is still open: one "
        message += "refill at a time."
        yield _error("refill.already_open", "prescription", message, SOURCE_PHARMACY)
    previous = history.previous_fill
    if previous is not None:
        due_on = refill_due_on(previous.filled_on, previous.days_supply, policy)
        if today < due_on:
            share = f"{policy.refill_due_fraction * 100:.0f} %"
            message = f"Refill too soon: the previous fill ({previous.number}, "
            message += f"{previous.days_supply} days' supply) was filled on "
            message += f"{_date(previous.filled_on)}; the next is due from {_date(due_on)} "
            message += f"({share} of its supply). Give the reason for refilling early."
            yield _warning("refill.too_soon", "refill", message, SOURCE_PHARMACY)


def _check_open_orders(history: FillHistory) -> Iterator[Finding]:
    """Duplicate therapy: another LDN order of the patient is still open."""
    if not history.open_orders:
        return
    identical = [order for order in history.open_orders if order.identical]
    if identical and not history.refill:
        order = identical[0]
        message = f"An identical order for this patient was already placed ({order.number}, "
        message += f"{order.placed_at}) and is still open: was the form sent twice? Give the "
        message += "reason if a second order is meant."
    else:
        numbers = ", ".join(
            f"{order.number} of {_date(order.placed_on)}" for order in history.open_orders
        )
        message = f"The patient has another open LDN order ({numbers}): duplicate therapy. "
        message += "Give the reason for another one."
    yield _warning("duplicate.open_order", "patient.orders", message, SOURCE_PHARMACY)

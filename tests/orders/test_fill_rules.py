"""The rules of whether a prescription may be filled now (orders/fill_rules.py), one table per
rule family, and the label's directions per bottle (orders/dosing.py): pure, no database."""

import datetime
from dataclasses import replace
from decimal import Decimal

import pytest

from orders.dosing import (
    DEFAULT_POLICY,
    SOURCE_PHARMACY,
    SOURCE_USP_795,
    DosageForm,
    PatientFacts,
    Regimen,
    Severity,
    Step,
    check_regimen,
    label_directions,
    maintenance_regimen,
)
from orders.fill_rules import (
    REASON_REQUIRED,
    FillHistory,
    OpenOrder,
    PreviousFill,
    Product,
    check_history,
    check_products,
)
from tests.factories import TITRATION

E, W = Severity.ERROR, Severity.WARNING
D = Decimal
TODAY = datetime.date(2026, 5, 1)
WEEK = datetime.timedelta(days=7)
ADULT = PatientFacts(date_of_birth=datetime.date(1980, 2, 14), takes_opioids=False)
LIQUID_PRODUCT = Product(
    name="Naltrexone HCl 1 mg/mL oral liquid",
    bud_days=35,
    bud_label="aqueous, preserved",
    excipients=("oral suspending vehicle (preserved)", "methylparaben"),
)
CAPSULE_PRODUCT = Product(
    name="Naltrexone HCl 1.5 mg capsule",
    bud_days=180,
    bud_label="nonaqueous solid",
    excipients=("microcrystalline cellulose",),
)


def rows(findings):
    return [(f.code, f.severity, f.field) for f in findings]


def liquid(days: int) -> Regimen:
    return Regimen(
        dosage_form=DosageForm.ORAL_LIQUID,
        concentration_mg_per_ml=D("1"),
        steps=(Step(D("3"), days),),
        doses_per_day=1,
        quantity=D(3 * days),
        days_supply=days,
        refills=0,
    )


# --- The product's beyond-use date -------------------------------------------------------------


@pytest.mark.parametrize(
    ("days", "expected"),
    [
        (34, []),
        (35, []),  # the whole BUD: the last dose is taken on the BUD itself
        (36, [("days_supply.beyond_bud", E, "days_supply")]),
        (58, [("days_supply.beyond_bud", E, "days_supply")]),
    ],
)
def test_the_days_supply_never_outlasts_the_beyond_use_date(days, expected):
    assert rows(check_products(liquid(days), (LIQUID_PRODUCT,), ADULT)) == expected


def test_the_bud_refusal_gives_the_limit_and_cites_usp_795():
    (finding,) = check_products(liquid(58), (LIQUID_PRODUCT,), ADULT)

    assert finding.message == (
        "Days' supply 58 days is longer than the beyond-use date of Naltrexone HCl 1 mg/mL oral "
        "liquid: 35 days (aqueous, preserved). Order at most 35 days; refills continue the "
        "supply."
    )
    assert finding.source == SOURCE_USP_795 == "USP <795> (2023 revision)"


# --- Excipients against allergies ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("allergies", "product", "expected"),
    [
        ("NKDA", CAPSULE_PRODUCT, []),
        ("Cellulose (rash)", CAPSULE_PRODUCT, [("allergy.excipient", W, "patient.allergies")]),
        ("parabens - hives", LIQUID_PRODUCT, [("allergy.excipient", W, "patient.allergies")]),
        ("Methylparaben", LIQUID_PRODUCT, [("allergy.excipient", W, "patient.allergies")]),
        ("penicillin, sulfa", LIQUID_PRODUCT, []),
        # Words of the kind of thing ("oral", "preserved") are not what a patient reacts to.
        ("oral allergy syndrome", LIQUID_PRODUCT, []),
        ("", CAPSULE_PRODUCT, []),
    ],
)
def test_an_allergy_to_an_excipient_is_a_warning(allergies, product, expected):
    patient = replace(ADULT, allergies=allergies)
    assert rows(check_products(liquid(14), (product,), patient)) == expected


def test_the_excipient_warning_names_the_product_and_the_excipient():
    patient = replace(ADULT, allergies="microcrystalline cellulose")
    (finding,) = check_products(TITRATION, (CAPSULE_PRODUCT,), patient)

    assert finding.message == (
        "The patient's allergies may include an excipient of Naltrexone HCl 1.5 mg capsule: "
        "microcrystalline cellulose. Confirm it is safe, or choose another product."
    )
    assert finding.source == SOURCE_PHARMACY


# --- The records: duplicates, refills, prescriber ------------------------------------------------

OPEN = OpenOrder(
    number="LDN-000007", placed_on=datetime.date(2026, 4, 20), placed_at="04/20/2026 09:15"
)
FILLED = PreviousFill(number="LDN-000007", filled_on=datetime.date(2026, 4, 1), days_supply=30)


@pytest.mark.parametrize(
    ("history", "expected"),
    [
        (FillHistory(), []),
        (FillHistory(open_orders=(OPEN,)), [("duplicate.open_order", W, "patient.orders")]),
        (
            FillHistory(suspended_prescriber="Lena Ortiz, NP"),
            [("prescriber.suspended", E, "prescriber")],
        ),
        # A refill: the previous fill's 30 days, 80 % of them (24 days) passed on 04/25.
        (
            FillHistory(
                refill=True,
                previous_fill=FILLED,
                refills_left=1,
                refills_authorized=2,
                expires_on=TODAY,
            ),
            [],
        ),
        (
            FillHistory(
                refill=True,
                previous_fill=replace(FILLED, filled_on=TODAY - WEEK * 3),
                refills_left=1,
                refills_authorized=2,
                expires_on=TODAY,
            ),
            [("refill.too_soon", W, "refill")],
        ),
        (
            FillHistory(refill=True, refills_left=0, refills_authorized=2, expires_on=TODAY),
            [("refills.none_left", E, "refills")],
        ),
        (
            FillHistory(refill=True, refills_left=1, expires_on=TODAY - datetime.timedelta(days=1)),
            [("prescription.expired", E, "prescription")],
        ),
        (
            FillHistory(refill=True, refills_left=1, rejected_order="LDN-000003"),
            [("prescription.rejected", E, "prescription")],
        ),
        (
            FillHistory(refill=True, refills_left=1, open_refill="LDN-000009"),
            [("refill.already_open", E, "prescription")],
        ),
        # A refill's own history: refill rules only apply to refills.
        (FillHistory(refills_left=0, rejected_order="LDN-000003"), []),
    ],
)
def test_the_records_rules(history, expected):
    assert rows(check_history(history, today=TODAY)) == expected


def test_refill_too_soon_says_when_the_next_fill_is_due():
    history = FillHistory(
        refill=True,
        refills_left=1,
        previous_fill=replace(FILLED, filled_on=TODAY),
    )
    (finding,) = check_history(history, today=TODAY)

    assert finding.message == (
        "Refill too soon: the previous fill (LDN-000007, 30 days' supply) was filled on "
        "05/01/2026; the next is due from 05/25/2026 (80 % of its supply). Give the reason for "
        "refilling early."
    )
    assert finding.code in REASON_REQUIRED


def test_the_due_share_comes_from_the_policy():
    history = FillHistory(refill=True, refills_left=1, previous_fill=FILLED)  # 30 days ago
    strict = replace(DEFAULT_POLICY, refill_due_fraction=D("1.05"))  # due after 32 days

    assert rows(check_history(history, today=TODAY)) == []
    assert rows(check_history(history, today=TODAY, policy=strict)) == [
        ("refill.too_soon", W, "refill")
    ]


def test_duplicate_therapy_names_the_open_orders_and_an_identical_one_says_so():
    two = FillHistory(open_orders=(OPEN, replace(OPEN, number="LDN-000011")))
    identical = FillHistory(open_orders=(replace(OPEN, identical=True),))

    assert [f.message for f in check_history(two, today=TODAY)] == [
        "The patient has another open LDN order (LDN-000007 of 04/20/2026, LDN-000011 of "
        "04/20/2026): duplicate therapy. Give the reason for another one."
    ]
    assert [f.message for f in check_history(identical, today=TODAY)] == [
        "An identical order for this patient was already placed (LDN-000007, 04/20/2026 "
        "09:15) and is still open: was the form sent twice? Give the reason if a second order "
        "is meant."
    ]
    assert "duplicate.open_order" in REASON_REQUIRED


def test_a_suspended_prescriber_is_named():
    (finding,) = check_history(FillHistory(suspended_prescriber="Lena Ortiz, NP"), today=TODAY)
    assert finding.message == (
        "Lena Ortiz, NP's account is suspended: the pharmacy fills none of their prescriptions "
        "until it is reinstated."
    )


# --- Directions per bottle -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("regimen", "strength", "expected"),
    [
        (
            TITRATION,
            "1.5",
            "Take 1 capsule (1.5 mg) at bedtime for 14 days, then start the 3 mg bottle.",
        ),
        (
            TITRATION,
            "3",
            "From day 15 (after the 1.5 mg bottle), take 1 capsule (3 mg) at bedtime for 14 days, "
            "then start the 4.5 mg bottle.",
        ),
        (
            TITRATION,
            "4.5",
            "From day 29 (after the 3 mg bottle), take 1 capsule (4.5 mg) at bedtime; continue "
            "nightly.",
        ),
        # A step back down: the 1.5 mg bottle is used twice.
        (
            replace(TITRATION, steps=(Step(D("1.5"), 14), Step(D("3"), 14), Step(D("1.5"), 30))),
            "1.5",
            "Take 1 capsule (1.5 mg) at bedtime for 14 days, then start the 3 mg bottle. From day "
            "29 (after the 3 mg bottle), take 1 capsule (1.5 mg) at bedtime; continue nightly.",
        ),
        # Morning, twice a day.
        (
            replace(TITRATION, steps=(Step(D("4.5"), 30),), time_of_day="morning"),
            "4.5",
            "Take 1 capsule (4.5 mg) in the morning; continue every morning.",
        ),
        (
            replace(TITRATION, steps=(Step(D("1.5"), 30),), doses_per_day=2),
            "1.5",
            "Take 1 capsule (1.5 mg) twice daily; continue twice daily.",
        ),
        # One bottle of liquid holds every step; the volume comes first.
        (liquid(14), None, "Take 3 mL (3 mg) by mouth at bedtime; continue nightly."),
        (
            replace(liquid(14), steps=(Step(D("1.5"), 7), Step(D("3"), 7))),
            None,
            "Take 1.5 mL (1.5 mg) by mouth at bedtime for 7 days, then 3 mL (3 mg) by mouth at "
            "bedtime; continue nightly.",
        ),
        (
            replace(
                liquid(30),
                dosage_form=DosageForm.TOPICAL_CREAM,
                concentration_mg_per_ml=D("0.5"),
                steps=(Step(D("1"), 30),),
            ),
            None,
            "Apply 2 mL (1 mg) to the skin at bedtime; continue nightly.",
        ),
    ],
)
def test_each_bottle_says_what_to_take_from_it(regimen, strength, expected):
    phrases = label_directions(regimen, None if strength is None else D(strength))
    assert " ".join(phrases) == expected


def test_a_capsule_bottle_never_names_another_bottles_dose():
    for strength in ("1.5", "3", "4.5"):
        text = " ".join(label_directions(TITRATION, D(strength)))
        others = {"1.5", "3", "4.5"} - {strength}
        assert f"1 capsule ({strength} mg)" in text
        assert not any(f"1 capsule ({other} mg)" in text for other in others)


def test_a_refill_continues_at_the_maintenance_dose():
    refill = maintenance_regimen(TITRATION)

    assert refill.steps == (Step(D("4.5"), 58),)
    assert (refill.quantity, refill.days_supply, refill.continues_treatment) == (D(58), 58, True)
    assert label_directions(refill, D("4.5")) == (
        "Take 1 capsule (4.5 mg) at bedtime; continue nightly.",
    )
    titration = replace(liquid(35), steps=(Step(D("1.5"), 14), Step(D("4.5"), 21)))
    liquid_refill = maintenance_regimen(titration)
    assert (liquid_refill.steps, liquid_refill.quantity) == ((Step(D("4.5"), 35),), D("157.5"))


# --- Sources: USP <795> only for the BUD ---------------------------------------------------------


def test_only_beyond_use_date_rules_cite_usp_795():
    regimens = [
        replace(TITRATION, quantity=D("40")),  # quantity mismatch
        replace(TITRATION, quantity=D("-1")),
        replace(TITRATION, quantity=D("58.5")),
        replace(TITRATION, capsule_strengths_mg=frozenset({D("1.5")})),
        replace(TITRATION, doses_per_day=3),
        replace(liquid(14), concentration_mg_per_ml=None),
        replace(liquid(14), concentration_mg_per_ml=D("0")),
    ]
    # The pharmacy's own limits: quantity tolerance, capsule strengths, doses a day.
    limits = {
        "quantity.mismatch",
        "quantity.not_positive",
        "quantity.not_whole",
        "capsule.strength_unavailable",
        "doses_per_day.too_many",
        "concentration.missing",
        "concentration.not_positive",
    }
    findings = [f for regimen in regimens for f in check_regimen(regimen) if f.code in limits]
    assert {f.code for f in findings} == limits
    assert {f.source for f in findings} == {SOURCE_PHARMACY}
    bud = check_products(liquid(58), (LIQUID_PRODUCT,), ADULT)
    assert {f.source for f in bud} == {SOURCE_USP_795}

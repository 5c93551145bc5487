"""The LDN dose rules of orders/dosing.py: a table per rule family, then properties."""

import datetime
import re
from dataclasses import replace
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orders.dosing import (
    DEFAULT_POLICY,
    DosageForm,
    Finding,
    PatientFacts,
    Regimen,
    Severity,
    Step,
    capsule_lines,
    check_patient,
    check_prescription,
    check_regimen,
    daily_dose,
    directions,
    has_errors,
    policy_with,
    quantity_needed,
    units_per_dose,
    warnings_of,
)

E, W = Severity.ERROR, Severity.WARNING
D = Decimal
TODAY = datetime.date(2026, 5, 1)
STRENGTHS = frozenset(D(n) / 2 for n in range(1, 10))  # 0.5 to 4.5 mg in 0.5 mg steps
TITRATION = (("1.5", 14), ("3", 14), ("4.5", 30))  # the common 1.5 -> 3 -> 4.5 mg schedule
ADULT = PatientFacts(date_of_birth=datetime.date(1980, 2, 14), takes_opioids=False)
AUTO = object()
WASHOUT = (
    "Start LDN only once the patient has been opioid-free for 7-10 days after short-acting "
    "or 10-14 days after long-acting opioids."
)


def steps(*pairs) -> tuple[Step, ...]:
    return tuple(Step(dose_mg=D(dose), days=days) for dose, days in pairs)


def capsules(*pairs, doses_per_day=1, quantity=AUTO, days_supply=None, **extra) -> Regimen:
    """A capsule regimen whose quantity and days' supply match the schedule unless given."""
    schedule = steps(*pairs)
    days = sum(step.days for step in schedule)
    if quantity is AUTO:
        quantity = D(days * doses_per_day) if days * doses_per_day > 0 else None
    return Regimen(
        dosage_form=DosageForm.CAPSULE,
        steps=schedule,
        doses_per_day=doses_per_day,
        quantity=quantity,
        days_supply=days if days_supply is None else days_supply,
        refills=extra.pop("refills", 0),
        **extra,
    )


def liquid(*pairs, concentration="1", form=DosageForm.ORAL_LIQUID, quantity=None, **extra):
    schedule = steps(*pairs)
    return Regimen(
        dosage_form=form,
        steps=schedule,
        doses_per_day=extra.pop("doses_per_day", 1),
        quantity=None if quantity is None else D(quantity),
        days_supply=sum(step.days for step in schedule),
        refills=0,
        concentration_mg_per_ml=None if concentration is None else D(concentration),
        **extra,
    )


def rows(findings: list[Finding]) -> list[tuple[str, Severity, str]]:
    return [(finding.code, finding.severity, finding.field) for finding in findings]


def test_the_common_titration_has_no_findings():
    assert check_prescription(capsules(*TITRATION), ADULT, today=TODAY) == []


# --- Daily dose bands -------------------------------------------------------------------------

FIRST_HIGH = ("titration.first_step_high", W, "steps.0.dose_mg")


@pytest.mark.parametrize(
    ("dose", "expected"),
    [
        ("0.49", [("dose.very_low", W, "steps.0.dose_mg")]),
        ("0.5", []),
        ("3", []),
        ("3.01", [FIRST_HIGH]),
        ("4.5", [FIRST_HIGH]),
        ("4.51", [("dose.above_usual", W, "steps.0.dose_mg"), FIRST_HIGH]),
        ("5.0", [("dose.above_usual", W, "steps.0.dose_mg"), FIRST_HIGH]),
        ("5.01", [("dose.above_max", E, "steps.0.dose_mg"), FIRST_HIGH]),
        ("50", [("dose.above_max", E, "steps.0.dose_mg"), FIRST_HIGH]),
        ("0", [("step.dose_not_positive", E, "steps.0.dose_mg")]),
        ("-1", [("step.dose_not_positive", E, "steps.0.dose_mg")]),
    ],
)
def test_daily_dose_bands(dose, expected):
    assert rows(check_regimen(capsules((dose, 30)))) == expected


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        # Every step is checked, and a step down is allowed.
        (
            (("1.5", 14), ("3", 14), ("4.5", 14), ("5.5", 14), ("4.5", 30)),
            [("dose.above_max", E, "steps.3.dose_mg")],
        ),
        ((("1.5", 14), ("0.25", 14)), [("dose.very_low", W, "steps.1.dose_mg")]),
        ((("1.5", 14), ("0", 14)), [("step.dose_not_positive", E, "steps.1.dose_mg")]),
    ],
)
def test_every_step_is_checked(schedule, expected):
    assert rows(check_regimen(capsules(*schedule))) == expected


@pytest.mark.parametrize(
    ("doses_per_day", "dose", "expected"),
    [
        (2, "1.5", [("doses_per_day.split", W, "doses_per_day")]),
        (
            2,
            "2.5",  # 2 x 2.5 = 5 mg a day, and a 5 mg start
            [
                ("dose.above_usual", W, "steps.0.dose_mg"),
                FIRST_HIGH,
                ("doses_per_day.split", W, "doses_per_day"),
            ],
        ),
        (
            2,
            "2.51",
            [
                ("dose.above_max", E, "steps.0.dose_mg"),
                FIRST_HIGH,
                ("doses_per_day.split", W, "doses_per_day"),
            ],
        ),
        (
            2,
            "0.2",
            [("dose.very_low", W, "steps.0.dose_mg"), ("doses_per_day.split", W, "doses_per_day")],
        ),
        (3, "1", [("doses_per_day.too_many", E, "doses_per_day")]),
        (
            3,
            "2",
            [
                ("dose.above_max", E, "steps.0.dose_mg"),
                FIRST_HIGH,
                ("doses_per_day.too_many", E, "doses_per_day"),
            ],
        ),
        (0, "1.5", [("doses_per_day.too_few", E, "doses_per_day")]),
        (-1, "1.5", [("doses_per_day.too_few", E, "doses_per_day")]),
    ],
)
def test_split_doses_are_judged_by_the_daily_total(doses_per_day, dose, expected):
    assert rows(check_regimen(capsules((dose, 30), doses_per_day=doses_per_day))) == expected


@pytest.mark.parametrize(
    ("regimen", "message"),
    [
        (
            capsules(("6", 30)),
            "Daily dose 6 mg is above the LDN maximum of 5 mg "
            "(standard naltrexone is 50 mg tablets).",
        ),
        (
            capsules(("2.5", 30), doses_per_day=2),
            "Daily dose 5 mg (2 x 2.5 mg) is above the usual maximum of 4.5 mg; confirm it.",
        ),
        (
            capsules(("1.5", 14), ("0.25", 14)),
            "Daily dose 0.25 mg in step 2 is below 0.5 mg, the very-low-dose range; confirm it.",
        ),
        (capsules(("0.0", 30)), "Dose must be more than 0 mg (it is 0 mg)."),
    ],
)
def test_dose_messages_give_the_numbers(regimen, message):
    assert check_regimen(regimen)[0].message == message


def test_dose_findings_cite_the_ldn_dosing_guidance():
    (finding, _first_high) = check_regimen(capsules(("6.00", 30)))
    assert finding.source == "LDN dosing guidance (Toljan & Vrooman, Med Sci 2018;6(4):82)"


# --- Capsule strengths ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("strengths", "dose", "message"),
    [
        (
            STRENGTHS,
            "1.25",
            "No 1.25 mg capsule: capsules come in 0.5 mg steps from 0.5 to 4.5 mg.",
        ),
        (
            {"1.5", "3", "4.5"},
            "2",
            "No 2 mg capsule: capsules come in 1.5 mg steps from 1.5 to 4.5 mg.",
        ),
        ({"1", "1.5", "3"}, "2", "No 2 mg capsule: capsules come in 1, 1.5 and 3 mg."),
        ({"1.5", "4.5"}, "3", "No 3 mg capsule: capsules come in 1.5 and 4.5 mg."),
        ({"4.50"}, "3", "No 3 mg capsule: capsules come in 4.5 mg only."),
    ],
)
def test_a_capsule_strength_the_pharmacy_does_not_make_is_refused(strengths, dose, message):
    regimen = capsules((dose, 30), capsule_strengths_mg=frozenset(D(s) for s in strengths))

    (finding,) = check_regimen(regimen)

    assert rows([finding]) == [("capsule.strength_unavailable", E, "steps.0.dose_mg")]
    assert finding.message == message


@pytest.mark.parametrize(
    "regimen",
    [
        capsules(("1.50", 14), ("3.0", 14), ("4.500", 30), capsule_strengths_mg=STRENGTHS),
        capsules(("1.25", 30)),  # no strengths given: not checked
        liquid(("1.25", 30), capsule_strengths_mg=STRENGTHS),  # not a capsule
    ],
)
def test_capsule_strengths_accepted(regimen):
    assert check_regimen(regimen) == []


def test_a_missing_strength_in_a_later_step_names_the_step():
    regimen = capsules(("1.5", 14), ("2.25", 14), capsule_strengths_mg=STRENGTHS)

    assert [f.message for f in check_regimen(regimen)] == [
        "No 2.25 mg capsule in step 2: capsules come in 0.5 mg steps from 0.5 to 4.5 mg."
    ]


# --- Titration --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        ((("1.5", 6), ("3", 30)), [("titration.step_too_short", W, "steps.0.days")]),
        ((("1.5", 7), ("3", 30)), []),
        ((("1.5", 14), ("3", 6)), []),  # the last step may be short
        ((("1.5", 3),), []),  # so may a single step
        ((("1.5", 14), ("3.01", 14)), [("titration.increase_too_large", W, "steps.1.dose_mg")]),
        ((("1.5", 14), ("3", 14)), []),
        ((("1", 7), ("2", 7), ("3", 7), ("4.5", 7)), []),
        ((("3", 14), ("1.5", 14)), []),  # going down is allowed
        ((("3.01", 14), ("1.5", 14)), [FIRST_HIGH]),
        ((("4.5", 30),), [FIRST_HIGH]),  # a single step starts high too
        (
            (("0.5", 3), ("2.5", 3), ("4.5", 30)),
            [
                ("titration.step_too_short", W, "steps.0.days"),
                ("titration.step_too_short", W, "steps.1.days"),
                ("titration.increase_too_large", W, "steps.1.dose_mg"),
                ("titration.increase_too_large", W, "steps.2.dose_mg"),
            ],
        ),
        ((("1.5", 0), ("3", 14)), [("step.days_not_positive", E, "steps.0.days")]),
        ((("1.5", 14), ("3", -2)), [("step.days_not_positive", E, "steps.1.days")]),
    ],
)
def test_titration(schedule, expected):
    assert rows(check_regimen(capsules(*schedule))) == expected


def test_titration_messages():
    regimen = capsules(("3.5", 6), ("5.5", 14))

    assert [f.message for f in check_regimen(regimen)] == [
        "Daily dose 5.5 mg in step 2 is above the LDN maximum of 5 mg "
        "(standard naltrexone is 50 mg tablets).",
        "First step is 3.5 mg a day: start at 3 mg a day or less and go up, unless the patient "
        "already takes LDN.",
        "Step 1 lasts 6 days; titration steps should last at least 7 days.",
        "Step 2 goes up 2 mg a day (from 3.5 mg to 5.5 mg); increase by at most 1.5 mg a day "
        "per step.",
    ]


@pytest.mark.parametrize(
    ("schedule", "doses_per_day", "expected"),
    [
        # 2 x 1.5 mg is a 3 mg start: at the limit. 2 x 2 mg is a 4 mg start (per dose only
        # 2 mg, which a per-dose rule let through).
        ((("1.5", 14),), 2, []),
        ((("2", 14),), 2, [FIRST_HIGH]),
        # 1 -> 1.5 mg twice a day is 1 mg a day more: fine. 1 -> 2 mg twice a day is 2 mg a
        # day more (1 mg per dose, which a per-dose rule let through).
        ((("1", 14), ("1.5", 14)), 2, []),
        ((("1", 14), ("2", 14)), 2, [("titration.increase_too_large", W, "steps.1.dose_mg")]),
    ],
)
def test_split_doses_are_judged_per_day_for_the_start_and_each_increase(
    schedule, doses_per_day, expected
):
    findings = check_regimen(capsules(*schedule, doses_per_day=doses_per_day))

    assert [row for row in rows(findings) if row[0].startswith("titration")] == expected


def test_split_dose_titration_messages_give_the_daily_amounts():
    findings = check_regimen(capsules(("2", 14), ("3", 14), doses_per_day=2))

    assert [f.message for f in findings if f.code.startswith("titration")] == [
        "First step is 4 mg (2 x 2 mg) a day: start at 3 mg a day or less and go up, unless "
        "the patient already takes LDN.",
        "Step 2 goes up 2 mg a day (from 4 mg (2 x 2 mg) to 6 mg (2 x 3 mg)); increase by at "
        "most 1.5 mg a day per step.",
    ]


def test_a_refill_that_continues_treatment_is_not_a_high_start():
    maintenance = capsules(("4.5", 30), continues_treatment=True)

    assert check_regimen(maintenance) == []
    assert rows(check_regimen(capsules(("4.5", 30)))) == [FIRST_HIGH]


def test_an_empty_schedule_is_refused():
    regimen = capsules(days_supply=30, quantity=None)

    assert rows(check_regimen(regimen)) == [("steps.empty", E, "steps")]
    assert check_regimen(regimen)[0].message == (
        "The schedule is empty: add at least one step (dose and days)."
    )


# --- Days' supply, refills, quantity, concentration -------------------------------------------


@pytest.mark.parametrize(
    ("schedule", "days_supply", "expected"),
    [
        ((("1.5", 90),), 90, []),
        ((("1.5", 91),), 91, [("days_supply.too_long", E, "days_supply")]),
        (TITRATION, 58, []),
        (TITRATION, 57, [("days_supply.mismatch", E, "days_supply")]),
        (TITRATION, 0, [("days_supply.not_positive", E, "days_supply")]),
        (TITRATION, -1, [("days_supply.not_positive", E, "days_supply")]),
        (
            TITRATION,
            91,
            [
                ("days_supply.too_long", E, "days_supply"),
                ("days_supply.mismatch", E, "days_supply"),
            ],
        ),
    ],
)
def test_days_supply(schedule, days_supply, expected):
    assert rows(check_regimen(capsules(*schedule, days_supply=days_supply))) == expected


def test_days_supply_messages():
    assert [f.message for f in check_regimen(capsules(*TITRATION, days_supply=120))] == [
        "Days' supply 120 days is more than the maximum of 90 days.",
        "Days' supply 120 days does not match the schedule, which lasts 58 days.",
    ]


@pytest.mark.parametrize(
    ("refills", "expected"),
    [
        (0, []),
        (11, []),
        (12, [("refills.too_many", E, "refills")]),
        (-1, [("refills.negative", E, "refills")]),
    ],
)
def test_refills(refills, expected):
    assert rows(check_regimen(capsules(*TITRATION, refills=refills))) == expected


def test_refills_message_cites_state_law():
    (finding,) = check_regimen(capsules(*TITRATION, refills=12))

    assert finding.message == "12 refills is more than the maximum of 11."
    assert finding.source == "state pharmacy law: most US states"


SIXTY = (("1.5", 14), ("3", 14), ("4.5", 32))  # 60 capsules: 10 % is exactly 6


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [
        ("60", []),
        ("66", []),  # exactly 10 % over
        ("67", [("quantity.mismatch", E, "quantity")]),
        ("54", []),  # exactly 10 % under
        ("53", [("quantity.mismatch", E, "quantity")]),
        ("60.5", [("quantity.not_whole", E, "quantity")]),
        ("0", [("quantity.not_positive", E, "quantity")]),
        ("-60", [("quantity.not_positive", E, "quantity")]),
        (None, []),  # not given yet
    ],
)
def test_capsule_quantity_within_ten_percent(quantity, expected):
    regimen = capsules(*SIXTY, quantity=None if quantity is None else D(quantity))

    assert rows(check_regimen(regimen)) == expected


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [
        ("198", []),
        ("217.8", []),  # 198 mL + 10 %
        ("217.9", [("quantity.mismatch", E, "quantity")]),
        ("178.2", []),  # 198 mL - 10 %
        ("178.1", [("quantity.mismatch", E, "quantity")]),
    ],
)
def test_liquid_quantity_within_ten_percent(quantity, expected):
    assert rows(check_regimen(liquid(*TITRATION, quantity=quantity))) == expected


@pytest.mark.parametrize(
    ("regimen", "message"),
    [
        (
            capsules(*TITRATION, quantity=D(40)),
            "Quantity 40 capsules does not match the schedule, which needs 58 capsules "
            "(within 10 %).",
        ),
        (
            liquid(*TITRATION, quantity="250.0"),
            "Quantity 250 mL does not match the schedule, which needs 198 mL (within 10 %).",
        ),
        (capsules(*TITRATION, quantity=D(0)), "Quantity must be more than 0 (it is 0 capsules)."),
        (
            capsules(("1.5", 1), ("3", 1), quantity=D(1), days_supply=2),
            "Quantity 1 capsule does not match the schedule, which needs 2 capsules (within 10 %).",
        ),
    ],
)
def test_quantity_messages_state_both_numbers_and_the_unit(regimen, message):
    assert [f.message for f in check_regimen(regimen) if f.field == "quantity"] == [message]


@pytest.mark.parametrize("form", [f for f in DosageForm if f != DosageForm.CAPSULE])
@pytest.mark.parametrize(
    ("concentration", "expected"),
    [
        ("1", []),
        (None, [("concentration.missing", E, "concentration_mg_per_ml")]),
        ("0", [("concentration.not_positive", E, "concentration_mg_per_ml")]),
        ("-1", [("concentration.not_positive", E, "concentration_mg_per_ml")]),
    ],
)
def test_every_form_but_capsules_needs_a_concentration(form, concentration, expected):
    regimen = liquid(("1.5", 30), form=form, concentration=concentration, quantity="45")

    assert rows(check_regimen(regimen)) == expected


def test_missing_concentration_message_names_the_form():
    regimen = liquid(("1.5", 30), form=DosageForm.SUBLINGUAL_DROPS, concentration=None)

    assert check_regimen(regimen)[0].message == "Sublingual drops needs a concentration in mg/mL."


def test_capsules_need_no_concentration():
    assert check_regimen(capsules(*TITRATION, concentration_mg_per_ml=None)) == []


# --- Arithmetic -------------------------------------------------------------------------------


def test_quantity_and_capsule_lines_of_the_common_titration():
    regimen = capsules(*TITRATION)

    assert quantity_needed(regimen) == D(58)
    assert capsule_lines(regimen) == [(D("1.5"), 14), (D("3"), 14), (D("4.5"), 30)]


def test_capsule_lines_add_up_repeated_doses_and_split_doses():
    regimen = capsules(("1.50", 14), ("3", 14), ("1.5", 7), doses_per_day=2)

    assert capsule_lines(regimen) == [(D("1.5"), 42), (D("3"), 28)]
    assert [str(strength) for strength, _count in capsule_lines(regimen)] == ["1.5", "3"]
    assert quantity_needed(regimen) == D(70)


def test_liquid_quantity_is_the_mg_over_the_concentration():
    regimen = liquid(*TITRATION)  # 1.5*14 + 3*14 + 4.5*30 mg at 1 mg/mL

    assert quantity_needed(regimen) == D(198)
    assert capsule_lines(regimen) == []


@pytest.mark.parametrize(
    ("schedule", "concentration", "needed"),
    [
        ((("1", 10),), "3", D("3.3")),  # 3.333 mL
        ((("1", 5),), "3", D("1.7")),  # 1.666 mL
        ((("0.25", 1),), "1", D("0.3")),  # half up, not to even
        ((("1", 30),), "0.5", D("60")),  # cream
    ],
)
def test_liquid_quantity_is_rounded_to_a_tenth_of_a_ml(schedule, concentration, needed):
    assert quantity_needed(liquid(*schedule, concentration=concentration)) == needed


@pytest.mark.parametrize(
    "regimen",
    [
        capsules(quantity=None),
        capsules(("1.5", 14), doses_per_day=0),
        capsules(("1.5", 0), ("3", 14)),
        capsules(("0", 14), ("3", 14)),
        liquid(("1.5", 14), concentration=None),
        liquid(("1.5", 14), concentration="0"),
    ],
)
def test_quantity_needed_is_none_when_it_cannot_be_computed(regimen):
    assert quantity_needed(regimen) is None


def test_units_and_daily_dose():
    assert units_per_dose(D("4.5"), capsules(("4.5", 30))) == 1
    assert units_per_dose(D("1.5"), liquid(("1.5", 30), concentration="0.5")) == D(3)
    assert units_per_dose(D("1.5"), liquid(("1.5", 30), concentration=None)) is None
    assert units_per_dose(D("1.5"), liquid(("1.5", 30), concentration="0")) is None
    assert daily_dose(Step(D("2.5"), 14), 2) == D(5)


# --- Directions -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("regimen", "expected"),
    [
        (
            capsules(*TITRATION),
            "Take 1 capsule (1.5 mg) at bedtime for 14 days, then 1 capsule (3 mg) at bedtime "
            "for 14 days, then 1 capsule (4.5 mg) at bedtime for 30 days.",
        ),
        (capsules(("4.5", 30)), "Take 1 capsule (4.5 mg) at bedtime for 30 days."),
        (
            capsules(("4.50", 30), time_of_day="morning"),
            "Take 1 capsule (4.5 mg) in the morning for 30 days.",
        ),
        (
            capsules(("1.5", 14), doses_per_day=2),
            "Take 1 capsule (1.5 mg) twice daily for 14 days.",
        ),
        (capsules(("1.5", 1)), "Take 1 capsule (1.5 mg) at bedtime for 1 day."),
        (
            liquid(*TITRATION),
            "Take 1.5 mL (1.5 mg) by mouth at bedtime for 14 days, then 3 mL (3 mg) by mouth at "
            "bedtime for 14 days, then 4.5 mL (4.5 mg) by mouth at bedtime for 30 days.",
        ),
        (
            liquid(("1.5", 14), form=DosageForm.SUBLINGUAL_DROPS),
            "Place 1.5 mL (1.5 mg) under the tongue at bedtime for 14 days.",
        ),
        (
            liquid(("1", 30), form=DosageForm.TOPICAL_CREAM, concentration="0.5"),
            "Apply 2 mL (1 mg) to the skin at bedtime for 30 days.",
        ),
        (
            liquid(("1", 30), concentration="3"),
            "Take 0.33 mL (1 mg) by mouth at bedtime for 30 days.",
        ),
        (
            liquid(("1.00", 30), concentration="1.50"),
            "Take 0.67 mL (1 mg) by mouth at bedtime for 30 days.",
        ),
        (
            liquid(("1.5", 14), concentration=None),
            "Take 1.5 mg by mouth at bedtime for 14 days.",
        ),
        (capsules(days_supply=30), ""),
    ],
)
def test_directions(regimen, expected):
    assert directions(regimen) == expected


# --- Patient ----------------------------------------------------------------------------------


def patient(**changes) -> PatientFacts:
    return replace(ADULT, **changes)


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        (patient(), []),
        (patient(takes_opioids=None), [("opioid.unanswered", E, "patient.takes_opioids")]),
        (patient(takes_opioids=True), [("opioid.current", E, "patient.takes_opioids")]),
        (
            patient(takes_opioids=True, medications="Oxycodone 5 mg"),
            [
                ("opioid.current", E, "patient.takes_opioids"),
                ("opioid.in_medications", E, "patient.medications"),
            ],
        ),
        (patient(date_of_birth=None), []),
        (
            patient(date_of_birth=datetime.date(2008, 5, 2)),  # 18 tomorrow
            [("age.minor", W, "patient.date_of_birth")],
        ),
        (patient(date_of_birth=datetime.date(2008, 5, 1)), []),  # 18 today
        (
            patient(date_of_birth=datetime.date(2026, 5, 2)),
            [("age.birth_date_in_future", E, "patient.date_of_birth")],
        ),
        (
            patient(medications="Levothyroxine 75 mcg", diagnosis_codes=("M79.7", "E06.3")),
            [("thyroid.hashimoto_replacement", W, "patient.medications")],
        ),
        (
            patient(medications="armour thyroid 60 mg", diagnosis_codes=("e063",)),
            [("thyroid.hashimoto_replacement", W, "patient.medications")],
        ),
        (patient(medications="Levothyroxine 75 mcg", diagnosis_codes=("M79.7",)), []),
        (patient(diagnosis_codes=("E06.3",)), []),
        (
            patient(medications="tacrolimus 1 mg twice daily"),
            [("immunosuppression.present", W, "patient.medications")],
        ),
        (
            patient(diagnosis_codes=("Z94.0",)),
            [("immunosuppression.present", W, "diagnosis_codes")],
        ),
        (
            patient(medications="CellCept", diagnosis_codes=("Z94.1",)),
            [("immunosuppression.present", W, "patient.medications")],
        ),
        (
            patient(pregnant_or_breastfeeding=True),
            [("pregnancy.or_breastfeeding", W, "patient.pregnant_or_breastfeeding")],
        ),
        (patient(liver_disease=True), [("liver.disease", W, "patient.liver_disease")]),
    ],
)
def test_patient_findings(facts, expected):
    assert rows(check_patient(facts, today=TODAY)) == expected


@pytest.mark.parametrize(
    ("facts", "message"),
    [
        (
            patient(takes_opioids=None),
            "Answer the opioid question: naltrexone cannot be given with opioids.",
        ),
        (
            patient(takes_opioids=True),
            "The patient takes opioids: naltrexone blocks opioids and can bring on withdrawal. "
            + WASHOUT,
        ),
        (
            patient(medications="Metformin\nTylenol #3 for back pain\nOXYCONTIN 20 mg"),
            "The medication list names an opioid (Tylenol #3 for back pain: codeine; OXYCONTIN "
            "20 mg: oxycodone): naltrexone blocks opioids and can bring on withdrawal. " + WASHOUT,
        ),
        (
            patient(date_of_birth=datetime.date(2010, 6, 1)),
            "The patient is 15, under 18: naltrexone safety is not established in children; "
            "confirm the prescription.",
        ),
        (
            patient(medications="Synthroid 50 mcg", diagnosis_codes=("E06.3",)),
            "Hashimoto's thyroiditis (E06.3) on thyroid replacement (Synthroid 50 mcg: "
            "levothyroxine): start low; the thyroid dose may need lowering, so watch for signs "
            "of over-replacement.",
        ),
        (
            patient(medications="Prograf 1 mg", diagnosis_codes=("Z94.0",)),
            "Immunosuppression (Prograf 1 mg: tacrolimus, transplant status Z94.0): LDN acts on "
            "the immune system; discuss with the treating specialist or transplant team.",
        ),
    ],
)
def test_patient_messages(facts, message):
    assert [f.message for f in check_patient(facts, today=TODAY)] == [message]


@pytest.mark.parametrize(
    ("medications", "drugs"),
    [
        ("Oxycodone 5 mg as needed", "Oxycodone 5 mg as needed"),
        ("OXYCONTIN 20 mg", "OXYCONTIN 20 mg: oxycodone"),
        ("tylenol with codeine", "tylenol with codeine"),
        ("Tylenol #3 at night", "Tylenol #3 at night: codeine"),
        (
            "Metformin 500 mg\nhydrocodone-acetaminophen 5/325\nVitamin D",
            "hydrocodone-acetaminophen 5/325",
        ),
        ("acetaminophen-codeine 300/30", "acetaminophen-codeine 300/30"),
        ("Suboxone film 8/2", "Suboxone film 8/2: buprenorphine"),
        ("buprenorphine (Butrans patch)", "buprenorphine (Butrans patch)"),
        ("MS  Contin 15 mg", "MS  Contin 15 mg: morphine"),
        ("Robitussin AC cough syrup", "Robitussin AC cough syrup: codeine"),
        ("Tussionex at night", "Tussionex at night: hydrocodone"),
        ("tramadol 50 mg; Norco 5/325", "tramadol 50 mg; Norco 5/325: hydrocodone"),
        ("fentanyl patch 25 mcg/h", "fentanyl patch 25 mcg/h"),
        ("Lomotil for diarrhoea", "Lomotil for diarrhoea: diphenoxylate"),
        ("methadone 40 mg (clinic)", "methadone 40 mg (clinic)"),
        ("Kadian\nkadian", "Kadian: morphine"),
        # As clinics type them: glued to the strength, shorthand, a typo.
        ("Tramadol50mg", "Tramadol50mg"),
        ("Percocet10/325 q6h prn", "Percocet10/325 q6h prn: oxycodone"),
        ("APAP/codeine 300/30", "APAP/codeine 300/30"),
        ("oxy 10 at night", "oxy 10 at night: oxycodone"),
        ("bupe 8mg", "bupe 8mg: buprenorphine"),
        ("kratom capsules daily", "kratom capsules daily: kratom (mitragynine)"),
        ("oxycodon 5mg", "oxycodon 5mg: oxycodone"),
    ],
)
def test_a_medication_list_naming_an_opioid_is_refused(medications, drugs):
    (finding,) = check_patient(patient(medications=medications), today=TODAY)

    assert rows([finding]) == [("opioid.in_medications", E, "patient.medications")]
    assert finding.message.startswith(f"The medication list names an opioid ({drugs}): ")
    assert finding.source == "naltrexone prescribing information"


@pytest.mark.parametrize(
    "medications",
    [
        "non-opioid pain reliever",
        "opioid-free since May",
        "Opioids: none",
        "ibuprofen 400 mg",
        "Levothyroxine 75 mcg",
        "Robitussin DM",
        "codeine-free cough syrup",
        "non-codeine cough syrup",
        "oxybutynin 5 mg",
        "",
    ],
)
def test_medication_lists_without_an_opioid(medications):
    assert check_patient(patient(medications=medications), today=TODAY) == []


def test_loperamide_is_a_warning_not_an_error():
    findings = check_patient(patient(medications="Imodium A-D as needed"), today=TODAY)

    assert rows(findings) == [("opioid.peripheral", W, "patient.medications")]
    assert findings[0].message.startswith(
        "The medication list names a peripherally acting opioid (Imodium A-D as needed: "
        "loperamide): "
    )


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        # Hashimoto's from the patient's problem list, not only this prescription's codes.
        (
            patient(medications="Levothyroxine 75 mcg", conditions=("E06.3",)),
            [("thyroid.hashimoto_replacement", W, "patient.medications")],
        ),
        (
            patient(
                medications="NP Thyroid 60 mg", conditions=("E06.3",), diagnosis_codes=("M79.7",)
            ),
            [("thyroid.hashimoto_replacement", W, "patient.medications")],
        ),
        (patient(conditions=("Z94.0",)), [("immunosuppression.present", W, "patient.conditions")]),
        # The classes DOMAIN.md names: biologics, JAK inhibitors, S1P modulators, methotrexate,
        # systemic corticosteroids (not a cream).
        (
            patient(medications="Humira 40 mg every 2 weeks"),
            [("immunosuppression.present", W, "patient.medications")],
        ),
        (
            patient(medications="Rinvoq 15mg"),
            [("immunosuppression.present", W, "patient.medications")],
        ),
        (patient(medications="Gilenya"), [("immunosuppression.present", W, "patient.medications")]),
        (
            patient(medications="methotrexate 15 mg weekly"),
            [("immunosuppression.present", W, "patient.medications")],
        ),
        (
            patient(medications="prednisone 5 mg daily"),
            [("immunosuppression.present", W, "patient.medications")],
        ),
        (patient(medications="hydrocortisone 1% cream"), []),
        # An allergy to naltrexone or naloxone rules LDN out.
        (patient(allergies="Naltrexone (hives)"), [("allergy.naltrexone", E, "patient.allergies")]),
        (patient(allergies="Narcan"), [("allergy.naltrexone", E, "patient.allergies")]),
        (patient(allergies="NKDA"), []),
    ],
)
def test_patient_conditions_classes_and_allergies(facts, expected):
    assert rows(check_patient(facts, today=TODAY)) == expected


def test_an_allergy_message_names_what_was_written():
    (finding,) = check_patient(patient(allergies="penicillin, naltrexone (rash)"), today=TODAY)

    assert finding.message == (
        "The patient's allergies name naltrexone (rash): LDN is naltrexone, so it cannot be given."
    )


def test_check_prescription_gives_regimen_findings_then_patient_findings():
    findings = check_prescription(
        capsules(*TITRATION, refills=12), patient(liver_disease=True), today=TODAY
    )

    assert rows(findings) == [
        ("refills.too_many", E, "refills"),
        ("liver.disease", W, "patient.liver_disease"),
    ]
    assert has_errors(findings)
    assert warnings_of(findings) == [findings[1]]


def test_has_errors_and_warnings_of():
    warnings = check_patient(patient(liver_disease=True), today=TODAY)

    assert not has_errors(warnings)
    assert not has_errors([])
    assert warnings_of(warnings) == warnings


def test_a_finding_as_a_dict_is_all_strings():
    (finding,) = check_regimen(capsules(*TITRATION, refills=-1))

    assert finding.as_dict() == {
        "code": "refills.negative",
        "severity": "error",
        "field": "refills",
        "message": "Refills cannot be negative (it is -1).",
        "source": "pharmacy policy",
    }
    assert {type(value) for value in finding.as_dict().values()} == {str}


# --- Policy -----------------------------------------------------------------------------------


def test_default_policy_holds_the_domain_thresholds():
    policy = DEFAULT_POLICY

    assert (policy.very_low_dose_mg, policy.usual_max_daily_mg, policy.max_daily_mg) == (
        D("0.5"),
        D("4.5"),
        D("5"),
    )
    assert (policy.min_step_days, policy.max_step_increase_mg, policy.max_first_dose_mg) == (
        7,
        D("1.5"),
        D("3"),
    )
    assert (policy.usual_doses_per_day, policy.max_doses_per_day) == (1, 2)
    assert (policy.quantity_tolerance, policy.max_days_supply, policy.max_refills) == (
        D("0.1"),
        90,
        11,
    )
    assert (policy.adult_age, policy.standard_naltrexone_mg) == (18, D(50))
    assert policy.hashimoto_codes == ("E06.3",)
    assert policy.transplant_code_prefixes == ("Z94",)


def test_policy_with_converts_values_to_the_field_types():
    policy = policy_with(
        {
            "usual_max_daily_mg": "4",
            "quantity_tolerance": 0.2,  # a JSON number: 0.2, not its binary value
            "max_refills": 5,
            "min_step_days": "10",
            "hashimoto_codes": "E06.3, E06.5",
            "transplant_code_prefixes": ["Z94", "T86"],
        }
    )

    assert policy.usual_max_daily_mg == D(4) and isinstance(policy.usual_max_daily_mg, Decimal)
    assert str(policy.quantity_tolerance) == "0.2"
    assert (policy.max_refills, policy.min_step_days) == (5, 10)
    assert policy.hashimoto_codes == ("E06.3", "E06.5")
    assert policy.transplant_code_prefixes == ("Z94", "T86")
    assert policy.max_daily_mg == DEFAULT_POLICY.max_daily_mg
    assert policy_with({}) == DEFAULT_POLICY


def test_the_rules_follow_the_policy():
    policy = policy_with(
        {"usual_max_daily_mg": "4", "max_refills": "5", "transplant_code_prefixes": "T86"}
    )

    regimen = capsules(("1.5", 14), ("3", 14), ("4.25", 30), refills=6)
    findings = check_prescription(
        regimen, patient(conditions=("T86.10",)), today=TODAY, policy=policy
    )

    assert rows(findings) == [
        ("dose.above_usual", W, "steps.2.dose_mg"),
        ("refills.too_many", E, "refills"),
        ("immunosuppression.present", W, "patient.conditions"),
    ]
    assert findings[1].message == "6 refills is more than the maximum of 5."
    assert check_patient(patient(conditions=("Z94.0",)), today=TODAY, policy=policy) == []


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"max_dose": "5"}, "Unknown dosing policy setting(s): max_dose"),
        ({"max_refills": "eleven"}, "max_refills: 'eleven' is not a valid int"),
        ({"max_refills": "11.5"}, "max_refills: '11.5' is not a valid int"),
        ({"max_daily_mg": "abc"}, "max_daily_mg: 'abc' is not a valid Decimal"),
        ({"max_daily_mg": "NaN"}, "max_daily_mg: 'NaN' is not a valid Decimal"),
        ({"max_daily_mg": None}, "max_daily_mg: None is not a valid Decimal"),
    ],
)
def test_policy_with_refuses_unknown_settings_and_bad_values(overrides, error):
    with pytest.raises(ValueError, match=re.escape(error)):
        policy_with(overrides)


# --- Properties -------------------------------------------------------------------------------

FEW = settings(max_examples=300, deadline=None, database=None)  # no .hypothesis/ example files
FIELDS = {
    "dosage_form",
    "concentration_mg_per_ml",
    "steps",
    "doses_per_day",
    "quantity",
    "days_supply",
    "refills",
    "patient.takes_opioids",
    "patient.medications",
    "patient.date_of_birth",
    "patient.pregnant_or_breastfeeding",
    "patient.liver_disease",
    "diagnosis_codes",
}

doses = st.decimals(min_value=0, max_value=20, places=2)
regimens = st.builds(
    Regimen,
    dosage_form=st.sampled_from(DosageForm),
    steps=st.lists(st.builds(Step, dose_mg=doses, days=st.integers(-5, 120)), max_size=6).map(
        tuple
    ),
    doses_per_day=st.integers(0, 4),
    quantity=st.none() | st.decimals(min_value=0, max_value=1000, places=1),
    days_supply=st.integers(-5, 800),
    refills=st.integers(-2, 15),
    concentration_mg_per_ml=st.none() | st.decimals(min_value=0, max_value=5, places=2),
    capsule_strengths_mg=st.sampled_from([frozenset(), STRENGTHS, frozenset({D("1.5"), D(3)})]),
    time_of_day=st.sampled_from(["bedtime", "morning"]),
)
medication_words = st.sampled_from(
    ["oxycodone", "Tylenol #3", "non-opioid", "levothyroxine", "tacrolimus", "-free", "non-", "\n"]
)
patients = st.builds(
    PatientFacts,
    date_of_birth=st.none() | st.dates(datetime.date(1900, 1, 1), datetime.date(2030, 12, 31)),
    takes_opioids=st.none() | st.booleans(),
    medications=st.lists(medication_words | st.text(max_size=12), max_size=6).map(" ".join),
    pregnant_or_breastfeeding=st.booleans(),
    liver_disease=st.booleans(),
    diagnosis_codes=st.lists(
        st.sampled_from(["E06.3", "Z94.0", "M79.7", "z940"]) | st.text(max_size=6), max_size=3
    ).map(tuple),
)


@FEW
@given(regimen=regimens, facts=patients)
def test_the_rules_never_raise_and_findings_are_well_formed(regimen, facts):
    findings = check_prescription(regimen, facts, today=TODAY)
    directions(regimen)
    capsule_lines(regimen)
    quantity_needed(regimen)

    for finding in findings:
        assert re.fullmatch(r"[a-z_]+\.[a-z_]+", finding.code)
        assert finding.severity in (E, W)
        step = re.fullmatch(r"steps\.(\d+)\.(dose_mg|days)", finding.field)
        assert finding.field in FIELDS or (step and int(step[1]) < len(regimen.steps))
        assert finding.message and finding.source
        assert all(isinstance(value, str) for value in finding.as_dict().values())


@FEW
@given(
    regimen=regimens,
    position=st.integers(0, 6),
    dose=st.decimals(min_value=D("5.01"), max_value=20, places=2),
    doses_per_day=st.integers(1, 4),
)
def test_a_daily_dose_above_the_maximum_is_always_an_error(regimen, position, dose, doses_per_day):
    schedule = list(regimen.steps)
    schedule.insert(position, Step(dose_mg=dose / doses_per_day, days=14))  # plant one
    regimen = replace(regimen, steps=tuple(schedule), doses_per_day=doses_per_day)

    findings = check_regimen(regimen)

    too_high = [i for i, step in enumerate(regimen.steps) if daily_dose(step, doses_per_day) > 5]
    assert too_high
    for index in too_high:
        assert ("dose.above_max", E, f"steps.{index}.dose_mg") in rows(findings)
    assert has_errors(findings)


def with_trailing_zeros(value):
    return None if value is None else value + D("0.000")  # 1.5 -> 1.500, same value


@FEW
@given(regimen=regimens, facts=patients)
def test_findings_do_not_depend_on_trailing_zeros(regimen, facts):
    padded = replace(
        regimen,
        steps=tuple(Step(with_trailing_zeros(s.dose_mg), s.days) for s in regimen.steps),
        quantity=with_trailing_zeros(regimen.quantity),
        concentration_mg_per_ml=with_trailing_zeros(regimen.concentration_mg_per_ml),
        capsule_strengths_mg=frozenset(map(with_trailing_zeros, regimen.capsule_strengths_mg)),
    )

    assert check_prescription(padded, facts, today=TODAY) == check_prescription(
        regimen, facts, today=TODAY
    )
    assert directions(padded) == directions(regimen)
    assert quantity_needed(padded) == quantity_needed(regimen)
    assert [(str(s), n) for s, n in capsule_lines(padded)] == [
        (str(s), n) for s, n in capsule_lines(regimen)
    ]


@FEW
@given(regimen=regimens)
def test_the_quantity_the_schedule_needs_is_accepted(regimen):
    needed = quantity_needed(regimen)
    regimen = replace(regimen, quantity=needed)

    assert not [f for f in check_regimen(regimen) if f.field == "quantity"]
    if needed is not None and regimen.dosage_form == DosageForm.CAPSULE:
        assert sum(count for _strength, count in capsule_lines(regimen)) == needed


def test_huge_values_do_not_crash():
    regimen = Regimen(
        dosage_form=DosageForm.ORAL_LIQUID,
        steps=(Step(D("1e9"), 10**6), Step(D("1e-9"), 1)),
        doses_per_day=10**6,
        quantity=D("1e30"),
        days_supply=10**9,
        refills=10**6,
        concentration_mg_per_ml=D("1e-9"),
    )

    findings = check_regimen(regimen)

    assert ("dose.above_max", E, "steps.0.dose_mg") in rows(findings)
    assert directions(regimen).startswith("Take 1000000000000000000 mL (1000000000 mg) by mouth")

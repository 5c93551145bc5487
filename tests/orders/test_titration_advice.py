"""The diary's summary and suggestions (orders/titration_advice.py): exact outcomes on known
diaries, and the edges of each rule."""

import datetime
from decimal import Decimal

import pytest

from orders.titration_advice import (
    DoseStep,
    Entry,
    SideEffect,
    StepSummary,
    Suggestion,
    main_symptom,
    suggestions,
    summarize,
)

D = datetime.date
START = D(2026, 1, 5)
# 1.5 mg for 14 days, 3 mg for 14 days, then 4.5 mg (the target) for 90 days, at bedtime.
TITRATION = (
    DoseStep(START, D(2026, 1, 18), Decimal("1.5"), "bedtime"),
    DoseStep(D(2026, 1, 19), D(2026, 2, 1), Decimal("3"), "bedtime"),
    DoseStep(D(2026, 2, 2), D(2026, 5, 2), Decimal("4.5"), "bedtime"),
)
DREAMS, INSOMNIA, HEADACHE = SideEffect.VIVID_DREAMS, SideEffect.INSOMNIA, SideEffect.HEADACHE


def daily(first: datetime.date, days: int, score: int, dose: str, effects=frozenset()):
    return [
        Entry(first + datetime.timedelta(n), Decimal(dose), score, frozenset(effects))
        for n in range(days)
    ]


@pytest.mark.parametrize(
    ("codes", "symptom"),
    [
        (["M79.7"], "pain"), (["G93.32"], "fatigue"), (["L29.9"], "itch"),
        (["L63.9"], "hair shedding"), (["Z00.00", "m79.7"], "pain"), (["G35.A"], "fatigue"),
        ([], "symptoms"), (["E06.3"], "symptoms"),
    ],
)  # fmt: skip
def test_the_symptom_scored_is_named_from_the_diagnosis(codes, symptom):
    assert main_symptom(codes) == symptom


def test_the_summary_per_step_counts_entries_missed_days_and_side_effects():
    entries = [
        *daily(START, 10, 7, "1.5", {DREAMS}),  # 10 of the 14 days
        *daily(D(2026, 1, 19), 3, 5, "3", {DREAMS, HEADACHE}),
    ]
    assert summarize(TITRATION, entries, today=D(2026, 1, 21)) == [
        StepSummary(TITRATION[0], entries=10, missed=4, average_score=Decimal("7.0"),
                    side_effects={DREAMS: 10}),
        StepSummary(TITRATION[1], entries=3, missed=0, average_score=Decimal("5.0"),
                    side_effects={DREAMS: 3, HEADACHE: 3}),
    ]  # fmt: skip


def test_nothing_to_suggest_without_entries_or_before_the_first_step():
    assert suggestions(TITRATION, [], today=D(2026, 3, 1)) == []
    assert suggestions(TITRATION, daily(START, 3, 5, "1.5"), today=D(2026, 1, 1)) == []


def test_vivid_dreams_early_at_bedtime_suggest_morning_dosing():
    entries = [*daily(START, 5, 6, "1.5"), *daily(D(2026, 1, 10), 2, 6, "1.5", {DREAMS, INSOMNIA})]
    assert suggestions(TITRATION, entries, today=D(2026, 1, 12)) == [
        Suggestion(
            code="morning_dosing",
            message="Insomnia and vivid dreams reported on 2 days in the first 4 weeks, dosed "
            "at bedtime: consider taking the dose in the morning.",
            source="LDN Research Trust titration guidance",
            time_of_day="morning",
        )
    ]


def test_dreams_after_the_first_weeks_or_already_in_the_morning_suggest_nothing():
    late = daily(D(2026, 2, 2), 1, 6, "4.5", {DREAMS})  # day 29
    assert suggestions(TITRATION, late, today=D(2026, 2, 3)) == []
    morning = tuple(DoseStep(s.start, s.end, s.dose_mg, "morning") for s in TITRATION)
    assert suggestions(morning, daily(START, 3, 6, "1.5", {DREAMS}), today=D(2026, 1, 8)) == []


def test_a_side_effect_persisting_at_a_step_suggests_returning_to_the_one_before():
    entries = [
        *daily(START, 14, 6, "1.5"),
        *daily(D(2026, 1, 19), 7, 5, "3", {HEADACHE}),
        *daily(D(2026, 1, 26), 7, 5, "3"),  # 7 of 14 entries: half, which persists
    ]
    assert suggestions(TITRATION, entries, today=D(2026, 2, 1)) == [
        Suggestion(
            code="step_back",
            message="Headache on most entries at 3 mg: consider returning to 1.5 mg, or "
            "staying at 3 mg longer.",
            source="LDN Research Trust titration guidance",
            schedule="1.5 x 30",
        )
    ]


def test_a_side_effect_on_fewer_than_half_or_fewer_than_14_days_is_not_persisting():
    fewer = [*daily(D(2026, 1, 19), 6, 5, "3", {HEADACHE}), *daily(D(2026, 1, 25), 8, 5, "3")]
    assert suggestions(TITRATION, fewer, today=D(2026, 2, 1)) == []
    shorter = daily(D(2026, 1, 19), 13, 5, "3", {HEADACHE})
    assert suggestions(TITRATION, shorter, today=D(2026, 1, 31)) == []


def test_at_the_first_step_it_suggests_staying_there():
    entries = daily(START, 14, 6, "1.5", {SideEffect.NAUSEA})
    assert [s.code for s in suggestions(TITRATION, entries, today=D(2026, 1, 18))] == [
        "stay_at_step"
    ]


def test_no_benefit_after_8_weeks_at_the_target_suggests_a_review():
    entries = [*daily(START, 7, 8, "1.5"), *daily(D(2026, 3, 16), 14, 7, "4.5")]
    today = D(2026, 3, 30)  # 8 weeks since the target dose began on 2 Feb
    assert suggestions(TITRATION, entries, today=today) == [
        Suggestion(
            code="review_benefit",
            message="8 weeks at 4.5 mg and the score is 7.0 against 8.0 in the first week "
            "(less than a 30 % fall): review whether LDN helps.",
            source="LDN Research Trust titration guidance; IMMPACT (Dworkin et al., J Pain "
            "2008): 30 % is a moderately important change",
        )
    ]


def test_a_fall_of_30_percent_is_benefit_and_7_weeks_is_too_soon_to_judge():
    improved = [*daily(START, 7, 10, "1.5"), *daily(D(2026, 3, 16), 14, 7, "4.5")]  # 30 %
    assert suggestions(TITRATION, improved, today=D(2026, 3, 30)) == []
    almost = [*daily(START, 7, 10, "1.5"), *daily(D(2026, 3, 16), 14, 8, "4.5")]  # 20 %
    assert [s.code for s in suggestions(TITRATION, almost, today=D(2026, 3, 30))] == [
        "review_benefit"
    ]
    unchanged = [*daily(START, 7, 8, "1.5"), *daily(D(2026, 3, 9), 14, 8, "4.5")]
    assert suggestions(TITRATION, unchanged, today=D(2026, 3, 22)) == []  # 7 weeks


def test_a_dose_step_says_its_dose_as_people_write_it():
    assert TITRATION[0].dose_text == "1.5 mg"
    assert DoseStep(START, START, Decimal("3.000"), "bedtime").dose_text == "3 mg"
    assert TITRATION[0].label == "1.5 mg at bedtime"
    assert DoseStep(START, START, Decimal("4.5"), "morning").label == "4.5 mg in the morning"

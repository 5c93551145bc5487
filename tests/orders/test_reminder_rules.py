"""When the patient's reminders are due (orders/reminder_rules.py)."""

import datetime

import pytest

from orders.dosing import policy_with
from orders.reminder_rules import DiaryFrequency, diary_reminder_due, refill_reminder_due

D = datetime.date


@pytest.mark.parametrize(
    ("today", "reminded", "due"),
    [
        (D(2026, 3, 24), False, False),  # day 23 of 30: 80 % is day 24
        (D(2026, 3, 25), False, True),  # 24 days after the fill: due
        (D(2026, 4, 20), False, True),  # later, not yet reminded: still due
        (D(2026, 3, 25), True, False),  # once per fill
    ],
)
def test_a_refill_reminder_is_due_at_80_percent_of_the_supply_and_once(today, reminded, due):
    assert refill_reminder_due(
        filled_on=D(2026, 3, 1), days_supply=30, today=today, reminded=reminded
    ) is due  # fmt: skip


def test_the_refill_reminder_follows_the_pharmacys_refill_rule():
    half = policy_with({"refill_due_fraction": "0.5"})
    kwargs = {"filled_on": D(2026, 3, 1), "days_supply": 30, "reminded": False, "policy": half}
    assert refill_reminder_due(today=D(2026, 3, 15), **kwargs) is False
    assert refill_reminder_due(today=D(2026, 3, 16), **kwargs) is True


@pytest.mark.parametrize(
    ("frequency", "last_entry", "last_reminded", "today", "due"),
    [
        ("daily", None, None, D(2026, 3, 1), False),  # the diary began today
        ("daily", None, None, D(2026, 3, 2), True),
        ("daily", D(2026, 3, 2), None, D(2026, 3, 2), False),  # written today
        ("daily", D(2026, 3, 2), None, D(2026, 3, 3), True),
        ("daily", D(2026, 3, 1), D(2026, 3, 3), D(2026, 3, 3), False),  # reminded today
        ("weekly", D(2026, 3, 2), None, D(2026, 3, 8), False),  # 6 days
        ("weekly", D(2026, 3, 2), None, D(2026, 3, 9), True),
        ("weekly", D(2026, 3, 2), D(2026, 3, 9), D(2026, 3, 15), False),  # reminded 6 days ago
        ("weekly", D(2026, 3, 2), D(2026, 3, 9), D(2026, 3, 16), True),
        ("never", None, None, D(2027, 1, 1), False),
    ],
)
def test_a_diary_reminder_is_due_after_a_whole_interval_without_entry_or_reminder(
    frequency, last_entry, last_reminded, today, due
):
    assert diary_reminder_due(
        frequency=DiaryFrequency(frequency), last_entry_on=last_entry,
        last_reminded_on=last_reminded, started_on=D(2026, 3, 1), today=today,
    ) is due  # fmt: skip

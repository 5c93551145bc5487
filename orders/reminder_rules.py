"""When the patient's reminders are due: pure rules, no database (the beat task reads the fills,
the diary and what was sent, and sends through the outbox).

- A refill reminder for a fill is due on the day its refill is (once 80 % of the days' supply has
  passed: the refill-too-soon rule of fill_rules.refill_due_on), and goes once per fill.
- A diary reminder is due when the patient has made no entry within their chosen interval (a day
  or a week) and was not reminded within it either: never two for one gap."""

import datetime
from enum import StrEnum

from .dosing import DEFAULT_POLICY, DosingPolicy
from .fill_rules import refill_due_on


class DiaryFrequency(StrEnum):
    DAILY = "daily"
    WEEKLY = "weekly"
    NEVER = "never"

    @property
    def days(self) -> int:
        return {"daily": 1, "weekly": 7, "never": 0}[self.value]


def refill_reminder_due(
    *, filled_on: datetime.date, days_supply: int, today: datetime.date, reminded: bool,
    policy: DosingPolicy = DEFAULT_POLICY,
) -> bool:  # fmt: skip
    """Whether to remind of this fill's refill today: from the day it is due, once."""
    return not reminded and today >= refill_due_on(filled_on, days_supply, policy)


def diary_reminder_due(
    *, frequency: DiaryFrequency, last_entry_on: datetime.date | None,
    last_reminded_on: datetime.date | None, started_on: datetime.date, today: datetime.date,
) -> bool:  # fmt: skip
    """Whether to remind the patient to write in their diary today. `started_on`: the day their
    diary began (the invitation accepted); nothing is due before a whole interval has passed."""
    if frequency == DiaryFrequency.NEVER:
        return False
    interval = datetime.timedelta(days=frequency.days)
    latest = max(day for day in (last_entry_on, last_reminded_on, started_on) if day is not None)
    return today - latest >= interval

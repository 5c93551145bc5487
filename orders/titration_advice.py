"""What a patient's dose and symptom diary says to the prescriber: the symptom to score (named
from the diagnosis), a summary per dose step, and suggestions for the next prescription.

Pure rules, no database: the pages read the diary and the prescriptions and pass them in. The
prescriber decides every change; a suggestion is never applied by itself, and each says where
it comes from.

The thresholds are a policy (AdvicePolicy) with the source of each beside it:
- vivid dreams or insomnia in the first weeks of treatment, dosed at bedtime: consider morning
  dosing (LDN Research Trust; the usual fix, DOMAIN "The drug");
- a side effect reported on most entries over two weeks at one step: consider staying at, or
  going back to, the previous step (LDN Research Trust titration guidance: slow down or step back
  when side effects persist);
- no benefit after 8 weeks at the target dose: review (LDN Research Trust: judge benefit over
  8-12 weeks). "Benefit" is a fall of the average symptom score by at least 30 % from the first
  week's (IMMPACT: a 30 % reduction is a moderately important improvement, Dworkin et al., J Pain
  2008;9(2):105-121)."""

import datetime
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum

from core.numbers import quantity_text

SOURCE_LDN_TRUST = "LDN Research Trust titration guidance"
SOURCE_IMMPACT = "IMMPACT (Dworkin et al., J Pain 2008): 30 % is a moderately important change"


class SideEffect(StrEnum):
    VIVID_DREAMS = "vivid_dreams"
    INSOMNIA = "insomnia"
    HEADACHE = "headache"
    NAUSEA = "nausea"
    ANXIETY = "anxiety"
    OTHER = "other"

    @property
    def label(self) -> str:
        return self.value.replace("_", " ").capitalize()


# The side effects of sleep: what morning dosing is the usual fix for.
SLEEP_EFFECTS = frozenset({SideEffect.VIVID_DREAMS, SideEffect.INSOMNIA})

# The main symptom of the condition, scored 0-10 in the diary, by ICD-10-CM code prefix (the
# most specific prefix wins). Codes: M79.7 fibromyalgia; G93.32 myalgic encephalomyelitis /
# chronic fatigue syndrome (G93.3 before 2023); L29 pruritus; L63-L65 alopecia; G35 multiple
# sclerosis; K50-K51 Crohn's disease and ulcerative colitis; G89 pain not elsewhere classified.
SYMPTOMS = {
    "M79.7": "pain",
    "G93.3": "fatigue",
    "L29": "itch",
    "L63": "hair shedding",
    "L64": "hair shedding",
    "L65": "hair shedding",
    "G35": "fatigue",
    "K50": "abdominal pain",
    "K51": "abdominal pain",
    "G89": "pain",
}
DEFAULT_SYMPTOM = "symptoms"


def main_symptom(diagnosis_codes: Iterable[str]) -> str:
    """What the diary asks the patient to score: "pain" for fibromyalgia, "fatigue" for ME/CFS,
    ...; the first diagnosis that names one, else "symptoms"."""
    for code in diagnosis_codes:
        code = code.strip().upper()
        prefixes = [prefix for prefix in SYMPTOMS if code.startswith(prefix)]
        if prefixes:
            return SYMPTOMS[max(prefixes, key=len)]
    return DEFAULT_SYMPTOM


@dataclass(frozen=True)
class AdvicePolicy:
    # "The first weeks": vivid dreams and insomnia are early side effects (LDN Research Trust).
    early_weeks: int = 4
    # Persisting: on at least this share of the entries of at least this many days at one step.
    persisting_days: int = 14
    persisting_share: Decimal = Decimal("0.5")
    # Benefit judged after this long at the target dose (LDN Research Trust: 8-12 weeks), as a
    # fall of the score from the first week's by at least this share (IMMPACT).
    review_after_weeks: int = 8
    benefit_fall: Decimal = Decimal("0.30")


DEFAULT_ADVICE_POLICY = AdvicePolicy()


@dataclass(frozen=True)
class Entry:
    """One diary entry: the day, the dose taken (mg, None if none was taken), the main symptom's
    score 0-10, and the side effects ticked."""

    day: datetime.date
    dose_mg: Decimal | None
    score: int
    side_effects: frozenset[SideEffect] = frozenset()


@dataclass(frozen=True)
class DoseStep:
    """A dose the patient was to take from `start` to `end` (inclusive), from the prescriptions
    and their fills, and when in the day."""

    start: datetime.date
    end: datetime.date
    dose_mg: Decimal
    time_of_day: str  # "bedtime" or "morning" (orders.models.TimeOfDay)

    def covers(self, day: datetime.date) -> bool:
        return self.start <= day <= self.end

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    @property
    def dose_text(self) -> str:
        """'1.5 mg', as people write it (the prescription's 1.500 has no trailing zeros)."""
        return f"{quantity_text(self.dose_mg)} mg"

    @property
    def label(self) -> str:
        """'1.5 mg at bedtime', '4.5 mg in the morning'."""
        when = "in the morning" if self.time_of_day == "morning" else "at bedtime"
        return f"{self.dose_text} {when}"


@dataclass(frozen=True)
class StepSummary:
    step: DoseStep
    entries: int
    missed: int  # days of the step, up to `today`, without an entry
    average_score: Decimal | None
    side_effects: dict[SideEffect, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Suggestion:
    code: str
    message: str
    source: str
    # The schedule the suggestion proposes for "Renew with changes" ("" when it is a review).
    schedule: str = ""
    time_of_day: str = ""


def _average(scores: Sequence[int]) -> Decimal | None:
    if not scores:
        return None
    return (Decimal(sum(scores)) / len(scores)).quantize(Decimal("0.1"), ROUND_HALF_UP)


def summarize(
    steps: Sequence[DoseStep], entries: Sequence[Entry], *, today: datetime.date
) -> list[StepSummary]:
    """Per dose step: the entries made, the days missed (up to today), the average score and
    how often each side effect was ticked."""
    summaries = []
    for step in steps:
        if step.start > today:
            continue
        mine = [entry for entry in entries if step.covers(entry.day)]
        elapsed = (min(step.end, today) - step.start).days + 1
        days_with_entry = {entry.day for entry in mine}
        counts = Counter(effect for entry in mine for effect in entry.side_effects)
        summaries.append(
            StepSummary(
                step=step,
                entries=len(mine),
                missed=elapsed - len(days_with_entry),
                average_score=_average([entry.score for entry in mine]),
                side_effects={effect: counts[effect] for effect in SideEffect if counts[effect]},
            )
        )
    return summaries


def suggestions(
    steps: Sequence[DoseStep], entries: Sequence[Entry], *, today: datetime.date,
    policy: AdvicePolicy = DEFAULT_ADVICE_POLICY,
) -> list[Suggestion]:  # fmt: skip
    """What the diary suggests the prescriber consider, each with its source; never applied."""
    steps = sorted((s for s in steps if s.start <= today), key=lambda s: s.start)
    entries = sorted(entries, key=lambda e: e.day)
    if not steps or not entries:
        return []
    found = []
    found += _morning_dosing(steps, entries, policy)
    found += _step_back(steps, entries, today, policy)
    found += _review(steps, entries, today, policy)
    return found


def _morning_dosing(steps, entries, policy) -> list[Suggestion]:
    started = steps[0].start
    early_end = started + datetime.timedelta(weeks=policy.early_weeks)
    early = [
        entry
        for entry in entries
        if entry.day < early_end
        and entry.side_effects & SLEEP_EFFECTS
        and any(s.covers(entry.day) and s.time_of_day == "bedtime" for s in steps)
    ]
    if not early:
        return []
    named = sorted(
        {effect.label.lower() for e in early for effect in e.side_effects & SLEEP_EFFECTS}
    )
    return [
        Suggestion(
            code="morning_dosing",
            message=f"{' and '.join(named).capitalize()} reported on {len(early)} "
            f"{'day' if len(early) == 1 else 'days'} in the first {policy.early_weeks} weeks, "
            "dosed at bedtime: consider taking the dose in the morning.",
            source=SOURCE_LDN_TRUST,
            time_of_day="morning",
        )
    ]


def _step_back(steps, entries, today, policy) -> list[Suggestion]:
    """The latest step at which a side effect persists: stay there (the first step) or go back
    to the step before."""
    for index in range(len(steps) - 1, -1, -1):
        step = steps[index]
        mine = [entry for entry in entries if step.covers(entry.day)]
        if not mine or (min(step.end, today) - step.start).days + 1 < policy.persisting_days:
            continue
        counts = Counter(effect for entry in mine for effect in entry.side_effects)
        persisting = sorted(
            effect.label.lower()
            for effect, count in counts.items()
            if Decimal(count) / len(mine) >= policy.persisting_share
        )
        if not persisting:
            continue
        dose = quantity_text(step.dose_mg)
        what = " and ".join(persisting)
        if index == 0:
            return [
                Suggestion(
                    code="stay_at_step",
                    message=f"{what.capitalize()} on most entries at {dose} mg: consider "
                    f"staying at {dose} mg before going up.",
                    source=SOURCE_LDN_TRUST,
                    schedule=f"{dose} x 30",
                )
            ]
        previous = quantity_text(steps[index - 1].dose_mg)
        return [
            Suggestion(
                code="step_back",
                message=f"{what.capitalize()} on most entries at {dose} mg: consider "
                f"returning to {previous} mg, or staying at {dose} mg longer.",
                source=SOURCE_LDN_TRUST,
                schedule=f"{previous} x 30",
            )
        ]
    return []


def _review(steps, entries, today, policy) -> list[Suggestion]:
    """At the target (the highest dose prescribed) for long enough, without the score falling
    enough from the first week's: review the treatment."""
    target = max(step.dose_mg for step in steps)
    at_target = [step for step in steps if step.dose_mg == target]
    reached = min(step.start for step in at_target)
    if today - reached < datetime.timedelta(weeks=policy.review_after_weeks):
        return []
    first_week = [e.score for e in entries if e.day < steps[0].start + datetime.timedelta(7)]
    recent = [e.score for e in entries if e.day > today - datetime.timedelta(14)]
    baseline, now = _average(first_week), _average(recent)
    if baseline is None or now is None:
        return []
    if baseline > 0 and (baseline - now) / baseline >= policy.benefit_fall:
        return []
    weeks = (today - reached).days // 7
    return [
        Suggestion(
            code="review_benefit",
            message=f"{weeks} weeks at {quantity_text(target)} mg and the score is {now} "
            f"against {baseline} in the first week (less than a "
            f"{int(policy.benefit_fall * 100)} % fall): review whether LDN helps.",
            source=f"{SOURCE_LDN_TRUST}; {SOURCE_IMMPACT}",
        )
    ]

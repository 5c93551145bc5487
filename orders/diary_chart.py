"""The patient's diary as the prescriber sees it on the patient page: the dose steps the patient
was to take (from the prescriptions and their fills), the entries, a chart of both, the summary
since the last order and the suggestions of the diary's rules (orders/titration_advice.py).

`patient_diary` reads the records (three queries whatever the number of entries); the rest are
small pure functions over what it read. The chart is an SVG drawn by the template from the
coordinates computed here: no script, no style attribute (the Content-Security-Policy forbids
inline styles; classes in static/css/portal.css colour it)."""

import datetime
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Min, OuterRef, Subquery
from django.utils import timezone

from core.numbers import quantity_text

from .dosing import Step
from .models import (
    UNFILLED_STATUSES,
    DiaryEntry,
    FillSchedule,
    Order,
    OrderEvent,
    OrderEventKind,
    OrderKind,
    OrderStatus,
    Patient,
    TimeTaken,
)
from .titration_advice import (
    DoseStep,
    Entry,
    SideEffect,
    StepSummary,
    Suggestion,
    main_symptom,
    suggestions,
    summarize,
)

ONE_DAY = datetime.timedelta(days=1)


# --- The dose steps, from the fills ---------------------------------------------------------


@dataclass(frozen=True)
class Fill:
    """One fill of a prescription as the diary reads it: the day the patient had it (the
    earliest dispense, else the day it was signed or placed), the prescription's steps in order,
    and whether it dispenses the maintenance dose (a refill that continues the regimen)."""

    start: datetime.date
    steps: tuple[Step, ...]
    maintenance: bool
    days_supply: int
    time_of_day: str


def fill_steps(fill: Fill) -> list[DoseStep]:
    """The steps as written, one after the other from the fill's day; a maintenance refill is
    the last step's dose for the days' supply (DOMAIN: a refill continues at the maintenance
    step unless the prescriber titrates again)."""
    written = fill.steps
    if fill.maintenance and written:
        written = (Step(dose_mg=written[-1].dose_mg, days=fill.days_supply),)
    steps, start = [], fill.start
    for step in written:
        if step.days < 1:
            continue
        end = start + datetime.timedelta(days=step.days - 1)
        steps.append(DoseStep(start, end, step.dose_mg, fill.time_of_day))
        start = end + ONE_DAY
    return steps


def dose_steps(fills: Iterable[Fill]) -> list[DoseStep]:
    """Every fill's steps, in time order. A fill started before the previous one ran out takes
    over from its day: the patient takes one dose a day, and the newer prescription (or refill)
    is the one to follow."""
    ordered = sorted(fills, key=lambda fill: fill.start)
    steps: list[DoseStep] = []
    for index, fill in enumerate(ordered):
        following = ordered[index + 1].start if index + 1 < len(ordered) else None
        for step in fill_steps(fill):
            if following is not None and step.start >= following:
                break
            if following is not None and step.end >= following:
                step = DoseStep(step.start, following - ONE_DAY, step.dose_mg, step.time_of_day)
            steps.append(step)
    return steps


def steps_since(steps: Sequence[DoseStep], day: datetime.date) -> list[DoseStep]:
    """The steps from `day` on: a step that began before it counts from `day` (so that its
    missed days are those since `day`)."""
    return [
        DoseStep(max(step.start, day), step.end, step.dose_mg, step.time_of_day)
        for step in steps
        if step.end >= day
    ]


# --- The entries ------------------------------------------------------------------------------


def side_effects_of(values: Iterable[str]) -> tuple[SideEffect, ...]:
    """The side effects ticked, in the diary's order; a value the diary no longer offers is
    left out."""
    ticked = set(values)
    return tuple(effect for effect in SideEffect if effect.value in ticked)


@dataclass(frozen=True)
class DiaryRow:
    """One entry as the page shows it (the chart's point and the table's row)."""

    day: datetime.date
    dose_taken: bool
    dose_mg: Decimal | None
    time_taken: str
    score: int
    sleep_quality: int
    side_effects: tuple[SideEffect, ...]
    other_side_effect: str = ""

    @property
    def entry(self) -> Entry:
        return Entry(
            day=self.day,
            dose_mg=self.dose_mg if self.dose_taken else None,
            score=self.score,
            side_effects=frozenset(self.side_effects),
        )

    @property
    def dose_text(self) -> str:
        """'1.5 mg, bedtime'; 'Taken' without the mg; 'Not taken'."""
        if not self.dose_taken:
            return "Not taken"
        parts = [f"{quantity_text(self.dose_mg)} mg" if self.dose_mg is not None else "Taken"]
        if self.time_taken:
            parts.append(TimeTaken(self.time_taken).label.lower())
        return ", ".join(parts)

    @property
    def side_effects_text(self) -> str:
        """The labels, the patient's own words for "Other" when they wrote some."""
        named = [effect.label for effect in self.side_effects]
        if SideEffect.OTHER in self.side_effects and self.other_side_effect:
            named[self.side_effects.index(SideEffect.OTHER)] = self.other_side_effect
        return ", ".join(named)

    @property
    def side_effect_values(self) -> str:
        return " ".join(effect.value for effect in self.side_effects)


# --- The chart --------------------------------------------------------------------------------

# The SVG's own units: 400 wide fits a phone of 360 px at a little under 1:1 (viewBox and
# width 100 % scale it), and its text stays readable there.
CHART_WIDTH, CHART_HEIGHT = 400, 240
PLOT_LEFT, PLOT_RIGHT, PLOT_TOP, PLOT_BOTTOM = 30, 368, 44, 214
MARKER_ROW = 32  # the side effects' markers, above the plot
SCORE_TOP = 10


def _n(value: float) -> str:
    """A coordinate as the SVG gets it: one decimal at most."""
    return f"{round(value, 1):g}"


@dataclass(frozen=True)
class ChartStep:
    step: DoseStep
    x: str
    y: str
    width: str
    height: str

    @property
    def dose_mg(self) -> str:
        return quantity_text(self.step.dose_mg)


@dataclass(frozen=True)
class ChartPoint:
    row: DiaryRow
    x: str
    y: str


@dataclass(frozen=True)
class Tick:
    at: str
    label: str


@dataclass(frozen=True)
class Chart:
    first_day: datetime.date
    last_day: datetime.date
    steps: list[ChartStep]
    dose_line: str  # the path of the steps' tops
    points: list[ChartPoint]
    score_line: str  # the polyline through the points
    markers: list[ChartPoint]  # the entries with side effects, on the marker row
    day_ticks: list[Tick]
    score_ticks: list[Tick]
    dose_ticks: list[Tick]
    width: int = CHART_WIDTH
    height: int = CHART_HEIGHT
    left: int = PLOT_LEFT
    right: int = PLOT_RIGHT
    top: int = PLOT_TOP
    bottom: int = PLOT_BOTTOM
    marker_row: int = MARKER_ROW


def chart_days(
    steps: Sequence[DoseStep], rows: Sequence[DiaryRow], *, today: datetime.date
) -> tuple[datetime.date, datetime.date]:
    """The days the chart spans: from the first entry (or the start of the step it falls in)
    to the last entry or today, whichever is later."""
    first = min(row.day for row in rows)
    first = min([first, *(step.start for step in steps if step.covers(first))])
    return first, max(today, *(row.day for row in rows))


def dose_scale_top(steps: Sequence[DoseStep]) -> int:
    """The dose axis's top: the highest dose rounded up to a whole mg (5 when none)."""
    return max(1, math.ceil(max((step.dose_mg for step in steps), default=Decimal(5))))


def day_tick_interval(days: int) -> int:
    """A tick a week on a chart of up to six weeks, then every 2, 4, ... weeks: at most about
    six labels across a phone."""
    return 7 * max(1, math.ceil(days / 42))


def chart_of(steps: Sequence[DoseStep], rows: Sequence[DiaryRow], *, today: datetime.date) -> Chart:
    """The chart's coordinates: each day a slot across the plot, the dose steps as bars up to
    their dose (right axis, mg), each entry's score as a point (left axis, 0-10), the side
    effects as markers above the plot."""
    first, last = chart_days(steps, rows, today=today)
    slots = (last - first).days + 1
    slot = (PLOT_RIGHT - PLOT_LEFT) / slots
    height = PLOT_BOTTOM - PLOT_TOP
    dose_top = dose_scale_top(steps)

    def x_of(day: datetime.date) -> float:  # the slot's left edge
        return PLOT_LEFT + (day - first).days * slot

    def dose_y(dose: Decimal) -> float:
        return PLOT_BOTTOM - float(dose) / dose_top * height

    def score_y(score: int) -> float:
        return PLOT_BOTTOM - score / SCORE_TOP * height

    shown = [s for s in steps if s.end >= first and s.start <= last]
    bars = []
    for step in shown:
        left, right = x_of(max(step.start, first)), x_of(min(step.end, last) + ONE_DAY)
        top = dose_y(step.dose_mg)
        bars.append(ChartStep(step, _n(left), _n(top), _n(right - left), _n(PLOT_BOTTOM - top)))
    # The steps' tops as one line, going up or down where a step follows on the next day.
    moves = []
    for index, bar in enumerate(bars):
        follows = index > 0 and shown[index - 1].end + ONE_DAY == bar.step.start
        moves.append(f"{'V' if follows else f'M{bar.x} '}{bar.y}h{bar.width}")
    points = [
        ChartPoint(row, _n(x_of(row.day) + slot / 2), _n(score_y(row.score)))
        for row in sorted(rows, key=lambda row: row.day)
    ]
    interval = day_tick_interval(slots)
    return Chart(
        first_day=first,
        last_day=last,
        steps=bars,
        dose_line=" ".join(moves),
        points=points,
        score_line=" ".join(f"{point.x},{point.y}" for point in points),
        markers=[ChartPoint(p.row, p.x, str(MARKER_ROW)) for p in points if p.row.side_effects],
        day_ticks=[
            Tick(_n(x_of(day) + slot / 2), day.strftime("%m/%d"))
            for day in (first + datetime.timedelta(days=n) for n in range(0, slots, interval))
        ],
        score_ticks=[Tick(_n(score_y(score)), str(score)) for score in range(0, 11, 2)],
        dose_ticks=[
            Tick(_n(dose_y(Decimal(mg))), str(mg))
            for mg in range(0, dose_top + 1, max(1, math.ceil(dose_top / 5)))
        ],
    )


# --- What the page shows ----------------------------------------------------------------------


@dataclass(frozen=True)
class PatientDiary:
    symptom: str  # "pain", "fatigue", ... (titration_advice.main_symptom)
    rows: list[DiaryRow]  # by day
    steps: list[DoseStep]
    chart: Chart
    since: datetime.date | None  # the latest order's day: the summary counts from it
    summary: list[StepSummary]
    suggestions: list[Suggestion]
    latest_order: Order | None  # "Renew with changes" starts from its prescription

    @property
    def symptom_scale(self) -> str:
        return f"{self.symptom.capitalize()} (0-{SCORE_TOP})"


def diary_of(
    *,
    fills: Sequence[Fill],
    rows: Sequence[DiaryRow],
    symptom: str,
    since: datetime.date | None,
    latest_order: Order | None,
    today: datetime.date,
) -> PatientDiary:
    """The diary's page from what was read: pure."""
    steps = dose_steps(fills)
    entries = [row.entry for row in rows]
    summary = []
    if since is not None:
        recent = [entry for entry in entries if entry.day >= since]
        summary = summarize(steps_since(steps, since), recent, today=today)
    return PatientDiary(
        symptom=symptom,
        rows=list(rows),
        steps=steps,
        chart=chart_of(steps, rows, today=today),
        since=since,
        summary=summary,
        suggestions=suggestions(steps, entries, today=today),
        latest_order=latest_order,
    )


def fill_day(
    dispensed_at: datetime.datetime | None,
    signed_at: datetime.datetime | None,
    created_at: datetime.datetime,
) -> datetime.date:
    """The local day a fill's steps start: its earliest dispense, else its signature (a draft
    signed later), else the day it was placed."""
    return timezone.localdate(dispensed_at or signed_at or created_at)


def patient_diary(*, patient: Patient, clinic_id: int, today: datetime.date) -> PatientDiary | None:
    """The patient's diary for the clinic's prescriber; None when there is no entry yet. Three
    queries (one when there is no entry): the entries, the orders with their prescriptions and
    fill days, and the prescriptions' steps."""
    rows = [
        DiaryRow(
            day=entry.day,
            dose_taken=entry.dose_taken,
            dose_mg=entry.dose_mg,
            time_taken=entry.time_taken,
            score=entry.score,
            sleep_quality=entry.sleep_quality,
            side_effects=side_effects_of(entry.side_effects),
            other_side_effect=entry.other_side_effect,
        )
        for entry in DiaryEntry.objects.filter(patient=patient).order_by("day")
    ]
    if not rows:
        return None
    signed = OrderEvent.objects.filter(order=OuterRef("pk"), kind=OrderEventKind.SIGNED)
    # The orders the pharmacy fills or filled: not a draft still to sign, not cancelled or
    # rejected. The rest of a partial fill and a replacement belong to their fill.
    orders = list(
        Order.objects.of_clinic(clinic_id)
        .filter(prescription__patient=patient)
        .exclude(status__in=(OrderStatus.DRAFT, *UNFILLED_STATUSES))
        .annotate(
            dispensed_at=Min("dispenses__dispensed_at"),
            signed_at=Subquery(signed.values("created_at")[:1]),
        )
        .select_related("prescription")
        .prefetch_related("prescription__steps")
        .order_by("created_at", "pk")
    )
    fills = [
        Fill(
            start=fill_day(order.dispensed_at, order.signed_at, order.created_at),
            steps=tuple(
                Step(dose_mg=step.dose_mg, days=step.days)
                for step in order.prescription.steps.all()
            ),
            maintenance=order.schedule == FillSchedule.MAINTENANCE,
            days_supply=order.prescription.days_supply,
            time_of_day=order.prescription.time_of_day,
        )
        for order in orders
        if order.kind in (OrderKind.NEW, OrderKind.REFILL)
    ]
    latest = orders[-1] if orders else None
    codes = [*(latest.prescription.diagnosis_codes if latest else ()), *patient.conditions]
    return diary_of(
        fills=fills,
        rows=rows,
        symptom=main_symptom(codes),
        since=timezone.localdate(latest.created_at) if latest else None,
        latest_order=latest,
        today=today,
    )

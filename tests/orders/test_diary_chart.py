"""What the prescriber sees of a patient's diary on the patient page (orders/diary_chart.py):
the dose steps from the prescriptions and their fills, the chart and its table, the summary
since the last order, the suggestions and their "Renew with changes" links."""

import datetime
import io
import uuid
from decimal import Decimal
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.management import call_command
from django.http import QueryDict
from django.urls import reverse
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st

from orders.diary_chart import (
    DiaryRow,
    Fill,
    chart_of,
    day_tick_interval,
    dose_steps,
    fill_steps,
    patient_diary,
    side_effects_of,
    steps_since,
)
from orders.dosing import Step
from orders.forms import AmendForm
from orders.models import DiaryEntry, Order, OrderStatus, Patient
from orders.order_views import with_suggested_changes
from orders.services import prescription_refill
from orders.titration_advice import SOURCE_LDN_TRUST, DoseStep, SideEffect
from pharmacy.models import Dispense
from tests.factories import (
    TITRATION,
    BatchFactory,
    DiaryEntryFactory,
    PatientFactory,
    UserFactory,
    clinic_of,
    submit_order,
)

pytestmark = pytest.mark.django_db

D = datetime.date
MG = Decimal
ORDERED = D(2026, 11, 27)
DISPENSED = D(2026, 12, 1)
DREAMS, HEADACHE = SideEffect.VIVID_DREAMS, SideEffect.HEADACHE
# TITRATION (1.5 mg x 14, 3 mg x 14, 4.5 mg x 30 at bedtime) as dispensed on DISPENSED.
DISPENSED_STEPS = [
    DoseStep(D(2026, 12, 1), D(2026, 12, 14), MG("1.5"), "bedtime"),
    DoseStep(D(2026, 12, 15), D(2026, 12, 28), MG("3"), "bedtime"),
    DoseStep(D(2026, 12, 29), D(2027, 1, 27), MG("4.5"), "bedtime"),
]


def moment(day: datetime.date, hour: int = 10) -> datetime.datetime:
    return timezone.make_aware(datetime.datetime.combine(day, datetime.time(hour)))


def dispense(order: Order, day: datetime.date, time_machine) -> None:
    """One bottle of the order handed out on `day` (the diary reads only when)."""
    time_machine.move_to(moment(day), tick=False)
    line = order.lines().first()
    Dispense.objects.create(
        order=order,
        line=line,
        batch=BatchFactory(),
        units=line.units,
        dispensed_by=UserFactory(is_staff=True),
    )


@pytest.fixture
def titration(prescriber, patient, time_machine) -> Order:
    """TITRATION ordered on ORDERED, dispensed on DISPENSED (a second bottle the day after)."""
    time_machine.move_to(moment(ORDERED), tick=False)
    order = submit_order(prescriber, patient, TITRATION)
    dispense(order, DISPENSED, time_machine)
    dispense(order, DISPENSED + datetime.timedelta(days=1), time_machine)
    return order


def diary(patient, prescriber, today):
    return patient_diary(patient=patient, clinic_id=clinic_of(prescriber).pk, today=today)


def entries(patient, first: datetime.date, scores, **fields):
    return [
        DiaryEntryFactory(
            patient=patient, day=first + datetime.timedelta(days=n), score=score, **fields
        )
        for n, score in enumerate(scores)
    ]


class Page(HTMLParser):
    """The patient page's diary: the chart's elements with their attributes, and the text of
    each row of its tables, by the table's class."""

    def __init__(self, html: str):
        super().__init__()
        self.elements: list[tuple[str, dict]] = []
        self.rows: dict[str, list[list[str]]] = {}
        self._table = self._cell = None
        self.html = html
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.elements.append((tag, attrs))
        if tag == "table":
            self._table = (attrs.get("class") or "").split()[-1]
        elif tag == "tr" and self._table:
            self.rows.setdefault(self._table, []).append([])
        elif tag == "td" and self._table:
            self._cell = []

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self.rows[self._table][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "table":
            self._table = None

    def having(self, tag: str, cls: str, attribute: str = "class") -> list[dict]:
        """The elements of the class that carry `attribute` (the chart's legend has none)."""
        return [
            a
            for t, a in self.elements
            if t == tag and cls in (a.get("class") or "").split() and attribute in a
        ]

    def body_rows(self, table: str) -> list[list[str]]:
        return [row for row in self.rows.get(table, []) if row]  # the header row has no td


def page_of(client, prescriber, patient) -> Page:
    """The patient page as the prescriber sees it now (signed in again: the clock moved)."""
    client.force_login(prescriber.user)
    response = client.get(reverse("patient_detail", args=[patient.pk]))
    assert response.status_code == 200
    return Page(response.content.decode())


# --- The dose steps, from the fills -----------------------------------------------------------


def test_a_titration_steps_from_the_day_it_was_first_dispensed(
    prescriber, patient, titration, time_machine
):
    DiaryEntryFactory(patient=patient, day=DISPENSED)

    assert diary(patient, prescriber, today=D(2026, 12, 10)).steps == DISPENSED_STEPS


def test_an_order_not_dispensed_yet_steps_from_the_day_it_was_placed(
    prescriber, patient, time_machine
):
    time_machine.move_to(moment(ORDERED), tick=False)
    submit_order(prescriber, patient, TITRATION)
    DiaryEntryFactory(patient=patient, day=ORDERED)

    steps = diary(patient, prescriber, today=ORDERED).steps

    assert [(s.start, s.end, s.dose_mg) for s in steps] == [
        (D(2026, 11, 27), D(2026, 12, 10), MG("1.5")),
        (D(2026, 12, 11), D(2026, 12, 24), MG("3")),
        (D(2026, 12, 25), D(2027, 1, 23), MG("4.5")),
    ]


def test_a_refill_at_maintenance_continues_at_the_last_dose_from_its_dispense(
    prescriber, patient, titration, time_machine
):
    Order.objects.filter(pk=titration.pk).update(status=OrderStatus.SHIPPED)
    time_machine.move_to(moment(D(2027, 1, 18)), tick=False)
    refill = prescription_refill(
        prescription=titration.prescription,
        actor=prescriber.user,
        ship_to="clinic",
        needed_by=None,
        idempotency_key=uuid.uuid4(),
        acknowledged=["refill.too_soon@refill"],
        reason="Travel.",
    )
    dispense(refill, D(2027, 1, 20), time_machine)
    DiaryEntryFactory(patient=patient, day=DISPENSED)

    shown = diary(patient, prescriber, today=D(2027, 1, 21))

    assert refill.schedule == "maintenance"
    # The first fill's 4.5 mg step ends the day before the refill starts; the refill is 4.5 mg
    # for its 58 days' supply.
    assert shown.steps == [
        *DISPENSED_STEPS[:2],
        DoseStep(D(2026, 12, 29), D(2027, 1, 19), MG("4.5"), "bedtime"),
        DoseStep(D(2027, 1, 20), D(2027, 3, 18), MG("4.5"), "bedtime"),
    ]
    assert shown.latest_order == refill and shown.since == D(2027, 1, 18)


def test_a_cancelled_order_is_no_fill(prescriber, patient, titration, time_machine):
    time_machine.move_to(moment(D(2026, 12, 20)), tick=False)
    cancelled = submit_order(prescriber, patient, TITRATION)
    Order.objects.filter(pk=cancelled.pk).update(status=OrderStatus.CANCELLED)
    DiaryEntryFactory(patient=patient, day=DISPENSED)

    shown = diary(patient, prescriber, today=D(2026, 12, 21))

    assert shown.steps == DISPENSED_STEPS
    assert shown.latest_order == titration


@pytest.mark.parametrize(
    ("fill", "steps"),
    [
        (
            Fill(D(2027, 1, 20), TITRATION.steps, True, 30, "morning"),
            [DoseStep(D(2027, 1, 20), D(2027, 2, 18), MG("4.5"), "morning")],
        ),
        (
            Fill(
                D(2027, 1, 20),
                (Step(MG("1"), 7), Step(MG("0"), 0), Step(MG("2"), 7)),
                False,
                14,
                "bedtime",
            ),
            [
                DoseStep(D(2027, 1, 20), D(2027, 1, 26), MG("1"), "bedtime"),
                DoseStep(D(2027, 1, 27), D(2027, 2, 2), MG("2"), "bedtime"),
            ],
        ),
        (Fill(D(2027, 1, 20), (), True, 30, "bedtime"), []),
    ],
)
def test_the_steps_of_one_fill(fill, steps):
    assert fill_steps(fill) == steps


def test_a_new_prescription_takes_over_from_its_day():
    first = Fill(D(2026, 12, 1), TITRATION.steps, False, 58, "bedtime")
    again = Fill(D(2026, 12, 20), (Step(MG("1.5"), 30),), False, 30, "morning")

    assert dose_steps([again, first]) == [
        DISPENSED_STEPS[0],
        DoseStep(D(2026, 12, 15), D(2026, 12, 19), MG("3"), "bedtime"),
        DoseStep(D(2026, 12, 20), D(2027, 1, 18), MG("1.5"), "morning"),
    ]


def test_the_steps_since_a_day_start_on_that_day_at_the_earliest():
    assert steps_since(DISPENSED_STEPS, D(2026, 12, 20)) == [
        DoseStep(D(2026, 12, 20), D(2026, 12, 28), MG("3"), "bedtime"),
        DISPENSED_STEPS[2],
    ]


def test_side_effects_the_diary_no_longer_offers_are_left_out():
    assert side_effects_of(["headache", "hiccups", "vivid_dreams"]) == (DREAMS, HEADACHE)


# --- The chart --------------------------------------------------------------------------------


def row(day, score, effects=(), dose_taken=True) -> DiaryRow:
    return DiaryRow(day, dose_taken, MG("1.5"), "bedtime", score, 5, tuple(effects))


def test_the_chart_places_each_day_in_its_slot():
    # 2 days over the plot's 338 units: 169 each; the dose axis tops at 2 mg.
    steps = [
        DoseStep(D(2026, 12, 1), D(2026, 12, 1), MG("1.5"), "bedtime"),
        DoseStep(D(2026, 12, 2), D(2026, 12, 9), MG("2"), "bedtime"),
    ]
    rows = [row(D(2026, 12, 1), 10, [DREAMS]), row(D(2026, 12, 2), 0)]

    chart = chart_of(steps, rows, today=D(2026, 12, 2))

    assert [(b.x, b.y, b.width, b.height, b.dose_mg) for b in chart.steps] == [
        ("30", "86.5", "169", "127.5", "1.5"),
        ("199", "44", "169", "170", "2"),
    ]
    assert chart.dose_line == "M30 86.5h169 V44h169"
    assert [(p.x, p.y) for p in chart.points] == [("114.5", "44"), ("283.5", "214")]
    assert chart.score_line == "114.5,44 283.5,214"
    assert [(m.x, m.y, m.row.day) for m in chart.markers] == [("114.5", "32", D(2026, 12, 1))]
    assert [(t.at, t.label) for t in chart.day_ticks] == [("114.5", "12/01")]
    assert [t.label for t in chart.dose_ticks] == ["0", "1", "2"]
    assert [t.label for t in chart.score_ticks] == ["0", "2", "4", "6", "8", "10"]


def test_the_chart_runs_from_the_step_of_the_first_entry_to_today():
    rows = [row(D(2026, 12, 5), 4)]
    chart = chart_of(DISPENSED_STEPS, rows, today=D(2026, 12, 20))
    assert (chart.first_day, chart.last_day) == (D(2026, 12, 1), D(2026, 12, 20))
    assert [bar.step for bar in chart.steps] == DISPENSED_STEPS[:2]


@pytest.mark.parametrize(("days", "interval"), [(1, 7), (42, 7), (43, 14), (84, 14), (365, 63)])
def test_about_six_day_labels_at_most(days, interval):
    assert day_tick_interval(days) == interval


# --- The page ---------------------------------------------------------------------------------


def test_without_entries_the_page_says_so(prescriber_client, patient):
    page = prescriber_client.get(reverse("patient_detail", args=[patient.pk])).content.decode()
    assert "No diary entries yet." in page
    assert "<svg" not in page


def test_the_chart_and_its_table_show_every_entry(
    prescriber_client, prescriber, patient, titration, time_machine
):
    made = entries(patient, D(2026, 12, 12), [7, 6, 5], side_effects=["vivid_dreams"])
    made[1].dose_taken, made[1].dose_mg, made[1].time_taken = False, None, ""
    made[1].side_effects, made[1].sleep_quality = [], 3
    made[1].save()
    time_machine.move_to(moment(D(2026, 12, 15)), tick=False)

    page = page_of(prescriber_client, prescriber, patient)

    points = page.having("circle", "score-point", "data-day")
    assert [(p["data-day"], p["data-score"], p["data-dose-taken"]) for p in points] == [
        ("2026-12-12", "7", "true"),
        ("2026-12-13", "6", "false"),
        ("2026-12-14", "5", "true"),
    ]
    assert "dose-missed" in points[1]["class"]
    steps = page.having("rect", "dose-step", "data-dose-mg")
    assert [(s["data-dose-mg"], s["data-start"], s["data-end"]) for s in steps] == [
        ("1.5", "2026-12-01", "2026-12-14"),
        ("3", "2026-12-15", "2026-12-28"),
    ]
    markers = page.having("use", "side-effect", "data-day")
    assert [(m["data-day"], m["data-side-effects"]) for m in markers] == [
        ("2026-12-12", "vivid_dreams"),
        ("2026-12-14", "vivid_dreams"),
    ]
    (svg,) = page.having("svg", "diary-chart")
    assert svg["role"] == "img" and svg["viewbox"] == "0 0 400 240" and svg["width"] == "100%"
    assert svg["aria-labelledby"] == "diary-chart-title diary-chart-desc"
    assert page.body_rows("diary-entries") == [
        ["12/12/2026", "1.5 mg, bedtime", "7", "7", "Vivid dreams"],
        ["12/13/2026", "Not taken", "6", "3", "None"],
        ["12/14/2026", "1.5 mg, bedtime", "5", "7", "Vivid dreams"],
    ]


def test_the_page_has_no_inline_style(prescriber_client, prescriber, patient, titration):
    DiaryEntryFactory(patient=patient, day=DISPENSED)
    page = page_of(prescriber_client, prescriber, patient)
    assert not [tag for tag, attrs in page.elements if tag == "style" or "style" in attrs]


def test_the_summary_counts_since_the_last_order(
    prescriber_client, prescriber, patient, titration, time_machine
):
    # 12/01-12/14 at 1.5 mg: 10 entries (4 days missed), headache on 3; then 3 mg from 12/15:
    # entries on 12/15 and 12/16 up to today, 12/17 (1 missed).
    entries(patient, DISPENSED, [8, 8, 7, 7, 6, 6, 5, 5, 4, 3])
    patient.diary_entries.filter(day__lte=D(2026, 12, 3)).update(side_effects=["headache"])
    entries(patient, D(2026, 12, 15), [4, 3])
    time_machine.move_to(moment(D(2026, 12, 17)), tick=False)

    page = page_of(prescriber_client, prescriber, patient)

    assert page.body_rows("diary-summary") == [
        ["1.5 mg at bedtime", "12/01/2026 to 12/14/2026", "10", "4", "5.9", "Headache (3)"],
        ["3 mg at bedtime", "12/15/2026 to 12/28/2026", "2", "1", "3.5", "None"],
    ]
    assert f"Since the last order ({titration.number}, 11/27/2026)" in page.html


def test_pain_is_the_symptom_of_fibromyalgia(prescriber_client, prescriber, patient, titration):
    DiaryEntryFactory(patient=patient, day=DISPENSED)
    page = page_of(prescriber_client, prescriber, patient)
    assert "Pain (0-10)" in page.html


def test_a_suggestion_shows_its_source_and_renews_with_its_changes(
    prescriber_client, prescriber, patient, titration, time_machine
):
    entries(patient, DISPENSED, [7, 7, 6], side_effects=["vivid_dreams"])
    time_machine.move_to(moment(D(2026, 12, 4)), tick=False)

    page = page_of(prescriber_client, prescriber, patient)

    (suggestion,) = page.having("li", "diary-suggestion")
    assert suggestion["data-code"] == "morning_dosing"
    assert f"Source: {SOURCE_LDN_TRUST}" in page.html
    assert "Nothing changes by itself" in page.html
    (link,) = page.having("a", "renew-with-changes")
    url = link["href"]
    assert urlsplit(url).path == reverse("order_create", args=[patient.pk])
    assert parse_qs(urlsplit(url).query) == {"from": [titration.number], "time_of_day": ["morning"]}
    initial = prescriber_client.get(url).context["form"].initial
    assert initial == AmendForm.initial_from(titration.prescription) | {"time_of_day": "morning"}
    assert Order.objects.count() == 1  # nothing was ordered


def test_a_suggested_schedule_fills_the_schedule_days_and_quantity(
    prescriber_client, prescriber, patient, titration, time_machine
):
    # A headache on every one of the first 14 days at 1.5 mg: stay at 1.5 mg.
    entries(patient, DISPENSED, [6] * 14, side_effects=["headache"])
    time_machine.move_to(moment(D(2026, 12, 15)), tick=False)

    page = page_of(prescriber_client, prescriber, patient)

    (suggestion,) = page.having("li", "diary-suggestion")
    assert suggestion["data-code"] == "stay_at_step"
    (link,) = page.having("a", "renew-with-changes")
    query = parse_qs(urlsplit(link["href"]).query)
    assert query == {"from": [titration.number], "schedule": ["1.5 x 30"]}
    initial = prescriber_client.get(link["href"]).context["form"].initial
    assert (initial["steps"], initial["days_supply"], initial["quantity"]) == ("1.5 x 30", 30, 30)
    assert initial["time_of_day"] == "bedtime"


@pytest.mark.parametrize(
    "params",
    [
        {"schedule": "lots x often"},
        {"schedule": "1.5 x 30, " * 40},
        {"schedule": ""},
        {"time_of_day": "noon"},
        {"time_of_day": ["morning", "evening"]},  # the last one counts, as Django reads it
    ],
)
def test_a_value_that_is_not_valid_is_ignored(prescriber_client, titration, params):
    url = reverse("order_create", args=[titration.prescription.patient_id])

    response = prescriber_client.get(url, {"from": titration.number, **params})

    assert response.status_code == 200
    assert response.context["form"].initial == AmendForm.initial_from(titration.prescription)


# A 1 mg/mL oral liquid as the order form is filled from it (AmendForm.initial_from).
PRESCRIBED = {
    "dosage_form": "oral_liquid",
    "concentration_mg_per_ml": "1",
    "doses_per_day": 1,
    "steps": "1.5 x 14",
    "days_supply": 14,
    "quantity": Decimal("21"),
    "time_of_day": "bedtime",
}


@given(schedule=st.text(max_size=60), time_of_day=st.text(max_size=12))
def test_any_suggested_change_is_taken_or_ignored_never_refused(schedule, time_of_day):
    query = QueryDict(mutable=True)
    query.update({"schedule": schedule, "time_of_day": time_of_day})

    initial = with_suggested_changes(PRESCRIBED, query)

    assert initial.keys() == PRESCRIBED.keys()
    assert initial["time_of_day"] in ("bedtime", "morning")


def test_a_suggested_schedule_of_a_liquid_needs_its_millilitres():
    query = QueryDict("schedule=3 x 30&time_of_day=morning")
    assert with_suggested_changes(PRESCRIBED, query) == PRESCRIBED | {
        "steps": "3 x 30",
        "days_supply": 30,
        "quantity": Decimal("90"),
        "time_of_day": "morning",
    }


def test_a_suggested_schedule_without_a_previous_order_fills_the_schedule(
    prescriber_client, patient
):
    url = reverse("order_create", args=[patient.pk])
    initial = prescriber_client.get(url, {"schedule": "1 x 7; 2 x 21"}).context["form"].initial
    assert (initial["steps"], initial["days_supply"]) == ("1 x 7, 2 x 21", 28)
    assert "quantity" not in initial  # the dosage form is still to choose


def test_another_clinics_patient_is_not_found(prescriber_client, other_prescriber):
    theirs = PatientFactory(clinic=clinic_of(other_prescriber))
    DiaryEntryFactory(patient=theirs)
    assert prescriber_client.get(reverse("patient_detail", args=[theirs.pk])).status_code == 404


@pytest.mark.parametrize("count", [3, 30])
def test_the_page_reads_the_diary_in_a_fixed_number_of_queries(
    prescriber_client,
    prescriber,
    patient,
    titration,
    time_machine,
    django_assert_num_queries,
    count,
):
    entries(patient, DISPENSED, [5] * count, side_effects=["vivid_dreams"])
    time_machine.move_to(moment(DISPENSED + datetime.timedelta(days=count)), tick=False)
    page_of(prescriber_client, prescriber, patient)  # the content types are cached from here
    url = reverse("patient_detail", args=[patient.pk])
    # session, user, clinics, the patient, the recall banner, the patient's access, the orders
    # and their steps, the access event; the diary: its entries, the orders with their fill
    # days, and the prescriptions' steps
    with django_assert_num_queries(12):
        assert prescriber_client.get(url).status_code == 200


def test_the_demo_has_three_weeks_of_diary_that_suggest_morning_dosing(settings):
    settings.DEBUG = True
    call_command("seed_demo", stdout=io.StringIO())
    call_command("seed_demo", stdout=io.StringIO())  # a second run adds nothing
    patient = Patient.objects.get(last_name="Otherclinic")
    today = timezone.localdate()

    shown = patient_diary(patient=patient, clinic_id=patient.clinic_id, today=today)

    assert DiaryEntry.objects.count() == 19
    assert shown.steps[0].start == today - datetime.timedelta(days=21)
    assert [s.code for s in shown.suggestions] == ["morning_dosing"]
    assert shown.summary[0].side_effects == {DREAMS: 5, SideEffect.INSOMNIA: 1, HEADACHE: 1}

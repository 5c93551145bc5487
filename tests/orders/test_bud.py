"""Beyond-use dates (USP <795>, 2023): the table, the lot cap, shortening and the day-one setting.

Expected dates are worked out by hand from the calendar, not with the code under test.
"""

import datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orders.bud import (
    AQUEOUS_WATER_ACTIVITY,
    SOURCE,
    BeyondUseDate,
    BudCategory,
    BudRefused,
    LotExpiry,
    RecordProblem,
    beyond_use_date,
    category_problems,
    label_storage,
    storage_problems,
)

D = datetime.date.fromisoformat
UNPRESERVED = BudCategory.AQUEOUS_UNPRESERVED
PRESERVED = BudCategory.AQUEOUS_PRESERVED
LIQUID = BudCategory.NONAQUEOUS_LIQUID
SOLID = BudCategory.NONAQUEOUS_SOLID
FEB_1 = D("2026-02-01")


def lot(expires_on: str, lot_number: str = "NX-2291", ingredient: str = "naltrexone HCl"):
    return LotExpiry(ingredient=ingredient, lot_number=lot_number, expires_on=D(expires_on))


def test_source_names_the_2023_revision():
    assert SOURCE == "USP <795> (2023 revision, official 1 Nov 2023)"


@pytest.mark.parametrize(
    ("category", "label", "days", "storage"),
    [
        (UNPRESERVED, "aqueous, not preserved", 14, "Refrigerate (store in a refrigerator)"),
        (PRESERVED, "aqueous, preserved", 35, "Store at room temperature or in a refrigerator"),
        (LIQUID, "nonaqueous liquid", 90, "Store at room temperature or in a refrigerator"),
        (SOLID, "nonaqueous solid", 180, "Store at room temperature or in a refrigerator"),
    ],
)
def test_category_carries_label_days_and_storage(category, label, days, storage):
    assert (category.label, category.days, category.storage) == (label, days, storage)


def test_category_values_are_stable_strings():
    assert [str(c) for c in BudCategory] == [
        "aqueous_unpreserved",
        "aqueous_preserved",
        "nonaqueous_liquid",
        "nonaqueous_solid",
    ]


# Compounded 2026-02-01 (February 2026 has 28 days), compounding date as day 0:
#   +14 -> 02-15; +35 -> 03-08; +90 -> 05-02; +180 -> 07-31.
TABLE_DATES = [
    (UNPRESERVED, "2026-02-15"),
    (PRESERVED, "2026-03-08"),
    (LIQUID, "2026-05-02"),
    (SOLID, "2026-07-31"),
]


@pytest.mark.parametrize(("category", "table_date"), TABLE_DATES)
def test_table_date_without_lots(category, table_date):
    bud = beyond_use_date(category=category, compounded_on=FEB_1)

    assert bud == BeyondUseDate(
        date=D(table_date),
        category=category,
        reasons=(f"{category.days} days ({category.label}, USP <795>)",),
    )


@pytest.mark.parametrize(("category", "table_date"), TABLE_DATES)
def test_lot_expiring_before_table_date_caps_it(category, table_date):
    expiry = D(table_date) - datetime.timedelta(days=1)

    bud = beyond_use_date(category=category, compounded_on=FEB_1, lots=[lot(expiry.isoformat())])

    assert bud.date == expiry
    assert bud.reasons == (
        f"{category.days} days ({category.label}, USP <795>)",
        f"capped by naltrexone HCl lot NX-2291 expiring {expiry.isoformat()}",
    )


@pytest.mark.parametrize(("category", "table_date"), TABLE_DATES)
def test_lot_expiring_after_table_date_does_not_cap(category, table_date):
    expiry = D(table_date) + datetime.timedelta(days=1)

    bud = beyond_use_date(category=category, compounded_on=FEB_1, lots=[lot(expiry.isoformat())])

    assert bud.date == D(table_date)
    assert bud.reasons == (f"{category.days} days ({category.label}, USP <795>)",)


@pytest.mark.parametrize(("category", "table_date"), TABLE_DATES)
def test_lot_expiring_on_table_date_gives_same_date_and_no_cap_reason(category, table_date):
    bud = beyond_use_date(category=category, compounded_on=FEB_1, lots=[lot(table_date)])

    assert bud.date == D(table_date)
    assert bud.reasons == (f"{category.days} days ({category.label}, USP <795>)",)


def test_earliest_of_several_lots_wins():
    lots = [
        lot("2027-01-31", "NX-1000"),
        lot("2026-05-31", "MCC-77", ingredient="microcrystalline cellulose"),
        lot("2026-06-30", "NX-2291"),
    ]

    bud = beyond_use_date(category=SOLID, compounded_on=FEB_1, lots=lots)

    assert bud.date == D("2026-05-31")
    assert bud.reasons[1] == "capped by microcrystalline cellulose lot MCC-77 expiring 2026-05-31"


def test_lots_sharing_the_earliest_expiry_name_the_first_given():
    lots = [lot("2026-09-30", "NX-9"), lot("2026-04-30", "NX-2"), lot("2026-04-30", "NX-1")]

    bud = beyond_use_date(category=SOLID, compounded_on=FEB_1, lots=lots)

    assert bud.reasons[1] == "capped by naltrexone HCl lot NX-2 expiring 2026-04-30"


def test_lots_may_be_any_iterable_read_once():
    lots = (lot(expiry, f"NX-{n}") for n, expiry in enumerate(["2026-06-30", "2026-05-31"]))

    bud = beyond_use_date(category=SOLID, compounded_on=FEB_1, lots=lots)

    assert bud.date == D("2026-05-31")
    assert bud.reasons[1] == "capped by naltrexone HCl lot NX-1 expiring 2026-05-31"


@pytest.mark.parametrize("expires_on", ["2026-01-31", "2026-02-01"])
def test_lot_expired_on_or_before_compounding_date_is_refused(expires_on):
    with pytest.raises(BudRefused) as refused:
        beyond_use_date(
            category=SOLID,
            compounded_on=FEB_1,
            lots=[lot("2027-03-31", "NX-1000"), lot(expires_on, "NX-2291")],
        )

    assert str(refused.value) == (
        f"naltrexone HCl lot NX-2291 expired on {expires_on},"
        " on or before the compounding date 2026-02-01: it cannot be used."
    )


def test_lot_expiring_the_day_after_compounding_caps_to_that_day():
    bud = beyond_use_date(category=SOLID, compounded_on=FEB_1, lots=[lot("2026-02-02")])

    assert bud.date == D("2026-02-02")


@pytest.mark.parametrize(
    ("shortened_to", "expected_date", "expected_reasons"),
    [
        (
            "2026-07-01",
            "2026-07-01",
            (
                "180 days (nonaqueous solid, USP <795>)",
                "shortened by the pharmacist to 2026-07-01",
            ),
        ),
        # The day after compounding is the earliest BUD there is.
        (
            "2026-02-02",
            "2026-02-02",
            (
                "180 days (nonaqueous solid, USP <795>)",
                "shortened by the pharmacist to 2026-02-02",
            ),
        ),
        # "Shortened" to the date it already has: accepted, and nothing was shortened.
        ("2026-07-31", "2026-07-31", ("180 days (nonaqueous solid, USP <795>)",)),
    ],
)
def test_pharmacist_may_shorten(shortened_to, expected_date, expected_reasons):
    bud = beyond_use_date(category=SOLID, compounded_on=FEB_1, shortened_to=D(shortened_to))

    assert bud.date == D(expected_date)
    assert bud.reasons == expected_reasons


@pytest.mark.parametrize(
    ("lots", "shortened_to", "latest"),
    [
        ([], "2026-08-01", "2026-07-31"),  # past the table date
        ([lot("2026-06-30")], "2026-07-01", "2026-06-30"),  # within the table, past the lot
    ],
)
def test_pharmacist_may_not_lengthen(lots, shortened_to, latest):
    with pytest.raises(BudRefused) as refused:
        beyond_use_date(
            category=SOLID, compounded_on=FEB_1, lots=lots, shortened_to=D(shortened_to)
        )

    assert str(refused.value) == (
        "The beyond-use date can only be shortened, never lengthened:"
        f" {shortened_to} is later than {latest}, the latest allowed date."
    )


@pytest.mark.parametrize("shortened_to", ["2026-02-01", "2026-01-15"])
def test_shortening_to_or_before_the_compounding_date_is_refused(shortened_to):
    with pytest.raises(BudRefused) as refused:
        beyond_use_date(category=SOLID, compounded_on=FEB_1, shortened_to=D(shortened_to))

    assert str(refused.value) == (
        f"A beyond-use date must be after the compounding date 2026-02-01: {shortened_to} is not."
    )


@pytest.mark.parametrize(
    ("category", "table_date"),
    [
        (UNPRESERVED, "2026-02-14"),
        (PRESERVED, "2026-03-07"),
        (LIQUID, "2026-05-01"),
        (SOLID, "2026-07-30"),
    ],
)
def test_compounding_date_counted_as_day_one_ends_a_day_earlier(category, table_date):
    bud = beyond_use_date(category=category, compounded_on=FEB_1, compounding_date_is_day_one=True)

    assert bud.date == D(table_date)
    assert bud.reasons == (
        f"{category.days} days ({category.label}, USP <795>; compounding date counted as day 1)",
    )


@pytest.mark.parametrize(
    ("kwargs", "explanation"),
    [
        (
            {"category": SOLID, "compounded_on": D("2026-12-01")},
            "180 days (nonaqueous solid, USP <795>)",
        ),
        (
            {
                "category": SOLID,
                "compounded_on": D("2026-12-01"),
                "lots": [lot("2027-03-31")],
            },
            "180 days (nonaqueous solid, USP <795>),"
            " capped by naltrexone HCl lot NX-2291 expiring 2027-03-31",
        ),
        (
            {
                "category": PRESERVED,
                "compounded_on": FEB_1,
                "shortened_to": D("2026-02-20"),
            },
            "35 days (aqueous, preserved, USP <795>), shortened by the pharmacist to 2026-02-20",
        ),
        (
            {
                "category": LIQUID,
                "compounded_on": FEB_1,
                "lots": [lot("2026-04-30"), lot("2026-12-31", "GLY-5", ingredient="glycerin")],
                "shortened_to": D("2026-04-01"),
            },
            "90 days (nonaqueous liquid, USP <795>),"
            " capped by naltrexone HCl lot NX-2291 expiring 2026-04-30,"
            " shortened by the pharmacist to 2026-04-01",
        ),
        (
            {
                "category": UNPRESERVED,
                "compounded_on": FEB_1,
                "lots": [lot("2026-02-10")],
                "compounding_date_is_day_one": True,
            },
            "14 days (aqueous, not preserved, USP <795>; compounding date counted as day 1),"
            " capped by naltrexone HCl lot NX-2291 expiring 2026-02-10",
        ),
    ],
)
def test_exact_explanation(kwargs, explanation):
    assert beyond_use_date(**kwargs).explanation == explanation


@pytest.mark.parametrize(
    ("category", "compounded_on", "day_one", "expected"),
    [
        # 2027-09-01 + 180: Sep 30 (29), Oct 31 (60), Nov 30 (90), Dec 31 (121), Jan 31 (152),
        # then 28 more days -> 2028-02-28, the day before the leap day.
        (SOLID, "2027-09-01", False, "2028-02-28"),
        (SOLID, "2027-09-02", False, "2028-02-29"),  # lands on the leap day
        (SOLID, "2027-09-03", True, "2028-02-29"),  # day one: 179 days later
        (SOLID, "2026-09-02", False, "2027-03-01"),  # same span, no leap day
        # 2027-12-01 + 90: Dec 31 (30), Jan 31 (61), Feb 29 (90).
        (LIQUID, "2027-12-01", False, "2028-02-29"),
        (LIQUID, "2026-12-01", False, "2027-03-01"),
        (UNPRESERVED, "2028-02-20", False, "2028-03-05"),  # across Feb 29
        (PRESERVED, "2028-01-30", False, "2028-03-05"),  # Jan 31 (1), Feb 29 (30), Mar 5 (35)
    ],
)
def test_leap_year_arithmetic(category, compounded_on, day_one, expected):
    bud = beyond_use_date(
        category=category, compounded_on=D(compounded_on), compounding_date_is_day_one=day_one
    )

    assert bud.date == D(expected)


def test_category_may_be_given_as_its_stored_value():
    bud = beyond_use_date(category="nonaqueous_solid", compounded_on=FEB_1)

    assert bud.category is SOLID
    assert bud.date == D("2026-07-31")


def test_a_datetime_is_not_a_compounding_date():
    with pytest.raises(TypeError) as refused:
        beyond_use_date(category=SOLID, compounded_on=datetime.datetime(2026, 2, 1, 9, 30))

    assert str(refused.value) == "compounded_on must be a datetime.date, not datetime"


# Hypothesis: any category, any compounding date, any lots that expire after it.

compounding_dates = st.dates(min_value=D("1990-01-01"), max_value=D("2200-12-31"))


@st.composite
def batches(draw):
    category = draw(st.sampled_from(BudCategory))
    compounded_on = draw(compounding_dates)
    offsets = draw(st.lists(st.integers(min_value=1, max_value=400), max_size=6))
    lots = [
        lot((compounded_on + datetime.timedelta(days=n)).isoformat(), f"LOT-{i}")
        for i, n in enumerate(offsets)
    ]
    day_one = draw(st.booleans())
    return category, compounded_on, lots, day_one


def table_date(category, compounded_on, day_one):
    return compounded_on + datetime.timedelta(days=category.days - (1 if day_one else 0))


@given(batches())
def test_bud_is_after_compounding_and_never_past_table_or_any_lot(batch):
    category, compounded_on, lots, day_one = batch

    bud = beyond_use_date(
        category=category,
        compounded_on=compounded_on,
        lots=lots,
        compounding_date_is_day_one=day_one,
    )

    assert bud.date > compounded_on
    assert bud.date <= table_date(category, compounded_on, day_one)
    assert all(bud.date <= lot.expires_on for lot in lots)
    # It is exactly the tighter of the two limits, and says so only when a lot was tighter.
    assert bud.date in {table_date(category, compounded_on, day_one)} | {
        lot.expires_on for lot in lots
    }
    capped = bud.date < table_date(category, compounded_on, day_one)
    assert len(bud.reasons) == (2 if capped else 1)
    assert bud.category is category


@given(batches(), st.data())
def test_any_shortening_is_kept_and_any_lengthening_refused(batch, data):
    category, compounded_on, lots, day_one = batch
    latest = beyond_use_date(
        category=category,
        compounded_on=compounded_on,
        lots=lots,
        compounding_date_is_day_one=day_one,
    ).date
    shorter = data.draw(
        st.dates(min_value=compounded_on + datetime.timedelta(days=1), max_value=latest)
    )
    longer = data.draw(
        st.dates(min_value=latest + datetime.timedelta(days=1), max_value=D("2300-12-31"))
    )

    kwargs = {
        "category": category,
        "compounded_on": compounded_on,
        "lots": lots,
        "compounding_date_is_day_one": day_one,
    }
    assert beyond_use_date(**kwargs, shortened_to=shorter).date == shorter
    with pytest.raises(BudRefused):
        beyond_use_date(**kwargs, shortened_to=longer)


# --- The BUD category a master formulation record may claim ------------------------------------

AW = Decimal


def test_the_aqueous_threshold_is_a_water_activity_of_0_6():
    assert Decimal("0.6") == AQUEOUS_WATER_ACTIVITY


@pytest.mark.parametrize(
    ("dosage_form", "category", "water_activity", "preserved", "codes"),
    [
        # Capsules (and any solid) are nonaqueous solids, and nothing else.
        ("capsule", SOLID, None, False, []),
        ("capsule", SOLID, AW("0.3"), False, []),
        ("capsule", SOLID, AW("0.6"), False, ["bud.water_activity_aqueous"]),
        ("capsule", UNPRESERVED, None, False, ["bud.solid_form"]),
        ("capsule", PRESERVED, None, True, ["bud.solid_form"]),
        ("capsule", LIQUID, AW("0.3"), False, ["bud.solid_form"]),
        ("capsule", LIQUID, AW("0.7"), False, ["bud.water_activity_aqueous", "bud.solid_form"]),
        ("tablet", UNPRESERVED, None, False, ["bud.solid_form"]),
        # Oral liquids: unpreserved aqueous always; preserved with a preservative; nonaqueous
        # liquid with a recorded aw below 0.6; never nonaqueous solid.
        ("oral_liquid", UNPRESERVED, None, False, []),
        ("oral_liquid", UNPRESERVED, AW("0.3"), True, []),  # a shorter BUD is always allowed
        ("oral_liquid", PRESERVED, None, True, []),
        ("oral_liquid", PRESERVED, AW("0.95"), True, []),
        ("oral_liquid", PRESERVED, None, False, ["bud.preservative_missing"]),
        ("oral_liquid", LIQUID, AW("0.45"), False, []),
        ("oral_liquid", LIQUID, AW("0.599"), False, []),
        ("oral_liquid", LIQUID, None, False, ["bud.water_activity_missing"]),
        ("oral_liquid", LIQUID, AW("0.6"), False, ["bud.water_activity_aqueous"]),
        ("oral_liquid", LIQUID, AW("0.85"), True, ["bud.water_activity_aqueous"]),
        ("oral_liquid", SOLID, AW("0.3"), False, ["bud.liquid_not_solid"]),
        (
            "oral_liquid",
            SOLID,
            AW("0.85"),
            False,
            ["bud.water_activity_aqueous", "bud.liquid_not_solid"],
        ),
        # Sublingual drops are oral liquids.
        ("sublingual_drops", UNPRESERVED, None, False, []),
        ("sublingual_drops", PRESERVED, None, True, []),
        ("sublingual_drops", PRESERVED, None, False, ["bud.preservative_missing"]),
        ("sublingual_drops", LIQUID, AW("0.5"), False, []),
        ("sublingual_drops", LIQUID, None, True, ["bud.water_activity_missing"]),
        ("sublingual_drops", SOLID, None, False, ["bud.liquid_not_solid"]),
        # A cream is aqueous unless anhydrous (aw < 0.6 recorded): then nonaqueous solid, never
        # nonaqueous liquid (the 90-day row is for oral liquids).
        ("topical_cream", UNPRESERVED, None, False, []),
        ("topical_cream", PRESERVED, None, True, []),
        ("topical_cream", PRESERVED, None, False, ["bud.preservative_missing"]),
        ("topical_cream", SOLID, AW("0.4"), False, []),
        ("topical_cream", SOLID, None, False, ["bud.water_activity_missing"]),
        ("topical_cream", SOLID, AW("0.6"), False, ["bud.water_activity_aqueous"]),
        ("topical_cream", LIQUID, AW("0.4"), False, ["bud.topical_not_oral_liquid"]),
        ("topical_cream", LIQUID, None, False, ["bud.topical_not_oral_liquid"]),
        (
            "topical_cream",
            LIQUID,
            AW("0.9"),
            False,
            ["bud.water_activity_aqueous", "bud.topical_not_oral_liquid"],
        ),
    ],
)
def test_category_fits_the_dosage_form_and_water_activity(
    dosage_form, category, water_activity, preserved, codes
):
    problems = category_problems(
        dosage_form=dosage_form,
        category=category,
        water_activity=water_activity,
        preserved=preserved,
    )

    assert [p.code for p in problems] == codes
    assert {(p.field, p.source) for p in problems} <= {("bud_category", SOURCE)}


@pytest.mark.parametrize(
    ("dosage_form", "category", "water_activity", "preserved", "message"),
    [
        (
            "capsule",
            "aqueous_preserved",
            None,
            True,
            "Capsules are nonaqueous solids: their BUD category is nonaqueous solid (180 days),"
            " not aqueous, preserved (35 days).",
        ),
        (
            "sublingual_drops",
            "nonaqueous_solid",
            None,
            False,
            "A liquid can never be nonaqueous solid (180 days): sublingual drops are aqueous"
            " (14 days, or 35 days preserved), or nonaqueous liquid (90 days) with a water"
            " activity below 0.6 recorded.",
        ),
        (
            "oral_liquid",
            "aqueous_preserved",
            None,
            False,
            "Aqueous, preserved (35 days) needs an antimicrobial preservative, and the record"
            " declares none: declare it, or choose aqueous, not preserved (14 days), stored in a"
            " refrigerator.",
        ),
        (
            "oral_liquid",
            "nonaqueous_liquid",
            None,
            False,
            "Oral liquids are nonaqueous liquid (90 days) only with a measured water activity"
            " below 0.6 (USP <795>), and none is recorded.",
        ),
        (
            "topical_cream",
            "nonaqueous_solid",
            None,
            False,
            "Topical creams are nonaqueous solid (180 days) only with a measured water activity"
            " below 0.6 (USP <795>), and none is recorded.",
        ),
        (
            "oral_liquid",
            "nonaqueous_liquid",
            Decimal("0.850"),
            False,
            "A water activity of 0.85 is 0.6 or above, so the preparation is aqueous"
            " (USP <795>): it cannot be nonaqueous liquid (90 days).",
        ),
        (
            "topical_cream",
            "nonaqueous_liquid",
            Decimal("0.3"),
            False,
            "Nonaqueous liquid (90 days) is the category of nonaqueous oral liquids (USP <795>):"
            " topical creams are aqueous (14 days, or 35 days preserved), or nonaqueous solid"
            " (180 days) when anhydrous, with a water activity below 0.6 recorded.",
        ),
    ],
)
def test_category_problem_messages(dosage_form, category, water_activity, preserved, message):
    [problem] = category_problems(
        dosage_form=dosage_form,
        category=category,
        water_activity=water_activity,
        preserved=preserved,
    )

    assert problem.message == message


@given(
    dosage_form=st.sampled_from(["oral_liquid", "sublingual_drops", "topical_cream"]),
    water_activity=st.none() | st.decimals(min_value=0, max_value=1, places=3),
    preserved=st.booleans(),
)
def test_unpreserved_aqueous_is_always_allowed_for_liquids_and_creams(
    dosage_form, water_activity, preserved
):
    assert (
        category_problems(
            dosage_form=dosage_form,
            category=UNPRESERVED,
            water_activity=water_activity,
            preserved=preserved,
        )
        == []
    )


def test_an_unknown_dosage_form_is_a_programming_error():
    with pytest.raises(ValueError, match="Unknown dosage form: 'eye_drops'"):
        category_problems(
            dosage_form="eye_drops", category=UNPRESERVED, water_activity=None, preserved=False
        )


# --- Storage follows the category ---------------------------------------------------------------

ROOM_OR_FRIDGE = "Store at room temperature or in a refrigerator"
REFRIGERATE = "Refrigerate (store in a refrigerator)"


@pytest.mark.parametrize(
    ("category", "record_storage", "codes"),
    [
        (SOLID, ROOM_OR_FRIDGE, []),
        (SOLID, "Store at 20-25 °C (68-77 °F); protect from light", []),
        (SOLID, "Store in a cool, dry place", []),
        (SOLID, "No refrigeration needed", []),
        (SOLID, "Refrigerate", []),
        (SOLID, "Do not refrigerate", ["storage.contradicts_category"]),
        (SOLID, "Keep frozen", ["storage.freezing"]),
        (SOLID, "Protect from freezing", []),
        (PRESERVED, ROOM_OR_FRIDGE, []),
        (PRESERVED, "Do not freeze. Shake well", []),
        (
            PRESERVED,
            "Store in a refrigerator, not at room temperature",
            ["storage.contradicts_category"],
        ),
        (LIQUID, "Store in the freezer", ["storage.freezing"]),
        (UNPRESERVED, "Store in a refrigerator", []),
        (UNPRESERVED, "Keep refrigerated (2-8 °C), do not freeze", []),
        (UNPRESERVED, "Store between 2 and 8 °C", []),
        (UNPRESERVED, "Refrigerate and protect from light", []),
        (UNPRESERVED, "Store in a refrigerator, not at room temperature", []),
        (UNPRESERVED, ROOM_OR_FRIDGE, ["storage.refrigeration_required"]),
        (UNPRESERVED, "Store at room temperature", ["storage.refrigeration_required"]),
        (UNPRESERVED, "Store at 20 to 25 °C", ["storage.refrigeration_required"]),
        (UNPRESERVED, "Store in a cool place", ["storage.refrigeration_required"]),
        (UNPRESERVED, "Do not refrigerate", ["storage.refrigeration_required"]),
        (UNPRESERVED, "No refrigeration needed", ["storage.refrigeration_required"]),
        (UNPRESERVED, "Freeze", ["storage.freezing"]),
        (
            UNPRESERVED,
            "Do not refrigerate; keep frozen",
            ["storage.refrigeration_required", "storage.freezing"],
        ),
    ],
)
def test_storage_must_not_contradict_the_category(category, record_storage, codes):
    problems = storage_problems(category, record_storage)

    assert [p.code for p in problems] == codes
    assert {(p.field, p.source) for p in problems} <= {("storage", SOURCE)}


def test_storage_problem_messages_quote_the_instruction():
    assert storage_problems("aqueous_unpreserved", "Store at room temperature.") == [
        RecordProblem(
            "storage.refrigeration_required",
            "storage",
            '"Store at room temperature" contradicts the storage of aqueous, not preserved'
            " (14 days): USP <795> requires a refrigerator.",
        )
    ]
    assert [p.message for p in storage_problems(SOLID, "Do not refrigerate")] == [
        '"Do not refrigerate" contradicts the storage of nonaqueous solid (180 days):'
        " USP <795> allows room temperature or a refrigerator, and the label says so."
    ]
    assert [p.message for p in storage_problems(UNPRESERVED, "Keep frozen")] == [
        '"Keep frozen": no USP <795> category of nonsterile preparations is stored frozen;'
        " aqueous, not preserved (14 days) is stored in a refrigerator."
    ]


@pytest.mark.parametrize(
    ("category", "record_storage", "label"),
    [
        (SOLID, ROOM_OR_FRIDGE, ROOM_OR_FRIDGE),  # a restatement adds nothing
        (SOLID, "Store at room temperature", ROOM_OR_FRIDGE),
        (SOLID, "", ROOM_OR_FRIDGE),
        (SOLID, f"{ROOM_OR_FRIDGE}; protect from light.", f"{ROOM_OR_FRIDGE}; Protect from light"),
        (PRESERVED, "Refrigerate and protect from light", f"{ROOM_OR_FRIDGE}; Protect from light"),
        (
            PRESERVED,
            "Do not freeze. Keep tightly closed",
            f"{ROOM_OR_FRIDGE}; Do not freeze; Keep tightly closed",
        ),
        (UNPRESERVED, "Store in a refrigerator", REFRIGERATE),
        (UNPRESERVED, "Keep refrigerated (2-8 °C), do not freeze", f"{REFRIGERATE}; Do not freeze"),
        (
            UNPRESERVED,
            "Protect from light; protect from light",
            f"{REFRIGERATE}; Protect from light",
        ),
        # Refused where the record is written; should one slip through, the label still only
        # says what the category says.
        (UNPRESERVED, "Store at room temperature", REFRIGERATE),
        (UNPRESERVED, "Store in a cool, dry place", REFRIGERATE),
    ],
)
def test_label_storage_is_the_category_first_then_what_the_record_adds(
    category, record_storage, label
):
    assert label_storage(category, record_storage) == label
    assert "Refrigerate" in label_storage(UNPRESERVED, record_storage)

"""The table `make bench` prints: a failing ratio is never shown as its budget's own figure."""

import pytest

from bench.__main__ import ratio_text, table


@pytest.mark.parametrize(
    ("ratio", "budget", "shown"),
    [
        (0.897504, "ratio >= 0.9", "0.898"),  # fails: not "0.90"
        (0.9031, "ratio >= 0.9", "0.903"),  # passes, and says by how much
        (0.8731, "ratio >= 0.9", "0.87"),
        (1.0472, "ratio <= 1.1", "1.05"),
        (1.0, "equal", "1.00"),
        (None, "-", "-"),
    ],
)
def test_a_ratio_is_shown_to_the_decimal_that_tells_it_from_its_budget(ratio, budget, shown):
    assert ratio_text({"ratio": ratio, "budget": budget}) == shown


def test_the_table_shows_the_row_as_measured():
    row = {
        "benchmark": "pipeline", "measure": "labelled emails per second", "baseline": 46.54,
        "ours": 41.77, "ratio": 0.897504, "budget": "ratio >= 0.9", "passed": False,
    }  # fmt: skip
    lines = table([row]).splitlines()
    assert [cell.strip() for cell in lines[2].split("|")] == [
        "pipeline", "labelled emails per second", "46.5", "41.8", "0.898", "ratio >= 0.9", "FAIL",
    ]  # fmt: skip

import pytest

from orders.icd10 import check_diagnosis_codes, normalize_code, parse_codes


def outcome(codes):
    return [(f.code, f.severity, f.field, f.message) for f in check_diagnosis_codes(codes)]


@pytest.mark.parametrize(
    "code",
    # Common LDN indications, all billable in the 2026 code set.
    ["M79.7", "G35.A", "G35.B0", "G35.D", "K50.90", "L63.9", "E06.3", "G90.50", "G93.32",
     "U09.9", "L66.10", "L66.12", "L80", "F32.A", "F41.1", "Q82.8", "m79.7", "M797"],
)  # fmt: skip
def test_billable_codes_pass(code):
    assert outcome([code]) == []


def test_category_is_refused_with_its_billable_children():
    assert outcome(["G35"]) == [
        (
            "diagnosis.not_billable",
            "error",
            "diagnosis_codes",
            "G35 is a category; use a billable code: G35.A, G35.B0, G35.B1, G35.B2, G35.C0, "
            "G35.C1, ...",
        )
    ]


def test_short_category_lists_all_children():
    assert outcome(["L66.1"])[0][3] == (
        "L66.1 is a category; use a billable code: L66.10, L66.11, L66.12, L66.19"
    )


@pytest.mark.parametrize("code", ["ZZZ", "M79.77", "A00-B99", "1", "<script>", "G35.Z"])
def test_unknown_codes_are_refused(code):
    (finding,) = check_diagnosis_codes([code])
    assert (finding.code, finding.severity) == ("diagnosis.unknown", "error")
    assert finding.message == f"{code.upper()} is not an ICD-10-CM diagnosis code."


@pytest.mark.parametrize("codes", [[], [""], ["   "]])
def test_at_least_one_code(codes):
    assert outcome(codes) == [
        ("diagnosis.missing", "error", "diagnosis_codes",
         "Give at least one ICD-10-CM diagnosis code."),
    ]  # fmt: skip


def test_each_bad_code_is_reported():
    assert [f.code for f in check_diagnosis_codes(["M79.7", "G35", "XYZ"])] == [
        "diagnosis.not_billable",
        "diagnosis.unknown",
    ]


def test_parse_and_normalize():
    assert parse_codes(" m79.7, G35A;E06.3  m797 ") == ["M79.7", "G35.A", "E06.3"]
    assert normalize_code("xyz") == "XYZ"
    assert parse_codes("") == []

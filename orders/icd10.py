"""ICD-10-CM diagnosis codes (pure, no database).

Checked against the code set that the simple-icd-10-cm package ships (the April 2026 tabular):
a prescription needs at least one code, every code must exist, and it must be billable (a leaf
of the tabular, not a category such as G35, which since 2026 has children G35.A ... G35.D).
"""

import re
from collections.abc import Iterable

import simple_icd_10_cm as icd

from .dosing import Finding, Severity

SOURCE = "ICD-10-CM code set (CMS/NCHS, April 2026)"
HINT_CHILDREN = 6  # how many billable codes a category hint lists before "..."
FIELD = "diagnosis_codes"


def normalize_code(text: str) -> str:
    """'m79.7', ' M797 ' -> 'M79.7': upper case, and the dot after the category's 3 characters.

    (Not the package's add_dot: it fills a module-level list on first use, which is neither
    fast nor safe when two threads do it at once.)"""
    code = "".join(text.split()).upper()
    if "." not in code and len(code) > 3 and is_code(code):
        return f"{code[:3]}.{code[3:]}"
    return code


def parse_codes(text: str) -> list[str]:
    """Codes typed in one box, separated by commas, semicolons or spaces; repeats dropped."""
    codes = [normalize_code(part) for part in re.split(r"[,;\s]+", text or "") if part]
    return list(dict.fromkeys(codes))


def is_code(code: str) -> bool:
    return icd.is_valid_item(code) and not icd.is_chapter_or_block(code)


def is_billable(code: str) -> bool:
    return is_code(code) and icd.is_leaf(code)


def describe(code: str) -> str:
    return icd.get_description(code) if is_code(code) else ""


def billable_children(code: str) -> list[str]:
    return [child for child in icd.get_descendants(code) if icd.is_leaf(child)]


def check_diagnosis_codes(codes: Iterable[str]) -> list[Finding]:
    codes = [normalize_code(code) for code in codes if code and code.strip()]
    if not codes:
        return [_error("diagnosis.missing", "Give at least one ICD-10-CM diagnosis code.")]
    findings = []
    for code in codes:
        if not is_code(code):
            findings.append(
                _error("diagnosis.unknown", f"{code} is not an ICD-10-CM diagnosis code.")
            )
        elif not icd.is_leaf(code):
            children = billable_children(code)
            listed = ", ".join(children[:HINT_CHILDREN])
            more = ", ..." if len(children) > HINT_CHILDREN else ""
            findings.append(
                _error(
                    "diagnosis.not_billable",
                    f"{code} is a category; use a billable code: {listed}{more}",
                )
            )
    return findings


def _error(code: str, message: str) -> Finding:
    return Finding(code=code, severity=Severity.ERROR, field=FIELD, message=message, source=SOURCE)

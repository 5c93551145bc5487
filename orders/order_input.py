"""The order form's schedule as a prescriber types it ("1.5 x 14, 3 x 14, 4.5 x 30") and back.

JSON (the live check, the partner API) is read by the serializers (orders/serializers.py). Only
shapes are checked here; the dose rules themselves live in dosing.py and run in one place
(checks.prescription_findings)."""

import re
from decimal import Decimal

from django.core.exceptions import ValidationError

from core.numbers import quantity_text

from .dosing import Step

MAX_STEPS = 12
# The numbers a prescription's input takes (the live check, the partner API, FHIR): wide enough
# that an out-of-range dose or count reaches the dose rules, which say what is wrong with it.
DOSE_DIGITS = {"max_digits": 7, "decimal_places": 3}  # mg
QUANTITY_DIGITS = {"max_digits": 8, "decimal_places": 2}  # capsules or mL
COUNT_RANGE = {"min_value": -1000, "max_value": 10000}  # days, doses a day, refills
SCHEDULE_HELP = "Dose in mg x days for each step, e.g. 1.5 x 14, 3 x 14, 4.5 x 30"
_STEP = re.compile(
    r"^(?P<dose>\d{1,4}(?:\.\d{1,3})?)\s*(?:mg)?\s*(?:x|\u00d7|\*|for)\s*(?P<days>\d{1,4})\s*"
    r"(?:days?|d)?$",
    re.IGNORECASE,
)


def parse_schedule(text: str) -> tuple[Step, ...]:
    """'1.5 x 14, 3 x 14, 4.5 x 30' -> steps. Raises ValidationError naming the bad part."""
    parts = [part.strip() for part in re.split(r"[,;\n]+", text or "") if part.strip()]
    if not parts:
        raise ValidationError(f"Enter at least one step. {SCHEDULE_HELP}.", code="empty")
    if len(parts) > MAX_STEPS:
        raise ValidationError(f"At most {MAX_STEPS} steps.", code="too_many_steps")
    steps = []
    for part in parts:
        match = _STEP.match(part)
        if match is None:
            raise ValidationError(f'"{part}" is not a step. {SCHEDULE_HELP}.', code="bad_step")
        steps.append(Step(dose_mg=Decimal(match["dose"]), days=int(match["days"])))
    return tuple(steps)


def format_schedule(steps) -> str:
    return ", ".join(f"{quantity_text(step.dose_mg)} x {step.days}" for step in steps)

"""The LDN dose rules as pure functions: schedule arithmetic, label directions and the checks.

Plain Python with Decimal arithmetic, no database and no Django, so the order form, the live check
endpoint and the submit service run exactly the same rules. Every threshold lives in DosingPolicy
with its source; every rule yields a Finding that cites it.
"""

import datetime
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, fields, replace
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from enum import StrEnum
from itertools import pairwise

from .medications import Group, Mention, mentions

SOURCE_LDN_DOSING = "LDN dosing guidance (Toljan & Vrooman, Med Sci 2018;6(4):82)"
SOURCE_TITRATION = "LDN Research Trust titration guidance"
SOURCE_LDN_TRUST = "LDN Research Trust guidance"
SOURCE_LABEL = "naltrexone prescribing information"
SOURCE_USP_795 = "USP <795> (2023 revision)"  # beyond-use dates and storage only
SOURCE_PHARMACY = "pharmacy policy"  # the pharmacy's own limits
SOURCE_STATE_LAW = "state pharmacy law: most US states"


class Severity(StrEnum):
    ERROR = "error"  # blocks the prescription
    WARNING = "warning"  # the prescriber must acknowledge it


@dataclass(frozen=True)
class Finding:
    code: str
    severity: Severity
    field: str
    message: str
    source: str

    def as_dict(self) -> dict[str, str]:
        return {name: str(value) for name, value in asdict(self).items()}


class DosageForm(StrEnum):
    """The dosage forms the pharmacy compounds: the one vocabulary of the dose rules, the
    catalogue and prescriptions (the models' choices are DOSAGE_FORM_CHOICES)."""

    CAPSULE = "capsule"
    ORAL_LIQUID = "oral_liquid"
    SUBLINGUAL_DROPS = "sublingual_drops"
    TOPICAL_CREAM = "topical_cream"

    @property
    def label(self) -> str:
        return _DOSAGE_FORM_LABELS[self]


_DOSAGE_FORM_LABELS = {
    DosageForm.CAPSULE: "Capsule",
    DosageForm.ORAL_LIQUID: "Oral liquid",
    DosageForm.SUBLINGUAL_DROPS: "Sublingual drops",
    DosageForm.TOPICAL_CREAM: "Topical cream",
}
DOSAGE_FORM_CHOICES = [(form.value, form.label) for form in DosageForm]


@dataclass(frozen=True)
class Step:
    dose_mg: Decimal  # per dose
    days: int


@dataclass(frozen=True)
class Regimen:
    dosage_form: DosageForm
    steps: tuple[Step, ...]
    doses_per_day: int
    quantity: Decimal | None  # capsules, or mL for liquid / drops / cream; None = not given yet
    days_supply: int
    refills: int
    concentration_mg_per_ml: Decimal | None = None  # required for every form except capsule
    capsule_strengths_mg: frozenset[Decimal] = frozenset()  # empty = not checked
    time_of_day: str = "bedtime"  # "bedtime" or "morning"
    # A refill that continues treatment: the patient already takes LDN, so "start low" does not
    # apply to its first (maintenance) step.
    continues_treatment: bool = False


@dataclass(frozen=True)
class PatientFacts:
    date_of_birth: datetime.date | None
    takes_opioids: bool | None  # None = not answered
    medications: str = ""
    pregnant_or_breastfeeding: bool = False
    liver_disease: bool = False
    diagnosis_codes: tuple[str, ...] = ()  # ICD-10-CM codes of this prescription
    conditions: tuple[str, ...] = ()  # ICD-10-CM codes of the patient's problem list
    allergies: str = ""

    @property
    def all_codes(self) -> tuple[str, ...]:
        """The patient's conditions and this prescription's diagnoses, each once."""
        return tuple(dict.fromkeys((*self.conditions, *self.diagnosis_codes)))


@dataclass(frozen=True)
class DosingPolicy:
    """Every threshold of the dose rules: defaults from the cited sources, overridable."""

    # Daily dose bands: LDN is 1-5 mg/day, "very low dose" up to 1 mg (Toljan & Vrooman 2018);
    # the usual range is 0.5-4.5 mg once a day (common practice).
    very_low_dose_mg: Decimal = Decimal("0.5")
    usual_max_daily_mg: Decimal = Decimal("4.5")
    max_daily_mg: Decimal = Decimal("5.0")
    standard_naltrexone_mg: Decimal = Decimal("50")  # the marketed tablet (prescribing info)
    # Titration: 7-14 days a step, steps of 0.5-1.5 mg, start low (LDN Research Trust). The
    # first step and the increase are judged per day, as the dose bands are: a split dose of
    # 2 x 2 mg is a 4 mg start.
    min_step_days: int = 7
    max_step_increase_mg: Decimal = Decimal("1.5")  # per day, between consecutive steps
    max_first_dose_mg: Decimal = Decimal("3")  # per day
    # Once a day is the norm and twice (split dose) a warning (Toljan & Vrooman); more than
    # twice is refused by pharmacy policy.
    usual_doses_per_day: int = 1
    max_doses_per_day: int = 2
    # Quantity must cover the schedule within 10 % (pharmacy policy).
    quantity_tolerance: Decimal = Decimal("0.10")
    max_days_supply: int = 90  # pharmacy policy
    max_refills: int = 11  # a prescription expires 1 year after it is written (most US states)
    adult_age: int = 18  # safety under 18 not established (naltrexone prescribing information)
    # Washout before the first dose (naltrexone labelling).
    opioid_washout: str = (
        "Start LDN only once the patient has been opioid-free for 7-10 days after short-acting "
        "or 10-14 days after long-acting opioids."
    )
    # Hashimoto's on thyroid replacement: start low, thyroid dose may need lowering (LDN Trust).
    hashimoto_codes: tuple[str, ...] = ("E06.3",)
    # Transplant status (ICD-10-CM Z94): LDN acts on the immune system (pharmacy policy).
    transplant_code_prefixes: tuple[str, ...] = ("Z94",)
    # The next fill is due once this share of the previous fill's days' supply has passed (a
    # common pharmacy rule); earlier is a warning that needs a reason.
    refill_due_fraction: Decimal = Decimal("0.80")


DEFAULT_POLICY = DosingPolicy()


def policy_with(overrides: dict) -> DosingPolicy:
    """DEFAULT_POLICY with some fields replaced, e.g. from settings: {"max_refills": 5}."""
    defaults = {f.name: getattr(DEFAULT_POLICY, f.name) for f in fields(DosingPolicy)}
    unknown = sorted(str(name) for name in overrides if name not in defaults)
    if unknown:
        raise ValueError(f"Unknown dosing policy setting(s): {', '.join(unknown)}")
    converted = {name: _converted(name, value, defaults[name]) for name, value in overrides.items()}
    return replace(DEFAULT_POLICY, **converted)


def _converted(name: str, value, default):
    try:
        if isinstance(default, Decimal | int):
            number = Decimal(str(value))  # str(): a JSON 4.5 becomes 4.5, not its binary value
            if not number.is_finite() or (isinstance(default, int) and number % 1):
                raise ValueError
            return number if isinstance(default, Decimal) else int(number)
        if isinstance(default, tuple):
            names = value.split(",") if isinstance(value, str) else value
            return tuple(str(name).strip() for name in names if str(name).strip())
        return str(value)
    except (ArithmeticError, TypeError, ValueError) as error:
        kind = type(default).__name__
        raise ValueError(
            f"Dosing policy setting {name}: {value!r} is not a valid {kind}"
        ) from error


# --- Arithmetic -------------------------------------------------------------------------------


def _plain(value: Decimal) -> Decimal:
    """The same number without trailing zeros or exponent: 1.50 -> 1.5, 1E+1 -> 10."""
    number = Decimal(value).normalize()
    return Decimal(0) if number.is_zero() else Decimal(format(number, "f"))


def _num(value: Decimal) -> str:
    return str(_plain(value))


def _rounded(value: Decimal, exponent: str) -> Decimal:
    try:
        return value.quantize(Decimal(exponent), rounding=ROUND_HALF_UP)
    except InvalidOperation:  # more digits than the context holds: far beyond any real amount
        return value


def daily_dose(step: Step, doses_per_day: int) -> Decimal:
    return step.dose_mg * doses_per_day


def units_per_dose(dose_mg: Decimal, regimen: Regimen) -> Decimal | None:
    """Capsules per dose (always 1), or mL per dose for a liquid, drops or cream."""
    if regimen.dosage_form == DosageForm.CAPSULE:
        return Decimal(1)
    concentration = regimen.concentration_mg_per_ml
    if concentration is None or concentration <= 0:
        return None
    return dose_mg / concentration


def quantity_needed(regimen: Regimen) -> Decimal | None:
    """Capsules or mL the schedule needs; None while the schedule is incomplete or invalid."""
    steps, per_day = regimen.steps, regimen.doses_per_day
    if not steps or per_day < 1 or any(s.days <= 0 or s.dose_mg <= 0 for s in steps):
        return None
    if regimen.dosage_form == DosageForm.CAPSULE:
        return Decimal(sum(step.days * per_day for step in steps))
    total_mg = sum(step.dose_mg * step.days * per_day for step in steps)
    total_ml = units_per_dose(total_mg, regimen)
    return None if total_ml is None else _rounded(total_ml, "0.1")


def capsule_lines(regimen: Regimen) -> list[tuple[Decimal, int]]:
    """(strength_mg, capsules) per distinct dose, in schedule order; [] for other forms."""
    if regimen.dosage_form != DosageForm.CAPSULE:
        return []
    counts: dict[Decimal, int] = {}
    for step in regimen.steps:
        strength = _plain(step.dose_mg)
        counts[strength] = counts.get(strength, 0) + step.days * regimen.doses_per_day
    return list(counts.items())


# --- Directions -------------------------------------------------------------------------------

_WORDING = {  # verb, route
    DosageForm.CAPSULE: ("Take", ""),
    DosageForm.ORAL_LIQUID: ("Take", " by mouth"),
    DosageForm.SUBLINGUAL_DROPS: ("Place", " under the tongue"),
    DosageForm.TOPICAL_CREAM: ("Apply", " to the skin"),
}
_TIMES = {"bedtime": " at bedtime", "morning": " in the morning"}
_MULTIPLE = {2: " twice daily", 3: " three times daily"}
# How a label says that the last (maintenance) step goes on: "continue nightly".
_CONTINUE = {"bedtime": "continue nightly", "morning": "continue every morning"}


def directions(regimen: Regimen) -> str:
    """The directions of the whole schedule, e.g. 'Take 1 capsule (1.5 mg) at bedtime for 14
    days, then 1 capsule (3 mg) at bedtime for 14 days, then ...': what the prescriber wrote."""
    if not regimen.steps:
        return ""
    verb, route = _WORDING.get(regimen.dosage_form, ("Take", ""))
    return f"{verb} " + ", then ".join(_step_text(s, regimen, route) for s in regimen.steps) + "."


def _step_text(step: Step, regimen: Regimen, route: str, *, days: bool = True) -> str:
    text = f"{_amount(step, regimen)}{route}{_frequency(regimen)}"
    if days:
        text += f" for {_days_text(step.days)}"
    return text


def _days_text(days: int) -> str:
    return f"{days} day{'' if days == 1 else 's'}"


def _amount(step: Step, regimen: Regimen) -> str:
    """What to take, the measure first: '1 capsule (1.5 mg)', '3 mL (3 mg)'."""
    dose = f"{_num(step.dose_mg)} mg"
    if regimen.dosage_form == DosageForm.CAPSULE:
        return f"1 capsule ({dose})"
    units = units_per_dose(step.dose_mg, regimen)
    if units is None:
        return dose
    return f"{_num(_rounded(units, '0.01'))} mL ({dose})"


def _frequency(regimen: Regimen) -> str:
    per_day = regimen.doses_per_day
    if per_day == 1:
        return _TIMES.get(regimen.time_of_day, " once daily")
    if per_day < 1:
        return ""
    return _MULTIPLE.get(per_day, f" {per_day} times daily")


def _continue_text(regimen: Regimen) -> str:
    if regimen.doses_per_day == 1:
        return _CONTINUE.get(regimen.time_of_day, "continue once daily")
    return "continue" + _frequency(regimen)


def label_directions(regimen: Regimen, strength_mg: Decimal | None = None) -> tuple[str, ...]:
    """What one bottle's label says, as phrases that may be printed across two label pages.

    A capsule bottle of `strength_mg` tells only its own doses and days, and when to start the
    next bottle ("Take 1 capsule (1.5 mg) at bedtime for 14 days, then start the 3 mg bottle.");
    a liquid, drops or cream bottle (strength None) holds every step. The last step is the
    maintenance dose: it says "continue nightly" rather than a number of days."""
    steps = regimen.steps
    if not steps:
        return ()
    verb, route = _WORDING.get(regimen.dosage_form, ("Take", ""))
    if strength_mg is None:
        mine = set(range(len(steps)))
    else:
        mine = {i for i, step in enumerate(steps) if _plain(step.dose_mg) == _plain(strength_mg)}
    phrases: list[str] = []
    for index in sorted(mine):
        step, last = steps[index], index == len(steps) - 1
        opening = index - 1 not in mine  # a run of this bottle's doses starts here
        if opening and index > 0 and strength_mg is not None:
            day = sum(s.days for s in steps[:index]) + 1
            previous = f"{_num(steps[index - 1].dose_mg)} mg"
            phrase = f"From day {day} (after the {previous} bottle), {verb.lower()} "
        elif opening and not phrases:
            phrase = f"{verb} "
        else:
            phrase = "then "
        if last:
            phrase += f"{_step_text(step, regimen, route, days=False)}; {_continue_text(regimen)}."
        elif index + 1 in mine:
            phrase += f"{_step_text(step, regimen, route)},"
        else:
            phrase += f"{_step_text(step, regimen, route)}, then start the "
            phrase += f"{_num(steps[index + 1].dose_mg)} mg bottle."
        phrases.append(phrase)
    return tuple(phrases)


def days_in_use(
    regimen: Regimen, strength_mg: Decimal | None, *, before: Decimal, units: Decimal
) -> tuple[int, int]:
    """The days of a fill (day 1 is its first) on which `units` of a bottle are taken, when
    `before` units of the same bottle were taken first: (first day, last day). A capsule bottle
    of `strength_mg` serves only its own steps; a liquid, drops or cream bottle (None) every
    step. What the schedule does not use up is counted as used on its last day.

    A partial fill's BUD must cover its last day, and the rest that follows is taken from the
    day after (USP <795>: the patient must not hold units past their BUD)."""
    first = 0
    taken, day = Decimal(0), 0
    end = before + units
    for step in regimen.steps:
        if strength_mg is not None and _plain(step.dose_mg) != _plain(strength_mg):
            day += step.days
            continue
        per_dose = units_per_dose(step.dose_mg, regimen) or Decimal(0)
        per_day = per_dose * regimen.doses_per_day
        for _ in range(step.days):
            day += 1
            if per_day <= 0:
                continue
            taken += per_day
            if not first and taken > before:
                first = day
            if taken >= end:
                return first, day
    return first or day, day


def maintenance_regimen(regimen: Regimen) -> Regimen:
    """A refill of a titration: the last (maintenance) step for the whole days' supply, so a
    refill continues the regimen instead of repeating the ramp-up (LDN Research Trust)."""
    if not regimen.steps:
        return regimen
    schedule = (Step(dose_mg=regimen.steps[-1].dose_mg, days=regimen.days_supply),)
    continued = replace(regimen, steps=schedule, continues_treatment=True, quantity=None)
    return replace(continued, quantity=quantity_needed(continued))


# --- Regimen checks ---------------------------------------------------------------------------


def _error(code: str, field: str, message: str, source: str) -> Finding:
    return Finding(code, Severity.ERROR, field, message, source)


def _warning(code: str, field: str, message: str, source: str) -> Finding:
    return Finding(code, Severity.WARNING, field, message, source)


def check_regimen(regimen: Regimen, policy: DosingPolicy = DEFAULT_POLICY) -> list[Finding]:
    return [
        *_check_concentration(regimen),
        *_check_steps(regimen, policy),
        *_check_titration(regimen, policy),
        *_check_doses_per_day(regimen, policy),
        *_check_days_supply(regimen, policy),
        *_check_quantity(regimen, policy),
        *_check_refills(regimen, policy),
    ]


def _check_concentration(regimen: Regimen) -> Iterator[Finding]:
    concentration, field = regimen.concentration_mg_per_ml, "concentration_mg_per_ml"
    if regimen.dosage_form == DosageForm.CAPSULE:
        return
    if concentration is None:
        form = str(regimen.dosage_form).replace("_", " ").capitalize()
        message = f"{form} needs a concentration in mg/mL."
        yield _error("concentration.missing", field, message, SOURCE_PHARMACY)
    elif concentration <= 0:
        message = f"Concentration must be more than 0 mg/mL (it is {_num(concentration)} mg/mL)."
        yield _error("concentration.not_positive", field, message, SOURCE_PHARMACY)


def _check_steps(regimen: Regimen, policy: DosingPolicy) -> Iterator[Finding]:
    if not regimen.steps:
        message = "The schedule is empty: add at least one step (dose and days)."
        yield _error("steps.empty", "steps", message, SOURCE_PHARMACY)
    for index, step in enumerate(regimen.steps):
        where = f" in step {index + 1}" if len(regimen.steps) > 1 else ""
        if step.days <= 0:
            message = f"Number of days{where} must be at least 1 (it is {step.days})."
            field = f"steps.{index}.days"
            yield _error("step.days_not_positive", field, message, SOURCE_PHARMACY)
        field = f"steps.{index}.dose_mg"
        if step.dose_mg <= 0:
            message = f"Dose{where} must be more than 0 mg (it is {_num(step.dose_mg)} mg)."
            yield _error("step.dose_not_positive", field, message, SOURCE_PHARMACY)
            continue
        yield from _dose_band(field, where, step, regimen.doses_per_day, policy)
        strengths = regimen.capsule_strengths_mg
        if (
            regimen.dosage_form == DosageForm.CAPSULE
            and strengths
            and step.dose_mg not in strengths
        ):
            message = f"No {_num(step.dose_mg)} mg capsule{where}: capsules come in "
            message += f"{_strengths_text(strengths)}."
            yield _error("capsule.strength_unavailable", field, message, SOURCE_PHARMACY)


def _dose_band(field: str, where: str, step: Step, per_day: int, policy) -> Iterator[Finding]:
    """The total daily dose against the LDN range (Toljan & Vrooman 2018)."""
    if per_day < 1:  # no daily dose to judge; the doses-per-day error says why
        return
    daily, text = daily_dose(step, per_day), f"Daily dose {_daily_text(step, per_day)}{where}"
    if daily > policy.max_daily_mg:
        message = f"{text} is above the LDN maximum of {_num(policy.max_daily_mg)} mg "
        message += f"(standard naltrexone is {_num(policy.standard_naltrexone_mg)} mg tablets)."
        yield _error("dose.above_max", field, message, SOURCE_LDN_DOSING)
    elif daily > policy.usual_max_daily_mg:
        message = f"{text} is above the usual maximum of {_num(policy.usual_max_daily_mg)} mg; "
        yield _warning("dose.above_usual", field, message + "confirm it.", SOURCE_LDN_DOSING)
    elif daily < policy.very_low_dose_mg:
        message = f"{text} is below {_num(policy.very_low_dose_mg)} mg, the very-low-dose range; "
        yield _warning("dose.very_low", field, message + "confirm it.", SOURCE_LDN_DOSING)


def _daily_text(step: Step, per_day: int) -> str:
    daily = f"{_num(daily_dose(step, per_day))} mg"
    return daily if per_day == 1 else f"{daily} ({per_day} x {_num(step.dose_mg)} mg)"


def _strengths_text(strengths: frozenset[Decimal]) -> str:
    """'0.5 mg steps from 0.5 to 4.5 mg', '1.5, 3 and 4.5 mg' or '4.5 mg only'."""
    ordered = sorted({_plain(s) for s in strengths})
    gaps = {high - low for low, high in pairwise(ordered)}
    if len(ordered) >= 3 and len(gaps) == 1:
        return f"{_num(gaps.pop())} mg steps from {_num(ordered[0])} to {_num(ordered[-1])} mg"
    if len(ordered) == 1:
        return f"{_num(ordered[0])} mg only"
    return ", ".join(_num(s) for s in ordered[:-1]) + f" and {_num(ordered[-1])} mg"


def _check_titration(regimen: Regimen, policy: DosingPolicy) -> Iterator[Finding]:
    """Start low, go slow (LDN Research Trust): each a warning, since side effects are mild.
    The start and the increases are judged per day, as the dose bands are."""
    steps, per_day = regimen.steps, max(regimen.doses_per_day, 1)
    if steps and not regimen.continues_treatment:
        first = daily_dose(steps[0], per_day)
        if first > policy.max_first_dose_mg:
            message = f"First step is {_daily_text(steps[0], per_day)} a day: start at "
            message += f"{_num(policy.max_first_dose_mg)} mg a day or less and go up, unless the "
            message += "patient already takes LDN."
            field = "steps.0.dose_mg"
            yield _warning("titration.first_step_high", field, message, SOURCE_TITRATION)
    for index, step in enumerate(steps[:-1]):  # the last step may be as short as needed
        if 0 < step.days < policy.min_step_days:
            message = f"Step {index + 1} lasts {step.days} day{'s' if step.days > 1 else ''}; "
            message += f"titration steps should last at least {policy.min_step_days} days."
            field = f"steps.{index}.days"
            yield _warning("titration.step_too_short", field, message, SOURCE_TITRATION)
    for index, (previous, step) in enumerate(pairwise(steps), start=1):
        increase = (step.dose_mg - previous.dose_mg) * per_day  # going down is allowed
        if previous.dose_mg > 0 and increase > policy.max_step_increase_mg:
            message = f"Step {index + 1} goes up {_num(increase)} mg a day (from "
            message += f"{_daily_text(previous, per_day)} to {_daily_text(step, per_day)}); "
            message += f"increase by at most {_num(policy.max_step_increase_mg)} mg a day per step."
            field = f"steps.{index}.dose_mg"
            yield _warning("titration.increase_too_large", field, message, SOURCE_TITRATION)


def _check_doses_per_day(regimen: Regimen, policy: DosingPolicy) -> Iterator[Finding]:
    per_day, field = regimen.doses_per_day, "doses_per_day"
    if per_day < 1:
        message = f"Doses per day must be at least 1 (it is {per_day})."
        yield _error("doses_per_day.too_few", field, message, SOURCE_PHARMACY)
    elif per_day > policy.max_doses_per_day:
        message = f"{per_day} doses a day is too many: LDN is taken once a day, "
        message += f"at most {policy.max_doses_per_day} doses a day (split dose)."
        yield _error("doses_per_day.too_many", field, message, SOURCE_PHARMACY)
    elif per_day > policy.usual_doses_per_day:
        message = f"{per_day} doses a day (split dose): LDN is normally taken once a day; "
        message += "confirm the split dose."
        yield _warning("doses_per_day.split", field, message, SOURCE_LDN_DOSING)


def _check_days_supply(regimen: Regimen, policy: DosingPolicy) -> Iterator[Finding]:
    days, field = regimen.days_supply, "days_supply"
    if days <= 0:
        message = f"Days' supply must be at least 1 day (it is {days})."
        yield _error("days_supply.not_positive", field, message, SOURCE_PHARMACY)
        return
    if days > policy.max_days_supply:
        message = f"Days' supply {days} days is more than the maximum of "
        message += f"{policy.max_days_supply} days."
        yield _error("days_supply.too_long", field, message, SOURCE_PHARMACY)
    scheduled = sum(step.days for step in regimen.steps)
    if regimen.steps and days != scheduled:
        message = f"Days' supply {days} days does not match the schedule, which lasts "
        message += f"{scheduled} days."
        yield _error("days_supply.mismatch", field, message, SOURCE_PHARMACY)


def _check_quantity(regimen: Regimen, policy: DosingPolicy) -> Iterator[Finding]:
    quantity, field = regimen.quantity, "quantity"
    if quantity is None:  # not given yet: the form fills it in from quantity_needed
        return
    if quantity <= 0:
        message = f"Quantity must be more than 0 (it is {_quantity_text(quantity, regimen)})."
        yield _error("quantity.not_positive", field, message, SOURCE_PHARMACY)
        return
    if (
        regimen.dosage_form == DosageForm.CAPSULE
        and quantity != Decimal(quantity).to_integral_value()
    ):
        message = f"Quantity {_num(quantity)} capsules is not a whole number of capsules."
        yield _error("quantity.not_whole", field, message, SOURCE_PHARMACY)
    needed = quantity_needed(regimen)
    if needed is not None and abs(quantity - needed) > needed * policy.quantity_tolerance:
        message = f"Quantity {_quantity_text(quantity, regimen)} does not match the schedule, "
        message += f"which needs {_quantity_text(needed, regimen)} "
        message += f"(within {_num(policy.quantity_tolerance * 100)} %)."
        yield _error("quantity.mismatch", field, message, SOURCE_PHARMACY)


def _quantity_text(quantity: Decimal, regimen: Regimen) -> str:
    return units_text(quantity, "capsule" if regimen.dosage_form == DosageForm.CAPSULE else "mL")


def units_text(quantity: Decimal, unit: str) -> str:
    """Decimal('14.00'), 'capsule' -> '14 capsules'; Decimal('198'), 'mL' -> '198 mL'."""
    if unit == "capsule" and quantity != 1:
        unit = "capsules"
    return f"{_num(quantity)} {unit}"


def _check_refills(regimen: Regimen, policy: DosingPolicy) -> Iterator[Finding]:
    refills, field = regimen.refills, "refills"
    if refills < 0:
        message = f"Refills cannot be negative (it is {refills})."
        yield _error("refills.negative", field, message, SOURCE_PHARMACY)
    elif refills > policy.max_refills:
        message = f"{refills} refills is more than the maximum of {policy.max_refills}."
        yield _error("refills.too_many", field, message, SOURCE_STATE_LAW)


# --- Patient checks ---------------------------------------------------------------------------


def check_patient(
    patient: PatientFacts, *, today: datetime.date, policy: DosingPolicy = DEFAULT_POLICY
) -> list[Finding]:
    return [
        *_check_opioids(patient, policy),
        *_check_allergies(patient),
        *_check_age(patient, today, policy),
        *_check_thyroid(patient, policy),
        *_check_immunosuppression(patient, policy),
        *_check_conditions(patient),
    ]


def check_prescription(
    regimen: Regimen,
    patient: PatientFacts,
    *,
    today: datetime.date,
    policy: DosingPolicy = DEFAULT_POLICY,
) -> list[Finding]:
    return [*check_regimen(regimen, policy), *check_patient(patient, today=today, policy=policy)]


def has_errors(findings: Iterable[Finding]) -> bool:
    return any(finding.severity == Severity.ERROR for finding in findings)


def warnings_of(findings: Iterable[Finding]) -> list[Finding]:
    return [finding for finding in findings if finding.severity == Severity.WARNING]


def named(found: Iterable[Mention]) -> str:
    """'Percocet 10/325: oxycodone; tramadol 50 mg': what the clinic wrote, and the drug it is
    when the words do not say it."""
    texts = []
    for mention in found:
        written, drug = mention.written, mention.drug.name
        texts.append(written if drug.casefold() in written.casefold() else f"{written}: {drug}")
    return "; ".join(texts)


def _code_key(code: str) -> str:
    return code.replace(".", "").strip().upper()  # "e06.3" and "E063" are E06.3


def _check_opioids(patient: PatientFacts, policy: DosingPolicy) -> Iterator[Finding]:
    """Naltrexone is contraindicated with any opioid agonist or partial agonist (naltrexone
    labelling); the vocabulary of names is data, in medications.py, with its sources."""
    withdrawal = f"naltrexone blocks opioids and can bring on withdrawal. {policy.opioid_washout}"
    field = "patient.takes_opioids"
    if patient.takes_opioids is None:
        message = "Answer the opioid question: naltrexone cannot be given with opioids."
        yield _error("opioid.unanswered", field, message, SOURCE_LABEL)
    elif patient.takes_opioids:
        yield _error(
            "opioid.current", field, f"The patient takes opioids: {withdrawal}", SOURCE_LABEL
        )
    found = mentions(patient.medications, Group.OPIOID)
    if found:
        message = f"The medication list names an opioid ({named(found)}): {withdrawal}"
        yield _error("opioid.in_medications", "patient.medications", message, SOURCE_LABEL)
    peripheral = mentions(patient.medications, Group.PERIPHERAL_OPIOID)
    if peripheral:
        message = f"The medication list names a peripherally acting opioid ({named(peripheral)})"
        message += ": naltrexone may block its effect on the gut; confirm it is still needed."
        yield _warning("opioid.peripheral", "patient.medications", message, SOURCE_LABEL)


def _check_allergies(patient: PatientFacts) -> Iterator[Finding]:
    """A recorded allergy to naltrexone or naloxone rules LDN out (naltrexone labelling)."""
    found = mentions(patient.allergies, Group.OPIOID_ANTAGONIST)
    if found:
        message = f"The patient's allergies name {named(found)}: LDN is naltrexone, so it "
        message += "cannot be given."
        yield _error("allergy.naltrexone", "patient.allergies", message, SOURCE_LABEL)


def _check_age(patient: PatientFacts, today: datetime.date, policy) -> Iterator[Finding]:
    born, field = patient.date_of_birth, "patient.date_of_birth"
    if born is None:
        return
    if born > today:
        message = f"Date of birth {born.isoformat()} is after today ({today.isoformat()})."
        yield _error("age.birth_date_in_future", field, message, SOURCE_PHARMACY)
        return
    age = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
    if age < policy.adult_age:
        message = f"The patient is {age}, under {policy.adult_age}: naltrexone safety is not "
        message += "established in children; confirm the prescription."
        yield _warning("age.minor", field, message, SOURCE_LABEL)


def _codes_field(patient: PatientFacts, codes: list[str]) -> str:
    """Which field a code came from: the prescription's diagnoses, else the problem list."""
    ours = {_code_key(code) for code in patient.diagnosis_codes}
    return "diagnosis_codes" if any(_code_key(c) in ours for c in codes) else "patient.conditions"


def _check_thyroid(patient: PatientFacts, policy: DosingPolicy) -> Iterator[Finding]:
    """Hashimoto's (from the patient's conditions or this prescription) on thyroid replacement."""
    hashimoto = {_code_key(code) for code in policy.hashimoto_codes}
    codes = [code for code in patient.all_codes if _code_key(code) in hashimoto]
    drugs = mentions(patient.medications, Group.THYROID_REPLACEMENT)
    if codes and drugs:
        message = f"Hashimoto's thyroiditis ({', '.join(codes)}) on thyroid replacement "
        message += f"({named(drugs)}): start low; the thyroid dose may need lowering, so "
        message += "watch for signs of over-replacement."
        field = "patient.medications"
        yield _warning("thyroid.hashimoto_replacement", field, message, SOURCE_LDN_TRUST)


def _check_immunosuppression(patient: PatientFacts, policy: DosingPolicy) -> Iterator[Finding]:
    prefixes = tuple(_code_key(prefix) for prefix in policy.transplant_code_prefixes)
    codes = [code for code in patient.all_codes if _code_key(code).startswith(prefixes)]
    drugs = mentions(patient.medications, Group.IMMUNOSUPPRESSANT)
    if codes or drugs:
        what = ", ".join(
            [*([named(drugs)] if drugs else []), *(f"transplant status {code}" for code in codes)]
        )
        message = f"Immunosuppression ({what}): LDN acts on the immune system; discuss with the "
        message += "treating specialist or transplant team."
        field = "patient.medications" if drugs else _codes_field(patient, codes)
        yield _warning("immunosuppression.present", field, message, SOURCE_PHARMACY)


def _check_conditions(patient: PatientFacts) -> Iterator[Finding]:
    if patient.pregnant_or_breastfeeding:
        message = "Pregnant or breastfeeding: naltrexone safety is not established; confirm "
        message += "the benefit outweighs the risk."
        field = "patient.pregnant_or_breastfeeding"
        yield _warning("pregnancy.or_breastfeeding", field, message, SOURCE_LABEL)
    if patient.liver_disease:
        message = "Known liver disease: naltrexone is cleared by the liver; check liver "
        message += "function before and during treatment."
        yield _warning("liver.disease", "patient.liver_disease", message, SOURCE_LABEL)

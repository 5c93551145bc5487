"""The LDN dose rules as pure functions: schedule arithmetic, label directions and the checks.

Plain Python with Decimal arithmetic, no database and no Django, so the order form, the live check
endpoint and the submit service run exactly the same rules. Every threshold lives in DosingPolicy
with its source; every rule yields a Finding that cites it.
"""

import datetime
import functools
import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, fields, replace
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from enum import StrEnum
from itertools import pairwise

SOURCE_LDN_DOSING = "LDN dosing guidance (Toljan & Vrooman, Med Sci 2018;6(4):82)"
SOURCE_TITRATION = "LDN Research Trust titration guidance"
SOURCE_LDN_TRUST = "LDN Research Trust guidance"
SOURCE_LABEL = "naltrexone prescribing information"
SOURCE_USP_795 = "USP <795> / pharmacy policy"
SOURCE_PHARMACY = "pharmacy policy"
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
    CAPSULE = "capsule"
    ORAL_LIQUID = "oral_liquid"
    SUBLINGUAL_DROPS = "sublingual_drops"
    TOPICAL_CREAM = "topical_cream"


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


@dataclass(frozen=True)
class PatientFacts:
    date_of_birth: datetime.date | None
    takes_opioids: bool | None  # None = not answered
    medications: str = ""
    pregnant_or_breastfeeding: bool = False
    liver_disease: bool = False
    diagnosis_codes: tuple[str, ...] = ()  # ICD-10-CM codes of this prescription


def _names(text: str) -> tuple[str, ...]:
    """'a, b\\nc' -> ('a', 'b', 'c'): name lists are written as text, split on commas and lines."""
    return tuple(name.strip() for name in re.split(r"[,\n]", text) if name.strip())


# Opioid agonists and partial agonists, generic and brand names, incl. codeine and hydrocodone
# cough syrups: all contraindicated with naltrexone (naltrexone prescribing information).
OPIOID_NAMES = _names(
    "morphine, oxycodone, hydrocodone, hydromorphone, oxymorphone, codeine, dihydrocodeine, "
    "tramadol, tapentadol, fentanyl, sufentanil, methadone, buprenorphine, meperidine, "
    "pethidine, levorphanol, pentazocine, butorphanol, diphenoxylate, opium, paregoric, "
    "OxyContin, Xtampza, Percocet, Endocet, Roxicet, Roxicodone, Vicodin, Norco, Lortab, Lorcet, "
    "Hysingla, Zohydro, Dilaudid, Opana, MS Contin, Kadian, Ultram, Ultracet, ConZip, Nucynta, "
    "Duragesic, Actiq, Fentora, Subutex, Suboxone, Zubsolv, Butrans, Belbuca, Sublocade, "
    "Demerol, Lomotil, Methadose, Dolophine, Tussionex, Tuzistra, Hycodan, Tylenol with Codeine, "
    "Tylenol #2, Tylenol #3, Tylenol #4, Robitussin AC, Cheratussin, promethazine with codeine"
)
THYROID_REPLACEMENT_NAMES = _names(
    "levothyroxine, Synthroid, Levoxyl, Unithroid, Tirosint, Euthyrox, Levo-T, liothyronine, "
    "Cytomel, liotrix, Armour Thyroid, NP Thyroid, Nature-Throid, WP Thyroid, desiccated thyroid"
)
IMMUNOSUPPRESSANT_NAMES = _names(
    "tacrolimus, Prograf, Envarsus, Astagraf, cyclosporine, ciclosporin, Neoral, Sandimmune, "
    "Gengraf, mycophenolate, mycophenolic acid, CellCept, Myfortic, sirolimus, Rapamune, "
    "everolimus, Zortress, azathioprine, Imuran, belatacept, Nulojix"
)


@dataclass(frozen=True)
class DosingPolicy:
    """Every threshold of the dose rules: defaults from the cited sources, overridable."""

    # Daily dose bands: LDN is 1-5 mg/day, "very low dose" up to 1 mg (Toljan & Vrooman 2018);
    # the usual range is 0.5-4.5 mg once a day (common practice).
    very_low_dose_mg: Decimal = Decimal("0.5")
    usual_max_daily_mg: Decimal = Decimal("4.5")
    max_daily_mg: Decimal = Decimal("5.0")
    standard_naltrexone_mg: Decimal = Decimal("50")  # the marketed tablet (prescribing info)
    # Titration: 7-14 days a step, steps of 0.5-1.5 mg, start low (LDN Research Trust).
    min_step_days: int = 7
    max_step_increase_mg: Decimal = Decimal("1.5")
    max_first_dose_mg: Decimal = Decimal("3")  # per dose, as is the increase above
    # Once a day is the norm; twice (split dose) is a warning, more an error (Toljan & Vrooman).
    usual_doses_per_day: int = 1
    max_doses_per_day: int = 2
    # Quantity must cover the schedule within 10 % (USP <795> / pharmacy policy).
    quantity_tolerance: Decimal = Decimal("0.10")
    max_days_supply: int = 90  # pharmacy policy
    max_refills: int = 11  # a prescription expires 1 year after it is written (most US states)
    adult_age: int = 18  # safety under 18 not established (naltrexone prescribing information)
    opioid_names: tuple[str, ...] = OPIOID_NAMES
    # Washout before the first dose (naltrexone labelling).
    opioid_washout: str = (
        "Start LDN only once the patient has been opioid-free for 7-10 days after short-acting "
        "or 10-14 days after long-acting opioids."
    )
    # Hashimoto's on thyroid replacement: start low, thyroid dose may need lowering (LDN Trust).
    thyroid_replacement_names: tuple[str, ...] = THYROID_REPLACEMENT_NAMES
    hashimoto_codes: tuple[str, ...] = ("E06.3",)
    # Transplant or other immunosuppression: LDN acts on the immune system (pharmacy policy).
    immunosuppressant_names: tuple[str, ...] = IMMUNOSUPPRESSANT_NAMES
    transplant_code_prefixes: tuple[str, ...] = ("Z94",)


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
            return _names(value) if isinstance(value, str) else tuple(str(v) for v in value)
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


def directions(regimen: Regimen) -> str:
    """Label directions, e.g. 'Take 1.5 mg (1 capsule) at bedtime for 14 days, then ...'."""
    if not regimen.steps:
        return ""
    verb, route = _WORDING.get(regimen.dosage_form, ("Take", ""))
    return f"{verb} " + ", then ".join(_step_text(s, regimen, route) for s in regimen.steps) + "."


def _step_text(step: Step, regimen: Regimen, route: str) -> str:
    days = f"{step.days} day{'' if step.days == 1 else 's'}"
    return f"{_num(step.dose_mg)} mg{_amount(step, regimen)}{route}{_frequency(regimen)} for {days}"


def _amount(step: Step, regimen: Regimen) -> str:
    units = units_per_dose(step.dose_mg, regimen)
    if units is None:
        return ""
    if regimen.dosage_form == DosageForm.CAPSULE:
        return " (1 capsule)"
    return f" ({_num(_rounded(units, '0.01'))} mL)"


def _frequency(regimen: Regimen) -> str:
    per_day = regimen.doses_per_day
    if per_day == 1:
        return _TIMES.get(regimen.time_of_day, " once daily")
    if per_day < 1:
        return ""
    return _MULTIPLE.get(per_day, f" {per_day} times daily")


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
        yield _error("concentration.missing", field, message, SOURCE_USP_795)
    elif concentration <= 0:
        message = f"Concentration must be more than 0 mg/mL (it is {_num(concentration)} mg/mL)."
        yield _error("concentration.not_positive", field, message, SOURCE_USP_795)


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
            yield _error("capsule.strength_unavailable", field, message, SOURCE_USP_795)


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
    """Start low, go slow (LDN Research Trust): each a warning, since side effects are mild."""
    steps = regimen.steps
    if steps and steps[0].dose_mg > policy.max_first_dose_mg:
        message = f"First step is {_num(steps[0].dose_mg)} mg per dose: start at "
        message += f"{_num(policy.max_first_dose_mg)} mg or less and go up, unless the patient "
        message += "already takes LDN."
        yield _warning("titration.first_step_high", "steps.0.dose_mg", message, SOURCE_TITRATION)
    for index, step in enumerate(steps[:-1]):  # the last step may be as short as needed
        if 0 < step.days < policy.min_step_days:
            message = f"Step {index + 1} lasts {step.days} day{'s' if step.days > 1 else ''}; "
            message += f"titration steps should last at least {policy.min_step_days} days."
            field = f"steps.{index}.days"
            yield _warning("titration.step_too_short", field, message, SOURCE_TITRATION)
    for index, (previous, step) in enumerate(pairwise(steps), start=1):
        increase = step.dose_mg - previous.dose_mg  # going down is allowed
        if previous.dose_mg > 0 and increase > policy.max_step_increase_mg:
            message = f"Step {index + 1} goes up {_num(increase)} mg per dose (from "
            message += f"{_num(previous.dose_mg)} to {_num(step.dose_mg)} mg); increase by at "
            message += f"most {_num(policy.max_step_increase_mg)} mg per step."
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
        yield _error("doses_per_day.too_many", field, message, SOURCE_LDN_DOSING)
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
        yield _error("quantity.not_positive", field, message, SOURCE_USP_795)
        return
    if (
        regimen.dosage_form == DosageForm.CAPSULE
        and quantity != Decimal(quantity).to_integral_value()
    ):
        message = f"Quantity {_num(quantity)} capsules is not a whole number of capsules."
        yield _error("quantity.not_whole", field, message, SOURCE_USP_795)
    needed = quantity_needed(regimen)
    if needed is not None and abs(quantity - needed) > needed * policy.quantity_tolerance:
        message = f"Quantity {_quantity_text(quantity, regimen)} does not match the schedule, "
        message += f"which needs {_quantity_text(needed, regimen)} "
        message += f"(within {_num(policy.quantity_tolerance * 100)} %)."
        yield _error("quantity.mismatch", field, message, SOURCE_USP_795)


def _quantity_text(quantity: Decimal, regimen: Regimen) -> str:
    if regimen.dosage_form != DosageForm.CAPSULE:
        return f"{_num(quantity)} mL"
    return f"{_num(quantity)} capsule{'' if quantity == 1 else 's'}"


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


@functools.lru_cache(maxsize=32)
def _name_pattern(names: tuple[str, ...]) -> re.Pattern[str] | None:
    alternatives = sorted({name.strip() for name in names if name.strip()}, key=len, reverse=True)
    if not alternatives:
        return None
    body = "|".join(r"\s+".join(map(re.escape, name.split())) for name in alternatives)
    # Whole words only ("Tramadolx" is not tramadol), and not "non-codeine" or "codeine-free".
    return re.compile(rf"(?<!\w)(?<!non-)(?:{body})(?!\w)(?!-free)", re.IGNORECASE)


def _named_in(text: str, names: tuple[str, ...]) -> list[str]:
    """The names (as the policy spells them) that the text mentions, in order, once each."""
    pattern = _name_pattern(tuple(names))  # a tuple, so the compiled pattern can be cached
    if pattern is None or not text:
        return []
    spelling = {" ".join(name.split()).lower(): name.strip() for name in names}
    found = (" ".join(match.group().split()) for match in pattern.finditer(text))
    return list(dict.fromkeys(spelling.get(name.lower(), name) for name in found))


def _code_key(code: str) -> str:
    return code.replace(".", "").strip().upper()  # "e06.3" and "E063" are E06.3


def _check_opioids(patient: PatientFacts, policy: DosingPolicy) -> Iterator[Finding]:
    """Naltrexone is contraindicated with any opioid agonist (naltrexone labelling)."""
    withdrawal = f"naltrexone blocks opioids and can bring on withdrawal. {policy.opioid_washout}"
    field = "patient.takes_opioids"
    if patient.takes_opioids is None:
        message = "Answer the opioid question: naltrexone cannot be given with opioids."
        yield _error("opioid.unanswered", field, message, SOURCE_LABEL)
    elif patient.takes_opioids:
        yield _error(
            "opioid.current", field, f"The patient takes opioids: {withdrawal}", SOURCE_LABEL
        )
    named = _named_in(patient.medications, policy.opioid_names)
    if named:
        message = f"The medication list names an opioid ({', '.join(named)}): {withdrawal}"
        yield _error("opioid.in_medications", "patient.medications", message, SOURCE_LABEL)


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


def _check_thyroid(patient: PatientFacts, policy: DosingPolicy) -> Iterator[Finding]:
    hashimoto = {_code_key(code) for code in policy.hashimoto_codes}
    codes = [code for code in patient.diagnosis_codes if _code_key(code) in hashimoto]
    drugs = _named_in(patient.medications, policy.thyroid_replacement_names)
    if codes and drugs:
        message = f"Hashimoto's thyroiditis ({', '.join(codes)}) on thyroid replacement "
        message += f"({', '.join(drugs)}): start low; the thyroid dose may need lowering, so "
        message += "watch for signs of over-replacement."
        field = "patient.medications"
        yield _warning("thyroid.hashimoto_replacement", field, message, SOURCE_LDN_TRUST)


def _check_immunosuppression(patient: PatientFacts, policy: DosingPolicy) -> Iterator[Finding]:
    prefixes = tuple(_code_key(prefix) for prefix in policy.transplant_code_prefixes)
    codes = [code for code in patient.diagnosis_codes if _code_key(code).startswith(prefixes)]
    drugs = _named_in(patient.medications, policy.immunosuppressant_names)
    if codes or drugs:
        what = ", ".join([*drugs, *(f"transplant status {code}" for code in codes)])
        message = f"Immunosuppression ({what}): LDN acts on the immune system; confirm with the "
        message += "transplant or treating team."
        field = "patient.medications" if drugs else "diagnosis_codes"
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

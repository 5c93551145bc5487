import uuid
from decimal import Decimal

from crispy_forms.helper import FormHelper
from crispy_forms.layout import HTML, Column, Fieldset, Layout, Row, Submit
from django import forms
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from core.forms import DateField
from core.numbers import quantity_text

from . import dosing, icd10
from .checks import field_label, finding_key, unconfirmed_message
from .dosing import DosageForm, Regimen, Severity
from .fill_rules import REASON_REQUIRED
from .icd10 import parse_codes
from .medications import Group, Mention, mentions
from .models import FillSchedule, OrderStatus, Patient, ShipTo, TimeOfDay
from .order_input import SCHEDULE_HELP, format_schedule, parse_schedule

YES_NO = [("yes", "Yes"), ("no", "No")]
# "Needed by" is a date the pharmacy can plan for: today or later, within a year (a
# prescription can be filled for PRESCRIPTION_VALID_MONTHS, 12 by default).
NEEDED_BY_MAX_DAYS = 365


def needed_by_problem(needed_by) -> str:
    """What is wrong with a "needed by" date ("" when nothing is)."""
    today = timezone.localdate()
    if needed_by is not None and needed_by < today:
        return "The date needed by cannot be in the past."
    if needed_by is not None and (needed_by - today).days > NEEDED_BY_MAX_DAYS:
        return f"The date needed by must be within {NEEDED_BY_MAX_DAYS} days from today."
    return ""


class ConditionsField(forms.CharField):
    """The patient's problem list as ICD-10-CM codes typed in one box ("E06.3, Z94.0"); each
    must exist in the code set (a category such as E06 is accepted: it is a condition, not a
    billed diagnosis)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("label", "Conditions (ICD-10-CM)")
        kwargs.setdefault(
            "help_text",
            "The patient's problem list, e.g. E06.3 (Hashimoto's thyroiditis), Z94.0 (kidney "
            "transplant): the dose rules read it for every prescription.",
        )
        super().__init__(required=False, **kwargs)

    def prepare_value(self, value):
        return ", ".join(value) if isinstance(value, list | tuple) else value

    def clean(self, value):
        codes = parse_codes(super().clean(value))
        unknown = [code for code in codes if not icd10.is_code(code)]
        if unknown:
            raise forms.ValidationError(
                f"Not an ICD-10-CM code: {', '.join(unknown)}. Write codes such as E06.3.",
                code="unknown_code",
            )
        return codes


class PatientForm(forms.ModelForm):
    # Asked as an explicit yes/no with nothing preselected: the answer is never assumed.
    takes_opioids = forms.TypedChoiceField(
        label="Does the patient currently take any opioid?",
        choices=YES_NO,
        coerce=lambda answer: answer == "yes",
        widget=forms.RadioSelect,
        help_text="Including tramadol, codeine or hydrocodone cough syrups, and buprenorphine. "
        "Naltrexone is contraindicated with opioids.",
        error_messages={"required": "Answer yes or no: naltrexone cannot be given with opioids."},
    )
    conditions = ConditionsField()
    confirm_not_duplicate = forms.BooleanField(
        label="This is a different patient with the same name and date of birth",
        required=False,
    )

    class Meta:
        model = Patient
        fields = Patient.EDITABLE_FIELDS
        field_classes = {"date_of_birth": DateField}
        widgets = {
            "date_of_birth": forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
            "allergies": forms.Textarea(attrs={"rows": 2}),
            "current_medications": forms.Textarea(attrs={"rows": 3}),
        }

    def __init__(self, *args, clinic_id: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.clinic_id = clinic_id
        if self.instance.pk is not None:
            self.initial["takes_opioids"] = "yes" if self.instance.takes_opioids else "no"
        self.helper = FormHelper()
        self.helper.form_id = "patient-form"
        # novalidate: the server's messages are the clearer ones. The page's script asks the
        # medication screen as the list is typed (the server checks again on save).
        self.helper.attrs = {"novalidate": "", "data-screen-url": reverse("medication_screen")}
        self.helper.layout = Layout(
            Fieldset(
                "Patient",
                Row(Column("first_name"), Column("last_name")),
                Row(Column("date_of_birth"), Column("sex"), Column("phone")),
            ),
            Fieldset(
                "Shipping address",
                Row(Column("address_line1"), Column("address_line2")),
                Row(Column("city"), Column("state"), Column("postal_code")),
            ),
            Fieldset(
                "Medical",
                "allergies",
                "current_medications",
                "takes_opioids",
                HTML(
                    '<div id="opioid-contradiction" class="alert alert-warning small" '
                    'role="alert" hidden></div>'
                ),
                "conditions",
                "pregnant_or_breastfeeding",
                "liver_disease",
            ),
            Submit("save", "Save patient"),
            HTML('<a class="btn btn-link" href="{{ cancel_url }}">Cancel</a>'),
        )

    def clean(self):
        cleaned = super().clean()
        self._check_opioid_answer(cleaned)
        first, last, born = (cleaned.get(k) for k in ("first_name", "last_name", "date_of_birth"))
        if not (first and last and born):
            return cleaned
        duplicates = Patient.objects.likely_duplicates(
            clinic_id=self.clinic_id, first_name=first, last_name=last, date_of_birth=born
        )
        if self.instance.pk is not None:
            duplicates = duplicates.exclude(pk=self.instance.pk)
        existing = duplicates.first()
        if existing is None:
            return cleaned
        # Offer the confirmation box only once a likely duplicate has been shown.
        self.helper.layout.insert(-2, "confirm_not_duplicate")
        if not cleaned.get("confirm_not_duplicate"):
            self.add_error(
                None,
                format_html(
                    'Your clinic already has a patient named {} born {}: <a href="{}">open that '
                    "record</a>, or tick the box below if this is a different person.",
                    existing.full_name,
                    existing.date_of_birth.strftime("%m/%d/%Y"),
                    reverse("patient_detail", args=[existing.pk]),
                ),
            )
        return cleaned

    def _check_opioid_answer(self, cleaned: dict) -> None:
        """ "No opioids" and a medication list that names one cannot both be true: the order
        form would refuse every order later without saying how to clear it."""
        if cleaned.get("takes_opioids") is not False:
            return
        message = opioid_contradiction(
            mentions(cleaned.get("current_medications") or "", Group.OPIOID)
        )
        if message:
            self.add_error("takes_opioids", message)

    @property
    def patient_fields(self) -> dict:
        return {name: self.cleaned_data[name] for name in self.Meta.fields}


def opioid_contradiction(found: list[Mention]) -> str:
    """What to tell a prescriber who answered "no opioids" above a list that names these
    opioids (medications.mentions)."""
    if not found:
        return ""
    return (
        f"The current medications name an opioid ({dosing.named(found)}), but the answer "
        'here is "No". Answer "Yes" if the patient takes it, or remove it from the list if '
        "they have stopped."
    )


REASON_FOR_COMPOUNDING = (
    "Low-dose strength not commercially available: marketed naltrexone is 50 mg tablets."
)


class OrderForm(forms.Form):
    """A new LDN prescription and its first order. The form checks types; the rules run in
    order_submit, and their findings come back onto these fields."""

    dosage_form = forms.ChoiceField(label="Dosage form")
    concentration_mg_per_ml = forms.TypedChoiceField(
        label="Concentration", required=False, coerce=Decimal, empty_value=None,
        help_text="For liquids, drops and cream.",
    )  # fmt: skip
    steps = forms.CharField(label="Schedule", help_text=SCHEDULE_HELP)
    doses_per_day = forms.IntegerField(label="Doses per day", initial=1, min_value=0, max_value=24)
    time_of_day = forms.ChoiceField(choices=TimeOfDay.choices, initial=TimeOfDay.BEDTIME)
    quantity = forms.DecimalField(
        max_digits=8, decimal_places=2, help_text="Capsules, or mL for liquids, drops and cream."
    )
    days_supply = forms.IntegerField(label="Days' supply", min_value=0, max_value=10000)
    refills = forms.IntegerField(label="Refills", initial=0, min_value=0, max_value=99)
    diagnosis_codes = forms.CharField(
        label="Diagnosis codes (ICD-10-CM)", help_text="One or more, e.g. M79.7, G35.A"
    )
    reason_for_compounding = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}), initial=REASON_FOR_COMPOUNDING
    )
    ship_to = forms.ChoiceField(choices=ShipTo.choices, initial=ShipTo.CLINIC)
    needed_by = DateField(
        required=False, widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
    )
    acknowledge = forms.MultipleChoiceField(
        label="I have reviewed", required=False, widget=forms.CheckboxSelectMultiple
    )
    reason = forms.CharField(
        label="Reason (duplicate therapy, early refill)",
        required=False,
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 2}),
    )
    idempotency_key = forms.UUIDField(widget=forms.HiddenInput)

    def __init__(self, *args, catalogue, signers=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.catalogue = catalogue
        offer_catalogue(self, catalogue)
        self.fields["idempotency_key"].initial = uuid.uuid4()
        prepare_checks(self, signers)

    def clean_steps(self):
        return parse_schedule(self.cleaned_data["steps"])

    def clean_diagnosis_codes(self):
        return parse_codes(self.cleaned_data["diagnosis_codes"])

    def clean_needed_by(self):
        needed_by = self.cleaned_data["needed_by"]
        if problem := needed_by_problem(needed_by):
            raise forms.ValidationError(problem)
        return needed_by

    def regimen(self) -> Regimen:
        data = self.cleaned_data
        liquid = data["dosage_form"] != DosageForm.CAPSULE
        return Regimen(
            dosage_form=dosing.DosageForm(data["dosage_form"]),
            steps=data["steps"],
            doses_per_day=data["doses_per_day"],
            quantity=data["quantity"],
            days_supply=data["days_supply"],
            refills=data["refills"],
            concentration_mg_per_ml=data["concentration_mg_per_ml"] if liquid else None,
            time_of_day=data["time_of_day"],
        )

    def show_findings(self, findings, unacknowledged, earlier=()) -> None:
        show_findings(self, findings, unacknowledged, earlier)


def show_findings(form: forms.Form, findings, unacknowledged, earlier=()) -> None:
    """Put the rules' errors on their fields (or on top, naming the field, when the form has
    no such field), and offer a tick for each warning not confirmed before (`earlier`: key and
    message of those); the refusal of unticked warnings goes next to the ticks."""
    form.findings = findings
    # The errors that are not about a field of the form, with the field they are about: on a
    # page that shows the rules before anything is sent (an unbound form), only these.
    form.refusals = [
        f"{field_label(f.field)}: {f.message}"
        for f in findings
        if f.severity == Severity.ERROR and form_field_of(f.field) not in form.fields
    ]
    earlier = set(earlier)
    form.confirmed_before = [f for f in findings if (finding_key(f), f.message) in earlier]
    for finding in findings:
        if finding.severity == Severity.ERROR and form.is_bound:
            name = form_field_of(finding.field)
            if name not in form.fields:
                name = None
            message = finding.message
            if name is None:
                message = f"{field_label(finding.field)}: {message}"
            form.add_error(name, message)
    warnings = [
        f for f in findings if f.severity == Severity.WARNING and f not in form.confirmed_before
    ]
    if "acknowledge" in form.fields:
        form.fields["acknowledge"].choices = [
            (finding_key(w), f"{field_label(w.field)}: {w.message}") for w in warnings
        ]
    form.reason_needed = any(w.code in REASON_REQUIRED for w in warnings)
    if "acknowledge" not in form.fields:  # a draft: the prescriber confirms when signing
        form.warnings_to_sign = warnings
        return
    if unacknowledged and form.is_bound:
        form.add_error("acknowledge", unconfirmed_message(unacknowledged))


def form_field_of(finding_field: str) -> str | None:
    """'steps.2.dose_mg' -> 'steps'; patient facts are not on this form (None: shown on top)."""
    name = finding_field.split(".", 1)[0]
    return None if name == "patient" else name


def prepare_checks(form: forms.Form, signers) -> None:
    """The checks part of an order or refill form before the rules run: the warnings to
    confirm are offered once the rules have raised them (show_findings); clinic staff name the
    prescriber to sign instead (`signers`, None for a prescriber)."""
    form.fields["acknowledge"].choices = [
        (key, key) for key in (form.data.getlist("acknowledge") if form.is_bound else [])
    ]
    form.findings, form.confirmed_before, form.refusals = [], [], []
    form.reason_needed = form.drafting = False
    form.warnings_to_sign = []
    if signers is not None:
        draft_for_signature(form, signers)


def draft_for_signature(form: forms.Form, signers) -> None:
    """The form of clinic staff: they name the prescriber who signs (`signers`: the clinic's),
    and the warnings wait for that prescriber's review instead of being confirmed here."""
    form.fields["signer"] = forms.ModelChoiceField(
        queryset=signers,
        label="Prescriber to sign",
        empty_label=None if len(signers) == 1 else "---------",
        help_text="The draft waits for their signature; the pharmacy sees it once signed.",
    )
    del form.fields["acknowledge"], form.fields["reason"]
    form.drafting = True


class AmendForm(OrderForm):
    """The prescription again, changed, in answer to the pharmacy's question."""

    answer = forms.CharField(
        label="Your answer to the pharmacy", required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
    )  # fmt: skip

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in ("ship_to", "needed_by", "idempotency_key"):
            del self.fields[name]

    @classmethod
    def initial_from(cls, prescription) -> dict:
        return {
            "dosage_form": prescription.dosage_form,
            "concentration_mg_per_ml": (
                quantity_text(prescription.concentration_mg_per_ml)
                if prescription.concentration_mg_per_ml is not None
                else ""
            ),
            "steps": format_schedule(prescription.steps.all()),
            "doses_per_day": prescription.doses_per_day,
            "time_of_day": prescription.time_of_day,
            # The lines of the schedule as written (a titration also has a refill's lines).
            "quantity": sum(
                line.quantity for line in prescription.lines.filter(phase=FillSchedule.AS_WRITTEN)
            ),
            "days_supply": prescription.days_supply,
            "refills": prescription.refills_authorized,
            "diagnosis_codes": ", ".join(prescription.diagnosis_codes),
            "reason_for_compounding": prescription.reason_for_compounding,
        }


def offer_catalogue(form: forms.Form, catalogue) -> None:
    """The dosage forms and concentrations the pharmacy makes now, as the form's choices."""
    form.fields["dosage_form"].choices = catalogue.dosage_forms()
    form.fields["concentration_mg_per_ml"].choices = [("", "---------")] + [
        (f"{c:f}", f"{c:f} mg/mL ({DosageForm(dosage_form).label.lower()})")
        for dosage_form, _ in catalogue.dosage_forms()
        for c in catalogue.concentrations(dosage_form)
    ]


class ProtocolForm(forms.Form):
    """A clinic's named titration protocol: the schedule part of the order form."""

    name = forms.CharField(max_length=80, help_text="e.g. “Standard 1.5 → 4.5 mg”")
    dosage_form = OrderForm.base_fields["dosage_form"]
    concentration_mg_per_ml = OrderForm.base_fields["concentration_mg_per_ml"]
    steps = OrderForm.base_fields["steps"]
    doses_per_day = OrderForm.base_fields["doses_per_day"]
    time_of_day = OrderForm.base_fields["time_of_day"]
    days_supply = OrderForm.base_fields["days_supply"]
    refills = OrderForm.base_fields["refills"]

    def __init__(self, *args, catalogue, **kwargs):
        super().__init__(*args, **kwargs)
        offer_catalogue(self, catalogue)

    def clean_steps(self):
        return format_schedule(parse_schedule(self.cleaned_data["steps"]))

    @staticmethod
    def initial_from(protocol) -> dict:
        return {
            name: getattr(protocol, name)
            for name in ProtocolForm.base_fields
            if name != "concentration_mg_per_ml"
        } | {
            "concentration_mg_per_ml": (
                ""
                if protocol.concentration_mg_per_ml is None
                else f"{protocol.concentration_mg_per_ml:f}"
            )
        }


class AnswerForm(forms.Form):
    answer = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), max_length=2000)


class RefillForm(forms.Form):
    """The next fill of a prescription: where it goes, and whether the patient titrates
    again; the warnings of the rules (checked against the records as they are now) are
    confirmed here, with a reason where one is needed."""

    ship_to = forms.ChoiceField(choices=ShipTo.choices, initial=ShipTo.CLINIC)
    needed_by = DateField(
        required=False, widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
    )
    retitrate = forms.BooleanField(
        label="Titrate again from the first step (after a break in treatment)",
        required=False,
        help_text="Otherwise the refill continues at the maintenance dose.",
    )
    acknowledge = OrderForm.base_fields["acknowledge"]
    reason = OrderForm.base_fields["reason"]
    idempotency_key = forms.UUIDField(widget=forms.HiddenInput)

    def __init__(self, *args, signers=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["idempotency_key"].initial = uuid.uuid4()
        prepare_checks(self, signers)

    clean_needed_by = OrderForm.clean_needed_by

    def show_findings(self, findings, unacknowledged, earlier=()) -> None:
        show_findings(self, findings, unacknowledged, earlier)


class CancelForm(forms.Form):
    reason = forms.CharField(required=False, max_length=500)


class OrderFilterForm(forms.Form):
    """The order list's filters: status, patient name or order number, and submission dates."""

    status = forms.ChoiceField(required=False, choices=[("", "All statuses"), *OrderStatus.choices])
    q = forms.CharField(required=False, max_length=100, label="Patient or order number")
    since = DateField(
        required=False, label="Submitted from",
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )  # fmt: skip
    until = DateField(
        required=False, label="Submitted until",
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )  # fmt: skip

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name, field in self.fields.items():
            field.widget.attrs["class"] = "form-select" if name == "status" else "form-control"
        self.fields["q"].widget.input_type = "search"

    def clean(self):
        data = super().clean()
        since, until = data.get("since"), data.get("until")
        if since and until and since > until:
            self.add_error("until", "The end date is before the start date.")
        return data

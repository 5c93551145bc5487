"""Forms of the patient's pages, and the clinic's invitation on the patient's page."""

from decimal import Decimal

from django import forms
from django.utils import timezone

from core.forms import DateField

from .models import SCALE_TOP, SIDE_EFFECT_CHOICES, DiaryEntry, PatientAccess, TimeTaken
from .order_input import DOSE_DIGITS
from .titration_advice import SideEffect

SCORES = [(n, str(n)) for n in range(SCALE_TOP + 1)]
DATE_INPUT = forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
# 0 to 10 as a row of buttons, a thumb's width each on a phone (templates/patients/_scale.html).
SCALE = forms.RadioSelect(attrs={"class": "btn-check"})


class PatientInviteForm(forms.ModelForm):
    email = forms.EmailField(
        label="Patient's email", help_text="The invitation is a link only: no health information."
    )

    class Meta:
        model = PatientAccess
        fields = ["diary_frequency", "remind_clinic"]


class LinkForm(forms.Form):
    """What the patient confirms when opening a link: their date of birth, and the terms the
    first time."""

    date_of_birth = DateField(label="Your date of birth", widget=DATE_INPUT)
    accept_terms = forms.BooleanField(
        label="I have read and accept the terms of use", required=False
    )

    def __init__(self, *args, ask_terms: bool, **kwargs):
        super().__init__(*args, **kwargs)
        if not ask_terms:
            del self.fields["accept_terms"]


class SignInLinkForm(forms.Form):
    email = forms.EmailField(
        label="Your email address",
        widget=forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True}),
    )


class DiaryEntryForm(forms.ModelForm):
    day = DateField(widget=DATE_INPUT)
    dose_taken = forms.TypedChoiceField(
        label="Did you take your dose?",
        choices=[("yes", "Yes"), ("no", "No")],
        coerce=lambda answer: answer == "yes",
        widget=forms.RadioSelect,
    )
    dose_mg = forms.DecimalField(
        label="Dose taken (mg)",
        required=False,
        min_value=Decimal("0.001"),
        **DOSE_DIGITS,
        widget=forms.NumberInput(attrs={"step": "0.001", "inputmode": "decimal"}),
    )
    time_taken = forms.ChoiceField(
        label="When did you take it?",
        choices=TimeTaken.choices,
        required=False,
        widget=forms.RadioSelect,
    )
    score = forms.TypedChoiceField(choices=SCORES, coerce=int, widget=SCALE)
    sleep_quality = forms.TypedChoiceField(
        label="How did you sleep? (0 = very badly, 10 = very well)",
        choices=SCORES,
        coerce=int,
        widget=SCALE,
    )
    side_effects = forms.MultipleChoiceField(
        label="Side effects since your last entry",
        choices=SIDE_EFFECT_CHOICES,
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )

    class Meta:
        model = DiaryEntry
        fields = [
            "day", "dose_taken", "dose_mg", "time_taken", "score", "sleep_quality",
            "side_effects", "other_side_effect", "note",
        ]  # fmt: skip
        labels = {"other_side_effect": "Other side effect", "note": "Anything else to note"}
        widgets = {"note": forms.Textarea(attrs={"rows": 3})}

    def __init__(self, *args, symptom: str, correcting: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["score"].label = f"Your {symptom} today (0 = none, 10 = the worst)"
        if correcting:
            del self.fields["day"]
        else:
            self.fields["day"].initial = timezone.localdate()

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("dose_taken") is False:
            cleaned["dose_mg"], cleaned["time_taken"] = None, ""
        elif cleaned.get("dose_taken") and cleaned.get("dose_mg") is None:
            self.add_error("dose_mg", "Enter the dose you took (it is on your bottle's label).")
        effects = cleaned.get("side_effects") or []
        if SideEffect.OTHER in effects and not (cleaned.get("other_side_effect") or "").strip():
            self.add_error("other_side_effect", "Say which other side effect you had.")
        if SideEffect.OTHER not in effects:
            cleaned["other_side_effect"] = ""
        return cleaned

    def answers(self) -> dict:
        return {name: self.cleaned_data[name] for name in self.fields if name != "day"}


class PatientSettingsForm(forms.ModelForm):
    class Meta:
        model = PatientAccess
        fields = ["diary_frequency"]
        labels = {"diary_frequency": "Remind me to write in my diary"}

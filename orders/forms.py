from crispy_forms.helper import FormHelper
from crispy_forms.layout import HTML, Column, Fieldset, Layout, Row, Submit
from django import forms
from django.urls import reverse
from django.utils.html import format_html

from .models import Patient

YES_NO = [("yes", "Yes"), ("no", "No")]


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
    confirm_not_duplicate = forms.BooleanField(
        label="This is a different patient with the same name and date of birth",
        required=False,
    )

    class Meta:
        model = Patient
        fields = Patient.EDITABLE_FIELDS
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
        self.helper.attrs = {"novalidate": ""}  # the server's messages are the clearer ones
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
            Fieldset("Medical", "allergies", "current_medications", "takes_opioids"),
            Submit("save", "Save patient"),
            HTML('<a class="btn btn-link" href="{{ cancel_url }}">Cancel</a>'),
        )

    def clean(self):
        cleaned = super().clean()
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

    @property
    def patient_fields(self) -> dict:
        return {name: self.cleaned_data[name] for name in self.Meta.fields}

from crispy_forms.helper import FormHelper
from crispy_forms.layout import Column, Fieldset, Layout, Row
from django import forms
from django.utils import timezone

from core.forms import DateField

from .models import Clinic, Licence, Prescriber
from .services import DUPLICATE_NPI, npi_in_use


def _fragment_helper(layout: Layout) -> FormHelper:
    """Several forms share one <form> element on the page, so the helpers render no form tag."""
    helper = FormHelper()
    helper.form_tag = False
    helper.layout = layout
    return helper


class PrescriberApplicationForm(forms.ModelForm):
    # Longer than 10 so that "1234 567 893" reaches clean_npi; the model validates the digits.
    npi = forms.CharField(
        label="NPI", max_length=20, help_text="10 digits, from the NPPES registry."
    )
    email = forms.EmailField(
        help_text="Your sign-in. The link to set your password is sent here once approved."
    )

    class Meta:
        model = Prescriber
        fields = Prescriber.PROFILE_FIELDS

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["npi"].widget.attrs.update(inputmode="numeric", autocomplete="off")
        self.helper = _fragment_helper(
            Layout(
                Fieldset(
                    "You",
                    Row(Column("first_name"), Column("last_name"), Column("credentials")),
                    Row(Column("npi")),
                    Row(Column("email"), Column("phone")),
                )
            )
        )

    def clean_npi(self):
        # People paste NPIs with spaces or dashes; the model's validator checks the digits.
        npi = "".join(self.cleaned_data["npi"].replace("-", " ").split())
        if npi_in_use(npi):
            raise forms.ValidationError(DUPLICATE_NPI, code="duplicate_npi")
        return npi


class ClinicForm(forms.ModelForm):
    prefix = "clinic"

    class Meta:
        model = Clinic
        fields = [
            "name",
            "address_line1",
            "address_line2",
            "city",
            "state",
            "postal_code",
            "phone",
            "label_email",
        ]
        labels = {"name": "Clinic name"}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.helper = _fragment_helper(
            Layout(
                Fieldset(
                    "Your clinic",
                    "name",
                    Row(Column("address_line1"), Column("address_line2")),
                    Row(Column("city"), Column("state"), Column("postal_code")),
                    Row(Column("phone"), Column("label_email")),
                )
            )
        )


class LicenceForm(forms.ModelForm):
    """The state licence the applicant prescribes under (more are added by the pharmacy)."""

    prefix = "licence"
    expires_on = DateField(label="Expires on", help_text="As the state board shows it.")

    class Meta:
        model = Licence
        fields = ["state", "number", "expires_on"]
        labels = {"state": "Licence state", "number": "State licence number"}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["expires_on"].widget = forms.DateInput(attrs={"type": "date"})
        self.helper = _fragment_helper(
            Layout(
                Fieldset(
                    "Your licence",
                    Row(Column("state"), Column("number"), Column("expires_on")),
                )
            )
        )

    def clean_expires_on(self):
        expires_on = self.cleaned_data["expires_on"]
        if expires_on < timezone.localdate():
            raise forms.ValidationError(
                "This licence has expired: apply with a licence that is active.", code="expired"
            )
        return expires_on


class StaffInviteForm(forms.Form):
    """A nurse or assistant a prescriber adds to the clinic."""

    first_name = forms.CharField(max_length=150)
    last_name = forms.CharField(max_length=150)
    email = forms.EmailField(help_text="Their sign-in: the link to set a password goes here.")


class ApiKeyForm(forms.Form):
    """A new API key of the clinic: its name, and whether orders sent with it are signed."""

    name = forms.CharField(max_length=100, help_text='What will use it, e.g. "Clinic EHR".')
    can_sign = forms.BooleanField(
        label="Orders sent with this key are signed by me",
        required=False,
        help_text="Without it, orders arrive as drafts that a prescriber signs here. With it, "
        "the clinic's system must have you sign each prescription there.",
    )
    password = forms.CharField(
        label="Your password (to sign with the key)",
        required=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )

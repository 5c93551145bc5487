"""The patient's pages (`/my/...`, on a phone first) and the clinic's invitation and revocation
on the patient's page. A patient sees only their own record: every query here starts from the
signed-in account's own access."""

from axes.handlers.proxy import AxesProxyHandler
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse_lazy
from django.utils import timezone
from django.views import View
from django.views.generic import FormView, TemplateView

from core.audit import record_when_shown
from core.models import AccessAction
from core.sessions import PATIENT, session_role_set

from .models import DiaryEntry, PatientAccess
from .patient_access import (
    LinkRefused,
    correctable,
    diary_entry_correct,
    diary_entry_record,
    link_user,
    patient_access_invite,
    patient_access_revoke,
    patient_link_accept,
    patient_refill_request,
    patient_settings_update,
    patient_sign_in_link_send,
)
from .patient_forms import (
    DiaryEntryForm,
    LinkForm,
    PatientInviteForm,
    PatientSettingsForm,
    SignInLinkForm,
)
from .patient_regimen import patient_regimen
from .services import PrescriptionNotAccepted, SignerRefused
from .titration_advice import main_symptom
from .views import ClinicPatientsMixin

# The entries the patient's pages list (the chart on the prescriber's page shows them all).
RECENT_ENTRIES = 14


def _refused(form, write) -> bool:
    """Runs a service's write; its refusal (ValidationError) is shown on the form, by field
    where it names one. Whether it was refused."""
    try:
        write()
    except ValidationError as refused:
        if hasattr(refused, "error_dict"):
            for field, errors in refused.error_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            form.add_error(None, refused)
        return True
    return False


# --- The clinic's side: invite and revoke, from the patient's page -------------------------


class PatientInviteView(ClinicPatientsMixin, FormView):
    form_class = PatientInviteForm
    template_name = "patients/invite.html"

    def get_patient(self):
        return get_object_or_404(self.patients(), pk=self.kwargs["pk"])

    def get_form_kwargs(self):
        access = PatientAccess.objects.filter(patient=self.get_patient()).first()
        kwargs = super().get_form_kwargs() | {"instance": access}
        if access is not None:
            kwargs.setdefault("initial", {})["email"] = access.user.email
        return kwargs

    def get_context_data(self, **kwargs):
        return super().get_context_data(patient=self.get_patient(), **kwargs)

    def form_valid(self, form):
        patient = self.get_patient()
        if _refused(form, lambda: patient_access_invite(
            patient=patient, email=form.cleaned_data["email"], actor=self.request.user,
            diary_frequency=form.cleaned_data["diary_frequency"],
            remind_clinic=form.cleaned_data["remind_clinic"],
        )):  # fmt: skip
            return self.form_invalid(form)
        messages.success(
            self.request,
            f"Invitation sent to {form.cleaned_data['email']}. The link works for "
            f"{settings.PATIENT_INVITATION_DAYS} days.",
        )
        return redirect("patient_detail", patient.pk)


class PatientRevokeView(ClinicPatientsMixin, View):
    def post(self, request, pk):
        patient = get_object_or_404(self.patients(), pk=pk)
        access = get_object_or_404(PatientAccess, patient=patient)
        patient_access_revoke(access=access, actor=request.user)
        messages.success(request, "The patient's access is revoked: their links and sessions "
                         "no longer work.")  # fmt: skip
        return redirect("patient_detail", patient.pk)


# --- Signing in by link --------------------------------------------------------------------


class PatientLinkView(FormView):
    """The emailed link: the patient confirms their date of birth (and accepts the terms the
    first time), and is signed in. Opening the link only shows the form: the link is used up
    by the confirmation. `invitation`: the clinic's invitation (its own page, as its link lasts
    longer), else a sign-in link the patient asked for."""

    form_class = LinkForm
    template_name = "patients/link.html"
    invitation = False

    def dispatch(self, request, *args, **kwargs):
        self.token = request.GET.get("sesame", "")
        try:
            self.user = link_user(request, self.token, invitation=self.invitation)
        except LinkRefused:
            return self.refused()
        access = self.user.patient_access
        self.ask_terms = self.invitation and access.terms_accepted_at is None
        return super().dispatch(request, *args, **kwargs)

    def refused(self):
        return render(self.request, "patients/link_refused.html", {"form": SignInLinkForm()})

    def get_form_kwargs(self):
        return super().get_form_kwargs() | {"ask_terms": self.ask_terms}

    def get_context_data(self, **kwargs):
        return super().get_context_data(ask_terms=self.ask_terms, **kwargs)

    def form_valid(self, form):
        credentials = {"username": self.user.email}
        if AxesProxyHandler.is_locked(self.request, credentials):
            form.add_error(None, "Too many wrong answers: please try again later.")
            return self.form_invalid(form)
        try:
            if _refused(form, lambda: patient_link_accept(
                self.request, token=self.token, invitation=self.invitation,
                date_of_birth=form.cleaned_data["date_of_birth"],
                accept_terms=form.cleaned_data.get("accept_terms", False),
            )):  # fmt: skip
                return self.form_invalid(form)
        except LinkRefused:
            return self.refused()
        login(self.request, self.user, backend="core.auth.LinkBackend")
        session_role_set(self.request, PATIENT)
        return redirect("patient_home")


class PatientSignInView(FormView):
    """A patient asks for a sign-in link (the page answers the same for any address)."""

    form_class = SignInLinkForm
    template_name = "patients/sign_in.html"

    def form_valid(self, form):
        patient_sign_in_link_send(email=form.cleaned_data["email"])
        minutes = round(settings.SESAME_MAX_AGE.total_seconds() / 60)
        messages.info(
            self.request,
            "If this address belongs to a patient whose clinic invited them, a sign-in link is on "
            f"its way. It works once, for {minutes} minutes.",
        )
        return redirect("patient_sign_in")


class PatientTermsView(TemplateView):
    template_name = "patients/terms.html"

    def get_context_data(self, **kwargs):
        return super().get_context_data(pharmacy_phone=settings.PHARMACY_PHONE, **kwargs)


# --- The patient's own pages -----------------------------------------------------------------


class PatientRequiredMixin(LoginRequiredMixin):
    """A signed-in patient with a live access: self.access, self.patient. Anyone else is
    refused (403): the portal's other people have their own pages."""

    login_url = reverse_lazy("patient_sign_in")

    def dispatch(self, request, *args, **kwargs):
        if not request.user.is_authenticated:
            return self.handle_no_permission()
        access = (
            PatientAccess.objects.live().select_related("patient").filter(user=request.user)
            .first()
        )  # fmt: skip
        if access is None:
            raise PermissionDenied("These pages are for patients the clinic invited.")
        self.access, self.patient = access, access.patient
        return super().dispatch(request, *args, **kwargs)

    def get_context_data(self, **kwargs):
        return super().get_context_data(patient_portal=True, access=self.access, **kwargs)

    def symptom(self) -> str:
        prescription = self.patient.prescriptions.order_by("-created_at", "-pk").first()
        return main_symptom(prescription.diagnosis_codes if prescription else [])


class PatientHomeView(PatientRequiredMixin, TemplateView):
    template_name = "patients/home.html"

    def get(self, request, *args, **kwargs):
        response = super().get(request, *args, **kwargs)
        record_when_shown(request, response, AccessAction.VIEWED_PATIENT, self.patient)
        return response

    def get_context_data(self, **kwargs):
        entries = self.patient.diary_entries.order_by("-day")[:RECENT_ENTRIES]
        today = timezone.localdate()
        return super().get_context_data(
            regimen=patient_regimen(self.patient),
            entries=entries,
            wrote_today=any(entry.day == today for entry in entries),
            pharmacy_phone=settings.PHARMACY_PHONE,
            **kwargs,
        )


class PatientRefillView(PatientRequiredMixin, View):
    def post(self, request):
        regimen = patient_regimen(self.patient)
        if regimen is None or not regimen.may_ask_for_refill:
            messages.warning(request, "A refill cannot be asked for now: the page says when.")
            return redirect("patient_home")
        try:
            patient_refill_request(
                access=self.access, actor=request.user, prescription=regimen.prescription
            )
        except (PrescriptionNotAccepted, SignerRefused, PermissionDenied):
            messages.warning(
                request,
                "The refill could not be asked for here: please call your clinic, or the "
                f"pharmacy at {settings.PHARMACY_PHONE}.",
            )
            return redirect("patient_home")
        messages.success(
            request,
            "Your refill request is with your prescriber, who signs it before the pharmacy "
            "prepares it.",
        )
        return redirect("patient_home")


class DiaryEntryCreateView(PatientRequiredMixin, FormView):
    form_class = DiaryEntryForm
    template_name = "patients/diary_form.html"

    def get_form_kwargs(self):
        kwargs = super().get_form_kwargs() | {"symptom": self.symptom()}
        regimen = patient_regimen(self.patient)
        kwargs["initial"] = {"dose_taken": "yes", "time_taken": self._usual_time(regimen)}
        dose = regimen.dose_on(timezone.localdate()) if regimen else None
        if dose is not None:
            kwargs["initial"]["dose_mg"] = dose
        return kwargs

    @staticmethod
    def _usual_time(regimen) -> str:
        return regimen.prescription.time_of_day if regimen else ""

    def form_valid(self, form):
        if _refused(form, lambda: diary_entry_record(
            access=self.access, actor=self.request.user, day=form.cleaned_data["day"],
            **form.answers(),
        )):  # fmt: skip
            return self.form_invalid(form)
        messages.success(self.request, "Diary entry saved. You can correct it for 24 hours.")
        return redirect("patient_home")


class DiaryEntryUpdateView(PatientRequiredMixin, FormView):
    form_class = DiaryEntryForm
    template_name = "patients/diary_form.html"

    def get_entry(self) -> DiaryEntry:
        # Only the patient's own entry: any other is a 404.
        entry = DiaryEntry.objects.filter(patient=self.patient, pk=self.kwargs["pk"]).first()
        if entry is None:
            raise Http404("No such entry.")
        return entry

    def get(self, request, *args, **kwargs):
        self.entry = self.get_entry()
        return super().get(request, *args, **kwargs)

    def post(self, request, *args, **kwargs):
        self.entry = self.get_entry()
        if not correctable(self.entry):
            messages.warning(request, "An entry can be corrected for 24 hours after writing it.")
            return redirect("patient_home")
        return super().post(request, *args, **kwargs)

    def get_form_kwargs(self):
        kwargs = super().get_form_kwargs() | {"symptom": self.symptom(), "correcting": True}
        kwargs["instance"] = self.entry
        kwargs["initial"] = {"dose_taken": "yes" if self.entry.dose_taken else "no"}
        return kwargs

    def get_context_data(self, **kwargs):
        return super().get_context_data(
            entry=self.entry, correctable=correctable(self.entry), **kwargs
        )

    def form_valid(self, form):
        # The form's instance has the answers already; the service saves them under its checks.
        answers = form.answers()
        self.entry.refresh_from_db()
        if _refused(form, lambda: diary_entry_correct(
            entry=self.entry, access=self.access, actor=self.request.user, **answers
        )):  # fmt: skip
            return self.form_invalid(form)
        messages.success(self.request, "Diary entry corrected.")
        return redirect("patient_home")


class PatientSettingsView(PatientRequiredMixin, FormView):
    form_class = PatientSettingsForm
    template_name = "patients/settings.html"

    def get_form_kwargs(self):
        return super().get_form_kwargs() | {"instance": self.access}

    def form_valid(self, form):
        patient_settings_update(
            access=self.access, actor=self.request.user,
            diary_frequency=form.cleaned_data["diary_frequency"],
        )  # fmt: skip
        messages.success(self.request, "Reminders saved.")
        return redirect("patient_settings")

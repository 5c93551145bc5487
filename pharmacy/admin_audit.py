"""Who saw a patient's record, in the admin: the change pages of patients' records write an
access event when they showed one, and the access events are listed read-only, with the report
"Who saw this record" of one patient (the list filtered by ?patient=<id>)."""

from django.contrib import admin

from core.admin import ReadOnlyMixin
from core.audit import record_when_shown
from core.models import AccessAction
from core.pagination import EstimatedCountPaginator

from .selectors import about_patient

VIEW_ACCESS_EVENTS = "core.view_accessevent"


class RecordsAccessAdmin:
    """For the ModelAdmin of a patient's records: a GET of the change page that showed the
    record (200), or of a past version in its field history, writes an access event."""

    access_action: AccessAction

    def change_view(self, request, object_id, form_url="", extra_context=None):
        response = super().change_view(request, object_id, form_url, extra_context)
        shown = (getattr(response, "context_data", None) or {}).get("original")
        if shown is not None:  # None: no such record (a redirect) or the add page
            record_when_shown(request, response, self.access_action, shown)
        return response

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        response = super().history_form_view(request, object_id, version_id, extra_context)
        # A 200 means the version was found; the record is named by its id alone.
        shown = self.model(pk=self.model._meta.pk.to_python(object_id))
        record_when_shown(request, response, self.access_action, shown)
        return response


class PatientRecordFilter(admin.SimpleListFilter):
    """?patient=<id>: the events about that patient and everything of theirs (the report "Who
    saw this record"). Shown only when used; the patient is named by number, not by name."""

    title = "whose record"
    parameter_name = "patient"

    def _patient_id(self) -> int | None:
        value = self.value() or ""
        return int(value) if value.isdigit() and len(value) <= 18 else None

    def lookups(self, request, model_admin):
        if self.value() is None:
            return []
        if self._patient_id() is None:
            return [(self.value(), "Not a patient number: nothing to show")]
        return [(self.value(), f"Patient {self._patient_id()}, their prescriptions, orders, "
                               f"labels and recall lists")]  # fmt: skip

    def queryset(self, request, queryset):
        if self.value() is None:
            return queryset
        patient_id = self._patient_id()
        return queryset.none() if patient_id is None else queryset.filter(about_patient(patient_id))


class AccessEventAdmin(ReadOnlyMixin, admin.ModelAdmin):
    """The record of who saw what: read here, never added, changed or deleted (not even by a
    superuser; the model and, on PostgreSQL, a trigger refuse it too)."""

    list_display = ["created_at", "user_email", "action", "object_description", "record_count",
                    "client_address"]  # fmt: skip
    list_filter = [PatientRecordFilter, "action", ("user", admin.RelatedOnlyFieldListFilter),
                   "created_at"]  # fmt: skip
    search_fields = ["object_description"]
    show_full_result_count = False
    paginator = EstimatedCountPaginator  # it only grows
    fields = ["created_at", "user", "user_email", "action", "content_type", "object_id",
              "object_description", "record_count", "client_address", "user_agent",
              "path"]  # fmt: skip
    readonly_fields = fields

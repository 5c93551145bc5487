"""The admin kit every app's admin builds on, and the admin of the people who sign in."""

from django import forms
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import UserChangeForm as DjangoUserChangeForm
from django.contrib.auth.forms import UserCreationForm as DjangoUserCreationForm
from django.core.exceptions import PermissionDenied
from simple_history.admin import SimpleHistoryAdmin
from simple_history.template_utils import HistoricalRecordContextHelper

from .models import User


class UserCreationForm(DjangoUserCreationForm):
    class Meta:
        model = User
        fields = ("email", "first_name", "last_name")


class UserChangeForm(DjangoUserChangeForm):
    class Meta:
        model = User
        fields = "__all__"


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    form = UserChangeForm
    add_form = UserCreationForm
    ordering = ["email"]
    list_display = ["email", "first_name", "last_name", "is_staff", "is_active", "group_names"]
    list_filter = ["is_staff", "is_superuser", "is_active", "groups"]
    search_fields = ["email", "first_name", "last_name"]
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Name", {"fields": ("first_name", "last_name")}),
        (
            "Access",
            {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")},
        ),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = (
        (
            None,
            {
                "classes": ("wide",),
                "fields": ("email", "first_name", "last_name", "password1", "password2"),
            },
        ),
    )
    readonly_fields = ["last_login", "date_joined"]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("groups")

    @admin.display(description="groups")
    def group_names(self, user):
        return ", ".join(group.name for group in user.groups.all())


class ChoiceNamesHistory(HistoricalRecordContextHelper):
    """A change of a field with choices reads as their names ("Awaiting QC -> Released"),
    never as the stored codes."""

    def prepare_delta_change_value(self, change, value):
        field = self.model._meta.get_field(change.field)
        if field.choices and not isinstance(value, list):
            return dict(field.flatchoices).get(value, value)
        return super().prepare_delta_change_value(change, value)


class RecordHistoryAdmin(SimpleHistoryAdmin):
    """Field history shown in the admin as a record: it can be read, never posted back (the
    revert button is hidden by SIMPLE_HISTORY_REVERT_DISABLED; this refuses the request too)."""

    def get_historical_record_context_helper(self, request, historical_record):
        return ChoiceNamesHistory(self.model, historical_record)

    # The library's history list with its inline style moved to css/admin.css (CSP).
    object_history_template = "admin/record_history.html"
    object_history_list_template = "admin/record_history_list.html"

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        if request.method != "GET":
            raise PermissionDenied("History is a record: it cannot be reverted here.")
        return super().history_form_view(request, object_id, version_id, extra_context)


class ReadOnlyMixin:
    """Records the admin shows and nobody adds, changes or deletes there (services write them)."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReadOnlyInline(ReadOnlyMixin, admin.TabularInline):
    """Rows shown on their parent's page that nobody edits there (events, steps, lines)."""

    extra = 0


class ReasonForm(forms.Form):
    """The intermediate page of an admin action that needs a written reason."""

    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "cols": 60}), max_length=2000)

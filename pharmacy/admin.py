from decimal import Decimal

from django import forms
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import UserChangeForm as DjangoUserChangeForm
from django.contrib.auth.forms import UserCreationForm as DjangoUserCreationForm
from django.core.exceptions import PermissionDenied
from django.db.models import OuterRef, Subquery, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone
from simple_history.admin import SimpleHistoryAdmin

from orders.checks import bud_limit_days
from orders.dosing import units_text

from .bud import BudCategory
from .models import (
    Batch,
    BatchStatus,
    Formulation,
    FormulationVersion,
    FormulationVersionStatus,
    User,
)


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


class RecordHistoryAdmin(SimpleHistoryAdmin):
    """Field history shown in the admin as a record: it can be read, never posted back (the
    revert button is hidden by SIMPLE_HISTORY_REVERT_DISABLED; this refuses the request too)."""

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


@admin.register(Formulation)
class FormulationAdmin(RecordHistoryAdmin):
    """The catalogue: what prescribers may order (an active product with an approved master
    formulation record), its beyond-use limit, and the stock on the shelf."""

    list_display = [
        "name",
        "dosage_form",
        "unit",
        "is_active",
        "orderable",
        "bud_limit",
        "in_stock",
    ]
    list_filter = ["dosage_form", "is_active"]
    search_fields = ["name"]

    def get_queryset(self, request):
        approved = FormulationVersion.objects.filter(
            formulation=OuterRef("pk"), status=FormulationVersionStatus.APPROVED
        )
        usable = (
            Batch.objects.filter(
                formulation_version__formulation=OuterRef("pk"),
                status=BatchStatus.RELEASED,
                beyond_use_date__gte=timezone.localdate(),
            )
            .order_by()
            .values("formulation_version__formulation")
            .annotate(total=Sum("units_remaining"))
            .values("total")
        )
        return (
            super()
            .get_queryset(request)
            .annotate(
                approved_category=Subquery(approved.values("bud_category")[:1]),
                stock=Coalesce(Subquery(usable), Decimal(0)),
            )
        )

    @admin.display(boolean=True, description="orderable")
    def orderable(self, formulation) -> bool:
        return formulation.is_active and formulation.approved_category is not None

    @admin.display(description="beyond-use limit")
    def bud_limit(self, formulation) -> str:
        if formulation.approved_category is None:
            return "no approved record"
        category = BudCategory(formulation.approved_category)
        return f"{bud_limit_days(category)} days ({category.label})"

    @admin.display(description="in stock (released, in date)", ordering="stock")
    def in_stock(self, formulation) -> str:
        return units_text(formulation.stock, formulation.unit)


# Register the access event admin and the compounding admin.
from . import admin_audit, admin_compounding  # noqa: E402,F401

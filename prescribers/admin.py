from django.conf import settings
from django.contrib import admin
from django.db.models import Prefetch
from django.utils import timezone
from django.utils.html import format_html

from core.admin import ReadOnlyInline, ReasonForm, RecordHistoryAdmin
from core.admin_actions import run_for_each, with_form
from core.roles import is_pharmacist

from . import services
from .models import Clinic, Licence, Membership, MembershipStatus, Prescriber, PrescriberEvent
from .selectors import expiry_horizon


class MembershipInline(ReadOnlyInline):
    """Who belongs to the clinic, with which role."""

    model = Membership
    fields = ["user", "role", "status", "created_at"]
    readonly_fields = fields


@admin.register(Clinic)
class ClinicAdmin(RecordHistoryAdmin):
    list_display = ["name", "city", "state", "phone", "label_email", "created_at"]
    list_filter = ["state"]
    search_fields = ["name", "city", "label_email"]
    inlines = [MembershipInline]


class LicenceInline(admin.TabularInline):
    """The states the prescriber may prescribe in; the pharmacy keeps them up to date from the
    state boards' look-ups."""

    model = Licence
    fields = ["state", "number", "expires_on"]
    extra = 0


class ExpiryFilter(admin.SimpleListFilter):
    """The licences to chase: expired (the prescriber's orders for that state wait), expiring
    within LICENCE_EXPIRY_NOTICE_DAYS, or with no expiry date on file."""

    title = "expiry"
    parameter_name = "expiry"

    def lookups(self, request, model_admin):
        return [
            ("expired", "Expired"),
            ("soon", f"Expires within {settings.LICENCE_EXPIRY_NOTICE_DAYS} days"),
            ("unknown", "No date on file"),
        ]

    def queryset(self, request, queryset):
        today, horizon = timezone.localdate(), expiry_horizon()
        return {
            "expired": queryset.filter(expires_on__lt=today),
            "soon": queryset.filter(expires_on__gte=today, expires_on__lte=horizon),
            "unknown": queryset.filter(expires_on__isnull=True),
        }.get(self.value(), queryset)


@admin.register(Licence)
class LicenceAdmin(RecordHistoryAdmin):
    """Every prescriber's state licences, soonest to expire first; pharmacists record renewals
    (never delete: an expired licence stays on record)."""

    list_display = ["prescriber", "state", "number", "expires_on", "days_left"]
    list_filter = [ExpiryFilter, "state"]
    list_select_related = ["prescriber"]
    search_fields = ["prescriber__last_name", "prescriber__first_name", "prescriber__npi", "number"]
    ordering = ["expires_on", "pk"]
    fields = ["prescriber", "state", "number", "expires_on"]
    autocomplete_fields = ["prescriber"]

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="days left")
    def days_left(self, licence):
        return "—" if licence.days_left is None else licence.days_left


class PrescriberEventInline(ReadOnlyInline):
    model = PrescriberEvent
    fields = ["created_at", "actor", "from_status", "to_status", "note"]
    readonly_fields = fields


@admin.register(Prescriber)
class PrescriberAdmin(RecordHistoryAdmin):
    class Media:
        css = {"all": ["css/admin.css"]}

    list_display = ["__str__", "npi", "clinics", "status_badge_html", "applied_at"]
    list_filter = ["status", "credentials", "licences__state"]
    search_fields = [
        "first_name",
        "last_name",
        "npi",
        "user__email",
        "user__memberships__clinic__name",
    ]
    readonly_fields = ["user", "status", "clinics", "applied_at", "status_changed_at"]
    fields = [
        "user",
        "status",
        *Prescriber.PROFILE_FIELDS,
        "clinics",
        "applied_at",
        "status_changed_at",
    ]
    inlines = [LicenceInline, PrescriberEventInline]
    actions = ["approve", "accept_join_requests", "decline", "suspend", "reinstate"]

    def has_add_permission(self, request):
        return False  # prescribers apply on the portal

    def get_queryset(self, request):
        # The person and their clinics: one join, and one query for every row's memberships.
        memberships = Membership.objects.select_related("clinic")
        return (
            super()
            .get_queryset(request)
            .select_related("user")
            .prefetch_related(Prefetch("user__memberships", queryset=memberships))
        )

    @admin.display(description="clinics")
    def clinics(self, prescriber):
        """Each clinic with the person's role there, and whether it is active."""
        return "; ".join(
            f"{m.clinic} ({m.get_role_display().split(' (')[0].lower()}"
            + ("" if m.status == MembershipStatus.ACTIVE else f", {m.get_status_display().lower()}")
            + ")"
            for m in prescriber.user.memberships.all()
        )

    @admin.display(description="status", ordering="status")
    def status_badge_html(self, prescriber):
        # A class, not a style attribute: the Content-Security-Policy allows no inline style.
        return format_html(
            '<strong class="prescriber-status prescriber-status-{}">{}</strong>',
            prescriber.status_badge,
            prescriber.get_status_display(),
        )

    def _decide(self, request, queryset, service, done: str):
        run_for_each(self, request, queryset,
                     lambda p: service(prescriber=p, actor=request.user), done)  # fmt: skip

    def _decide_with_reason(self, request, queryset, service, done: str, title: str):
        return with_form(
            self, request, queryset, form_class=ReasonForm, title=title, done=done,
            call=lambda p, data: service(prescriber=p, actor=request.user, reason=data["reason"]),
        )  # fmt: skip

    @admin.action(
        description="Approve selected applications (emails a set-password link)",
        permissions=["decide"],
    )
    def approve(self, request, queryset):
        self._decide(
            request,
            queryset,
            services.prescriber_approve,
            ("prescriber approved", "prescribers approved"),
        )

    @admin.action(
        description="Accept the selected prescribers into the clinics they asked to join",
        permissions=["decide"],
    )
    def accept_join_requests(self, request, queryset):
        self._decide(request, queryset, services.prescriber_join_requests_accept,
                     ("prescriber accepted into their clinic",
                      "prescribers accepted into their clinics"))  # fmt: skip

    @admin.action(description="Decline selected applications", permissions=["decide"])
    def decline(self, request, queryset):
        return self._decide_with_reason(
            request,
            queryset,
            services.prescriber_decline,
            ("prescriber declined", "prescribers declined"),
            "Decline applications",
        )

    @admin.action(description="Suspend selected prescribers", permissions=["decide"])
    def suspend(self, request, queryset):
        return self._decide_with_reason(
            request,
            queryset,
            services.prescriber_suspend,
            ("prescriber suspended", "prescribers suspended"),
            "Suspend prescribers",
        )

    @admin.action(description="Reinstate selected suspended prescribers", permissions=["decide"])
    def reinstate(self, request, queryset):
        self._decide(
            request,
            queryset,
            services.prescriber_reinstate,
            ("prescriber reinstated", "prescribers reinstated"),
        )

    def has_decide_permission(self, request):
        return is_pharmacist(request.user)

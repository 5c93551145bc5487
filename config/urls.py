from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.http import HttpResponsePermanentRedirect
from django.templatetags.static import static
from django.urls import include, path, re_path
from django.views.decorators.http import require_safe
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import SimpleRouter

from core import portal_second_factor
from core.api import ProblemTypeView
from core.fhir_api import NoSuchRouteView
from core.forms import LoginForm, PortalPasswordResetForm
from core.sessions import refuse_patients
from orders import api as order_api
from orders import fhir_views as order_fhir
from orders import order_views as order_pages
from orders import patient_views, protocol_views, signing_views
from orders import views as order_views
from pharmacy import api as pharmacy_api
from pharmacy import fhir_views as pharmacy_fhir
from pharmacy import views as pharmacy_views
from pharmacy import webhook_views
from prescribers import api_key_views
from prescribers import views as prescriber_views


@require_safe
def favicon(request):
    """Browsers ask for /favicon.ico on pages without an icon link (the admin's, files); the
    icon's address is read when asked (the static files' manifest names it in production)."""
    return HttpResponsePermanentRedirect(static("favicon.svg"))


# The partner API (README, "Partner API"): keys per clinic, JSON, problem details.
api = SimpleRouter(use_regex_path=False)
api.register("patients", order_api.PatientViewSet, basename="api-patient")
api.register("orders", order_api.OrderViewSet, basename="api-order")
api_urls = [
    path("dose-check/", order_api.DoseCheckView.as_view(), name="api-dose-check"),
    path("orders/<int:pk>/label/", pharmacy_api.OrderLabelView.as_view(), name="api-order-label"),
    path(
        "prescriptions/<int:pk>/refills/",
        order_api.RefillCreateView.as_view(),
        name="api-prescription-refills",
    ),
    *api.urls,
    path("problems/<slug:slug>/", ProblemTypeView.as_view(), name="api_problem"),
    path("schema/", SpectacularAPIView.as_view(), name="api_schema"),
    path(
        "docs/",
        SpectacularSwaggerSplitView.as_view(
            url_name="api_schema", template_name="api/swagger_ui.html"
        ),
        name="api_docs",
    ),
]

# FHIR R4 for a clinic's EHR: the same keys and services, in FHIR's terms (errors are
# OperationOutcomes, also for an address with no interaction).
fhir_urls = [
    path("Bundle", order_fhir.BundleView.as_view(), name="fhir-bundle"),
    path(
        "MedicationRequest/<str:number>",
        order_fhir.MedicationRequestView.as_view(),
        name="fhir-medication-request",
    ),
    path(
        "MedicationDispense",
        pharmacy_fhir.MedicationDispenseSearchView.as_view(),
        name="fhir-medication-dispense",
    ),
    path("metadata", order_fhir.MetadataView.as_view(), name="fhir-metadata"),
    re_path(r"^(?P<route>.*)$", NoSuchRouteView.as_view(), name="fhir-no-such-route"),
]

# A 404 under /api/ is a problem (JSON) too; elsewhere the portal's page.
handler404 = "core.api.not_found"

urlpatterns = [
    path("", pharmacy_views.home, name="home"),
    path("favicon.ico", favicon, name="favicon"),
    path("health/", pharmacy_views.HealthView.as_view(), name="health"),
    path("health/detail/", pharmacy_views.HealthDetailView.as_view(), name="health_detail"),
    path("metrics", pharmacy_views.metrics, name="metrics"),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(
            authentication_form=LoginForm, redirect_authenticated_user=True
        ),
        name="login",
    ),
    path(
        "accounts/password_reset/",
        auth_views.PasswordResetView.as_view(form_class=PortalPasswordResetForm),
        name="password_reset",
    ),
    path(
        "accounts/activate/<uidb64>/<token>/",
        prescriber_views.AccountActivateView.as_view(),
        name="account_activate",
    ),
    path(
        "accounts/verify/",
        refuse_patients(portal_second_factor.verify),
        name="second_factor_verify",
    ),
    path("accounts/security/", refuse_patients(portal_second_factor.security), name="security"),
    path(
        "accounts/security/app/",
        refuse_patients(portal_second_factor.security_app),
        name="security_app",
    ),
    # Django's own, but not for a patient's session (no password: core.sessions.refuse_patients).
    path(
        "accounts/password_change/",
        refuse_patients(auth_views.PasswordChangeView.as_view()),
        name="password_change",
    ),
    path(
        "accounts/password_change/done/",
        refuse_patients(auth_views.PasswordChangeDoneView.as_view()),
        name="password_change_done",
    ),
    path("accounts/", include("django.contrib.auth.urls")),
    path("apply/", prescriber_views.apply, name="prescriber_apply"),
    path("apply/received/", prescriber_views.apply_done, name="prescriber_apply_done"),
    path("clinic/", prescriber_views.ClinicSwitchView.as_view(), name="clinic_switch"),
    path("clinic/team/", prescriber_views.ClinicTeamView.as_view(), name="clinic_team"),
    path(
        "clinic/team/<int:pk>/accept/",
        prescriber_views.MembershipAcceptView.as_view(),
        name="membership_accept",
    ),
    path(
        "clinic/team/<int:pk>/end/",
        prescriber_views.MembershipEndView.as_view(),
        name="membership_end",
    ),
    path("clinic/api-keys/", api_key_views.ApiKeyListView.as_view(), name="api_key_list"),
    path(
        "clinic/api-keys/<int:pk>/revoke/",
        api_key_views.ApiKeyRevokeView.as_view(),
        name="api_key_revoke",
    ),
    path("clinic/protocols/", protocol_views.ProtocolListView.as_view(), name="protocol_list"),
    path(
        "clinic/protocols/<int:pk>/",
        protocol_views.ProtocolUpdateView.as_view(),
        name="protocol_update",
    ),
    path(
        "clinic/protocols/<int:pk>/delete/",
        protocol_views.ProtocolDeleteView.as_view(),
        name="protocol_delete",
    ),
    path(
        "clinic/webhooks/",
        webhook_views.WebhookEndpointListView.as_view(),
        name="webhook_endpoint_list",
    ),
    path(
        "clinic/webhooks/new/",
        webhook_views.WebhookEndpointCreateView.as_view(),
        name="webhook_endpoint_create",
    ),
    path(
        "clinic/webhooks/<int:pk>/",
        webhook_views.WebhookEndpointDetailView.as_view(),
        name="webhook_endpoint_detail",
    ),
    path(
        "clinic/webhooks/<int:pk>/edit/",
        webhook_views.WebhookEndpointUpdateView.as_view(),
        name="webhook_endpoint_update",
    ),
    path(
        "clinic/webhooks/<int:pk>/rotate-secret/",
        webhook_views.WebhookEndpointRotateView.as_view(),
        name="webhook_endpoint_rotate",
    ),
    path(
        "clinic/webhooks/<int:pk>/delete/",
        webhook_views.WebhookEndpointDeleteView.as_view(),
        name="webhook_endpoint_delete",
    ),
    path(
        "clinic/webhooks/deliveries/<int:pk>/send-again/",
        webhook_views.WebhookDeliveryResendView.as_view(),
        name="webhook_delivery_resend",
    ),
    path("patients/", order_views.PatientListView.as_view(), name="patient_list"),
    path("patients/new/", order_views.PatientCreateView.as_view(), name="patient_create"),
    path("patients/<int:pk>/", order_views.PatientDetailView.as_view(), name="patient_detail"),
    path("patients/<int:pk>/edit/", order_views.PatientUpdateView.as_view(), name="patient_update"),
    path(
        "patients/medication-screen/",
        order_pages.MedicationScreenView.as_view(),
        name="medication_screen",
    ),
    path(
        "patients/<int:patient_pk>/orders/new/",
        order_pages.OrderCreateView.as_view(),
        name="order_create",
    ),
    path(
        "patients/<int:pk>/access/",
        patient_views.PatientInviteView.as_view(),
        name="patient_invite",
    ),
    path(
        "patients/<int:pk>/access/revoke/",
        patient_views.PatientRevokeView.as_view(),
        name="patient_revoke",
    ),
    # The patient's own pages (orders/patient_views.py).
    path("my/", patient_views.PatientHomeView.as_view(), name="patient_home"),
    path(
        "my/invitation/",
        patient_views.PatientLinkView.as_view(invitation=True),
        name="patient_invitation",
    ),
    path("my/link/", patient_views.PatientLinkView.as_view(), name="patient_link"),
    path("my/sign-in/", patient_views.PatientSignInView.as_view(), name="patient_sign_in"),
    path("my/terms/", patient_views.PatientTermsView.as_view(), name="patient_terms"),
    path("my/refill/", patient_views.PatientRefillView.as_view(), name="patient_refill"),
    path("my/diary/new/", patient_views.DiaryEntryCreateView.as_view(), name="diary_entry_create"),
    path(
        "my/diary/<int:pk>/",
        patient_views.DiaryEntryUpdateView.as_view(),
        name="diary_entry_update",
    ),
    path("my/settings/", patient_views.PatientSettingsView.as_view(), name="patient_settings"),
    path("orders/", order_pages.OrderListView.as_view(), name="order_list"),
    path("orders/to-sign/", signing_views.OrderSignView.as_view(), name="order_sign"),
    path("orders/dose-check/", order_pages.DoseCheckView.as_view(), name="dose_check"),
    path("orders/<int:pk>/", order_pages.OrderDetailView.as_view(), name="order_detail"),
    path("orders/<int:pk>/cancel/", order_pages.OrderCancelView.as_view(), name="order_cancel"),
    path("orders/<int:pk>/label/", pharmacy_views.OrderLabelView.as_view(), name="order_label"),
    path("orders/<int:pk>/answer/", order_pages.OrderAnswerView.as_view(), name="order_answer"),
    path("orders/<int:pk>/amend/", order_pages.OrderAmendView.as_view(), name="order_amend"),
    path(
        "prescriptions/<int:pk>/refill/",
        order_pages.PrescriptionRefillView.as_view(),
        name="prescription_refill",
    ),
    path("recalls/", pharmacy_views.RecallNoticeListView.as_view(), name="recall_notice_list"),
    path(
        "recalls/<int:pk>/",
        pharmacy_views.RecallNoticeDetailView.as_view(),
        name="recall_notice_detail",
    ),
    path("api/v1/", include(api_urls)),
    path("fhir/r4/", include(fhir_urls)),
    path("admin/", admin.site.urls),
]

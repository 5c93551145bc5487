from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from orders import views as order_views
from pharmacy.forms import LoginForm, PortalPasswordResetForm
from prescribers import views as prescriber_views

admin.site.site_header = f"{settings.PHARMACY_NAME}: pharmacy"
admin.site.site_title = "LDN pharmacy admin"
admin.site.index_title = "Pharmacy operations"

urlpatterns = [
    path("", order_views.home, name="home"),
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
    path("accounts/", include("django.contrib.auth.urls")),
    path("apply/", prescriber_views.apply, name="prescriber_apply"),
    path("apply/received/", prescriber_views.apply_done, name="prescriber_apply_done"),
    path("patients/", order_views.PatientListView.as_view(), name="patient_list"),
    path("patients/new/", order_views.PatientCreateView.as_view(), name="patient_create"),
    path("patients/<int:pk>/", order_views.PatientDetailView.as_view(), name="patient_detail"),
    path("patients/<int:pk>/edit/", order_views.PatientUpdateView.as_view(), name="patient_update"),
    path("admin/", admin.site.urls),
]

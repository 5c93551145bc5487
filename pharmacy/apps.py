from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps
from django_otp.plugins.otp_totp.apps import DefaultConfig as TOTPConfig


class PharmacyConfig(AppConfig):
    default = True
    name = "pharmacy"
    verbose_name = "Pharmacy"

    def ready(self):
        from . import sessions  # noqa: F401  (starts the session clock at every sign-in)


class PharmacyAdminConfig(admin_apps.AdminConfig):
    """django.contrib.admin, with the pharmacy's admin site (work queues on the index)."""

    default = False
    default_site = "pharmacy.admin_site.PharmacyAdminSite"


class SecondFactorDevicesConfig(TOTPConfig):
    """django-otp's TOTP devices, under a name the admin's index can show."""

    verbose_name = "Second factor (authenticator apps)"

from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class PharmacyConfig(AppConfig):
    default = True
    name = "pharmacy"
    verbose_name = "Pharmacy"


class PharmacyAdminConfig(admin_apps.AdminConfig):
    """django.contrib.admin, with the pharmacy's admin site (work queues on the index)."""

    default = False
    default_site = "pharmacy.admin_site.PharmacyAdminSite"

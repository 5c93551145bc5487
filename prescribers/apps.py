from django.apps import AppConfig


class PrescribersConfig(AppConfig):
    name = "prescribers"
    verbose_name = "Prescribers and clinics"

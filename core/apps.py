from django.apps import AppConfig
from django_otp.plugins.otp_static.apps import DefaultConfig as StaticConfig
from django_otp.plugins.otp_totp.apps import DefaultConfig as TOTPConfig


class CoreConfig(AppConfig):
    """The kernel every app builds on: accounts, roles, sessions, the second factor, who saw a
    record, the state-machine mechanism and the admin kit."""

    default = True
    name = "core"
    verbose_name = "Accounts and audit"

    def ready(self):
        # Connects the sign-in signal; Django's documented place for it, after the models load.
        from . import sessions  # noqa: F401, PLC0415


class SecondFactorDevicesConfig(TOTPConfig):
    """django-otp's TOTP devices, under a name the admin's index can show."""

    verbose_name = "Second factor (authenticator apps)"


class RecoveryCodesConfig(StaticConfig):
    """django-otp's static devices: each person's one-time recovery codes."""

    verbose_name = "Second factor (recovery codes)"

"""Building blocks shared by the apps' models."""

import functools

from django.conf import settings
from django.db import models
from django.utils.functional import lazy
from localflavor.us.models import USStateField, USZipCodeField
from localflavor.us.us_states import STATE_CHOICES


@functools.cache
def _us_states() -> tuple[tuple[str, str], ...]:
    return tuple((code, str(name)) for code, name in STATE_CHOICES)


# localflavor's STATE_CHOICES sorts its lazily translated names again on every use: each
# validation and each rendered <select> of 60 states (Django keeps lazy choices lazy). Sorted
# once per process here; the portal is in English only.
US_STATE_CHOICES = lazy(_us_states, tuple)()


def state_name(code: str) -> str:
    """ "IL" -> "Illinois" (the code itself when it is not a state's)."""
    return dict(_us_states()).get(code, code)


class StateField(USStateField):
    """localflavor's US state field (two letters), with the choices sorted once."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.choices = US_STATE_CHOICES

    def deconstruct(self):
        # The same column as localflavor's field: migrations keep naming that one.
        name, _path, args, kwargs = super().deconstruct()
        return name, "localflavor.us.models.USStateField", args, kwargs


class PostalAddress(models.Model):
    """A US postal address, shared by clinics and patients."""

    address_line1 = models.CharField("address", max_length=200)
    address_line2 = models.CharField("address line 2", max_length=200, blank=True)
    city = models.CharField(max_length=100)
    state = StateField()
    postal_code = USZipCodeField("ZIP code")

    class Meta:
        abstract = True

    @property
    def address_lines(self) -> list[str]:
        lines = [
            self.address_line1,
            self.address_line2,
            f"{self.city}, {self.state} {self.postal_code}",
        ]
        return [line for line in lines if line]


class StatusEvent(models.Model):
    """One row per status change of something (a prescriber account, an order): who, when,
    from, to and why. Subclasses add the foreign key named by subject_field and the two status
    fields with their choices. Rows are only ever added."""

    subject_field = ""

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    note = models.TextField(blank=True)

    class Meta:
        abstract = True
        ordering = ["created_at", "pk"]

    def __str__(self):
        subject = getattr(self, self.subject_field)
        # Status names as people read them, never the stored codes.
        before = self.get_from_status_display() if self.from_status else "new"
        return f"{subject}: {before} → {self.get_to_status_display()}"

    @classmethod
    def record(cls, subject, *, actor, from_status: str, to_status: str, note: str = "", **fields):
        return cls.objects.create(
            **{cls.subject_field: subject}, actor=actor, from_status=from_status,
            to_status=to_status, note=note, **fields,
        )  # fmt: skip

"""Building blocks shared by the apps' models."""

from django.conf import settings
from django.db import models
from localflavor.us.models import USStateField, USZipCodeField


class PostalAddress(models.Model):
    """A US postal address, shared by clinics and patients."""

    address_line1 = models.CharField("address", max_length=200)
    address_line2 = models.CharField("address line 2", max_length=200, blank=True)
    city = models.CharField(max_length=100)
    state = USStateField()
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
        return f"{subject}: {self.from_status or 'new'} -> {self.to_status}"

    @classmethod
    def record(cls, subject, *, actor, from_status: str, to_status: str, note: str = "", **fields):
        return cls.objects.create(
            **{cls.subject_field: subject}, actor=actor, from_status=from_status,
            to_status=to_status, note=note, **fields,
        )  # fmt: skip

"""Who saw protected health information: one row each time a page or file showed a patient's
record (HIPAA audit controls, 45 CFR 164.312(b)). Changes are recorded by django-simple-history;
these rows record reading.

The table is append-only: rows are added, never changed or removed. The model and its queryset
refuse it, and on PostgreSQL a trigger (migration 0011) refuses UPDATE and DELETE of any row
whatever sent them."""

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import models


class AppendOnlyError(Exception):
    """An access event was about to be changed or removed: the record allows neither."""


REFUSAL = "Access events are a record: they are only ever added, never changed or deleted."


class AccessAction(models.TextChoices):
    VIEWED_PATIENT = "viewed_patient", "Viewed patient"
    VIEWED_PRESCRIPTION = "viewed_prescription", "Viewed prescription"
    VIEWED_ORDER = "viewed_order", "Viewed order"
    DOWNLOADED_LABEL = "downloaded_label", "Downloaded label"
    PRINTED_LABELS = "printed_labels", "Printed labels"
    DOWNLOADED_LABEL_PRINT = "downloaded_label_print", "Downloaded a label print"
    VIEWED_RECALL = "viewed_recall", "Viewed recall impact"
    EXPORTED_RECALL = "exported_recall", "Exported recall list"


class AccessEventQuerySet(models.QuerySet):
    """Refuses the bulk ways of changing or removing rows (bulk_update goes through update)."""

    def update(self, **kwargs):
        raise AppendOnlyError(REFUSAL)

    def delete(self):
        raise AppendOnlyError(REFUSAL)

    delete.queryset_only = True

    def _raw_delete(self, using):  # what a cascade's fast delete would call
        raise AppendOnlyError(REFUSAL)


class AccessEvent(models.Model):
    """One look at a record: who, what, when, from where. The description names the record by
    its number only ("Order LDN-000123"), never by a patient's name or date of birth."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    # As it was at the time: an address changed later does not rewrite the record.
    user_email = models.EmailField("user's email")
    action = models.CharField(max_length=30, choices=AccessAction.choices)
    # Indexed with the object's id (access_event_object), as it is read.
    content_type = models.ForeignKey(
        ContentType, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    object_id = models.PositiveBigIntegerField()
    object_description = models.CharField("record", max_length=200)
    # How many patients' records a list or an export held; empty for a single record.
    record_count = models.PositiveIntegerField("patients in it", null=True, blank=True)
    created_at = models.DateTimeField("when", auto_now_add=True, db_index=True)
    client_address = models.GenericIPAddressField("from address", null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    path = models.CharField(max_length=500)

    objects = AccessEventQuerySet.as_manager()

    class Meta:
        # Made by the pharmacy app before the kernel existed; the table kept its name.
        db_table = "pharmacy_accessevent"
        ordering = ["-created_at", "-pk"]
        # Seeing the record is the only right there is: nobody adds, changes or deletes it.
        default_permissions = ("view",)
        indexes = [models.Index(fields=["content_type", "object_id"], name="access_event_object")]

    def __str__(self):
        return f"{self.user_email}: {self.get_action_display().lower()} {self.object_description}"

    def save(self, *args, force_update=False, update_fields=None, **kwargs):
        if not self._state.adding or force_update or update_fields is not None:
            raise AppendOnlyError(REFUSAL)
        # Always an INSERT: an object given the id of an existing row must not update it.
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError(REFUSAL)

from django.conf import settings
from django.db import models


class BaselineOrder(models.Model):
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    note = models.CharField(max_length=200)
    idempotency_key = models.UUIDField(unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"Baseline order {self.pk}"


class BaselineLine(models.Model):
    order = models.ForeignKey(BaselineOrder, on_delete=models.CASCADE, related_name="lines")
    quantity = models.DecimalField(max_digits=8, decimal_places=2)

    def __str__(self):
        return f"{self.quantity} of baseline order {self.order_id}"


class BaselineEvent(models.Model):
    order = models.ForeignKey(BaselineOrder, on_delete=models.CASCADE, related_name="events")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    note = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"Baseline order {self.order_id}: {self.note}"

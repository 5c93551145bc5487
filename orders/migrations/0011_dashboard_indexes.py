# The pharmacy's dashboard reads the work queues from the open orders alone, and the turnaround
# from the orders shipped in its window (then when each of them was submitted), by index.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0010_recall_pulled_event_kind"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="order",
            index=models.Index(
                condition=models.Q(
                    (
                        "status__in",
                        (
                            "draft",
                            "submitted",
                            "in_review",
                            "on_hold",
                            "verified",
                            "compounding",
                            "ready",
                        ),
                    )
                ),
                fields=["status", "status_changed_at", "created_at"],
                name="open_order_queue",
            ),
        ),
        migrations.AddIndex(
            model_name="orderevent",
            index=models.Index(
                fields=["to_status", "created_at", "order"], name="order_event_by_status"
            ),
        ),
        migrations.AddIndex(
            model_name="orderevent",
            index=models.Index(
                fields=["order", "to_status", "created_at"], name="order_event_by_order"
            ),
        ),
    ]

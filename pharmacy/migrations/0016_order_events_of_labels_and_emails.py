# The order's timeline reads rendered labels and sent emails from its own events now (the
# prescriber's pages no longer reach into the pharmacy's tables): an event for each label and
# each sent email of an order made before, at the time it happened.

from django.db import migrations


def record_events(apps, schema_editor):
    OrderEvent = apps.get_model("orders", "OrderEvent")
    LabelDocument = apps.get_model("pharmacy", "LabelDocument")
    Delivery = apps.get_model("pharmacy", "Delivery")
    kinds = dict(
        label_ready="label ready", on_hold="order on hold", rejected="order rejected",
        shipped="order shipped",
    )
    made = []
    for label in LabelDocument.objects.select_related("order").order_by("pk").iterator():
        status = label.order.status
        made.append((
            OrderEvent(
                order_id=label.order_id, kind="label_rendered", actor_id=label.created_by_id,
                from_status=status, to_status=status, parameters={"version": label.version},
            ),
            label.created_at,
        ))
    sent = Delivery.objects.filter(status="sent", order__isnull=False).select_related("order")
    for delivery in sent.order_by("pk").iterator():
        status = delivery.order.status
        made.append((
            OrderEvent(
                order_id=delivery.order_id, kind="email_sent", from_status=status,
                to_status=status,
                parameters={
                    "about": kinds.get(delivery.kind, delivery.kind),
                    "recipient": delivery.recipient,
                    "delivery": delivery.pk,
                },
            ),
            delivery.sent_at,
        ))
    for event, at in made:
        event.save()
        OrderEvent.objects.filter(pk=event.pk).update(created_at=at)


class Migration(migrations.Migration):

    dependencies = [
        ('orders', '0006_catalogue_and_event_kinds'),
        ('pharmacy', '0015_kernel_and_catalogue_move'),
    ]

    operations = [migrations.RunPython(record_events, migrations.RunPython.noop)]

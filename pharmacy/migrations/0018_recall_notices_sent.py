"""Notices whose email was sent before the notice's status followed its delivery: sent."""

from django.db import migrations


def mark_sent(apps, schema_editor):
    RecallNotice = apps.get_model("pharmacy", "RecallNotice")
    Delivery = apps.get_model("pharmacy", "Delivery")
    sent = Delivery.objects.filter(recall_notice__isnull=False, status="sent")
    RecallNotice.objects.filter(pk__in=sent.values("recall_notice_id")).update(status="sent")


class Migration(migrations.Migration):
    dependencies = [("pharmacy", "0017_recall_notice_acknowledgement")]

    operations = [migrations.RunPython(mark_sent, migrations.RunPython.noop)]

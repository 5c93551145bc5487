# The order's events are the outbox of the clinics' webhooks (pharmacy/webhooks.py): published_at
# is set when the pharmacy's publisher has made an event's deliveries. The events made before
# webhooks existed announce nothing: they are marked published (as of when they happened) before
# the index of the unpublished ones is built, so the publisher starts with none.

from django.conf import settings
from django.db import migrations, models
from django.db.models import F


def mark_published(apps, schema_editor):
    OrderEvent = apps.get_model("orders", "OrderEvent")
    OrderEvent.objects.filter(published_at__isnull=True).update(published_at=F("created_at"))


class Migration(migrations.Migration):

    dependencies = [
        ('orders', '0011_dashboard_indexes'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='orderevent',
            name='published_at',
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.RunPython(mark_published, migrations.RunPython.noop, elidable=True),
        migrations.AddIndex(
            model_name='orderevent',
            index=models.Index(condition=models.Q(('published_at__isnull', True)), fields=['id'], name='order_event_unpublished'),
        ),
    ]

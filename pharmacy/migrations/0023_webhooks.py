# Webhooks to clinics' systems: the endpoints, their deliveries (the outbox) and attempts, and
# the email that tells a clinic's prescribers an endpoint was turned off. Staff follow them in
# the admin: technicians read them, pharmacists also send a failed delivery again (the change
# permission; the rows stay read-only). Nobody at the pharmacy changes a clinic's endpoint.

import django.db.models.deletion
import simple_history.models
from django.conf import settings
from django.db import migrations, models

from core.staff_groups import grant_group_permissions

READ = [
    ("pharmacy", "view_webhookendpoint"),
    ("pharmacy", "view_webhookdelivery"),
    ("pharmacy", "view_webhookattempt"),
]
GROUP_PERMISSIONS = {
    "Pharmacist": [*READ, ("pharmacy", "change_webhookdelivery")],
    "Technician": READ,
}


def grant(apps, schema_editor):
    grant_group_permissions(apps, GROUP_PERMISSIONS)


class Migration(migrations.Migration):

    dependencies = [
        ('orders', '0012_order_event_published_at'),
        ('pharmacy', '0022_dispense_by_time'),
        ('prescribers', '0005_licence_expiry_notices'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name='delivery',
            name='kind',
            field=models.CharField(choices=[('label_ready', 'Label ready'), ('on_hold', 'Order on hold'), ('rejected', 'Order rejected'), ('shipped', 'Order shipped'), ('recall_notice', 'Recall notice'), ('account', 'Account email'), ('webhook_disabled', 'Webhook endpoint turned off')], max_length=20),
        ),
        migrations.CreateModel(
            name='HistoricalWebhookEndpoint',
            fields=[
                ('id', models.BigIntegerField(auto_created=True, blank=True, db_index=True, verbose_name='ID')),
                ('url', models.URLField(max_length=500, verbose_name='URL')),
                ('description', models.CharField(blank=True, max_length=200)),
                ('events', models.JSONField(default=list)),
                ('enabled', models.BooleanField(default=True, verbose_name='turned on')),
                ('disabled_reason', models.CharField(blank=True, max_length=300)),
                ('disabled_at', models.DateTimeField(blank=True, null=True)),
                ('failing_since', models.DateTimeField(blank=True, null=True)),
                ('created_at', models.DateTimeField(blank=True, editable=False)),
                ('history_id', models.AutoField(primary_key=True, serialize=False)),
                ('history_date', models.DateTimeField(db_index=True)),
                ('history_change_reason', models.CharField(max_length=100, null=True)),
                ('history_type', models.CharField(choices=[('+', 'Created'), ('~', 'Changed'), ('-', 'Deleted')], max_length=1)),
                ('clinic', models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='prescribers.clinic')),
                ('created_by', models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('history_user', models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'verbose_name': 'historical webhook endpoint',
                'verbose_name_plural': 'historical webhook endpoints',
                'ordering': ('-history_date', '-history_id'),
                'get_latest_by': ('history_date', 'history_id'),
            },
            bases=(simple_history.models.HistoricalChanges, models.Model),
        ),
        migrations.CreateModel(
            name='WebhookDelivery',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('event_type', models.CharField(choices=[('order.status_changed', 'Order status changed'), ('order.label_ready', 'Label ready'), ('order.on_hold', "Order on hold, with the pharmacy's question"), ('order.shipped', 'Order shipped, with carrier and tracking number'), ('recall.notice', 'Recall notice')], max_length=40)),
                ('message_id', models.CharField(max_length=40, unique=True, verbose_name='webhook-id')),
                ('payload', models.JSONField()),
                ('status', models.CharField(choices=[('pending', 'Pending'), ('sending', 'Sending'), ('sent', 'Sent'), ('failed', 'Failed')], default='pending', max_length=10)),
                ('attempts', models.PositiveIntegerField(default=0)),
                ('next_attempt_at', models.DateTimeField(blank=True, null=True)),
                ('queued_at', models.DateTimeField(blank=True, null=True)),
                ('claimed_at', models.DateTimeField(blank=True, null=True)),
                ('last_error', models.TextField(blank=True)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('resent_at', models.DateTimeField(blank=True, null=True)),
                ('sent_at', models.DateTimeField(blank=True, null=True)),
                ('order_event', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='orders.orderevent')),
                ('recall_notice', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='webhook_deliveries', to='pharmacy.recallnotice')),
            ],
            options={
                'verbose_name_plural': 'webhook deliveries',
                'ordering': ['-created_at', '-pk'],
            },
        ),
        migrations.CreateModel(
            name='WebhookAttempt',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('attempted_at', models.DateTimeField()),
                ('response_status', models.PositiveSmallIntegerField(blank=True, null=True, verbose_name='HTTP status')),
                ('error', models.CharField(blank=True, max_length=500)),
                ('duration_ms', models.PositiveIntegerField(blank=True, null=True, verbose_name='duration (ms)')),
                ('delivery', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='attempt_log', to='pharmacy.webhookdelivery')),
            ],
            options={
                'ordering': ['attempted_at', 'pk'],
            },
        ),
        migrations.CreateModel(
            name='WebhookEndpoint',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('url', models.URLField(max_length=500, verbose_name='URL')),
                ('description', models.CharField(blank=True, max_length=200)),
                ('events', models.JSONField(default=list)),
                ('secret', models.CharField(editable=False, max_length=100)),
                ('previous_secret', models.CharField(blank=True, editable=False, max_length=100)),
                ('previous_secret_expires_at', models.DateTimeField(blank=True, editable=False, null=True)),
                ('enabled', models.BooleanField(default=True, verbose_name='turned on')),
                ('disabled_reason', models.CharField(blank=True, max_length=300)),
                ('disabled_at', models.DateTimeField(blank=True, null=True)),
                ('failing_since', models.DateTimeField(blank=True, null=True)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('clinic', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='webhook_endpoints', to='prescribers.clinic')),
                ('created_by', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'ordering': ['clinic', 'created_at', 'pk'],
            },
        ),
        migrations.AddField(
            model_name='webhookdelivery',
            name='endpoint',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='deliveries', to='pharmacy.webhookendpoint'),
        ),
        migrations.AddField(
            model_name='delivery',
            name='webhook_endpoint',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='pharmacy.webhookendpoint'),
        ),
        migrations.AddIndex(
            model_name='webhookendpoint',
            index=models.Index(fields=['clinic', 'created_at'], name='webhook_endpoint_clinic'),
        ),
        migrations.AddIndex(
            model_name='webhookdelivery',
            index=models.Index(fields=['endpoint', '-created_at'], name='webhook_delivery_endpoint'),
        ),
        migrations.AddIndex(
            model_name='webhookdelivery',
            index=models.Index(condition=models.Q(('status__in', ['pending', 'sending'])), fields=['status', 'next_attempt_at'], name='webhook_delivery_unsent'),
        ),
        migrations.AddConstraint(
            model_name='webhookdelivery',
            constraint=models.UniqueConstraint(condition=models.Q(('order_event__isnull', False)), fields=('endpoint', 'order_event', 'event_type'), name='one_webhook_per_endpoint_and_order_event'),
        ),
        migrations.AddConstraint(
            model_name='webhookdelivery',
            constraint=models.UniqueConstraint(condition=models.Q(('recall_notice__isnull', False)), fields=('endpoint', 'recall_notice'), name='one_webhook_per_endpoint_and_recall_notice'),
        ),
        migrations.AddConstraint(
            model_name='webhookdelivery',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('order_event__isnull', False), ('recall_notice__isnull', True)), models.Q(('order_event__isnull', True), ('recall_notice__isnull', False)), _connector='OR'), name='webhook_about_an_order_event_or_a_recall_notice'),
        ),
        migrations.RunPython(grant, migrations.RunPython.noop),
    ]

# The kernel takes over the access events; their table, pharmacy_accessevent, stays as it is
# (with its append-only trigger on PostgreSQL).

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('contenttypes', '0002_remove_content_type_name'),
        ('core', '0001_initial'),
        # The table was made by the pharmacy app's migration 0011.
        ('pharmacy', '0014_formulation_water_activity_and_preservative'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='AccessEvent',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('user_email', models.EmailField(max_length=254, verbose_name="user's email")),
                        ('action', models.CharField(choices=[('viewed_patient', 'Viewed patient'), ('viewed_prescription', 'Viewed prescription'), ('viewed_order', 'Viewed order'), ('downloaded_label', 'Downloaded label'), ('printed_labels', 'Printed labels'), ('downloaded_label_print', 'Downloaded a label print'), ('viewed_recall', 'Viewed recall impact'), ('exported_recall', 'Exported recall list')], max_length=30)),
                        ('object_id', models.PositiveBigIntegerField()),
                        ('object_description', models.CharField(max_length=200, verbose_name='record')),
                        ('record_count', models.PositiveIntegerField(blank=True, null=True, verbose_name='patients in it')),
                        ('created_at', models.DateTimeField(auto_now_add=True, db_index=True, verbose_name='when')),
                        ('client_address', models.GenericIPAddressField(blank=True, null=True, verbose_name='from address')),
                        ('user_agent', models.CharField(blank=True, max_length=300)),
                        ('path', models.CharField(max_length=500)),
                        ('content_type', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='contenttypes.contenttype')),
                        ('user', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        'db_table': 'pharmacy_accessevent',
                        'ordering': ['-created_at', '-pk'],
                        'default_permissions': ('view',),
                    },
                ),
                migrations.AddIndex(
                    model_name='accessevent',
                    index=models.Index(fields=['content_type', 'object_id'], name='access_event_object'),
                ),
            ],
        ),
    ]

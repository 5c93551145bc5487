"""Access events: who saw a patient's record (pharmacy/models/audit.py). On PostgreSQL a trigger
refuses UPDATE and DELETE of any row, whatever sends them (the ORM, raw SQL, a console)."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


APPEND_ONLY = """
CREATE FUNCTION pharmacy_accessevent_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'access events are append-only: % of pharmacy_accessevent refused', TG_OP;
END
$$;
CREATE TRIGGER pharmacy_accessevent_append_only
    BEFORE UPDATE OR DELETE ON pharmacy_accessevent
    FOR EACH ROW EXECUTE FUNCTION pharmacy_accessevent_append_only();
"""
DROP_APPEND_ONLY = """
DROP TRIGGER IF EXISTS pharmacy_accessevent_append_only ON pharmacy_accessevent;
DROP FUNCTION IF EXISTS pharmacy_accessevent_append_only();
"""


class PostgreSQLRunSQL(migrations.RunSQL):
    """RunSQL on PostgreSQL only (the embedded SQLite default has no PL/pgSQL)."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)


class Migration(migrations.Migration):

    dependencies = [
        ('contenttypes', '0002_remove_content_type_name'),
        ('pharmacy', '0010_count_estimate'),
    ]

    operations = [
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
                'ordering': ['-created_at', '-pk'],
                'default_permissions': ('view',),
                'indexes': [models.Index(fields=['content_type', 'object_id'], name='access_event_object')],
            },
        ),
        PostgreSQLRunSQL(APPEND_ONLY, reverse_sql=DROP_APPEND_ONLY),
    ]

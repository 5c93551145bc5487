"""Pharmacists may read who saw a patient's record; nobody may change it (the access event
model has only the view permission)."""

from django.db import migrations

from core.staff_groups import grant_group_permissions

GROUP_PERMISSIONS = {"Pharmacist": [("pharmacy", "view_accessevent")]}


def grant(apps, schema_editor):
    grant_group_permissions(apps, GROUP_PERMISSIONS)


class Migration(migrations.Migration):
    dependencies = [("pharmacy", "0011_access_events")]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]

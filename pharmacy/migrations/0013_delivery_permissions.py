"""Staff follow the outbox in the admin (Admin -> Deliveries): technicians read it, pharmacists
also retry failed emails (the change permission; the rows themselves stay read-only)."""

from django.db import migrations

from core.staff_groups import grant_group_permissions

GROUP_PERMISSIONS = {
    "Pharmacist": [("pharmacy", "view_delivery"), ("pharmacy", "change_delivery")],
    "Technician": [("pharmacy", "view_delivery")],
}


def grant(apps, schema_editor):
    grant_group_permissions(apps, GROUP_PERMISSIONS)


class Migration(migrations.Migration):
    dependencies = [("pharmacy", "0012_access_event_permissions")]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]

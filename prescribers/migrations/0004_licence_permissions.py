"""Staff see each clinic's members and each prescriber's licences; pharmacists keep the licences
up to date from the state boards' look-ups (add and change; never delete: an expired licence
stays on record)."""

from django.db import migrations

from core.staff_groups import grant_group_permissions

GROUP_PERMISSIONS = {
    "Pharmacist": [
        ("prescribers", "view_membership"),
        ("prescribers", "view_licence"),
        ("prescribers", "add_licence"),
        ("prescribers", "change_licence"),
    ],
    "Technician": [("prescribers", "view_membership"), ("prescribers", "view_licence")],
}


def grant(apps, schema_editor):
    grant_group_permissions(apps, GROUP_PERMISSIONS)


class Migration(migrations.Migration):
    dependencies = [("prescribers", "0003_licences")]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]

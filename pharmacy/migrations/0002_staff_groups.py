"""The two staff groups, Pharmacist and Technician, with their permissions.

Later slices that add models extend these groups in migrations of their own.
"""

from django.db import migrations

from core.staff_groups import grant_group_permissions

GROUP_PERMISSIONS = {
    "Pharmacist": [
        ("pharmacy", "view_user"),
        ("prescribers", "view_clinic"),
        ("prescribers", "change_clinic"),
        ("prescribers", "view_prescriber"),
        ("prescribers", "change_prescriber"),
        ("prescribers", "decide_prescriber"),
        ("prescribers", "view_prescriberevent"),
        ("orders", "view_patient"),
        ("orders", "add_patient"),
        ("orders", "change_patient"),
    ],
    "Technician": [
        ("prescribers", "view_clinic"),
        ("prescribers", "view_prescriber"),
        ("orders", "view_patient"),
    ],
}


def create_groups(apps, schema_editor):
    grant_group_permissions(apps, GROUP_PERMISSIONS)


def remove_groups(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=GROUP_PERMISSIONS).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("pharmacy", "0001_initial"),
        ("prescribers", "0001_initial"),
        ("orders", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_groups, remove_groups)]

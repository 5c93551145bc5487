"""The two staff groups, Pharmacist and Technician, with their permissions.

Later slices that add models extend these groups in migrations of their own.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

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
    # Permissions are normally created after all migrations ran; create them now to use them.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, codenames in GROUP_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=name)
        for app_label, codename in codenames:
            group.permissions.add(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )


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

"""Granting permissions to the staff groups from data migrations (which pass their `apps`)."""

from django.contrib.auth.management import create_permissions


def grant_group_permissions(apps, group_permissions: dict[str, list[tuple[str, str]]]) -> None:
    """Create each group if needed and add the (app_label, codename) permissions to it."""
    # Permissions are normally created after all migrations ran; create them now to use them.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, codenames in group_permissions.items():
        group, _ = Group.objects.get_or_create(name=name)
        for app_label, codename in codenames:
            group.permissions.add(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )

"""Granting permissions to the staff groups from data migrations (which pass their `apps`)."""

from django.contrib.auth.management import create_permissions


def grant_group_permissions(apps, group_permissions: dict[str, list[tuple[str, str]]]) -> None:
    """Create each group if needed and add the (app_label, codename) permissions to it."""
    # Permissions are normally created after all migrations ran; create them now to use them,
    # for the apps granted only: another app's models may still be on their way to their
    # final app (a later migration moves their content types), and rows made for them here
    # would be made twice.
    granted = {app_label for pairs in group_permissions.values() for app_label, _ in pairs}
    for app_config in apps.get_app_configs():
        if app_config.label not in granted:
            continue
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

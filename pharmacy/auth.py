from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Group, Permission
from django.db.models import CharField, Value

from .second_factor import with_totp_device


class PortalBackend(ModelBackend):
    """Django's backend, plus: a prescriber signs in only while approved, a staff user's
    groups and permissions are read in one query per request (see load_access), and the user
    comes with the pk of their confirmed second-factor device (pharmacy/second_factor.py).

    The approval check runs on every request (get_user), so suspending a prescriber ends the
    sessions they already have.
    """

    def user_can_authenticate(self, user):
        return super().user_can_authenticate(user) and user.may_sign_in

    def get_user(self, user_id):
        user_model = get_user_model()
        try:
            users = user_model._default_manager.select_related("prescriber__clinic")
            user = with_totp_device(users).get(pk=user_id)
        except user_model.DoesNotExist:
            return None
        return user if self.user_can_authenticate(user) else None

    def get_all_permissions(self, user_obj, obj=None):
        if user_obj.is_active and not user_obj.is_superuser and obj is None:
            load_access(user_obj)
        return super().get_all_permissions(user_obj, obj)


def load_access(user) -> None:
    """The user's group names and permissions in one query, kept on the user object for the
    request in the attributes Django's ModelBackend reads (_user_perm_cache, _group_perm_cache,
    _perm_cache), where Django would run two queries and the staff roles a third."""
    if hasattr(user, "_group_names"):
        return
    in_groups = (
        Group.objects.filter(user=user)
        .order_by()
        .values_list("name", "permissions__content_type__app_label", "permissions__codename")
    )
    own = (
        Permission.objects.filter(user=user)
        .order_by()
        .values_list(Value("", output_field=CharField()), "content_type__app_label", "codename")
    )
    groups, group_perms, user_perms = set(), set(), set()
    for group, app_label, codename in in_groups.union(own, all=True):
        if group:
            groups.add(group)
        if codename:
            (group_perms if group else user_perms).add(f"{app_label}.{codename}")
    user._group_names = frozenset(groups)
    if not user.is_superuser:  # a superuser holds every permission; Django's backend says so
        user._user_perm_cache, user._group_perm_cache = user_perms, group_perms
        user._perm_cache = user_perms | group_perms


def group_names(user) -> frozenset[str]:
    load_access(user)
    return user._group_names

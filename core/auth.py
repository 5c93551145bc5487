import ipaddress

from axes.attempts import get_cool_off_threshold
from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_username
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Group, Permission
from django.db.models import CharField, Q, Sum, Value
from django.shortcuts import render
from sesame.backends import SesameBackendMixin

from .models import normalize_email_address
from .second_factor import with_totp_device


class PortalBackend(ModelBackend):
    """Django's backend, plus: a prescriber signs in only while approved, a staff user's
    groups and permissions are read in one query per request (see load_access), and the user
    comes with the pk of their confirmed second-factor device (core/second_factor.py).

    The approval check runs on every request (get_user), so suspending a prescriber ends the
    sessions they already have.
    """

    def user_can_authenticate(self, user):
        return super().user_can_authenticate(user) and user.may_sign_in

    def get_user(self, user_id):
        user_model = get_user_model()
        try:
            users = user_model._default_manager.select_related("prescriber")
            user = with_totp_device(users).get(pk=user_id)
        except user_model.DoesNotExist:
            return None
        return user if self.user_can_authenticate(user) else None

    def get_all_permissions(self, user_obj, obj=None):
        if user_obj.is_active and not user_obj.is_superuser and obj is None:
            load_access(user_obj)
        return super().get_all_permissions(user_obj, obj)


class LinkBackend(SesameBackendMixin, PortalBackend):
    """Signs in by a link emailed to the account's address (django-sesame: signed, one-time,
    expiring), for accounts without a password (patients). Its sessions are checked on every
    request like the portal's: an account made inactive is signed out at once."""


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


def client_ip(request) -> str | None:
    """The address a sign-in attempt comes from, for the lockout (AXES_CLIENT_IP_CALLABLE).

    REMOTE_ADDR, or behind the portal's proxy (DJANGO_BEHIND_PROXY) the first X-Forwarded-For
    hop, which that proxy sets. Anything that is not an IP address is ignored, so a made-up
    header can neither pick another client's lockout nor break the attempt row."""
    candidates = [request.META.get("REMOTE_ADDR", "")]
    if settings.BEHIND_PROXY:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        candidates.insert(0, forwarded.split(",")[0].strip())
    for candidate in candidates:
        try:
            return str(ipaddress.ip_address(candidate))
        except ValueError:
            continue
    return None


def lockout_username(request, credentials) -> str | None:
    """The email a sign-in attempt names, spelled as the account stores it, so that changing
    its case or adding spaces does not start a fresh count (AXES_USERNAME_CALLABLE)."""
    field = settings.AXES_USERNAME_FORM_FIELD
    value = (credentials or {}).get(field) if credentials else request.POST.get(field)
    return normalize_email_address(value)[:255] or None  # the attempt row holds 255


def lockout_response(request, original_response, credentials):
    """The page a locked-out sign-in gets, portal or admin: 429, the same for every address,
    whether or not an account has it (AXES_LOCKOUT_CALLABLE)."""
    minutes = max(1, round(settings.AXES_COOLOFF_TIME.total_seconds() / 60))
    return render(request, "registration/locked_out.html", {"minutes": minutes}, status=429)


class LockoutHandler(AxesDatabaseHandler):
    """django-axes' handler, counting failures three ways with a limit each (OWASP): per
    account and address, per account from any address, and per address for every account (a
    much higher limit: the staff of a clinic share one internet address). One query."""

    def failure_counts(self, request, credentials=None) -> dict[str, tuple[int, int]]:
        """Each count within the cool-off, with its limit."""
        username, address = get_client_username(request, credentials), request.axes_ip_address
        attempts = AccessAttempt.objects.filter(Q(username=username) | Q(ip_address=address))
        if settings.AXES_COOLOFF_TIME is not None:
            attempts = attempts.filter(attempt_time__gte=get_cool_off_threshold(request))
        failures = "failures_since_start"
        counts = attempts.aggregate(
            account_and_address=Sum(
                failures, filter=Q(username=username, ip_address=address), default=0
            ),
            account=Sum(failures, filter=Q(username=username), default=0),
            address=Sum(failures, filter=Q(ip_address=address), default=0),
        )
        limits = {
            "account_and_address": settings.AXES_FAILURE_LIMIT,
            "account": settings.LOGIN_ACCOUNT_FAILURE_LIMIT,
            "address": settings.LOGIN_ADDRESS_FAILURE_LIMIT,
        }
        return {name: (counts[name], limits[name]) for name in limits}

    def get_failures(self, request, credentials=None) -> int:
        """What axes compares with AXES_FAILURE_LIMIT: the limit itself once any count reached
        its own limit, else the failures of this account from this address."""
        counts = self.failure_counts(request, credentials)
        if any(count >= limit for count, limit in counts.values()):
            return settings.AXES_FAILURE_LIMIT
        return min(counts["account_and_address"][0], settings.AXES_FAILURE_LIMIT - 1)

    def reset_user_attempts(self, request, credentials=None) -> int:
        """A sign-in clears its account's failures, never other accounts' at the address."""
        username = get_client_username(request, credentials)
        deleted, _ = AccessAttempt.objects.filter(username=username).delete()
        return deleted

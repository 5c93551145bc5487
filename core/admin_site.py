from functools import partial, update_wrapper
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import admin
from django.contrib.auth.views import redirect_to_login
from django.http import HttpResponseRedirect
from django.urls import path, reverse, reverse_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect

from . import admin_second_factor as pages
from .admin_search import BoundedSearchMixin
from .second_factor import is_verified, second_factor_due, totp_device_pk


class PortalAdminSite(admin.AdminSite):
    """The staff's admin. Every page of it but sign-in, sign-out and the second-factor pages
    needs a session verified by the staff member's authenticator app (core/second_factor.py).
    The pharmacy's site (pharmacy/admin_site.py) adds its work queues to the index."""

    site_header = f"{settings.PHARMACY_NAME}: pharmacy"
    site_title = "LDN pharmacy admin"

    # Models a library registers that this site leaves out: recovery codes are secrets shown
    # once to their owner (a lost set: an administrator deletes the person's TOTP device, and
    # setting up the app again issues new codes).
    NOT_SHOWN = frozenset({"otp_static.staticdevice"})

    def register(self, model_or_iterable, admin_class=None, **options):
        """Every list of this site, the libraries' included, with a bounded search."""
        models = [model_or_iterable] if isinstance(model_or_iterable, type) else model_or_iterable
        models = [m for m in models if m._meta.label_lower not in self.NOT_SHOWN]
        if not models:
            return
        model_or_iterable = models
        admin_class = admin_class or admin.ModelAdmin
        if not issubclass(admin_class, BoundedSearchMixin):
            admin_class = type(admin_class.__name__, (BoundedSearchMixin, admin_class), {})
        super().register(model_or_iterable, admin_class, **options)

    def has_permission(self, request):
        # Every admin_view (the site's pages, each ModelAdmin's, the custom ones) asks this, and
        # sends anyone refused to the sign-in page, which sends staff on to the second factor.
        return super().has_permission(request) and is_verified(request.user)

    def login(self, request, extra_context=None):
        """Django's sign-in page; a signed-in staff member who has not passed the second factor
        goes on to it, then to where they were going."""
        if request.method == "GET" and second_factor_due(request.user):
            return self.second_factor_redirect(request, request.GET.get("next", ""))
        return super().login(request, extra_context)

    def second_factor_redirect(self, request, next_url: str) -> HttpResponseRedirect:
        """To the verify page, or to enrolment when the user has no confirmed device yet."""
        page = "otp_verify" if totp_device_pk(request.user) else "otp_enrol"
        url = reverse(f"admin:{page}", current_app=self.name)
        return HttpResponseRedirect(f"{url}?{urlencode({'next': next_url})}" if next_url else url)

    def get_urls(self):
        before_second_factor = [
            path("otp/enrol/", self.staff_view(partial(pages.enrol, site=self)), name="otp_enrol"),
            path(
                "otp/verify/", self.staff_view(partial(pages.verify, site=self)), name="otp_verify"
            ),
            path("logout/", self.staff_view(self.logout), name="logout"),
        ]
        return before_second_factor + [
            url for url in super().get_urls() if getattr(url, "name", None) != "logout"
        ]

    def staff_view(self, view):
        """For the pages an active staff member reaches before the second factor; anyone else
        is treated as admin_view treats them."""

        def inner(request, *args, **kwargs):
            if request.user.is_active and request.user.is_staff:
                return view(request, *args, **kwargs)
            if request.path == reverse("admin:logout", current_app=self.name):
                return HttpResponseRedirect(reverse("admin:index", current_app=self.name))
            login_url = reverse("admin:login", current_app=self.name)
            return redirect_to_login(request.get_full_path(), login_url)

        inner = csrf_protect(never_cache(update_wrapper(inner, view)))
        inner.admin_site = self
        inner.login_url = reverse_lazy("admin:login", current_app=self.name)  # as Django's wrap
        return inner

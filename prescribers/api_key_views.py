"""The clinic's API keys in the portal: its prescribers make them (each shown once) and revoke
them."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect
from django.utils.cache import add_never_cache_headers
from django.views import View
from django.views.generic import FormView

from .access import PrescriberRequiredMixin
from .api_keys import api_key_create, api_key_revoke, clinic_api_keys
from .forms import ApiKeyForm


class ApiKeyListView(PrescriberRequiredMixin, FormView):
    form_class = ApiKeyForm
    template_name = "prescribers/api_keys.html"

    def get_context_data(self, **kwargs):
        return super().get_context_data(keys=clinic_api_keys(self.clinic_id), **kwargs)

    def form_valid(self, form):
        data = form.cleaned_data
        try:
            key, raw = api_key_create(
                clinic=self.clinic, actor=self.request.user, name=data["name"],
                can_sign=data["can_sign"], password=data["password"],
            )  # fmt: skip
        except ValidationError as refused:
            for field, errors in refused.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
            return self.form_invalid(form)
        # The key is on this page once (201: made): never stored, never in a message, a
        # session or a redirect.
        response = self.render_to_response(
            self.get_context_data(form=ApiKeyForm(), new_key=key, raw_key=raw), status=201
        )
        add_never_cache_headers(response)
        return response


class ApiKeyRevokeView(PrescriberRequiredMixin, View):
    http_method_names = ["post"]

    def post(self, request, pk):
        key = get_object_or_404(clinic_api_keys(self.clinic_id), pk=pk)
        api_key_revoke(key=key, actor=request.user)
        messages.success(request, f"The key {key} is revoked: it no longer works.")
        return redirect("api_key_list")

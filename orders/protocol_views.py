"""The clinic's titration protocols: everyone of the clinic reads them and starts orders from
them; its prescribers name, change and remove them. Another clinic's protocol is a 404."""

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import get_object_or_404, redirect
from django.utils.functional import cached_property
from django.views import View
from django.views.generic import FormView

from prescribers.access import ClinicMemberRequiredMixin, PrescriberRequiredMixin

from .checks import Catalogue
from .forms import ProtocolForm
from .models import TitrationProtocol
from .protocols import protocol_delete, protocol_save


class ProtocolFormMixin:
    form_class = ProtocolForm
    template_name = "orders/protocols.html"
    protocol = None

    def get_form_kwargs(self):
        return {**super().get_form_kwargs(), "catalogue": Catalogue.current()}

    def get_context_data(self, **kwargs):
        return super().get_context_data(
            protocols=TitrationProtocol.objects.filter(clinic_id=self.clinic_id),
            editing=self.protocol,
            **kwargs,
        )

    def form_valid(self, form):
        try:
            protocol = protocol_save(
                actor=self.request.user, clinic_id=self.clinic_id, protocol=self.protocol,
                **form.cleaned_data,
            )  # fmt: skip
        except ValidationError as refused:
            for field, errors in refused.error_dict.items():
                form.add_error(field, errors)
            return self.form_invalid(form)
        messages.success(self.request, f"Protocol \u201c{protocol.name}\u201d saved.")
        return redirect("protocol_list")


class ProtocolListView(ProtocolFormMixin, ClinicMemberRequiredMixin, FormView):
    """The list, and for a prescriber the form that names a new one."""

    def post(self, request, *args, **kwargs):
        if self.prescriber is None:
            raise PermissionDenied("Only a prescriber of this clinic may change its protocols.")
        return super().post(request, *args, **kwargs)


class ProtocolUpdateView(ProtocolFormMixin, PrescriberRequiredMixin, FormView):
    @cached_property
    def protocol(self) -> TitrationProtocol:
        clinic_protocols = TitrationProtocol.objects.filter(clinic_id=self.clinic_id)
        return get_object_or_404(clinic_protocols, pk=self.kwargs["pk"])

    def get_initial(self):
        return ProtocolForm.initial_from(self.protocol)


class ProtocolDeleteView(PrescriberRequiredMixin, View):
    http_method_names = ["post"]

    def post(self, request, pk):
        protocol = get_object_or_404(TitrationProtocol.objects.filter(clinic_id=self.clinic_id),
                                     pk=pk)  # fmt: skip
        protocol_delete(actor=request.user, protocol=protocol)
        messages.success(request, f"Protocol \u201c{protocol.name}\u201d removed.")
        return redirect("protocol_list")

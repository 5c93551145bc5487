"""The prescriber's signature of drafts written by their clinic's staff: every draft awaiting
them in the clinic they act for, each with what the rules say now, signed one or several at
once with their password."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect
from django.views.generic import TemplateView

from core.state_machine import refusal_text
from prescribers.access import PrescriberRequiredMixin

from .checks import finding_view
from .dosing import Severity
from .models import Order, OrderStatus
from .services import SigningRefused, order_fill_check, order_sign

# The drafts one page shows and one signature covers, oldest first.
SIGN_AT_ONCE = 50


def _ids(values) -> set[int]:
    """The orders chosen on the page (anything that is not an order number is dropped)."""
    return {pk for pk in map(Order.pk_from_number, values) if pk is not None}


class OrderSignView(PrescriberRequiredMixin, TemplateView):
    template_name = "orders/order_sign.html"
    http_method_names = ["get", "post"]

    def drafts(self):
        return (
            Order.objects.of_clinic(self.clinic_id)
            .filter(status=OrderStatus.DRAFT, signer=self.prescriber)
            .select_related("prescription__patient", "created_by")
            .order_by("created_at", "pk")[:SIGN_AT_ONCE]
        )

    def get_context_data(self, *, problems=None, checks=None, password_error="", **kwargs):
        """`checks`: what a refused signature found for the drafts it checked, shown as it
        found it instead of asking the rules again."""
        data = self.request.POST if self.request.method == "POST" else None
        chosen = _ids(data.getlist("order") if data else self.request.GET.getlist("order"))
        drafts = []
        for order in self.drafts():
            check = (checks or {}).get(order.pk) or order_fill_check(order)
            warnings = [finding_view(w) for w in check.new_warnings()]
            ticked = set(data.getlist(f"ack-{order.pk}")) if data else set()
            drafts.append(
                {
                    "order": order,
                    "lines": order.lines().select_related("formulation"),
                    "errors": [f for f in check.findings if f.severity == Severity.ERROR],
                    "warnings": [{**w, "ticked": w["key"] in ticked} for w in warnings],
                    "reason_needed": any(w["reason_required"] for w in warnings),
                    "reason": data.get(f"reason-{order.pk}", "") if data else "",
                    "chosen": order.pk in chosen,
                    "problem": (problems or {}).get(order.pk, ""),
                }
            )
        return super().get_context_data(drafts=drafts, password_error=password_error, **kwargs)

    def post(self, request):
        chosen = _ids(request.POST.getlist("order"))
        orders = [order for order in self.drafts() if order.pk in chosen]
        try:
            signed = order_sign(
                orders=orders,
                actor=request.user,
                password=request.POST.get("password", ""),
                acknowledged={o.pk: request.POST.getlist(f"ack-{o.pk}") for o in orders},
                reasons={o.pk: request.POST.get(f"reason-{o.pk}", "") for o in orders},
            )
        except ValidationError as refused:
            context = self.get_context_data(password_error=refusal_text(refused))
            return self.render_to_response(context)
        except SigningRefused as refused:
            context = self.get_context_data(problems=refused.problems, checks=refused.checks)
            return self.render_to_response(context)
        numbers = ", ".join(order.number for order in signed)
        count = len(signed)
        messages.success(
            request,
            f"Signed {count} order{'s' if count != 1 else ''} ({numbers}): "
            f"{'they go' if count != 1 else 'it goes'} to the pharmacy.",
        )
        return redirect("order_sign")

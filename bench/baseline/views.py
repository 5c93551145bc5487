import json

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.views.decorators.http import require_POST

from .models import BaselineEvent, BaselineLine, BaselineOrder


class BaselineForm(forms.Form):
    note = forms.CharField(max_length=200)
    quantity = forms.DecimalField(max_digits=8, decimal_places=2, min_value=0)
    idempotency_key = forms.UUIDField()


@require_POST
@login_required
def submit(request):
    """Validate, insert three rows in one transaction, answer like the order submit: a message
    and a redirect to the new record (CSRF is checked by the middleware, as for every POST)."""
    form = BaselineForm(request.POST)
    if not form.is_valid():
        return HttpResponseBadRequest(form.errors.as_text())
    data = form.cleaned_data
    with transaction.atomic():
        order = BaselineOrder.objects.create(
            created_by=request.user, note=data["note"], idempotency_key=data["idempotency_key"]
        )
        BaselineLine.objects.create(order=order, quantity=data["quantity"])
        BaselineEvent.objects.create(order=order, actor=request.user, note="Submitted.")
    messages.success(request, f"Baseline order {order.pk} submitted.")
    return redirect("bench_baseline_detail", order.pk)


@login_required
def detail(request, pk):
    order = get_object_or_404(BaselineOrder, pk=pk, created_by=request.user)
    return HttpResponse(f"Baseline order {order.pk}: {order.note}", content_type="text/plain")


@require_POST
@login_required
def dose_check(request):
    """What any signed-in JSON endpoint pays, to compare the live dose check with: the same
    middleware (session, CSRF header, authentication), the JSON body read, a small answer."""
    try:
        payload = json.loads(request.body)
    except ValueError:
        return JsonResponse({"errors": [{"field": "", "message": "Send valid JSON."}]}, status=400)
    return JsonResponse({"ok": True, "fields": len(payload)})

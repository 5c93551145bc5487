"""Admin actions that call a service for each selected row, some after asking for a form (a
reason, a yield, a date) on an intermediate page. Refusals are reported, never raised."""

from collections.abc import Callable

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.template.response import TemplateResponse

from .state_machine import refusal_text
from .text import counted

CONFIRMED = "_confirmed"


def run_for_each(model_admin, request, queryset, call: Callable, done: tuple[str, str]) -> int:
    """call(obj) for each selected row, in a fixed order; returns how many succeeded. `done`:
    what was done to one row and to several ("prescriber approved", "prescribers approved")."""
    succeeded = 0
    for obj in queryset.order_by("pk"):
        try:
            call(obj)
        except (ValidationError, PermissionDenied) as refused:
            model_admin.message_user(request, f"{obj}: {refusal_text(refused)}", messages.ERROR)
        else:
            succeeded += 1
    if succeeded:
        model_admin.message_user(request, f"{counted(succeeded, *done)}.", messages.SUCCESS)
    return succeeded


def with_form(model_admin, request, queryset, *, form_class: type[forms.Form], title: str,
              call: Callable, done: tuple[str, str]):  # fmt: skip
    """Ask for form_class first; then call(obj, cleaned_data) for each selected row."""
    form = form_class(request.POST if CONFIRMED in request.POST else None)
    if form.is_valid():
        run_for_each(model_admin, request, queryset, lambda obj: call(obj, form.cleaned_data),
                     done)  # fmt: skip
        return None
    return TemplateResponse(
        request,
        "admin/action_form.html",
        {
            **model_admin.admin_site.each_context(request),
            "title": title,
            "form": form,
            "objects": queryset,
            "action": request.POST["action"],
            "opts": model_admin.model._meta,
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            "confirmed": CONFIRMED,
        },
    )


def form_action(service: Callable, *, subject: str, form_class: type[forms.Form], title: str,
                done: tuple[str, str], description: str):  # fmt: skip
    """An admin action that asks for form_class, then calls service(<subject>=row, actor=...,
    **form data) for each selected row."""

    def action(model_admin, request, queryset):
        return with_form(
            model_admin, request, queryset, form_class=form_class, title=title, done=done,
            call=lambda row, data: service(**{subject: row}, actor=request.user, **data),
        )  # fmt: skip

    return admin.action(description=description)(action)

"""Recording who saw a patient's record (pharmacy.models.AccessEvent), and finding those records
again for one patient.

Pages and files that show protected health information call record_access (one record) or
record_access_bulk (the orders of a label print: one INSERT). A page records only once it was
rendered with a 200: a 404 or 403, a redirect or a page that failed to render writes nothing.
The description of a record is its number ("Order LDN-000123"), never a name or a birth date."""

from collections.abc import Iterable

from django.contrib.contenttypes.models import ContentType
from django.db.models import Model, Q, Subquery

from orders.models import Order, Patient, Prescription

from .auth import client_ip
from .models import AccessAction, AccessEvent, LabelDocument, Recall

_USER_AGENT_LENGTH = AccessEvent._meta.get_field("user_agent").max_length
_PATH_LENGTH = AccessEvent._meta.get_field("path").max_length


def describe(obj: Model) -> str:
    """The record's number, in the words staff use; never a patient's name or date of birth."""
    if isinstance(obj, Order):
        return f"Order {obj.number}"
    if isinstance(obj, LabelDocument):
        return f"Label v{obj.version} of order {Order(pk=obj.order_id).number}"
    return f"{obj._meta.verbose_name.capitalize()} {obj.pk}"


def _event(request, action: AccessAction, obj: Model, record_count: int | None) -> AccessEvent:
    user = request.user
    return AccessEvent(
        user=user,
        user_email=user.email,
        action=action,
        # Cached per process by Django: no query once the model was seen.
        content_type=ContentType.objects.get_for_model(obj),
        object_id=obj.pk,
        object_description=describe(obj),
        record_count=record_count,
        client_address=client_ip(request),
        user_agent=request.META.get("HTTP_USER_AGENT", "")[:_USER_AGENT_LENGTH],
        # The path only: a query string may carry what someone typed into a search box.
        path=request.path[:_PATH_LENGTH],
    )


def record_access(request, action: AccessAction, obj: Model, *,
                  record_count: int | None = None) -> AccessEvent:  # fmt: skip
    """One access event: request.user saw obj (a list or an export: of record_count patients)."""
    event = _event(request, action, obj, record_count)
    event.save()
    return event


def record_access_bulk(request, action: AccessAction, objects: Iterable[Model]) -> list:
    """An access event for each of objects, written in one INSERT."""
    events = [_event(request, action, obj, None) for obj in objects]
    return AccessEvent.objects.bulk_create(events) if events else []


def record_when_shown(request, response, action: AccessAction, obj: Model, *,
                      record_count: int | None = None) -> None:  # fmt: skip
    """Record that a GET answered 200 showed obj: a page once it has been rendered, a file at
    once. Anything else (a refusal, a redirect, a form posted) writes nothing."""
    if request.method != "GET" or response.status_code != 200:
        return

    def record(_rendered=None):
        record_access(request, action, obj, record_count=record_count)

    if hasattr(response, "add_post_render_callback"):
        response.add_post_render_callback(record)  # at once if it is already rendered
    else:
        record()


class RecordsAccessMixin:
    """For a detail view of a patient's record: a page shown writes an access event."""

    access_action: AccessAction

    def get(self, request, *args, **kwargs):
        response = super().get(request, *args, **kwargs)
        record_when_shown(request, response, self.access_action, self.object)
        return response


# --- Who saw a patient's record -----------------------------------------------------------------


def _content_type_of(model) -> Subquery:
    # Found in the one query of the report (no content type lookup of its own).
    return Subquery(
        ContentType.objects.filter(
            app_label=model._meta.app_label, model=model._meta.model_name
        ).values("pk")
    )


def _about(model, ids) -> Q:
    return Q(content_type_id=_content_type_of(model), object_id__in=ids)


def about_patient(patient_id: int) -> Q:
    """Access events about the patient and everything of theirs: the patient, their
    prescriptions, orders and labels, and the recalls whose lists named them."""
    recalls = Recall.objects.filter(
        Q(batch__dispenses__order__prescription__patient_id=patient_id)
        | Q(ingredient_lot__uses__batch__dispenses__order__prescription__patient_id=patient_id)
    )
    return (
        Q(content_type_id=_content_type_of(Patient), object_id=patient_id)
        | _about(Prescription, Prescription.objects.filter(patient_id=patient_id).values("pk"))
        | _about(Order, Order.objects.filter(prescription__patient_id=patient_id).values("pk"))
        | _about(
            LabelDocument,
            LabelDocument.objects.filter(order__prescription__patient_id=patient_id).values("pk"),
        )
        | _about(Recall, recalls.values("pk"))
    )

"""Who saw a patient's record (HIPAA audit controls): every page and file that shows one writes
exactly one access event with exact fields; a refused, missing or failed page writes none; the
events are append-only and read-only in the admin; the report of one patient lists exactly the
events about that patient's records."""

import datetime

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.contenttypes.models import ContentType
from django.core.files.base import ContentFile
from django.db import IntegrityError, connection, transaction
from django.db.models import ProtectedError
from django.template import TemplateDoesNotExist
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from core.audit import describe, record_access
from core.models import AccessAction, AccessEvent, AppendOnlyError
from orders.models import Order, Patient
from orders.order_views import OrderDetailView
from pharmacy.models import LabelDocument, PrintJob, Recall
from pharmacy.recalls import batch_recall
from pharmacy.selectors import about_patient, recall_impact_csv
from prescribers.models import Clinic
from tests.factories import PatientFactory, PrescriberFactory, StaffFactory
from tests.orders.test_label_printing import pages, print_action, printable_orders
from tests.orders.test_workflow import dispense_fully, submitted_order
from tests.pharmacy.test_recalls import REASON, dispense, make_batch, order_for
from tests.signing_in import verified_staff_login

pytestmark = pytest.mark.django_db

A = AccessAction
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) " + "LabelPrinterPlugin/1.0 " * 30  # > 300 chars
FROM = {"REMOTE_ADDR": "203.0.113.7", "HTTP_USER_AGENT": BROWSER}


def label_of(order: Order, version: int = 1) -> LabelDocument:
    document = LabelDocument(order=order, version=version)
    document.file.save(f"{order.number}-v{version}.pdf", ContentFile(b"%PDF-1.4 label"),
                       save=False)  # fmt: skip
    document.save()
    return document


def expected(user, action, obj, description, path, *, record_count=None) -> dict:
    return {
        "user": user, "user_email": user.email, "action": action,
        "content_type": ContentType.objects.get_for_model(type(obj)), "object_id": obj.pk,
        "object_description": description, "record_count": record_count,
        "client_address": "203.0.113.7", "user_agent": BROWSER[:300], "path": path,
    }  # fmt: skip


def recorded(event: AccessEvent) -> dict:
    return {name: getattr(event, name) for name in (
        "user", "user_email", "action", "content_type", "object_id", "object_description",
        "record_count", "client_address", "user_agent", "path",
    )}  # fmt: skip


def only_event() -> dict:
    [event] = AccessEvent.objects.all()
    assert timezone.now() - event.created_at < datetime.timedelta(seconds=30)
    return recorded(event)


@pytest.fixture
def order(prescriber):
    return submitted_order(prescriber)


@pytest.fixture
def theirs(other_prescriber):
    """An order of another clinic, with a label."""
    order = submitted_order(other_prescriber)
    label_of(order)
    return order


# --- The prescriber's pages ---------------------------------------------------------------------


def test_the_patient_page_records_one_view(prescriber_client, prescriber, patient):
    url = reverse("patient_detail", args=[patient.pk])

    assert prescriber_client.get(url, **FROM).status_code == 200

    assert only_event() == expected(prescriber.user, A.VIEWED_PATIENT, patient,
                                    f"Patient {patient.pk}", url)  # fmt: skip


def test_the_order_page_records_one_view(prescriber_client, prescriber, order):
    url = reverse("order_detail", args=[order.pk])

    assert prescriber_client.get(url, **FROM).status_code == 200

    assert only_event() == expected(prescriber.user, A.VIEWED_ORDER, order,
                                    f"Order {order.number}", url)  # fmt: skip
    assert order.number.startswith("LDN-")


def test_the_refill_page_records_one_view_of_the_prescription(prescriber_client, prescriber, order):
    prescription = order.prescription
    url = reverse("prescription_refill", args=[prescription.pk])

    assert prescriber_client.get(url, **FROM).status_code == 200

    assert only_event() == expected(
        prescriber.user, A.VIEWED_PRESCRIPTION, prescription, f"Prescription {prescription.pk}", url
    )


def test_the_label_download_records_the_version_downloaded(prescriber_client, prescriber, order):
    label_of(order, 1)
    latest = label_of(order, 2)
    url = reverse("order_label", args=[order.pk])

    response = prescriber_client.get(url, **FROM)

    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"%PDF-1.4 label"
    assert only_event() == expected(prescriber.user, A.DOWNLOADED_LABEL, latest,
                                    f"Label v2 of order {order.number}", url)  # fmt: skip


def test_another_clinics_records_are_not_found_and_record_nothing(prescriber_client, theirs):
    patient = theirs.prescription.patient
    for url in (reverse("patient_detail", args=[patient.pk]),
                reverse("order_detail", args=[theirs.pk]),
                reverse("order_label", args=[theirs.pk])):  # fmt: skip
        assert prescriber_client.get(url).status_code == 404
    assert AccessEvent.objects.count() == 0


def test_no_label_yet_is_not_found_and_records_nothing(prescriber_client, order):
    assert prescriber_client.get(reverse("order_label", args=[order.pk])).status_code == 404
    assert AccessEvent.objects.count() == 0


def test_refused_and_anonymous_visitors_record_nothing(client, pharmacist, patient, order):
    urls = [reverse("patient_detail", args=[patient.pk]), reverse("order_detail", args=[order.pk])]
    for url in urls:
        assert client.get(url).status_code == 302  # to the sign-in page
    verified_staff_login(client, pharmacist)  # staff are not prescribers: 403
    for url in urls:
        assert client.get(url).status_code == 403
    assert AccessEvent.objects.count() == 0


def test_a_page_that_fails_to_render_records_nothing(prescriber_client, order, monkeypatch):
    monkeypatch.setattr(OrderDetailView, "template_name", "orders/no_such_page.html")
    with pytest.raises(TemplateDoesNotExist):
        prescriber_client.get(reverse("order_detail", args=[order.pk]))
    assert AccessEvent.objects.count() == 0


def test_a_search_typed_into_the_address_is_not_recorded(prescriber_client, patient):
    url = reverse("patient_detail", args=[patient.pk])
    prescriber_client.get(url, {"q": patient.last_name})
    assert AccessEvent.objects.get().path == url


@pytest.mark.parametrize(("behind_proxy", "stored"), [
    (False, "198.51.100.4"), (True, "203.0.113.9"),
])  # fmt: skip
def test_the_event_records_the_client_address_the_lockout_uses(
    settings, prescriber_client, patient, behind_proxy, stored
):
    # The same address as the sign-in lockout: behind the portal's proxy, the first
    # X-Forwarded-For hop (which that proxy sets); otherwise the connection's address.
    settings.BEHIND_PROXY = behind_proxy
    prescriber_client.get(
        reverse("patient_detail", args=[patient.pk]),
        REMOTE_ADDR="198.51.100.4", HTTP_X_FORWARDED_FOR="203.0.113.9, 198.51.100.4",
    )  # fmt: skip
    assert AccessEvent.objects.get().client_address == stored


# --- The admin ----------------------------------------------------------------------------------


def admin_pages(order: Order) -> list[tuple[str, object, str, str]]:
    prescription, patient = order.prescription, order.prescription.patient
    return [
        ("orders_order_change", order, A.VIEWED_ORDER, f"Order {order.number}"),
        ("orders_patient_change", patient, A.VIEWED_PATIENT, f"Patient {patient.pk}"),
        ("orders_prescription_change", prescription, A.VIEWED_PRESCRIPTION,
         f"Prescription {prescription.pk}"),
    ]  # fmt: skip


@pytest.mark.parametrize("page", range(3), ids=["order", "patient", "prescription"])
def test_each_admin_change_page_records_one_view(client, pharmacist, order, page):
    name, obj, action, description = admin_pages(order)[page]
    url = reverse(f"admin:{name}", args=[obj.pk])
    verified_staff_login(client, pharmacist)

    assert client.get(url, **FROM).status_code == 200

    assert only_event() == expected(pharmacist, action, obj, description, url)


@pytest.mark.parametrize("page", range(3), ids=["order", "patient", "prescription"])
def test_admin_pages_refused_or_missing_record_nothing(client, order, page):
    name, obj, *_ = admin_pages(order)[page]
    verified_staff_login(client, StaffFactory())  # staff, but no group: no right to see the record
    assert client.get(reverse(f"admin:{name}", args=[obj.pk])).status_code == 403
    verified_staff_login(client, StaffFactory(is_superuser=True))
    missing = client.get(reverse(f"admin:{name}", args=[987654]))
    assert missing.status_code == 302  # the admin's "doesn't exist" redirect
    assert AccessEvent.objects.count() == 0


def test_posting_the_patient_form_records_no_view(client, superuser, patient):
    verified_staff_login(client, superuser)
    url = reverse("admin:orders_patient_change", args=[patient.pk])
    response = client.post(url, {"first_name": "Changed"})  # incomplete: the form again
    assert response.status_code == 200
    assert AccessEvent.objects.count() == 0
    assert Patient.objects.get(pk=patient.pk).first_name == patient.first_name


def test_a_past_version_in_the_field_history_records_a_view(client, pharmacist, patient):
    version = patient.history.get()
    url = reverse("admin:orders_patient_simple_history", args=[patient.pk, version.history_id])
    verified_staff_login(client, pharmacist)

    assert client.get(url, **FROM).status_code == 200

    assert only_event() == expected(pharmacist, A.VIEWED_PATIENT, patient,
                                    f"Patient {patient.pk}", url)  # fmt: skip


def test_the_admin_serves_each_label_version_and_records_it(client, pharmacist, order):
    label_of(order, 1)
    second = label_of(order, 2)
    order_page = reverse("admin:orders_order_change", args=[order.pk])
    url = reverse("admin:orders_order_label", args=[order.pk, 2])
    verified_staff_login(client, pharmacist)
    assert f'href="{url}"' in client.get(order_page).content.decode()
    before = set(AccessEvent.objects.values_list("pk", flat=True))  # the order page's view

    response = client.get(url, **FROM)

    assert response.status_code == 200
    assert response["Content-Disposition"] == (
        f'attachment; filename="label-{order.number}-v2.pdf"'
    )
    assert b"".join(response.streaming_content) == b"%PDF-1.4 label"
    [event] = AccessEvent.objects.exclude(pk__in=before)
    assert recorded(event) == expected(pharmacist, A.DOWNLOADED_LABEL, second,
                                       f"Label v2 of order {order.number}", url)  # fmt: skip


def test_admin_label_downloads_refused_or_missing_record_nothing(client, order):
    label_of(order, 1)
    verified_staff_login(client, StaffFactory())
    assert client.get(reverse("admin:orders_order_label", args=[order.pk, 1])).status_code == 403
    verified_staff_login(client, StaffFactory(group="Pharmacist"))
    assert client.get(reverse("admin:orders_order_label", args=[order.pk, 2])).status_code == 404
    assert AccessEvent.objects.count() == 0


def test_printing_labels_records_each_order_in_one_insert_when_the_file_is_downloaded(
    client, pharmacist, prescriber, django_capture_on_commit_callbacks
):
    """The print action only queues a job (its page shows no patient); the labels are seen
    when the job's file is downloaded."""
    orders = printable_orders(prescriber, 2)
    verified_staff_login(client, pharmacist)
    with django_capture_on_commit_callbacks(execute=True):
        print_action(client, orders)
    assert AccessEvent.objects.count() == 0
    url = reverse("admin:pharmacy_printjob_download", args=[PrintJob.objects.get().pk])

    with CaptureQueriesContext(connection) as captured:
        response = client.get(url, **FROM)

    assert pages(b"".join(response.streaming_content)) == 4
    inserts = [q for q in captured if q["sql"].startswith('INSERT INTO "pharmacy_accessevent"')]
    assert len(inserts) == 1
    assert [recorded(e) for e in AccessEvent.objects.order_by("object_id")] == [
        expected(pharmacist, A.DOWNLOADED_LABEL_PRINT, o, f"Order {o.number}", url) for o in orders
    ]


def test_a_print_that_fails_records_nothing(
    client, pharmacist, order, django_capture_on_commit_callbacks
):
    verified_staff_login(client, pharmacist)
    with django_capture_on_commit_callbacks(execute=True):
        response = print_action(client, [order])  # submitted, never verified: no label
    assert response.status_code == 302
    job = PrintJob.objects.get()
    assert job.status == PrintJob.Status.FAILED
    assert client.get(reverse("admin:pharmacy_printjob_download", args=[job.pk])).status_code == 404
    assert AccessEvent.objects.count() == 0


def test_downloading_a_print_job_records_each_of_its_orders(client, pharmacist, prescriber):
    orders = [submitted_order(prescriber) for _ in range(3)]
    job = PrintJob.objects.create(created_by=pharmacist, order_ids=[o.pk for o in orders],
                                  total=3, done=3, status=PrintJob.Status.DONE)  # fmt: skip
    job.file.save("labels.pdf", ContentFile(b"%PDF-1.4 three"))
    url = reverse("admin:pharmacy_printjob_download", args=[job.pk])
    verified_staff_login(client, pharmacist)
    page = client.get(reverse("admin:pharmacy_printjob_change", args=[job.pk]))
    assert f'href="{url}" id="print-download"' in page.content.decode()
    assert AccessEvent.objects.count() == 0  # the progress page shows no patient

    response = client.get(url, **FROM)

    assert b"".join(response.streaming_content) == b"%PDF-1.4 three"
    assert [recorded(e) for e in AccessEvent.objects.order_by("object_id")] == [
        expected(pharmacist, A.DOWNLOADED_LABEL_PRINT, o, f"Order {o.number}", url) for o in orders
    ]


def test_an_unfinished_or_refused_print_job_records_nothing(client, pharmacist, order):
    job = PrintJob.objects.create(created_by=pharmacist, order_ids=[order.pk], total=1)
    url = reverse("admin:pharmacy_printjob_download", args=[job.pk])
    verified_staff_login(client, pharmacist)
    assert client.get(url).status_code == 404  # not rendered yet
    verified_staff_login(client, StaffFactory())
    assert client.get(url).status_code == 403
    assert AccessEvent.objects.count() == 0


# --- Recalls ------------------------------------------------------------------------------------


@pytest.fixture
def recall(technician, pharmacist):
    """A batch dispensed to the orders of three patients (one of them twice), then recalled."""
    batch = make_batch(lot_number="NX261101-C1.5-01")
    ann = PrescriberFactory()
    names = (("Zoe", "Young"), ("Max", "Adams"), ("Lea", "Moss"))
    zoe, max_, lea = (order_for(ann, patient_name=name) for name in names)
    for order, units in ((zoe, "10"), (zoe, "20"), (max_, "30"), (lea, "30")):
        dispense(order, batch, units, by=technician)
    return batch_recall(batch=batch, actor=pharmacist, reason=REASON)


def test_the_recall_export_records_one_event_with_the_patient_count(client, pharmacist, recall):
    url = reverse("admin:pharmacy_recall_csv", args=[recall.pk])
    verified_staff_login(client, pharmacist)

    response = client.get(url, **FROM)

    assert response.content.decode() == recall_impact_csv(recall)
    assert only_event() == expected(pharmacist, A.EXPORTED_RECALL, recall,
                                    f"Recall {recall.pk}", url, record_count=3)  # fmt: skip


def test_the_recall_page_records_one_view(client, pharmacist, recall):
    url = reverse("admin:pharmacy_recall_change", args=[recall.pk])
    verified_staff_login(client, pharmacist)

    assert "Young, Zoe" in client.get(url, **FROM).content.decode()

    assert only_event() == expected(pharmacist, A.VIEWED_RECALL, recall, f"Recall {recall.pk}",
                                    url, record_count=3)  # fmt: skip


def test_a_refused_or_missing_recall_export_records_nothing(client, technician, recall):
    verified_staff_login(client, technician)
    assert client.get(reverse("admin:pharmacy_recall_csv", args=[recall.pk])).status_code == 403
    assert client.get(reverse("admin:pharmacy_recall_change", args=[recall.pk])).status_code == 403
    verified_staff_login(client, StaffFactory(is_superuser=True))
    assert client.get(reverse("admin:pharmacy_recall_csv", args=[987654])).status_code == 404
    assert AccessEvent.objects.count() == 0


# --- Append-only --------------------------------------------------------------------------------


@pytest.fixture
def event(rf, pharmacist, order):
    request = rf.get("/admin/orders/order/1/change/", **FROM)
    request.user = pharmacist
    return record_access(request, A.VIEWED_ORDER, order)


def stored(event: AccessEvent) -> dict:
    return AccessEvent.objects.filter(pk=event.pk).values().get()


def test_an_event_cannot_be_saved_again_or_deleted(event):
    before = stored(event)
    event.object_description = "Order LDN-999999"
    for change in (event.save, lambda: event.save(update_fields=["object_description"]),
                   event.delete):  # fmt: skip
        with pytest.raises(AppendOnlyError):
            change()
    assert stored(event) == before


def test_a_new_object_with_an_existing_id_does_not_overwrite_it(event, technician):
    before = stored(event)
    copy = AccessEvent(**{**before, "user_id": technician.pk, "user_email": technician.email})
    with pytest.raises(IntegrityError), transaction.atomic():
        copy.save()
    with pytest.raises(AppendOnlyError):
        copy.save(force_update=True)
    assert stored(event) == before


def test_the_queryset_refuses_update_and_delete(event):
    before = stored(event)
    rows = AccessEvent.objects.filter(pk=event.pk)
    event.user_email = "someone@else.test"
    for change in (lambda: rows.update(user_email="someone@else.test"), rows.delete,
                   lambda: AccessEvent.objects.bulk_update([event], ["user_email"]),
                   lambda: AccessEvent.objects.update_or_create(
                       pk=event.pk, defaults={"user_email": "someone@else.test"}),
                   AccessEvent.objects.all().delete):  # fmt: skip
        with pytest.raises(AppendOnlyError), transaction.atomic():  # bulk_update's own atomic
            change()
    assert stored(event) == before


def test_a_user_with_access_events_cannot_be_deleted(event, pharmacist):
    with pytest.raises(ProtectedError):
        pharmacist.delete()
    assert stored(event)["user_id"] == pharmacist.pk


def test_nobody_holds_a_right_to_add_change_or_delete_events():
    content_type = ContentType.objects.get_for_model(AccessEvent)
    assert sorted(content_type.permission_set.values_list("codename", flat=True)) == [
        "view_accessevent"
    ]


# --- The admin of access events -----------------------------------------------------------------


def test_the_events_are_read_only_even_for_a_superuser(client, superuser, event):
    verified_staff_login(client, superuser)
    before = stored(event)
    changelist = reverse("admin:core_accessevent_changelist")
    change = reverse("admin:core_accessevent_change", args=[event.pk])
    delete = reverse("admin:core_accessevent_delete", args=[event.pk])
    add = reverse("admin:core_accessevent_add")

    assert client.get(change).status_code == 200  # readable
    assert client.get(add).status_code == 403
    form = {name: value for name, value in before.items() if value is not None}
    assert client.post(add, {**form, "user": superuser.pk}).status_code == 403
    assert client.post(change, {"object_description": "Order LDN-999999"}).status_code == 403
    assert client.get(delete).status_code == 403
    assert client.post(delete, {"post": "yes"}).status_code == 403
    bulk = client.post(changelist, {"action": "delete_selected", ACTION_CHECKBOX_NAME: [event.pk],
                                    "post": "yes"})  # fmt: skip
    assert bulk.status_code == 200  # no action is offered: the list again
    assert client.get(changelist).context["action_form"] is None
    assert list(AccessEvent.objects.values()) == [before]


def test_pharmacists_read_the_events_and_technicians_do_not(client, pharmacist, technician, event):
    url = reverse("admin:core_accessevent_changelist")
    verified_staff_login(client, pharmacist)
    page = client.get(url)
    assert page.status_code == 200
    assert list(page.context["cl"].result_list) == [event]
    verified_staff_login(client, technician)
    assert client.get(url).status_code == 403


def test_the_list_filters_by_action_user_and_date_and_searches_descriptions(
    client, rf, pharmacist, technician, prescriber
):
    def seen(user, action, obj):
        request = rf.get("/")
        request.user = user
        return record_access(request, action, obj)

    first, second = submitted_order(prescriber), submitted_order(prescriber)
    by_pharmacist = seen(pharmacist, A.VIEWED_ORDER, first)
    by_technician = seen(technician, A.VIEWED_ORDER, second)
    patient_view = seen(pharmacist, A.VIEWED_PATIENT, first.prescription.patient)
    verified_staff_login(client, pharmacist)
    url = reverse("admin:core_accessevent_changelist")

    def listed(**params):
        return {e.pk for e in client.get(url, params).context["cl"].result_list}

    assert listed(action="viewed_order") == {by_pharmacist.pk, by_technician.pk}
    assert listed(user__id__exact=technician.pk) == {by_technician.pk}
    # What the date filter's "Today" link asks for (midnight in the pharmacy's time zone).
    today = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    tomorrow = today + datetime.timedelta(days=1)
    assert listed(created_at__gte=str(today), created_at__lt=str(tomorrow)) == {
        by_pharmacist.pk,
        by_technician.pk,
        patient_view.pk,
    }
    assert listed(created_at__lt=str(today)) == set()
    assert listed(q=second.number) == {by_technician.pk}


# --- Who saw this record ------------------------------------------------------------------------


def test_the_report_lists_exactly_the_events_of_that_patients_records(
    client, rf, pharmacist, technician, prescriber, recall
):
    def seen(user, action, obj):
        request = rf.get("/", REMOTE_ADDR="192.0.2.10")
        request.user = user
        return record_access(request, action, obj)

    order = submitted_order(prescriber)
    refill = submitted_order(prescriber)  # another patient of the same clinic
    patient = order.prescription.patient
    batch = recall.batch
    dispense_fully(order)
    dispense(order, batch, "5", by=technician)  # the recall reaches this patient
    other_recall = batch_recall(batch=make_batch(lot_number="NX261101-C1.5-09"), actor=pharmacist,
                                reason=REASON)  # fmt: skip
    mine = [
        seen(pharmacist, A.VIEWED_PATIENT, patient),
        seen(technician, A.VIEWED_PRESCRIPTION, order.prescription),
        seen(pharmacist, A.VIEWED_ORDER, order),
        seen(prescriber.user, A.DOWNLOADED_LABEL, label_of(order)),
        seen(pharmacist, A.EXPORTED_RECALL, recall),
    ]
    others = [
        seen(pharmacist, A.VIEWED_PATIENT, refill.prescription.patient),
        seen(pharmacist, A.VIEWED_ORDER, refill),
        seen(pharmacist, A.VIEWED_PRESCRIPTION, refill.prescription),
        seen(pharmacist, A.DOWNLOADED_LABEL, label_of(refill)),
        seen(pharmacist, A.EXPORTED_RECALL, other_recall),
    ]
    # The same id in another table is another record: it must not be taken for the patient.
    others.append(seen(pharmacist, A.VIEWED_PATIENT, Clinic(pk=patient.pk)))
    verified_staff_login(client, pharmacist)

    patient_page = client.get(reverse("admin:orders_patient_change", args=[patient.pk]))
    report_url = f"{reverse('admin:core_accessevent_changelist')}?patient={patient.pk}"
    assert f'href="{report_url}" id="access-report">Who saw this record' in (
        patient_page.content.decode()
    )
    page_view = AccessEvent.objects.latest("pk")  # the patient page itself was a view
    report = client.get(report_url)

    assert report.status_code == 200
    assert {e.pk for e in report.context["cl"].result_list} == {*(e.pk for e in mine), page_view.pk}
    html = report.content.decode()
    for event in mine:
        assert event.object_description in html and event.user_email in html
    assert "192.0.2.10" in html
    assert set(AccessEvent.objects.filter(about_patient(patient.pk))) == {*mine, page_view}
    assert not set(AccessEvent.objects.filter(about_patient(patient.pk))) & set(others)


def test_the_report_of_a_patient_nobody_saw_is_empty_and_bad_numbers_show_nothing(
    client, pharmacist, event
):
    verified_staff_login(client, pharmacist)
    url = reverse("admin:core_accessevent_changelist")
    nobody = PatientFactory()
    assert list(client.get(url, {"patient": nobody.pk}).context["cl"].result_list) == []
    for bad in ("abc", "-1", "1; DROP TABLE", "9" * 40):
        page = client.get(url, {"patient": bad})
        assert page.status_code == 200
        assert list(page.context["cl"].result_list) == []
        assert "Not a patient number" in page.content.decode()


def test_the_report_link_is_only_for_those_who_may_read_it(client, technician, patient):
    verified_staff_login(client, technician)
    page = client.get(reverse("admin:orders_patient_change", args=[patient.pk]))
    assert page.status_code == 200
    assert 'id="access-report"' not in page.content.decode()


def test_descriptions_never_carry_names_or_birth_dates(order):
    patient = order.prescription.patient
    recall = Recall(pk=5)
    texts = [describe(patient), describe(order.prescription), describe(order), describe(recall)]
    assert texts == [f"Patient {patient.pk}", f"Prescription {order.prescription.pk}",
                     f"Order {order.number}", "Recall 5"]  # fmt: skip
    for text in texts:
        assert patient.first_name not in text and patient.last_name not in text
        assert str(patient.date_of_birth) not in text

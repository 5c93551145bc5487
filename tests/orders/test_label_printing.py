"""Printing the labels of many orders from the admin: the print station is chosen first, then
one file (a PDF, or ZPL for a thermal printer) is rendered in the background with its
progress, whatever the number of orders."""

import io

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.exceptions import PermissionDenied
from django.urls import reverse
from pypdf import PdfReader

from core.admin_actions import CONFIRMED
from orders.models import Order, Prescription
from pharmacy.label_documents import label_render, print_job_render
from pharmacy.labels import render_labels_pdf
from pharmacy.models import PrintJob
from tests.factories import StaffFactory
from tests.orders.test_workflow import S, dispense_fully, submitted_order, with_status
from tests.signing_in import verified_staff_login

pytestmark = pytest.mark.django_db


def printable_orders(prescriber, count) -> list[Order]:
    orders = []
    for _ in range(count):
        order = with_status(submitted_order(prescriber), S.READY)
        Prescription.objects.filter(pk=order.prescription_id).update(
            rx_number=str(7000000 + order.prescription_id)
        )
        dispense_fully(order)
        orders.append(order)
    return orders


def pages(pdf: bytes) -> int:
    return len(PdfReader(io.BytesIO(pdf)).pages)


def station_page(client, orders):
    """The print action on the order list: its page asking for the print station."""
    return client.post(
        reverse("admin:orders_order_changelist"),
        {"action": "print_labels", ACTION_CHECKBOX_NAME: [o.pk for o in orders]},
    )


def print_action(client, orders, station=None):
    """The print action with the print station chosen (none: a PDF)."""
    return client.post(
        reverse("admin:orders_order_changelist"),
        {
            "action": "print_labels",
            ACTION_CHECKBOX_NAME: [o.pk for o in orders],
            CONFIRMED: "1",
            "station": station.pk if station else "",
        },
    )


def test_render_reports_progress_chunk_by_chunk(prescriber):
    orders = printable_orders(prescriber, 5)  # 2 lines each: 10 labels
    seen = []
    pdf = render_labels_pdf(
        orders, chunk=2, progress=lambda done, total: seen.append((done, total))
    )
    assert seen == [(2, 5), (4, 5), (5, 5)]
    assert pages(pdf) == 10


def test_a_small_selection_is_rendered_in_the_background_too(
    client, pharmacist, prescriber, django_capture_on_commit_callbacks
):
    orders = printable_orders(prescriber, 2)
    verified_staff_login(client, pharmacist)

    with django_capture_on_commit_callbacks(execute=True):
        response = print_action(client, orders)

    job = PrintJob.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:pharmacy_printjob_change", args=[job.pk])
    assert (job.status, job.done, job.total, job.station) == ("done", 2, 2, None)
    with job.file.open("rb") as pdf:
        assert pages(pdf.read()) == 4


def test_a_large_selection_prints_in_the_background_with_progress(
    client, pharmacist, prescriber, django_capture_on_commit_callbacks
):
    orders = printable_orders(prescriber, 26)
    verified_staff_login(client, pharmacist)

    with django_capture_on_commit_callbacks(execute=True):
        response = print_action(client, orders)

    job = PrintJob.objects.get()
    assert response["Location"] == reverse("admin:pharmacy_printjob_change", args=[job.pk])
    assert (job.status, job.done, job.total) == ("done", 26, 26)
    with job.file.open("rb") as pdf:
        assert pages(pdf.read()) == 2 * 26
    page = client.get(response["Location"]).content.decode()
    assert f'<progress value="{job.total}" max="{job.total}">' in page
    assert 'id="print-download"' in page
    assert 'http-equiv="refresh"' not in page  # finished: no more refreshing


def test_a_job_waiting_refreshes_and_a_failed_one_says_why(client, pharmacist, prescriber):

    unverified = with_status(submitted_order(prescriber), S.IN_REVIEW)
    job = PrintJob.objects.create(created_by=pharmacist, order_ids=[unverified.pk], total=1)
    verified_staff_login(client, pharmacist)
    url = reverse("admin:pharmacy_printjob_change", args=[job.pk])
    assert 'http-equiv="refresh"' in client.get(url).content.decode()

    print_job_render(job_id=job.pk)

    job.refresh_from_db()
    assert job.status == "failed"
    assert "Rx number" in job.error
    assert job.error in client.get(url).content.decode()


def test_rendering_a_label_again_keeps_the_old_version(client, pharmacist, prescriber):
    (order,) = printable_orders(prescriber, 1)
    verified_staff_login(client, pharmacist)
    url = reverse("admin:orders_order_rerender_label", args=[order.pk])

    client.post(url)
    client.post(url)

    assert list(order.labels.order_by("version").values_list("version", flat=True)) == [1, 2]
    for label in order.labels.all():
        with label.file.open("rb") as pdf:
            assert pages(pdf.read()) == 2
    page = client.get(reverse("admin:orders_order_change", args=[order.pk])).content.decode()
    assert "version 1" in page and "version 2" in page
    assert client.get(url).status_code == 302  # a GET renders nothing
    assert order.labels.count() == 2


def test_a_staff_account_in_no_group_cannot_render_or_dispense(client, prescriber):
    """admin_view lets any staff account in; the order's pages still need the rights a
    Pharmacist or Technician group gives."""
    (order,) = printable_orders(prescriber, 1)
    verified_staff_login(client, StaffFactory())
    for name in ("orders_order_rerender_label", "orders_order_dispense"):
        url = reverse(f"admin:{name}", args=[order.pk])
        assert client.get(url).status_code == 403
        assert client.post(url).status_code == 403
    move = reverse("admin:orders_order_move", args=[order.pk, "shipped"])
    assert client.get(move).status_code == 403
    assert order.labels.count() == 0
    with pytest.raises(PermissionDenied):
        label_render(order=order, actor=StaffFactory())
    assert order.labels.count() == 0


def test_a_technician_renders_a_label_again(client, technician, prescriber):
    (order,) = printable_orders(prescriber, 1)
    verified_staff_login(client, technician)
    client.post(reverse("admin:orders_order_rerender_label", args=[order.pk]))
    assert list(order.labels.values_list("version", "created_by")) == [(1, technician.pk)]

"""Print stations and printing labels through them: the print action asks for the station (the
last choice first, or the one active station), queues a print job and opens its page at once;
the job renders a PDF, or ZPL II for a thermal printer's station, and its page offers the file.
Pharmacists keep the stations, technicians see them, nobody else."""

import re

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from core.models import AccessAction, AccessEvent
from pharmacy import labels
from pharmacy.label_documents import print_job_render
from pharmacy.models import PrintJob, PrintStation
from pharmacy.notifications import print_job_start
from tests.orders.test_label_printing import print_action, printable_orders, station_page
from tests.pharmacy.test_zpl import parsed
from tests.signing_in import verified_staff_login

pytestmark = pytest.mark.django_db

ZPL, PDF = PrintStation.OutputFormat.ZPL, PrintStation.OutputFormat.PDF
RADIO = re.compile(r'<input type="radio" name="station" value="([^"]*)"([^>]*)>')


def offered(response) -> dict[str, bool]:
    """The station page's choices: value -> whether it is chosen."""
    assert response.status_code == 200
    return {value: " checked" in rest for value, rest in RADIO.findall(response.content.decode())}


@pytest.fixture
def thermal(db):
    return PrintStation.objects.create(name="Counter Zebra", output_format=ZPL, dpi=203)


@pytest.fixture
def office(db):
    return PrintStation.objects.create(name="Office laser", output_format=PDF)


@pytest.fixture
def retired(db):
    return PrintStation.objects.create(name="Old Zebra", output_format=ZPL, is_active=False)


# --- The station page ---------------------------------------------------------------------------


def test_the_print_action_asks_for_the_station_first(
    client, technician, prescriber, thermal, office, retired
):
    orders = printable_orders(prescriber, 2)
    verified_staff_login(client, technician)

    response = station_page(client, orders)

    # The active stations and none (a PDF); two active and no choice yet: none is chosen.
    assert offered(response) == {"": True, str(thermal.pk): False, str(office.pk): False}
    page = response.content.decode()
    assert "Print the labels of 2 orders" in page
    assert "Counter Zebra (ZPL II, 203 dpi)" in page and "Office laser (PDF)" in page
    assert "Old Zebra" not in page
    for order in orders:
        assert f'name="_selected_action" value="{order.pk}"' in page
        assert order.number in page
    assert PrintJob.objects.count() == 0  # nothing queued, nothing rendered


def test_the_one_active_station_is_offered_first_then_the_last_choice(
    client, technician, prescriber, thermal, retired, django_capture_on_commit_callbacks
):
    orders = printable_orders(prescriber, 1)
    verified_staff_login(client, technician)
    assert offered(station_page(client, orders)) == {"": False, str(thermal.pk): True}

    with django_capture_on_commit_callbacks(execute=True):
        print_action(client, orders)  # none: a PDF
    assert offered(station_page(client, orders)) == {"": True, str(thermal.pk): False}

    office = PrintStation.objects.create(name="Office laser", output_format=PDF)
    with django_capture_on_commit_callbacks(execute=True):
        print_action(client, orders, station=office)
    chosen = offered(station_page(client, orders))
    assert chosen == {"": False, str(thermal.pk): False, str(office.pk): True}

    office.is_active = False  # retired since: the one active station again
    office.save()
    assert offered(station_page(client, orders)) == {"": False, str(thermal.pk): True}


def test_the_station_page_reads_the_same_whatever_the_number_of_orders(
    client, technician, prescriber, thermal, office
):
    verified_staff_login(client, technician)
    counts = []
    for orders in (printable_orders(prescriber, 1), printable_orders(prescriber, 4)):
        with CaptureQueriesContext(connection) as queries:
            assert station_page(client, orders).status_code == 200
        counts.append(len(queries))
    assert counts[0] == counts[1]


def test_an_inactive_station_cannot_be_chosen(client, technician, prescriber, thermal, retired):
    orders = printable_orders(prescriber, 1)
    verified_staff_login(client, technician)

    response = print_action(client, orders, station=retired)

    assert str(retired.pk) not in offered(response)  # the page again, with the error
    assert "Select a valid choice" in response.content.decode()
    with pytest.raises(ValidationError, match="no longer in use"):
        print_job_start(orders=orders, station=retired, actor=technician)
    assert PrintJob.objects.count() == 0


# --- The job ------------------------------------------------------------------------------------


def test_the_action_answers_at_once_and_the_job_renders_after(
    client, technician, prescriber, thermal, django_capture_on_commit_callbacks
):
    orders = printable_orders(prescriber, 2)
    verified_staff_login(client, technician)

    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = print_action(client, orders, station=thermal)

    job = PrintJob.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:pharmacy_printjob_change", args=[job.pk])
    # Answered without rendering: the job waits, with no file, its task published on commit.
    assert (job.status, job.done, job.file.name, job.station) == ("queued", 0, "", thermal)
    assert len(queued) == 1
    page = client.get(response["Location"]).content.decode()
    assert 'http-equiv="refresh"' in page and 'id="print-download"' not in page

    queued[0]()  # the commit publishes it; with no broker it runs in-process

    job.refresh_from_db()
    assert (job.status, job.done, job.total) == ("done", 2, 2)
    assert job.file.name.endswith(".zpl")


def test_a_thermal_station_gives_a_zpl_download(
    client, pharmacist, prescriber, thermal, django_capture_on_commit_callbacks
):
    orders = printable_orders(prescriber, 2)  # two lines each: four labels
    verified_staff_login(client, pharmacist)
    with django_capture_on_commit_callbacks(execute=True):
        response = print_action(client, orders, station=thermal)
    job = PrintJob.objects.get()
    download = reverse("admin:pharmacy_printjob_download", args=[job.pk])

    page = client.get(response["Location"]).content.decode()
    assert f'href="{download}" id="print-download">Download the labels (ZPL)</a>' in page
    assert "Counter Zebra" in page
    assert 'http-equiv="refresh"' not in page
    assert AccessEvent.objects.count() == 0  # the job's page shows no patient

    response = client.get(download)

    assert response.status_code == 200
    assert response["Content-Type"] == "application/x-zpl"
    assert response["Content-Disposition"] == 'attachment; filename="labels-2-orders.zpl"'
    printed = parsed(b"".join(response.streaming_content).decode("ascii"))
    pages = [page for order in orders for page in labels.label_pages(order)]
    assert [(label.width, label.length) for label in printed] == [(812, 406)] * 4
    assert [label.barcode.payload for label in printed] == [p.barcode_payload for p in pages]
    events = AccessEvent.objects.order_by("object_id")
    assert [(e.action, e.object_id) for e in events] == [
        (AccessAction.DOWNLOADED_LABEL_PRINT, order.pk) for order in orders
    ]


def test_a_pdf_station_and_no_station_give_a_pdf(
    client, technician, prescriber, office, django_capture_on_commit_callbacks
):
    orders = printable_orders(prescriber, 1)
    verified_staff_login(client, technician)
    for station in (office, None):
        with django_capture_on_commit_callbacks(execute=True):
            print_action(client, orders, station=station)
        job = PrintJob.objects.latest("pk")
        assert (job.status, job.station) == ("done", station)
        response = client.get(reverse("admin:pharmacy_printjob_download", args=[job.pk]))
        assert response["Content-Type"] == "application/pdf"
        assert response["Content-Disposition"] == 'attachment; filename="labels-1-orders.pdf"'
        assert b"".join(response.streaming_content).startswith(b"%PDF-")


def test_a_300_dpi_station_prints_at_300_dpi(thermal, technician, prescriber):
    orders = printable_orders(prescriber, 1)
    thermal.dpi = 300
    thermal.save()
    job = print_job_start(orders=orders, station=thermal, actor=technician)
    assert PrintJob.objects.get(pk=job.pk).status == "queued"  # not committed: nothing ran

    print_job_render(job_id=job.pk)

    job.refresh_from_db()
    with job.file.open("rb") as file:
        printed = parsed(file.read().decode("ascii"))
    assert [(label.width, label.length) for label in printed] == [(1200, 600)] * 2


# --- Who may ------------------------------------------------------------------------------------


def station_form(**fields) -> dict:
    return {
        "name": "Back room Zebra",
        "output_format": "zpl",
        "dpi": "300",
        "is_active": "on",
    } | fields


def test_a_technician_sees_the_stations_and_cannot_add_or_change_one(client, technician, thermal):
    verified_staff_login(client, technician)
    assert client.get(reverse("admin:pharmacy_printstation_changelist")).status_code == 200
    assert (
        client.post(reverse("admin:pharmacy_printstation_add"), station_form()).status_code == 403
    )
    change = reverse("admin:pharmacy_printstation_change", args=[thermal.pk])
    assert client.get(change).status_code == 200  # read-only
    assert client.post(change, station_form(name="Renamed")).status_code == 403
    assert list(PrintStation.objects.values_list("name", flat=True)) == ["Counter Zebra"]


def test_a_pharmacist_adds_and_changes_stations_and_nobody_deletes_one(
    client, pharmacist, superuser, thermal
):
    verified_staff_login(client, pharmacist)
    response = client.post(reverse("admin:pharmacy_printstation_add"), station_form())
    assert response.status_code == 302
    added = PrintStation.objects.get(name="Back room Zebra")
    assert (added.output_format, added.dpi, added.is_active) == ("zpl", 300, True)
    change = reverse("admin:pharmacy_printstation_change", args=[thermal.pk])
    assert client.post(change, station_form(name="Counter Zebra", is_active="")).status_code == 302
    thermal.refresh_from_db()
    assert not thermal.is_active  # retired, kept for its jobs
    for user in (pharmacist, superuser):
        verified_staff_login(client, user)
        delete = reverse("admin:pharmacy_printstation_delete", args=[thermal.pk])
        assert client.post(delete, {"post": "yes"}).status_code == 403
    assert PrintStation.objects.count() == 2


def test_a_prescriber_gets_nothing(client, prescriber, thermal):
    orders = printable_orders(prescriber, 1)
    client.force_login(prescriber.user)
    for url in (
        reverse("admin:pharmacy_printstation_changelist"),
        reverse("admin:pharmacy_printstation_add"),
        reverse("admin:pharmacy_printstation_change", args=[thermal.pk]),
    ):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    response = print_action(client, orders, station=thermal)
    assert response["Location"].startswith("/admin/login/")
    with pytest.raises(PermissionDenied):
        print_job_start(orders=orders, station=thermal, actor=prescriber.user)
    assert PrintJob.objects.count() == 0
    assert PrintStation.objects.count() == 1

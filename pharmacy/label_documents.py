"""Label PDFs kept as documents: each render of an order's label is a new version (earlier ones
are kept), and a print job renders the labels of many orders as one file for its print station
(a PDF, or ZPL II for a thermal printer) with its progress."""

from django.core.exceptions import PermissionDenied
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import Max

from core.roles import STAFF, has_staff_role
from orders.models import Order, OrderEventKind
from orders.services import order_event_record

from .labels import render_label_pdf, render_labels_pdf
from .metrics import LABEL_RENDER_SECONDS
from .models import LabelDocument, PrintJob, PrintStation
from .zpl import render_labels_zpl


def label_render(*, order, actor=None) -> LabelDocument:
    """Render the order's label PDF as a new version; earlier versions are kept. A person
    (actor) must be a pharmacist or a technician; the workers render without one."""
    if actor is not None and not has_staff_role(actor, STAFF):
        raise PermissionDenied("Only a pharmacist or a technician renders labels.")
    with LABEL_RENDER_SECONDS.time():
        pdf = render_label_pdf(order)
    with transaction.atomic():
        last = LabelDocument.objects.filter(order=order).aggregate(last=Max("version"))["last"]
        version = (last or 0) + 1
        document = LabelDocument(order=order, version=version, created_by=actor)
        document.file.save(f"{order.number}-v{version}.pdf", ContentFile(pdf), save=False)
        document.save()
        order_event_record(
            order=order,
            kind=OrderEventKind.LABEL_RENDERED,
            parameters={"version": version},
            actor=actor,
        )
    return document


def print_job_render(*, job_id: int) -> None:
    """Render a print job once: claimed with a conditional update, progress saved per chunk.
    ZPL II for a thermal printer's station (at its resolution), a PDF otherwise."""
    claimed = PrintJob.objects.filter(pk=job_id, status=PrintJob.Status.QUEUED).update(
        status=PrintJob.Status.RUNNING
    )
    if not claimed:
        return
    job = PrintJob.objects.select_related("station").get(pk=job_id)
    orders = Order.objects.filter(pk__in=job.order_ids).order_by("pk")

    def progress(done: int, _total: int) -> None:
        PrintJob.objects.filter(pk=job_id).update(done=done)

    station = job.station
    try:
        if station is not None and station.output_format == PrintStation.OutputFormat.ZPL:
            content = render_labels_zpl(orders, dpi=station.dpi, progress=progress).encode()
            extension = "zpl"
        else:
            content, extension = render_labels_pdf(orders, progress=progress), "pdf"
    except ValueError as refused:
        PrintJob.objects.filter(pk=job_id).update(status=PrintJob.Status.FAILED, error=str(refused))
        return
    name = f"labels-{job.total}-orders-{job.pk}.{extension}"
    job.file.save(name, ContentFile(content), save=False)
    PrintJob.objects.filter(pk=job_id).update(
        file=job.file.name, done=job.total, status=PrintJob.Status.DONE
    )

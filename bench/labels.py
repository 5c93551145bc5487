"""Label render: the portal's label service against bare WeasyPrint, in the same process.

Ours is pharmacy.labels.render_label_pdf(order) for 200 verified, dispensed orders, one document
each: reading the order, building the HTML and the barcode, laying out and writing the PDF. The
baseline renders the same HTML strings with bare WeasyPrint, a stylesheet and a font
configuration built once beforehand, so the ratio is the portal's own work on top of
WeasyPrint's (budget: at most 10 % more, p50). The thermal printers' ZPL II rendering of the
same labels (pharmacy.zpl.render_pages_zpl, from the labels as read before timing: the read is
the same for both formats) is timed in the same loop; the three take turns going first, label
by label, so that drift of the machine hits all of them. Its budget is a fiftieth of our PDF's
p50: ZPL is text that the printer lays out itself.

Then the batch print: the labels of 100 orders as one document (render_labels_pdf), three times;
per label it must cost at most 0.75 of one label in a document of its own (our p50 above), since
the query, the stylesheets and each font subset are shared by the whole batch.

The empty label page (bare WeasyPrint, no text) is reported without a budget: the floor of any
PDF label on this machine.

    python -m bench.labels
"""

import datetime
import gc
import time
import uuid
from decimal import Decimal
from pathlib import Path

from .common import Row, drop_database, percentile, ratio_row, say, setup_django, write_results

NAME = "labels"
DATABASE = "ldn_bench_labels"
ORDERS = 200
BATCH = 100
WARMUP = 10
PDF_RATIO_BUDGET = 1.10  # ours / bare WeasyPrint, one label per document, p50
BATCH_RATIO_BUDGET = 0.75  # a label of the batch / a label in a document of its own
ZPL_RATIO_BUDGET = 0.02  # a label's ZPL / its PDF
ZPL_DPI = 300  # the print stations' usual resolution
RX_NUMBER_START = 7000000
EMPTY_PAGE = "<!DOCTYPE html><html><body></body></html>"


def compounded_orders(count: int) -> list:
    """Orders verified (an Rx number) and dispensed from one batch, each of one 1.5 mg capsule
    line, waiting for the pharmacist's final check: what the portal has when labels print."""
    from orders.dosing import DosageForm, Regimen, Step
    from orders.models import Formulation, Order, OrderStatus, Prescription
    from orders.services import order_submit
    from pharmacy.models import Dispense
    from tests.factories import (
        BatchFactory,
        FormulationVersionFactory,
        PatientFactory,
        PrescriberFactory,
        clinic_of,
    )

    regimen = Regimen(
        dosage_form=DosageForm.CAPSULE, steps=(Step(Decimal("1.5"), 30),), doses_per_day=1,
        quantity=Decimal("30"), days_supply=30, refills=1,
    )  # fmt: skip
    prescriber = PrescriberFactory()
    capsule = Formulation.objects.get(dosage_form="capsule", strength_mg=Decimal("1.5"))
    batch = BatchFactory(
        formulation_version=FormulationVersionFactory(formulation=capsule),
        units_remaining=Decimal(30 * count), actual_units=Decimal(30 * count),
        planned_units=Decimal(30 * count),
    )  # fmt: skip
    orders = []
    for _ in range(count):
        patient = PatientFactory(
            clinic=clinic_of(prescriber), created_by=prescriber.user, takes_opioids=False,
            current_medications="", date_of_birth=datetime.date(1970, 1, 1),
        )  # fmt: skip
        order = order_submit(
            actor=prescriber.user, patient=patient, regimen=regimen, diagnosis_codes=["M79.7"],
            reason_for_compounding="Strength not available commercially", ship_to="clinic",
            needed_by=None, acknowledged=[], idempotency_key=uuid.uuid4(),
        )  # fmt: skip
        Prescription.objects.filter(pk=order.prescription_id).update(
            rx_number=str(RX_NUMBER_START + order.prescription_id)
        )
        Order.objects.filter(pk=order.pk).update(status=OrderStatus.COMPOUNDING)
        Dispense.objects.create(
            order=order, line=order.lines().get(), batch=batch, units=Decimal("30"),
            dispensed_by=batch.compounded_by,
        )  # fmt: skip
        orders.append(order)
    return orders


def label_orders() -> list:
    """The 200 orders of this benchmark: found when an earlier run made them, otherwise made
    in a new database (the factories' names and numbers start again in each process)."""
    from django.db import connections

    from core.models import User
    from orders.models import Order

    def found() -> list:
        return list(
            Order.objects.filter(prescription__rx_number__gt="", dispenses__isnull=False)
            .distinct()
            .order_by("pk")[:ORDERS]
        )

    orders = found()
    if len(orders) < ORDERS:
        say(f"making {ORDERS} verified, dispensed orders")
        started = time.perf_counter()
        if User.objects.exists():  # an earlier run's data, short of orders: start again
            connections.close_all()
            drop_database(DATABASE)
            setup_django(DATABASE)
        compounded_orders(ORDERS)
        orders = found()
        say(f"made them in {time.perf_counter() - started:.0f} s")
    return orders


def bare_weasyprint():
    """The baseline's renderer: bare WeasyPrint with the label stylesheet and the page size,
    built once (Lato loaded from the collected static files by WeasyPrint's own fetcher), and a
    font configuration built once."""
    from django.conf import settings
    from weasyprint import CSS, HTML
    from weasyprint.text.fonts import FontConfiguration

    fonts = FontConfiguration()
    stylesheets = [
        CSS(filename=Path(settings.STATIC_ROOT) / "labels" / "label.css", font_config=fonts),
        CSS(string=f"@page {{ size: {settings.LABEL_PAGE_SIZE}; }}", font_config=fonts),
    ]

    def render(html: str) -> bytes:
        return HTML(string=html).write_pdf(stylesheets=stylesheets, font_config=fonts)

    return render


def elapsed_ms(function, *args) -> float:
    start = time.perf_counter()
    function(*args)
    return (time.perf_counter() - start) * 1000


def main() -> None:
    setup_django(DATABASE)
    from orders.models import Order
    from pharmacy import labels, zpl

    orders = label_orders()
    # The labels as read, and the HTML the baseline renders (the portal's own), made before
    # timing starts.
    pages_of = {order.pk: labels.label_pages(order) for order in orders}
    html_of = {pk: labels.render_labels_html(pages) for pk, pages in pages_of.items()}
    bare = bare_weasyprint()

    def zpl_of(order) -> str:
        return zpl.render_pages_zpl(pages_of[order.pk], dpi=ZPL_DPI)

    say(f"warming up: {WARMUP} labels each")
    for order in orders[:WARMUP]:
        labels.render_label_pdf(order)
        bare(html_of[order.pk])
        zpl_of(order)
    labels.render_labels_pdf(orders[:WARMUP])

    ours, baseline, zpl_ms = [], [], []
    gc.collect()
    for index, order in enumerate(orders):
        turns = [
            (ours, labels.render_label_pdf, order),
            (baseline, bare, html_of[order.pk]),
            (zpl_ms, zpl_of, order),
        ]
        shift = index % len(turns)  # each goes first in turn
        for times, function, argument in turns[shift:] + turns[:shift]:
            times.append(elapsed_ms(function, argument))

    # The floor: bare WeasyPrint laying out and writing an empty label page (no text at all).
    empty = [elapsed_ms(bare, EMPTY_PAGE) for _ in range(ORDERS // 2)]

    batch_orders = list(Order.objects.filter(pk__in=[o.pk for o in orders[:BATCH]]))
    batch_runs = [elapsed_ms(labels.render_labels_pdf, batch_orders) / BATCH for _ in range(3)]

    ours_p50, baseline_p50 = percentile(ours, 50), percentile(baseline, 50)
    zpl_p50, batch_ms = percentile(zpl_ms, 50), percentile(batch_runs, 50)
    say(
        f"ours p50 {ours_p50:.2f} ms, p95 {percentile(ours, 95):.2f} ms; bare WeasyPrint p50 "
        f"{baseline_p50:.2f} ms, p95 {percentile(baseline, 95):.2f} ms; "
        f"ratio {ours_p50 / baseline_p50:.3f}"
    )
    say(f"ZPL p50 {zpl_p50:.2f} ms, p95 {percentile(zpl_ms, 95):.2f} ms")
    say(f"bare WeasyPrint, an empty label page: p50 {percentile(empty, 50):.2f} ms")
    say(
        f"batch of {BATCH}: {batch_ms:.2f} ms per label (runs: "
        f"{', '.join(f'{r:.2f}' for r in batch_runs)})"
    )
    rows = [
        ratio_row(
            NAME,
            "one label per document, p50 (ms): bare WeasyPrint, ours",
            baseline_p50,
            ours_p50,
            at_most=PDF_RATIO_BUDGET,
            unit="ms",
        ),
        ratio_row(
            NAME,
            f"batch of {BATCH} in one document, per label (ms): one per document p50, ours",
            ours_p50,
            batch_ms,
            at_most=BATCH_RATIO_BUDGET,
            unit="ms",
        ),
        ratio_row(
            NAME,
            f"ZPL II at {ZPL_DPI} dpi, per label p50 (ms): our PDF, ZPL",
            ours_p50,
            zpl_p50,
            at_most=ZPL_RATIO_BUDGET,
            unit="ms",
        ),
        Row(
            NAME,
            "bare WeasyPrint, an empty label page, p50 (ms)",
            percentile(empty, 50),
            "-",
            True,
            unit="ms",
        ),
    ]
    write_results(
        NAME,
        rows,
        orders=ORDERS,
        ours_ms=ours,
        baseline_ms=baseline,
        zpl_ms=zpl_ms,
        batch_ms=batch_runs,
        empty_page_ms=empty,
    )


if __name__ == "__main__":
    main()

# ruff: noqa: F811  (the fixtures imported from test_labels are parameters of the tests)
"""The final check scans each bottle's printed label: a label of another order, fill or lot, a
code that is no label, or a bottle whose label was not scanned refuses it with what was
expected, and changes nothing; the scans are kept on the check's event."""

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from orders.models import OrderEvent, OrderStatus
from pharmacy.fulfilment import order_final_check
from pharmacy.label_documents import label_render
from pharmacy.labels import label_barcodes, label_pages
from pharmacy.models import Delivery
from pharmacy.recalls import batch_recall
from tests.pharmacy.test_labels import (  # noqa: F401
    named_prescriber,
    pharmacist,
    titration_order,
)
from tests.signing_in import verified_staff_login

pytestmark = pytest.mark.django_db
S = OrderStatus


def unchanged(order) -> tuple:
    order.refresh_from_db()
    return order.status, OrderEvent.objects.filter(order=order).count(), Delivery.objects.count()


def test_every_bottles_label_scanned_in_any_order_makes_it_ready(titration_order, pharmacist):
    barcodes = label_barcodes(titration_order)
    rx = titration_order.prescription.rx_number

    ready = order_final_check(
        order=titration_order, actor=pharmacist, scans=[f"  {barcodes[2]}\n", "", *barcodes[:2]]
    )

    assert barcodes == [f"{rx}|0|LDN15-B", f"{rx}|0|LDN30-A", f"{rx}|0|LDN45-A"]
    assert ready.status == S.READY
    event = ready.events.get(to_status=S.READY)
    assert (event.actor, event.parameters) == (pharmacist, {"scanned_labels": barcodes})


@pytest.mark.parametrize(
    ("scans", "problems"),
    [
        (lambda b: b[:2], ["Scan the label of the bottle of Naltrexone HCl 4.5 mg capsule (lot "
                           "LDN45-A)."]),
        (lambda b: [b[0], b[0], b[1]], ["Scan the label of the bottle of Naltrexone HCl 4.5 mg "
                                        "capsule (lot LDN45-A)."]),
        (lambda b: [*b, b[0].replace("|0|", "|1|")],
         ["The label scanned as “{rx}|1|LDN15-B” is not a label of this order: it is Rx {rx}, "
          "fill 1, lot LDN15-B. Put it aside and scan this order's labels."]),
        (lambda b: [b[0], b[1], b[2].replace("LDN45-A", "LDN45-Z")],
         ["The label scanned as “{rx}|0|LDN45-Z” is not a label of this order: it is Rx {rx}, "
          "fill 0, lot LDN45-Z. Put it aside and scan this order's labels.",
          "Scan the label of the bottle of Naltrexone HCl 4.5 mg capsule (lot LDN45-A)."]),
        (lambda b: [*b, "NX261201-C1.5-01"],
         ["The label scanned as “NX261201-C1.5-01” is not a label of this order: it is not a "
          "prescription label of this pharmacy. Put it aside and scan this order's labels."]),
    ],
)  # fmt: skip
def test_a_wrong_or_missing_label_is_refused_and_nothing_changes(
    titration_order,
    pharmacist,
    scans,
    problems,
):
    rx = titration_order.prescription.rx_number
    before = unchanged(titration_order)

    with pytest.raises(ValidationError) as refused:
        order_final_check(
            order=titration_order, actor=pharmacist, scans=scans(label_barcodes(titration_order))
        )

    assert refused.value.messages == [problem.format(rx=rx) for problem in problems]
    assert unchanged(titration_order) == before


def test_a_recalled_batch_pulled_back_refuses_the_check(titration_order, pharmacist):
    """The recall pulls the recalled units back from an order not yet shipped: the check of
    its labels is refused until the bottle is dispensed again from good stock."""
    barcodes = label_barcodes(titration_order)
    batch = titration_order.dispenses.order_by("pk").first().batch
    batch_recall(batch=batch, actor=pharmacist, reason="Particulates seen.")
    before = unchanged(titration_order)

    with pytest.raises(ValidationError) as refused:
        order_final_check(order=titration_order, actor=pharmacist, scans=barcodes)

    assert refused.value.messages == [
        f"Order {titration_order.number} is not fully dispensed yet: dispense every line first."
    ]
    assert unchanged(titration_order) == before


def test_the_page_lists_the_bottles_and_keeps_each_problem_on_its_line(
    client,
    titration_order,
    pharmacist,
):
    verified_staff_login(client, pharmacist)
    url = reverse("admin:orders_order_move", args=[titration_order.pk, S.READY])
    pages = label_pages(titration_order)

    shown = client.get(url)

    assert shown.context["bottles"] == [
        f"{page.drug}, {page.quantity}, lot {', '.join(page.lot_numbers)}, BUD "
        f"{page.beyond_use_date:%m/%d/%Y}"
        for page in pages
    ]
    refused = client.post(url, {"labels": ""})
    assert refused.status_code == 200
    assert refused.context["form"].non_field_errors() == [
        f"Scan the label of the bottle of {page.drug} (lot {', '.join(page.lot_numbers)})."
        for page in pages
    ]
    assert unchanged(titration_order)[0] == S.COMPOUNDING

    done = client.post(url, {"labels": "\r\n".join(label_barcodes(titration_order)) + "\r\n"})

    assert done.status_code == 302
    assert unchanged(titration_order)[0] == S.READY


def test_after_the_check_the_order_page_follows_the_label_until_it_is_rendered(
    client,
    titration_order,
    pharmacist,
):
    """The check answers at once: the worker renders and emails the label after the commit
    (not run here), and the order page says so and refreshes itself until the label is there."""
    order_final_check(
        order=titration_order, actor=pharmacist, scans=label_barcodes(titration_order)
    )
    verified_staff_login(client, pharmacist)
    url = reverse("admin:orders_order_change", args=[titration_order.pk])

    waiting = client.get(url)
    assert waiting.context["label_pending"] is True
    assert '<meta http-equiv="refresh" content="3">' in waiting.content.decode()

    label_render(order=titration_order)
    done = client.get(url)
    assert done.context["label_pending"] is False
    assert 'http-equiv="refresh"' not in done.content.decode()

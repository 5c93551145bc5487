"""A batch's compounding record, printed from its admin page: the formulation version, each
ingredient with the formula's amount and the lots used, the steps, every QC check with its
result or a blank, and the signatures with blanks for what is still to come."""

import gc
import io
import re
from decimal import Decimal

import pytest
from django.urls import reverse
from pypdf import PdfReader
from weasyprint import CSS, HTML

from pharmacy import labels, worksheets
from pharmacy.models import BatchIngredient, BatchStatus, QcResult
from tests.factories import (
    BatchFactory,
    FormulationVersionFactory,
    IngredientFactory,
    IngredientLotFactory,
    StaffFactory,
)
from tests.signing_in import verified_staff_login

pytestmark = pytest.mark.django_db


@pytest.fixture
def batch():
    version = FormulationVersionFactory(approved_by=StaffFactory(first_name="Paula",
                                                                 last_name="Approver"))  # fmt: skip
    naltrexone = IngredientFactory(name="naltrexone HCl", unit="mg")
    filler = IngredientFactory(name="microcrystalline cellulose", kind="excipient", unit="mg")
    version.ingredients.create(ingredient=naltrexone, amount_per_unit=Decimal("1.5"))
    version.ingredients.create(ingredient=filler, amount_per_unit=Decimal("148.5"))
    batch = BatchFactory(
        formulation_version=version, lot_number="NX261204-C1.5-01", planned_units=Decimal("200"),
        actual_units=None, status=BatchStatus.AWAITING_QC, beyond_use_date=None,
        compounded_by=StaffFactory(first_name="Tom", last_name="Technician"),
    )  # fmt: skip
    BatchIngredient.objects.create(batch=batch, amount=Decimal("300"), lot=IngredientLotFactory(
        ingredient=naltrexone, lot_number="NTX-2291"))  # fmt: skip
    checker = StaffFactory(first_name="Quinn", last_name="Checker")
    QcResult.objects.create(batch=batch, check_name="Appearance", passed=True, notes="Uniform",
                            recorded_by=checker)  # fmt: skip
    return batch


def text_of(pdf: bytes) -> str:
    reader = PdfReader(io.BytesIO(pdf))
    return " ".join(" ".join(page.extract_text().split()) for page in reader.pages)


def test_the_compounding_record_prints_everything_with_blanks_for_what_is_to_come(
    client, pharmacist, batch
):
    verified_staff_login(client, pharmacist)
    page = client.get(reverse("admin:pharmacy_batch_change", args=[batch.pk]))
    url = reverse("admin:pharmacy_batch_worksheet", args=[batch.pk])
    assert f'href="{url}"' in page.content.decode()

    answer = client.get(url)

    assert answer["Content-Type"] == "application/pdf"
    text = text_of(answer.content)
    version = batch.formulation_version
    for expected in (
        "Compounding record: batch NX261204-C1.5-01",
        "Naltrexone HCl 1.5 mg capsule",
        f"version {version.version}, approved by Paula Approver",
        "Planned yield 200 capsule",
        "microcrystalline cellulose 148.5 mg 29700 mg",
        "naltrexone HCl 1.5 mg 300 mg NTX-2291: 300 mg",
        "Geometric dilution with microcrystalline cellulose; fill size 3.",
        "Appearance Pass Uniform Quinn Checker",
        "Capsule weight within 10 % of target Pass / Fail",
        "Label check Pass / Fail",
        "Compounded by Tom Technician",
        "QC recorded by Quinn Checker",
        "Released by (pharmacist) ________________",
    ):
        assert expected in text, (expected, text)
    assert re.search(r"Actual yield _+", text)


def test_the_record_is_for_staff_who_see_batches(client, batch):
    url = reverse("admin:pharmacy_batch_worksheet", args=[batch.pk])
    assert client.get(url).status_code == 302  # to the admin's sign-in
    verified_staff_login(client, StaffFactory())  # staff without a group
    assert client.get(url).status_code == 403


def test_the_record_is_printed_in_turn_with_the_labels(batch, monkeypatch):
    """The record's fonts go into the font configuration that labels share: its stylesheet and
    its PDF are made under the labels' render lock, the cycle collector held meanwhile."""
    seen = []

    def watched(method):
        def call(*args, **kwargs):
            seen.append((method.__qualname__, labels._RENDER_LOCK.locked(), gc.isenabled()))
            return method(*args, **kwargs)

        return call

    monkeypatch.setattr(CSS, "__init__", watched(CSS.__init__))
    monkeypatch.setattr(HTML, "write_pdf", watched(HTML.write_pdf))

    pdf = worksheets.batch_worksheet_pdf(batch)

    assert "NX261204-C1.5-01" in text_of(pdf)
    # The record's stylesheet, the fonts' stylesheet it imports, then the PDF.
    assert seen == [
        ("CSS.__init__", True, False), ("CSS.__init__", True, False),
        ("HTML.write_pdf", True, False),
    ]  # fmt: skip
    assert not labels._RENDER_LOCK.locked()
    assert gc.isenabled()

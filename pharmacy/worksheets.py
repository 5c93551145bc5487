"""The compounding record of a batch, printable: the formulation version it follows, each
ingredient with the amount the formula asks for and the lots and amounts used, the steps, every
QC check with its result or a blank to fill in, and the signatures (compounded, checked,
released) with blanks for those still to come. Rendered by the labels' machinery (WeasyPrint
with the same static-files-only fetcher and fonts); no patient data."""

from dataclasses import dataclass
from decimal import Decimal

from django.template.loader import render_to_string
from weasyprint import CSS, HTML

from core.numbers import quantity_text

from .labels import font_configuration, rendering, static_prefix, url_fetcher
from .models import Batch

TEMPLATE = "labels/worksheet.html"
STYLESHEET = "labels/worksheet.css"  # a static file


@dataclass(frozen=True)
class Ingredient:
    name: str
    unit: str
    per_unit: Decimal  # the formula's amount per capsule or mL
    planned: Decimal  # per_unit x the batch's planned units
    used: list[tuple[str, Decimal]]  # (lot, amount) recorded

    @property
    def per_unit_text(self) -> str:
        return f"{quantity_text(self.per_unit)} {self.unit}"

    @property
    def planned_text(self) -> str:
        return f"{quantity_text(self.planned)} {self.unit}"

    @property
    def used_text(self) -> list[str]:
        return [f"{lot}: {quantity_text(amount)} {self.unit}" for lot, amount in self.used]


@dataclass(frozen=True)
class Check:
    name: str
    result: str  # "Pass", "Fail" or "" (to fill in)
    notes: str
    recorded_by: str
    recorded_at: object


def worksheet_context(batch: Batch) -> dict:
    version = batch.formulation_version
    used: dict[int, list[tuple[str, Decimal]]] = {}
    for row in batch.ingredients.select_related("lot__ingredient").order_by("pk"):
        used.setdefault(row.lot.ingredient_id, []).append((row.lot.lot_number, row.amount))
    ingredients = [
        Ingredient(
            name=item.ingredient.name,
            unit=item.ingredient.unit,
            per_unit=item.amount_per_unit,
            planned=item.amount_per_unit * batch.planned_units,
            used=used.get(item.ingredient_id, []),
        )
        for item in version.ingredients.select_related("ingredient").order_by("ingredient__name")
    ]
    results = {r.check_name: r for r in batch.qc_results.select_related("recorded_by")}
    checks = []
    for name in version.qc_checks:
        result = results.get(name)
        checks.append(
            Check(name, "", "", "", None)
            if result is None
            else Check(
                name,
                "Pass" if result.passed else "Fail",
                result.notes,
                result.recorded_by.get_full_name(),
                result.recorded_at,
            )
        )
    checked_by = sorted({c.recorded_by for c in checks if c.recorded_by})
    return {
        "batch": batch, "version": version, "formulation": version.formulation,
        "ingredients": ingredients, "checks": checks, "checked_by": ", ".join(checked_by),
        "unit": version.formulation.unit,
    }  # fmt: skip


def batch_worksheet_pdf(batch: Batch) -> bytes:
    html = render_to_string(TEMPLATE, worksheet_context(batch))
    fonts = font_configuration()
    with rendering():  # the stylesheet's fonts go into the font configuration the labels share
        stylesheet = CSS(
            url=static_prefix() + STYLESHEET, url_fetcher=url_fetcher(), font_config=fonts
        )
        document = HTML(string=html, base_url=static_prefix(), url_fetcher=url_fetcher())
        return document.write_pdf(stylesheets=[stylesheet], font_config=fonts)

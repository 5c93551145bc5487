"""Personal health information never goes into logs, URLs or email subjects.

One whole order, from a prescriber's application to the label emailed to the clinic, through
the portal's pages and the admin (in-process Celery, the embedded default's DEBUG on), with
every logger's records captured at DEBUG: the patient's name and date of birth appear in no log
line, no address the browser asked for or was sent to, no link in an email and no subject."""

import datetime
import logging
import re
import uuid
from decimal import Decimal

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse

from orders.models import Formulation, Order, OrderStatus, Patient
from pharmacy import batches
from pharmacy.labels import label_barcodes
from prescribers.models import Prescriber
from prescribers.services import prescriber_approve
from tests.factories import (
    TEST_PASSWORD,
    FormulationVersionFactory,
    IngredientFactory,
    IngredientLotFactory,
    application_form,
    clinic_of,
)
from tests.pharmacy.test_scanning import scanned_form
from tests.signing_in import verified_staff_login

pytestmark = pytest.mark.django_db

# An invented patient whose name and birthday appear nowhere else in the portal.
FIRST, LAST = "Zephyrine", "Quackenbosch"
BORN = datetime.date(1971, 8, 29)
PHI = [FIRST, LAST, BORN.isoformat(), BORN.strftime("%m/%d/%Y"), "Aug. 29, 1971"]
NEW_PASSWORD = "a-long-new-secret-42"


class RecordingClient(Client):
    """A test client that keeps every address it asks for and every redirect it is given."""

    def __init__(self, urls: list[str], **defaults):
        super().__init__(**defaults)
        self.urls = urls

    def request(self, **request):
        query = request.get("QUERY_STRING", "")
        self.urls.append(request["PATH_INFO"] + (f"?{query}" if query else ""))
        response = super().request(**request)
        if response.has_header("Location"):
            self.urls.append(response["Location"])
        return response


def leaks(texts) -> list[tuple[str, str]]:
    return [(phi, text) for text in texts for phi in PHI if phi.casefold() in str(text).casefold()]


def log_lines(records: list[logging.LogRecord]) -> list[str]:
    """What a handler would write: the message with its arguments, and any traceback."""
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    return [formatter.format(record) for record in records]


def released_capsules(strength: str, *, compounder, pharmacist):
    """A batch of capsules compounded by the technician, QC passed, released by a pharmacist."""
    formulation = Formulation.objects.get(dosage_form="capsule", strength_mg=Decimal(strength))
    naltrexone = IngredientFactory(name="naltrexone HCl")
    version = FormulationVersionFactory(formulation=formulation)
    version.ingredients.create(ingredient=naltrexone, amount_per_unit=Decimal(strength))
    batch = batches.batch_start(formulation_version=version, planned_units=Decimal("60"),
                                actor=compounder)  # fmt: skip
    lot = IngredientLotFactory(ingredient=naltrexone, expires_on=BORN.replace(year=2099))
    batches.batch_add_ingredient(batch=batch, lot=lot, amount=Decimal("90"), actor=compounder)
    batch = batches.batch_submit_for_qc(batch=batch, actor=compounder, actual_units=Decimal("60"))
    for check in version.qc_checks:
        batches.batch_record_qc(batch=batch, check_name=check, passed=True, actor=compounder)
    return batches.batch_release(batch=batch, actor=pharmacist)


@pytest.fixture
def everything_logged(caplog, settings):
    """Every logger at DEBUG, as with LOG_LEVEL=DEBUG, and more: libraries' own levels (Django
    keeps its loggers at INFO) are lowered too; only the levels the portal's LOGGING sets stay.
    DEBUG is on, as in the embedded default, where Django can log each SQL statement."""
    settings.DEBUG = True
    kept = {name for name, config in settings.LOGGING["loggers"].items() if "level" in config}
    caplog.set_level(logging.DEBUG)
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if isinstance(logger, logging.Logger) and name not in kept:
            caplog.set_level(logging.DEBUG, logger=name)
    return caplog


def test_a_whole_order_puts_no_patient_data_in_logs_urls_or_subjects(
    everything_logged, pharmacist, technician, django_capture_on_commit_callbacks
):
    urls: list[str] = []
    applicant = RecordingClient(urls)

    # The prescriber applies; a pharmacist approves; the link from the email sets a password.
    applied = applicant.post(reverse("prescriber_apply"), application_form())
    assert applied.status_code == 302
    prescriber = Prescriber.objects.get(npi="1234567893")
    with django_capture_on_commit_callbacks(execute=True):
        prescriber_approve(prescriber=prescriber, actor=pharmacist)
    link = re.search(r"http://portal\.test(/accounts/activate/\S+/)", mail.outbox[-1].body)[1]
    form_page = applicant.get(link, follow=True)
    applicant.post(form_page.redirect_chain[-1][0],
                   {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})  # fmt: skip
    signed_in = applicant.post(
        reverse("login"), {"username": prescriber.user.email, "password": NEW_PASSWORD},
        follow=True,
    )  # fmt: skip
    assert signed_in.context["user"] == prescriber.user

    # A patient, and an order of 1.5 mg capsules for a month.
    added = applicant.post(reverse("patient_create"), {
        "first_name": FIRST, "last_name": LAST, "date_of_birth": BORN.isoformat(), "sex": "F",
        "phone": "(217) 555-0190", "address_line1": "4 Birch Road", "address_line2": "",
        "city": "Urbana", "state": "IL", "postal_code": "61801", "allergies": "NKDA",
        "current_medications": "", "takes_opioids": "no",
    }, follow=True)  # fmt: skip
    patient = Patient.objects.get(last_name=LAST)
    assert FIRST in added.content.decode()  # the page shows the patient, the address does not
    applicant.get(reverse("patient_list"))
    ordered = applicant.post(reverse("order_create", args=[patient.pk]), {
        "dosage_form": "capsule", "concentration_mg_per_ml": "", "steps": "1.5 x 30",
        "doses_per_day": "1", "time_of_day": "bedtime", "quantity": "30", "days_supply": "30",
        "refills": "1", "diagnosis_codes": "M79.7", "reason_for_compounding": "Low dose.",
        "ship_to": "clinic", "needed_by": "", "idempotency_key": str(uuid.uuid4()),
    }, follow=True)  # fmt: skip
    order = Order.objects.get()
    assert ordered.redirect_chain == [(reverse("order_detail", args=[order.pk]), 302)]

    # The pharmacy: review and verify (signature), a batch compounded and released,
    # dispensed from it, the final check (the label is rendered and emailed to the clinic).
    staff = RecordingClient(urls)

    def move(user, to_status, **data):
        verified_staff_login(staff, user)
        url = reverse("admin:orders_order_move", args=[order.pk, to_status])
        staff.get(url)
        assert staff.post(url, data).status_code == 302

    verified_staff_login(staff, pharmacist)
    staff.get(reverse("admin:orders_order_changelist"), {"q": order.number})
    staff.get(reverse("admin:orders_order_change", args=[order.pk]))
    move(pharmacist, OrderStatus.IN_REVIEW)
    move(pharmacist, OrderStatus.VERIFIED, password=TEST_PASSWORD)
    released_capsules("1.5", compounder=technician, pharmacist=pharmacist)
    verified_staff_login(staff, technician)
    staff.post(reverse("admin:orders_order_dispense", args=[order.pk]), scanned_form(order))
    with django_capture_on_commit_callbacks(execute=True):
        move(pharmacist, OrderStatus.READY, labels="\n".join(label_barcodes(order)))

    order.refresh_from_db()
    assert order.status == OrderStatus.READY
    label_mail = mail.outbox[-1]
    assert label_mail.to == [clinic_of(prescriber).label_email]
    assert label_mail.attachments[0][0] == f"label-{order.number}.pdf"
    applicant.get(reverse("order_detail", args=[order.pk]))
    assert applicant.get(reverse("order_label", args=[order.pk])).status_code == 200

    # Patient data was written, printed and logged about; it leaked into none of these.
    records = everything_logged.records
    assert any(r.levelno == logging.DEBUG for r in records)  # captured at DEBUG indeed
    assert any(r.name == "pharmacy.outbox" for r in records)  # the label email's line
    assert leaks(log_lines(records)) == []
    assert len(urls) > 20
    assert leaks(urls) == []
    email_links = [link for m in mail.outbox for link in re.findall(r"https?://\S+", m.body)]
    assert email_links and leaks(email_links) == []
    assert [m.subject for m in mail.outbox] == [
        "Demo Compounding Pharmacy: your prescriber account is approved",
        f"Demo Compounding Pharmacy: label for order {order.number}",
    ]
    assert leaks(m.subject for m in mail.outbox) == []


def test_the_check_finds_a_name_in_a_log_line(caplog):
    """The test above can fail: a record naming the patient is caught, in its arguments too."""
    caplog.set_level(logging.DEBUG)
    logging.getLogger("pharmacy.notifications").info("label for %s %s", FIRST, LAST)
    logging.getLogger("orders").debug("born %s", BORN.strftime("%m/%d/%Y"))
    assert [phi for phi, _line in leaks(log_lines(caplog.records))] == [FIRST, LAST, "08/29/1971"]

"""The outbox: one row per email in the same transaction as its cause, sent once after commit,
retried, swept, and visible in the admin."""

import datetime
import io
import re
from decimal import Decimal
from email import message_from_bytes, policy

import pytest
from aiosmtpd.controller import Controller
from django.core import mail
from django.core.files.base import ContentFile
from django.core.mail import EmailMessage
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape
from pypdf import PdfReader

from orders.dosing import DosageForm, Regimen, Step
from orders.models import OrderStatus, Patient, Prescription
from pharmacy import notifications, outbox, tasks
from pharmacy.fulfilment import order_final_check, order_hold, order_reject, order_ship
from pharmacy.labels import label_barcodes
from pharmacy.models import Delivery, DeliveryKind, DeliveryStatus, Dispense, LabelDocument
from pharmacy.recalls import batch_recall
from pharmacy.tasks import send_delivery
from tests.factories import PatientFactory, clinic_of, submit_order
from tests.orders.test_workflow import dispense_fully, submitted_order, with_status
from tests.services import free_port
from tests.signing_in import verified_staff_login

pytestmark = pytest.mark.django_db
S = OrderStatus
REGIMEN = Regimen(
    dosage_form=DosageForm.CAPSULE, steps=(Step(Decimal("1.5"), 30),), doses_per_day=1,
    quantity=Decimal("30"), days_supply=30, refills=1,
)  # fmt: skip
REFUSING = "tests.mail_backends.RefusingBackend"


@pytest.fixture
def order(prescriber):
    patient = PatientFactory(
        clinic=clinic_of(prescriber), first_name="Secretfirst", last_name="Secretlast",
        takes_opioids=False, current_medications="", date_of_birth=datetime.date(1970, 1, 1),
    )  # fmt: skip
    submitted = submit_order(prescriber, patient, REGIMEN)
    type(submitted).objects.filter(pk=submitted.pk).update(status=S.IN_REVIEW)
    submitted.refresh_from_db()
    return submitted


def test_a_hold_writes_one_delivery_and_mails_the_question_after_commit(
    order, pharmacist, prescriber, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as queued:
        order_hold(order=order, actor=pharmacist, question="Is the patient off tramadol?")
    delivery = Delivery.objects.get()
    assert (delivery.kind, delivery.recipient, delivery.status) == (
        DeliveryKind.ON_HOLD, prescriber.user.email, DeliveryStatus.PENDING,
    )  # fmt: skip
    assert mail.outbox == []  # nothing before commit
    assert len(queued) == 1

    for callback in queued:
        callback()

    (message,) = mail.outbox
    assert message.subject == f"Demo Compounding Pharmacy: a question about order {order.number}"
    assert "Is the patient off tramadol?" in message.body
    assert f"http://portal.test/orders/{order.pk}/" in message.body
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.SENT, 1)
    assert delivery.message_id.startswith("<") and message.extra_headers["Message-ID"] == (
        delivery.message_id
    )


def test_the_same_email_is_never_queued_twice(
    order, prescriber, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        first = notifications.delivery_enqueue(kind=DeliveryKind.ON_HOLD, order=order,
                                               recipient=prescriber.user.email)  # fmt: skip
        again = notifications.delivery_enqueue(kind=DeliveryKind.ON_HOLD, order=order,
                                               recipient=prescriber.user.email)  # fmt: skip
    assert first.pk == again.pk
    assert Delivery.objects.count() == 1
    assert len(mail.outbox) == 1


def test_a_task_delivered_twice_sends_once(order, prescriber, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        delivery = notifications.delivery_enqueue(kind=DeliveryKind.ON_HOLD, order=order,
                                                  recipient=prescriber.user.email)  # fmt: skip
    assert outbox.delivery_send(delivery_id=delivery.pk) is True
    assert outbox.delivery_send(delivery_id=delivery.pk) is False
    send_delivery.delay(delivery_id=delivery.pk)
    assert len(mail.outbox) == 1


def test_smtp_refusing_leaves_the_row_pending_for_a_retry(
    order, prescriber, settings, django_capture_on_commit_callbacks
):
    settings.OUTBOX_EMAIL_BACKEND = REFUSING
    with django_capture_on_commit_callbacks(execute=True):  # in-process: the page never fails
        notifications.delivery_enqueue(kind=DeliveryKind.ON_HOLD, order=order,
                                       recipient=prescriber.user.email)  # fmt: skip
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.PENDING, 1)
    assert delivery.last_error == "SMTPServerDisconnected: Connection unexpectedly closed"

    settings.OUTBOX_EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    later = timezone.now() + datetime.timedelta(seconds=settings.OUTBOX_PENDING_AFTER + 1)
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.delivery_sweep(now=later) == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_error) == (
        DeliveryStatus.SENT, 2, "",
    )  # fmt: skip
    assert len(mail.outbox) == 1


@pytest.mark.parametrize(("role", "retried"), [("pharmacist", True), ("technician", False)])
def test_after_the_last_retry_the_delivery_fails_until_a_pharmacist_retries(
    order, prescriber, client, role, retried, request, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        delivery = notifications.delivery_enqueue(kind=DeliveryKind.ON_HOLD, order=order,
                                                  recipient=prescriber.user.email)  # fmt: skip
    outbox.delivery_fail(delivery_id=delivery.pk, error="550 mailbox unavailable")
    delivery.refresh_from_db()
    assert (delivery.status, delivery.last_error) == (
        DeliveryStatus.FAILED,
        "550 mailbox unavailable",
    )
    later = timezone.now() + datetime.timedelta(hours=1)
    assert tasks.delivery_sweep(now=later) == 0  # failed rows wait for a person

    # Technicians follow the outbox; pharmacists also retry (the change permission).
    verified_staff_login(client, request.getfixturevalue(role))
    changelist = reverse("admin:pharmacy_delivery_changelist")
    assert client.get(changelist).status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        client.post(changelist, {"action": "retry", "_selected_action": [delivery.pk]})
    delivery.refresh_from_db()
    assert delivery.status == (DeliveryStatus.SENT if retried else DeliveryStatus.FAILED)
    assert len(mail.outbox) == (1 if retried else 0)


def test_the_sweep_gives_back_rows_whose_worker_died(
    order, prescriber, settings, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        delivery = notifications.delivery_enqueue(kind=DeliveryKind.ON_HOLD, order=order,
                                                  recipient=prescriber.user.email)  # fmt: skip
    claimed_at = timezone.now()
    Delivery.objects.filter(pk=delivery.pk).update(status=DeliveryStatus.SENDING,
                                                   claimed_at=claimed_at)  # fmt: skip
    assert tasks.delivery_sweep(now=claimed_at + datetime.timedelta(seconds=60)) == 0
    assert mail.outbox == []

    sweep_at = claimed_at + datetime.timedelta(seconds=settings.OUTBOX_SENDING_AFTER + 1)
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.delivery_sweep(now=sweep_at) == 1
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SENT
    assert len(mail.outbox) == 1


def test_a_rolled_back_change_queues_nothing(order, pharmacist, django_capture_on_commit_callbacks):
    class Abort(Exception):
        pass

    with (
        django_capture_on_commit_callbacks(execute=True) as queued,
        pytest.raises(Abort),
        transaction.atomic(),
    ):
        order_hold(order=order, actor=pharmacist, question="Anything?")
        raise Abort
    assert queued == []
    assert Delivery.objects.count() == 0
    assert mail.outbox == []
    order.refresh_from_db()
    assert order.status == S.IN_REVIEW


def test_reject_and_ship_emails_name_no_patient(order, pharmacist, technician,
                                                django_capture_on_commit_callbacks):  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        order_reject(order=order, actor=pharmacist, reason="Dose unclear")
    second = order
    type(second).objects.filter(pk=second.pk).update(status=S.READY)
    with django_capture_on_commit_callbacks(execute=True):
        order_ship(order=second, actor=technician, carrier="UPS", tracking_number="1Z42")
    assert [m.subject for m in mail.outbox] == [
        f"Demo Compounding Pharmacy: order {order.number} was not accepted",
        f"Demo Compounding Pharmacy: order {order.number} has shipped",
    ]
    assert "Reason: Dose unclear" in mail.outbox[0].body
    assert "tracking number 1Z42" in mail.outbox[1].body
    assert mail.outbox[1].to == [order.clinic.label_email]
    for message in mail.outbox:
        assert "Secret" not in message.subject


def test_the_prescriber_downloads_the_label_of_their_clinic_only(
    client, order, prescriber, other_prescriber
):
    url = reverse("order_label", args=[order.pk])
    client.force_login(prescriber.user)
    assert client.get(url).status_code == 404  # no label yet
    document = LabelDocument(order=order, version=1)
    document.file.save("label.pdf", ContentFile(b"%PDF-1.7 test"), save=True)

    response = client.get(url)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == f'attachment; filename="label-{order.number}.pdf"'
    assert b"".join(response.streaming_content) == b"%PDF-1.7 test"

    client.force_login(other_prescriber.user)
    assert client.get(url).status_code == 404


def test_embedded_default_writes_the_label_email_as_an_eml_file(
    prescriber, pharmacist, settings, tmp_path, django_capture_on_commit_callbacks
):
    """With no configuration, an order made ready leaves an .eml with the label PDF."""

    settings.OUTBOX_EMAIL_BACKEND = "core.mail.EmlFileBackend"
    settings.EMAIL_FILE_PATH = tmp_path / "mail"
    order = with_status(submitted_order(prescriber), S.COMPOUNDING)
    Prescription.objects.filter(pk=order.prescription_id).update(rx_number="7000123")
    dispense_fully(order)

    with django_capture_on_commit_callbacks(execute=True):
        order_final_check(order=order, actor=pharmacist, scans=label_barcodes(order))

    (eml,) = (tmp_path / "mail").glob("*.eml")
    message = message_from_bytes(eml.read_bytes(), policy=policy.default)
    assert message["Subject"] == f"Demo Compounding Pharmacy: label for order {order.number}"
    (attachment,) = list(message.iter_attachments())
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_content().startswith(b"%PDF")
    assert order.labels.get().version == 1


def test_smtp_mail_goes_over_one_kept_connection_and_a_closed_one_is_replaced(
    order, settings, django_capture_on_commit_callbacks
):
    """A worker keeps its SMTP connection open between messages; when the server has closed it
    meanwhile (it does not answer NOOP), the next message goes over a new one."""

    recorder = _PeerRecorder()
    port, deliveries = _by_smtp(order, settings, django_capture_on_commit_callbacks)
    server = Controller(recorder, hostname="127.0.0.1", port=port)
    server.start()
    try:
        assert outbox.delivery_send(delivery_id=deliveries[0].pk)
        assert outbox.delivery_send(delivery_id=deliveries[1].pk)
        server.stop()  # the server goes away, and the kept connection with it
        server = Controller(recorder, hostname="127.0.0.1", port=port)
        server.start()
        assert outbox.delivery_send(delivery_id=deliveries[2].pk)
    finally:
        server.stop()
        outbox._drop_smtp()

    first, second, third = recorder.messages
    assert first == second != third
    assert set(Delivery.objects.values_list("status", "attempts")) == {(DeliveryStatus.SENT, 1)}


class _PeerRecorder:
    """An aiosmtpd handler that accepts every message and answers NOOP (as aiosmtpd does), and
    records the client's address and port of each: which connection carried what."""

    def __init__(self):
        self.messages, self.noops = [], []

    async def handle_NOOP(self, server, session, envelope, arg):  # aiosmtpd handler hook
        self.noops.append(session.peer)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(session.peer)
        return "250 Message accepted for delivery"


def _by_smtp(order, settings, capture_on_commit) -> tuple[int, list]:
    """The outbox sends over SMTP to a port of loopback, and three emails wait in it."""
    port = free_port()
    settings.OUTBOX_EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    with capture_on_commit(execute=False):
        deliveries = [
            notifications.delivery_enqueue(
                kind=DeliveryKind.ON_HOLD, order=order, recipient=f"clinic{n}@example.test"
            )
            for n in range(3)
        ]
    return port, deliveries


def test_the_outbox_takes_no_attachment_nor_copies_and_writes_nothing(db):
    # Account emails are plain messages to their recipients; anything else is a mistake here.
    with_file = EmailMessage("Subject", "Body", to=["someone@example.test"])
    with_file.attach("notes.txt", b"text", "text/plain")
    copied = EmailMessage("Subject", "Body", to=["a@example.test"], cc=["b@example.test"])
    for message in (with_file, copied):
        with pytest.raises(ValueError, match="without attachments"):
            message.send()
    assert not Delivery.objects.exists()
    assert mail.outbox == []


def test_a_message_to_two_people_is_two_rows_sent_one_each(db, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        sent = EmailMessage(
            "Two", "Body", "portal@pharmacy.test", to=["a@example.test", "b@example.test"]
        ).send()
    assert sent == 1
    rows = Delivery.objects.order_by("recipient")
    assert [(d.recipient, d.status) for d in rows] == [
        ("a@example.test", DeliveryStatus.SENT),
        ("b@example.test", DeliveryStatus.SENT),
    ]
    assert sorted(message.to[0] for message in mail.outbox) == ["a@example.test", "b@example.test"]
    assert {message.extra_headers["Message-ID"] for message in mail.outbox} == {
        d.message_id for d in rows
    }


def test_a_label_that_cannot_be_made_fails_its_email_once_with_the_reason(
    client, prescriber, pharmacist, django_capture_on_commit_callbacks, settings
):
    # The batch is recalled after the order was made ready and shipped, before its label was
    # rendered: no retry will make that label, so the email fails at once, visibly, and is not
    # swept. (Recalled while still at the pharmacy, its units would be pulled back instead.)
    order = with_status(submitted_order(prescriber), S.COMPOUNDING)
    Prescription.objects.filter(pk=order.prescription_id).update(rx_number="7000123")
    dispense_fully(order)
    with django_capture_on_commit_callbacks(execute=False) as queued:
        order_final_check(order=order, actor=pharmacist, scans=label_barcodes(order))
    order = with_status(order, S.SHIPPED)
    batch = Dispense.objects.filter(order=order).first().batch
    batch_recall(batch=batch, actor=pharmacist, reason="Out-of-specification assay.")
    for callback in queued:
        callback()  # the render task: no label, and no email

    delivery = Delivery.objects.get(order=order)
    assert delivery.status == DeliveryStatus.FAILED
    assert delivery.last_error.startswith("The label could not be made: ")
    assert f"batch {batch.lot_number} was recalled" in delivery.last_error
    assert mail.outbox == []
    # The order's admin page says why; its link lists that order's emails, to retry.
    verified_staff_login(client, pharmacist)
    page = client.get(reverse("admin:orders_order_change", args=[order.pk])).content.decode()
    row = re.search(r'<tr class="row-problem"><td>Label ready</td>.*?</tr>', page).group()
    assert "<td>Failed</td><td>0</td>" in row and escape(delivery.last_error) in row
    link = reverse("admin:pharmacy_delivery_changelist") + f"?order__id__exact={order.pk}"
    assert escape(link) in row
    listed = client.get(link)
    assert listed.status_code == 200
    assert [d.pk for d in listed.context["cl"].result_list] == [delivery.pk]
    assert not LabelDocument.objects.filter(order=order).exists()
    later = timezone.now() + datetime.timedelta(seconds=settings.OUTBOX_PENDING_AFTER + 1)
    # The sweep takes the recall's notice to the clinic, not the failed email: it waits for a
    # person.
    (notice,) = Delivery.objects.filter(status=DeliveryStatus.PENDING)
    assert notice.kind == DeliveryKind.RECALL_NOTICE
    with django_capture_on_commit_callbacks(execute=False):
        assert tasks.delivery_sweep(now=later) == 1
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED

    # Tried again by a person, it fails the same way at once, with the same reason.
    with django_capture_on_commit_callbacks(execute=True):
        assert notifications.delivery_retry(delivery=delivery) is True
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED
    assert f"batch {batch.lot_number} was recalled" in delivery.last_error
    assert [m.subject for m in mail.outbox if order.number in m.subject] == []


def test_a_patient_name_of_194_characters_gets_its_label_mailed_once(
    prescriber, pharmacist, django_capture_on_commit_callbacks
):
    """The name that once left its email pending for ever: the label wraps it, smaller."""
    first, last = "Anneliese " * 9 + "Maria", "Quillfeather" * 8  # 95 + 1 + 96 characters
    order = with_status(submitted_order(prescriber), S.COMPOUNDING)
    Patient.objects.filter(pk=order.prescription.patient_id).update(
        first_name=first, last_name=last
    )
    Prescription.objects.filter(pk=order.prescription_id).update(rx_number="7000123")
    dispense_fully(order)

    with django_capture_on_commit_callbacks(execute=True):
        order_final_check(order=order, actor=pharmacist, scans=label_barcodes(order))

    delivery = Delivery.objects.get(order=order)
    assert (delivery.status, delivery.attempts, delivery.last_error) == (DeliveryStatus.SENT, 1, "")
    (message,) = [m for m in mail.outbox if order.number in m.subject]
    ((filename, pdf, mimetype),) = message.attachments
    assert filename.endswith(".pdf")
    assert mimetype == "application/pdf"
    text = "".join(
        "".join(page.extract_text().split()) for page in PdfReader(io.BytesIO(pdf)).pages
    )
    assert "".join(f"{first} {last}".split()) in text
    assert first not in message.body and "Quillfeather" not in message.body


def test_smtp_messages_back_to_back_ask_no_noop_and_one_after_a_pause_does(
    order, settings, monkeypatch, django_capture_on_commit_callbacks
):
    """A kept connection used a moment ago, which the server has not closed, takes the next
    message at once; one idle for longer than _SMTP_FRESH_SECONDS is asked NOOP first."""
    recorder = _PeerRecorder()
    noops, messages = recorder.noops, recorder.messages
    port, deliveries = _by_smtp(order, settings, django_capture_on_commit_callbacks)
    server = Controller(recorder, hostname="127.0.0.1", port=port)
    server.start()
    try:
        assert outbox.delivery_send(delivery_id=deliveries[0].pk)
        assert outbox.delivery_send(delivery_id=deliveries[1].pk)
        assert noops == []
        monkeypatch.setattr(outbox, "_SMTP_FRESH_SECONDS", 0)  # every pause is a long one now
        assert outbox.delivery_send(delivery_id=deliveries[2].pk)
    finally:
        server.stop()
        outbox._drop_smtp()

    assert len(set(messages)) == 1 and len(messages) == 3
    assert noops == messages[:1]

import re

import pytest
from django.core import mail
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.urls import reverse

from pharmacy.models import Delivery, DeliveryKind, DeliveryStatus
from prescribers import services
from prescribers.models import Prescriber, PrescriberEvent, PrescriberStatus
from tests.factories import PrescriberFactory
from tests.signing_in import sign_in

pytestmark = pytest.mark.django_db

S = PrescriberStatus
ACTIONS = {
    S.APPROVED: services.prescriber_approve,
    S.DECLINED: services.prescriber_decline,
    S.SUSPENDED: services.prescriber_suspend,
}
ALLOWED = {
    (S.PENDING, S.APPROVED),
    (S.PENDING, S.DECLINED),
    (S.APPROVED, S.SUSPENDED),
    (S.SUSPENDED, S.APPROVED),
}


def move(prescriber, to_status, actor):
    if to_status == S.APPROVED and prescriber.status == S.SUSPENDED:
        return services.prescriber_reinstate(prescriber=prescriber, actor=actor, reason="Cleared")
    kwargs = {} if to_status == S.APPROVED else {"reason": "Licence could not be verified"}
    return ACTIONS[to_status](prescriber=prescriber, actor=actor, **kwargs)


@pytest.mark.parametrize("from_status", list(S))
@pytest.mark.parametrize("to_status", [S.APPROVED, S.DECLINED, S.SUSPENDED])
def test_transition_matrix(from_status, to_status, pharmacist, django_capture_on_commit_callbacks):
    prescriber = PrescriberFactory(status=from_status)
    if (from_status, to_status) in ALLOWED:
        with django_capture_on_commit_callbacks(execute=True):
            move(prescriber, to_status, pharmacist)
        prescriber.refresh_from_db()
        assert prescriber.status == to_status
        assert prescriber.status_changed_at is not None
        event = PrescriberEvent.objects.get()
        assert (event.actor, event.from_status, event.to_status) == (
            pharmacist,
            from_status,
            to_status,
        )
        assert [message.to for message in mail.outbox] == [[prescriber.user.email]]
    else:
        with pytest.raises(ValidationError) as caught:
            move(prescriber, to_status, pharmacist)
        assert caught.value.code == "invalid_transition"
        prescriber.refresh_from_db()
        assert prescriber.status == from_status
        assert PrescriberEvent.objects.count() == 0
        assert mail.outbox == []


@pytest.mark.parametrize("actor_fixture", ["technician", "prescriber"])
def test_only_pharmacists_decide(request, actor_fixture):
    actor = request.getfixturevalue(actor_fixture)
    actor = getattr(actor, "user", actor)
    applicant = PrescriberFactory(status=S.PENDING)

    with pytest.raises(PermissionDenied):
        services.prescriber_approve(prescriber=applicant, actor=actor)

    applicant.refresh_from_db()
    assert applicant.status == S.PENDING
    assert PrescriberEvent.objects.count() == 0
    assert mail.outbox == []


def activation_link(message) -> str:
    return re.search(r"http://portal\.test(/accounts/activate/\S+/)", message.body).group(1)


def test_approval_emails_a_one_time_link_to_set_a_password(
    client, pharmacist, django_capture_on_commit_callbacks
):
    applicant = PrescriberFactory(status=S.PENDING, user__password=None)
    applicant.user.set_unusable_password()
    applicant.user.save()

    with django_capture_on_commit_callbacks(execute=True):
        services.prescriber_approve(prescriber=applicant, actor=pharmacist)

    (message,) = mail.outbox
    assert message.subject == "Demo Compounding Pharmacy: your prescriber account is approved"
    link = activation_link(message)
    form_page = client.get(link, follow=True)
    assert form_page.context["validlink"] is True
    set_password = client.post(
        form_page.redirect_chain[-1][0],
        {"new_password1": "a-long-new-secret-42", "new_password2": "a-long-new-secret-42"},
    )
    assert set_password.status_code == 302
    assert set_password["Location"] == reverse("login")

    assert sign_in(client, applicant.user.email, "a-long-new-secret-42")
    client.logout()
    again = client.get(link, follow=True)
    assert again.context["validlink"] is False  # the link works once


def test_reinstated_prescriber_is_told_without_a_new_link(
    pharmacist, django_capture_on_commit_callbacks
):
    suspended = PrescriberFactory(status=S.SUSPENDED)
    with django_capture_on_commit_callbacks(execute=True):
        services.prescriber_reinstate(prescriber=suspended, actor=pharmacist)
    (message,) = mail.outbox
    assert message.subject == "Demo Compounding Pharmacy: your prescriber account is active again"
    assert "/accounts/activate/" not in message.body


def test_decline_email_gives_the_reason(pharmacist, django_capture_on_commit_callbacks):
    applicant = PrescriberFactory(status=S.PENDING)
    with django_capture_on_commit_callbacks(execute=True):
        services.prescriber_decline(
            prescriber=applicant, actor=pharmacist, reason="Licence not found in the IL registry"
        )
    (message,) = mail.outbox
    assert "Reason: Licence not found in the IL registry" in message.body


def test_email_is_sent_only_after_commit(pharmacist, django_capture_on_commit_callbacks):
    applicant = PrescriberFactory(status=S.PENDING, user__password=None)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.prescriber_approve(prescriber=applicant, actor=pharmacist)
    assert mail.outbox == []
    assert len(callbacks) == 1
    # The email is an outbox row of the decision's transaction, waiting to be sent.
    (delivery,) = Delivery.objects.all()
    assert (delivery.kind, delivery.status) == (DeliveryKind.ACCOUNT, DeliveryStatus.PENDING)
    assert delivery.recipient == applicant.user.email
    assert "/accounts/activate/" in delivery.message["body"]

    callbacks[0]()  # the commit: the worker sends it

    (message,) = mail.outbox
    assert message.to == [applicant.user.email]
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SENT
    assert delivery.message == {"subject": message.subject}  # the link is not kept


def test_a_decision_rolled_back_leaves_no_email(pharmacist):
    applicant = PrescriberFactory(status=S.PENDING)

    class Abort(Exception):
        pass

    with pytest.raises(Abort), transaction.atomic():
        services.prescriber_approve(prescriber=applicant, actor=pharmacist)
        raise Abort

    assert not Delivery.objects.exists()
    assert mail.outbox == []


def test_history_records_who_changed_the_status(pharmacist):
    applicant = PrescriberFactory(status=S.PENDING)
    services.prescriber_approve(prescriber=applicant, actor=pharmacist)
    latest = Prescriber.history.filter(id=applicant.pk).latest("history_date")
    assert (latest.status, latest.history_user) == (S.APPROVED, pharmacist)

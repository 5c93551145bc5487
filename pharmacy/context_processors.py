"""What every portal page shows from the pharmacy: the banner of the clinic's recall notices
that no member has confirmed yet."""

from django.utils.functional import SimpleLazyObject

from .selectors import unconfirmed_recall_notices

# The notices, read once per request however many templates of it ask.
_NOTICES = "_unconfirmed_recall_notices"


def recall_banner(request) -> dict:
    """The unconfirmed recall notices of the clinic the person acts for (set on the request by
    the portal's pages, prescribers.access): one query, and only when a page shows them.
    Nothing for anyone acting for no clinic: visitors, patients, the pharmacy's staff."""
    membership = getattr(request, "portal_membership", None)
    if membership is None:
        return {"recall_banner_notices": ()}

    def notices():
        cached = getattr(request, _NOTICES, None)
        if cached is None:
            cached = unconfirmed_recall_notices(membership.clinic_id)
            setattr(request, _NOTICES, cached)
        return cached

    return {"recall_banner_notices": SimpleLazyObject(notices)}

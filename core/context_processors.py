from django.conf import settings


def portal(request):
    user = getattr(request, "user", None)
    prescriber = user.portal_prescriber if user is not None and user.is_authenticated else None
    return {
        "pharmacy_name": settings.PHARMACY_NAME,
        "current_prescriber": prescriber,
        # Set by the portal's pages (prescribers.access): the clinics the person acts for.
        "portal_memberships": getattr(request, "portal_memberships", ()),
        "portal_membership": getattr(request, "portal_membership", None),
        # Whether the person signs for the clinic they act for (else they draft, as its staff).
        "signs_here": getattr(getattr(request, "portal_membership", None), "role", "")
        == "prescriber",
    }

from django.conf import settings


def portal(request):
    user = getattr(request, "user", None)
    prescriber = user.portal_prescriber if user is not None and user.is_authenticated else None
    return {"pharmacy_name": settings.PHARMACY_NAME, "current_prescriber": prescriber}

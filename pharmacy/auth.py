from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend


class PortalBackend(ModelBackend):
    """Django's backend, plus: a prescriber signs in only while approved.

    The same check runs on every request (get_user), so suspending a prescriber ends the
    sessions they already have.
    """

    def user_can_authenticate(self, user):
        return super().user_can_authenticate(user) and user.may_sign_in

    def get_user(self, user_id):
        user_model = get_user_model()
        try:
            user = user_model._default_manager.select_related("prescriber__clinic").get(pk=user_id)
        except user_model.DoesNotExist:
            return None
        return user if self.user_can_authenticate(user) else None

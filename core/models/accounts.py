"""Staff and prescriber accounts: users sign in with their email address."""

from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone
from django.utils.crypto import salted_hmac


def normalize_email_address(email: str) -> str:
    """One spelling per address: trimmed and lower-case, so logins are case-insensitive."""
    return (email or "").strip().lower()


class UserManager(BaseUserManager):
    use_in_migrations = True

    def _create_user(self, email, password, **extra_fields):
        if not email:
            raise ValueError("An email address is required.")
        user = self.model(email=normalize_email_address(email), **extra_fields)
        if password:
            user.set_password(password)
        else:
            user.set_unusable_password()
        user.save(using=self._db)
        return user

    def create_user(self, email, password=None, **extra_fields):
        extra_fields.setdefault("is_staff", False)
        extra_fields.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra_fields)

    def create_superuser(self, email, password=None, **extra_fields):
        extra_fields.setdefault("is_staff", True)
        extra_fields.setdefault("is_superuser", True)
        if not extra_fields["is_staff"] or not extra_fields["is_superuser"]:
            raise ValueError("A superuser must have is_staff and is_superuser set.")
        return self._create_user(email, password, **extra_fields)

    def get_by_natural_key(self, username):
        return self.get(email=normalize_email_address(username))


class User(AbstractBaseUser, PermissionsMixin):
    email = models.EmailField("email address", unique=True)
    first_name = models.CharField(max_length=150, blank=True)
    last_name = models.CharField(max_length=150, blank=True)
    is_staff = models.BooleanField(
        "staff status",
        default=False,
        help_text="Pharmacy staff: may sign in to the admin.",
    )
    is_active = models.BooleanField(
        "active",
        default=True,
        help_text="Unselect this instead of deleting the account.",
    )
    date_joined = models.DateTimeField(default=timezone.now)

    objects = UserManager()

    EMAIL_FIELD = "email"
    USERNAME_FIELD = "email"
    REQUIRED_FIELDS = ["first_name", "last_name"]

    class Meta:
        # Made by the pharmacy app before the kernel existed; the table kept its name.
        db_table = "pharmacy_user"
        verbose_name = "user"
        verbose_name_plural = "users"
        constraints = [
            models.UniqueConstraint(Lower("email"), name="user_email_case_insensitive_unique"),
        ]

    def __str__(self):
        return self.get_full_name() or self.email

    def clean(self):
        super().clean()
        self.email = normalize_email_address(self.email)

    def get_full_name(self):
        return f"{self.first_name} {self.last_name}".strip()

    def get_short_name(self):
        return self.first_name

    @property
    def portal_prescriber(self):
        """The prescriber profile of this account, or None for staff-only accounts."""
        return getattr(self, "prescriber", None)

    @property
    def may_sign_in(self) -> bool:
        """Prescribers sign in only while approved; staff accounts depend on is_active alone."""
        prescriber = self.portal_prescriber
        return prescriber is None or prescriber.is_approved


class PasswordResetRequest(models.Model):
    """One request on the "forgotten password" page, whatever address it named: the same row
    for an account and for no account, so the page does the same work either way, and the
    count that limits how many reset emails one address receives an hour. The address is kept
    only as a keyed hash: typed addresses of people without an account are not stored."""

    address_key = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    # Whether it was within the hourly limit (an email went, if the address has an account).
    within_limit = models.BooleanField()

    class Meta:
        indexes = [models.Index(fields=["address_key", "created_at"], name="reset_by_address")]

    def __str__(self):
        return f"Password reset request {self.pk}"

    @staticmethod
    def key_of(email: str) -> str:
        return salted_hmac(
            "core.PasswordResetRequest", normalize_email_address(email), algorithm="sha256"
        ).hexdigest()

"""The pharmacy's own models. Users sign in with their email address."""

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone
from localflavor.us.models import USStateField, USZipCodeField


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


class PostalAddress(models.Model):
    """A US postal address, shared by clinics and patients."""

    address_line1 = models.CharField("address", max_length=200)
    address_line2 = models.CharField("address line 2", max_length=200, blank=True)
    city = models.CharField(max_length=100)
    state = USStateField()
    postal_code = USZipCodeField("ZIP code")

    class Meta:
        abstract = True

    @property
    def address_lines(self) -> list[str]:
        lines = [
            self.address_line1,
            self.address_line2,
            f"{self.city}, {self.state} {self.postal_code}",
        ]
        return [line for line in lines if line]


class DosageForm(models.TextChoices):
    """The dosage forms the pharmacy compounds (values match orders.dosing.DosageForm)."""

    CAPSULE = "capsule", "Capsule"
    ORAL_LIQUID = "oral_liquid", "Oral liquid"
    SUBLINGUAL_DROPS = "sublingual_drops", "Sublingual drops"
    TOPICAL_CREAM = "topical_cream", "Topical cream"


class FormulationQuerySet(models.QuerySet):
    def active(self):
        return self.filter(is_active=True)


class Formulation(models.Model):
    """One product of the catalogue: a capsule strength, or a liquid, drops or cream at a
    concentration. Prescribers can order only what is here and active."""

    name = models.CharField(max_length=120, unique=True)
    dosage_form = models.CharField(max_length=20, choices=DosageForm.choices)
    strength_mg = models.DecimalField(
        "strength (mg per capsule)", max_digits=6, decimal_places=3, null=True, blank=True
    )
    concentration_mg_per_ml = models.DecimalField(
        "concentration (mg/mL)", max_digits=6, decimal_places=3, null=True, blank=True
    )
    unit = models.CharField(max_length=10, help_text="What the quantity counts: capsule or mL.")
    is_active = models.BooleanField(default=True)

    objects = FormulationQuerySet.as_manager()

    class Meta:
        ordering = ["dosage_form", "strength_mg", "concentration_mg_per_ml"]
        constraints = [
            models.CheckConstraint(
                name="formulation_strength_or_concentration",
                condition=(
                    models.Q(
                        dosage_form="capsule",
                        strength_mg__gt=0,
                        concentration_mg_per_ml__isnull=True,
                    )
                    | (
                        ~models.Q(dosage_form="capsule")
                        & models.Q(strength_mg__isnull=True, concentration_mg_per_ml__gt=0)
                    )
                ),
            ),
        ]

    def __str__(self):
        return self.name


class StatusEvent(models.Model):
    """One row per status change of something (a prescriber account, an order): who, when,
    from, to and why. Subclasses add the foreign key named by subject_field and the two status
    fields with their choices. Rows are only ever added."""

    subject_field = ""

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    note = models.TextField(blank=True)

    class Meta:
        abstract = True
        ordering = ["created_at", "pk"]

    def __str__(self):
        subject = getattr(self, self.subject_field)
        return f"{subject}: {self.from_status or 'new'} -> {self.to_status}"

    @classmethod
    def record(cls, subject, *, actor, from_status: str, to_status: str, note: str = "", **fields):
        return cls.objects.create(
            **{cls.subject_field: subject}, actor=actor, from_status=from_status,
            to_status=to_status, note=note, **fields,
        )  # fmt: skip

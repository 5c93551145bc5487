"""The pharmacy's own models: accounts, the catalogue with its master formulation records,
ingredient lots, compounding batches, dispensing and recalls, and who saw a patient's
record."""

from .accounts import User, UserManager, normalize_email_address
from .audit import AccessAction, AccessEvent, AccessEventQuerySet, AppendOnlyError
from .base import PostalAddress, StateField, StatusEvent
from .catalogue import (
    DosageForm,
    Formulation,
    FormulationIngredient,
    FormulationQuerySet,
    FormulationVersion,
    FormulationVersionStatus,
    Ingredient,
)
from .compounding import (
    Batch,
    BatchEvent,
    BatchIngredient,
    BatchStatus,
    Dispense,
    IngredientLot,
    IngredientLotEvent,
    LotStatus,
    QcResult,
    Recall,
    RecallNotice,
)
from .notifications import Delivery, DeliveryKind, DeliveryStatus, LabelDocument, PrintJob

__all__ = [
    "AccessAction",
    "AccessEvent",
    "AccessEventQuerySet",
    "AppendOnlyError",
    "Batch",
    "BatchEvent",
    "BatchIngredient",
    "BatchStatus",
    "Delivery",
    "DeliveryKind",
    "DeliveryStatus",
    "Dispense",
    "DosageForm",
    "Formulation",
    "FormulationIngredient",
    "FormulationQuerySet",
    "FormulationVersion",
    "FormulationVersionStatus",
    "Ingredient",
    "IngredientLot",
    "IngredientLotEvent",
    "LabelDocument",
    "LotStatus",
    "PostalAddress",
    "PrintJob",
    "QcResult",
    "Recall",
    "RecallNotice",
    "StateField",
    "StatusEvent",
    "User",
    "UserManager",
    "normalize_email_address",
]

"""The pharmacy's own models: ingredient lots, compounding batches, dispensing and recalls, the
outbox, the label documents and the webhooks to clinics' systems."""

from .compounding import (
    UNRELEASED_BATCH_STATUSES,
    Batch,
    BatchEvent,
    BatchIngredient,
    BatchStatus,
    Dispense,
    IngredientLot,
    IngredientLotEvent,
    LotStatus,
    PulledDispense,
    QcResult,
    Recall,
    RecallBatch,
    RecallNotice,
    RecallReplacement,
)
from .notifications import (
    Delivery,
    DeliveryKind,
    DeliveryStatus,
    LabelDocument,
    PrintJob,
    PrintStation,
)
from .webhooks import (
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEventType,
)

__all__ = [
    "UNRELEASED_BATCH_STATUSES",
    "Batch",
    "BatchEvent",
    "BatchIngredient",
    "BatchStatus",
    "Delivery",
    "DeliveryKind",
    "DeliveryStatus",
    "Dispense",
    "IngredientLot",
    "IngredientLotEvent",
    "LabelDocument",
    "LotStatus",
    "PrintJob",
    "PrintStation",
    "PulledDispense",
    "QcResult",
    "Recall",
    "RecallBatch",
    "RecallNotice",
    "RecallReplacement",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookEventType",
]

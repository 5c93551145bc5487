"""The pharmacy's workbench in the admin: every model the staff work with, registered here in
one place. The kernel's admin (core/admin.py) registers the people who sign in, and
prescribers/admin.py the clinics and prescribers."""

from django.contrib import admin

from core.models import AccessEvent
from orders.models import Formulation, FormulationVersion, Ingredient, Order, Patient, Prescription

from .admin_audit import AccessEventAdmin
from .admin_compounding import (
    BatchAdmin,
    DeliveryAdmin,
    DispenseAdmin,
    FormulationAdmin,
    FormulationVersionAdmin,
    IngredientAdmin,
    IngredientLotAdmin,
    PrintJobAdmin,
    PrintStationAdmin,
)
from .admin_orders import OrderAdmin, PatientAdmin, PrescriptionAdmin
from .admin_recalls import RecallAdmin
from .admin_webhooks import WebhookDeliveryAdmin, WebhookEndpointAdmin
from .models import (
    Batch,
    Delivery,
    Dispense,
    IngredientLot,
    PrintJob,
    PrintStation,
    Recall,
    WebhookDelivery,
    WebhookEndpoint,
)

REGISTRY = (
    (Patient, PatientAdmin),
    (Prescription, PrescriptionAdmin),
    (Order, OrderAdmin),
    (Formulation, FormulationAdmin),
    (FormulationVersion, FormulationVersionAdmin),
    (Ingredient, IngredientAdmin),
    (IngredientLot, IngredientLotAdmin),
    (Batch, BatchAdmin),
    (Dispense, DispenseAdmin),
    (Recall, RecallAdmin),
    (Delivery, DeliveryAdmin),
    (PrintStation, PrintStationAdmin),
    (PrintJob, PrintJobAdmin),
    (WebhookEndpoint, WebhookEndpointAdmin),
    (WebhookDelivery, WebhookDeliveryAdmin),
    (AccessEvent, AccessEventAdmin),
)

for model, model_admin in REGISTRY:
    admin.site.register(model, model_admin)

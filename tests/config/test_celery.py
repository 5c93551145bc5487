from celery.schedules import crontab

from config.celery import app


def test_celery_is_configured_from_django_settings():
    conf = app.conf
    assert conf.accept_content == ["json"]
    assert (conf.task_serializer, conf.result_serializer) == ("json", "json")
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert (conf.task_soft_time_limit, conf.task_time_limit) == (60, 90)
    # Redis must not hand a running task to a second worker before it could have finished.
    assert conf.broker_transport_options["visibility_timeout"] > conf.task_time_limit


def test_without_a_broker_tasks_run_in_process():
    assert app.conf.task_always_eager is True


def test_tasks_are_autodiscovered():
    app.loader.import_default_modules()
    # Every email is an outbox row sent by one task (pharmacy.tasks.send_delivery).
    assert {name for name in app.tasks if not name.startswith("celery.")} == {
        "pharmacy.tasks.send_delivery",
        "pharmacy.tasks.render_label",
        "pharmacy.tasks.sweep_deliveries",
        "pharmacy.tasks.render_print_job",
        "pharmacy.tasks.send_licence_expiry_notices",
        "pharmacy.tasks.send_patient_reminders",
        # Webhooks: one attempt of a delivery; the publisher (beat, every few seconds).
        "pharmacy.tasks.send_webhook",
        "pharmacy.tasks.publish_webhook_events",
    }


def test_beat_sends_the_licence_expiry_notices_once_a_day(settings):
    assert settings.CELERY_BEAT_SCHEDULE["licence-expiry-notices"] == {
        "task": "pharmacy.tasks.send_licence_expiry_notices",
        "schedule": 86400,
    }
    assert "pharmacy.tasks.send_licence_expiry_notices" in app.tasks


def test_beat_sends_the_patients_reminders_every_morning(settings):
    assert settings.CELERY_BEAT_SCHEDULE["patient-reminders"] == {
        "task": "pharmacy.tasks.send_patient_reminders",
        "schedule": crontab(hour=8, minute=0),
    }
    assert settings.CELERY_TIMEZONE == settings.TIME_ZONE  # 8 o'clock at the pharmacy
    assert "pharmacy.tasks.send_patient_reminders" in app.tasks

"""The portal's URLs and the baselines the benchmarks compare against: a minimal submit (order
submit) and a trivial signed-in JSON view (the live dose check)."""

from django.urls import path

from bench.baseline import views as baseline
from config.urls import urlpatterns as portal_urlpatterns

urlpatterns = [
    *portal_urlpatterns,
    path("bench/baseline/", baseline.submit, name="bench_baseline_submit"),
    path("bench/baseline/<int:pk>/", baseline.detail, name="bench_baseline_detail"),
    path("bench/baseline/dose-check/", baseline.dose_check, name="bench_baseline_dose_check"),
]

"""The portal's URLs and the baseline submit the order-submit benchmark compares against."""

from django.urls import path

from bench.baseline import views as baseline
from config.urls import urlpatterns as portal_urlpatterns

urlpatterns = [
    *portal_urlpatterns,
    path("bench/baseline/", baseline.submit, name="bench_baseline_submit"),
    path("bench/baseline/<int:pk>/", baseline.detail, name="bench_baseline_detail"),
]

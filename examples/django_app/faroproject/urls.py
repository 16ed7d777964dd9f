"""The example's URLs: the ``watch`` app's views."""

from django.urls import path
from watch import views

urlpatterns = [
    path("events", views.events),
    path("readyz", views.readyz),
]

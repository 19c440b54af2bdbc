from django.urls import path

from . import views

urlpatterns = [
    path("", views.projects, name="projects"),
    path("healthz", views.healthz, name="healthz"),
]

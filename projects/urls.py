from django.urls import path

from . import views

urlpatterns = [
    path("", views.projects, name="projects"),
    path("healthz", views.healthz, name="healthz"),
    path("project/<str:name>/audit/", views.audit, name="audit"),
]

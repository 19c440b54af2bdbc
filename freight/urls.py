from django.urls import path

from . import api, receivers, views

urlpatterns = [
    # Webhook receivers (ProjectConfig spec.webhookReceivers): no login, no CSRF, the path and
    # the sender's signature are the proof.
    *receivers.urlpatterns,
    path(
        "project/<str:name>/warehouse/<str:warehouse>/refresh",
        views.refresh_warehouse,
        name="refresh-warehouse",
    ),
    path("api/v1/projects/<str:project>/freight", api.list_freight, name="api-freight"),
    path(
        "api/v1/projects/<str:project>/warehouses/<str:warehouse>/freight",
        api.create_freight,
        name="api-create-freight",
    ),
    path(
        "api/v1/projects/<str:project>/warehouses/<str:warehouse>/refresh",
        api.refresh_warehouse,
        name="api-refresh-warehouse",
    ),
]

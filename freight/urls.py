from django.urls import path

from . import api, views

urlpatterns = [
    path(
        "project/<str:name>/warehouse/<str:warehouse>/refresh",
        views.refresh_warehouse,
        name="refresh-warehouse",
    ),
    path("api/v1/projects/<str:project>/freight", api.list_freight, name="api-freight"),
    path(
        "api/v1/projects/<str:project>/warehouses/<str:warehouse>/refresh",
        api.refresh_warehouse,
        name="api-refresh-warehouse",
    ),
]

from django.urls import path

from . import api, views

urlpatterns = [
    path("project/<str:name>/", views.project_page, name="project"),
    path("project/<str:name>/stage/<str:stage>/", views.stage_page, name="stage"),
    path("project/<str:name>/stage/<str:stage>/promote", views.promote, name="promote"),
    path("project/<str:name>/stage/<str:stage>/refresh", views.refresh_stage, name="refresh-stage"),
    path("project/<str:name>/stage/<str:stage>/reverify", views.reverify, name="reverify"),
    path(
        "project/<str:name>/stage/<str:stage>/abort-verification",
        views.abort_verification,
        name="abort-verification",
    ),
    path(
        "project/<str:name>/stage/<str:stage>/auto-promotion",
        views.auto_promotion,
        name="auto-promotion",
    ),
    path("project/<str:name>/analysisrun/<str:run>/", views.analysisrun_page, name="analysisrun"),
    path(
        "project/<str:name>/warehouse/<str:warehouse>/freight/new",
        views.assemble_freight,
        name="assemble-freight",
    ),
    path("project/<str:name>/freight/<str:freight>/", views.freight_page, name="freight"),
    path("project/<str:name>/freight/<str:freight>/approve", views.approve, name="approve"),
    path("project/<str:name>/promotion/<str:promotion>/", views.promotion_page, name="promotion"),
    path("project/<str:name>/promotion/<str:promotion>/abort", views.abort, name="abort"),
    path("api/v1/projects/<str:project>/stages", api.list_stages, name="api-stages"),
    path(
        "api/v1/projects/<str:project>/stages/<str:stage>/promotions",
        api.promote,
        name="api-promote",
    ),
    path(
        "api/v1/projects/<str:project>/stages/<str:stage>/refresh",
        api.refresh_stage,
        name="api-refresh-stage",
    ),
    path(
        "api/v1/projects/<str:project>/stages/<str:stage>/verification",
        api.reverify,
        name="api-reverify",
    ),
    path(
        "api/v1/projects/<str:project>/stages/<str:stage>/auto-promotion",
        api.auto_promotion,
        name="api-auto-promotion",
    ),
    path(
        "api/v1/projects/<str:project>/freight/<str:freight>/approve",
        api.approve,
        name="api-approve",
    ),
    path(
        "api/v1/projects/<str:project>/promotions/<str:name>",
        api.get_promotion,
        name="api-promotion",
    ),
    path("api/v1/projects/<str:project>/promotions/<str:name>/abort", api.abort, name="api-abort"),
]

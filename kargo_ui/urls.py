from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import path

from stages import api
from stages import views as stage_views

from . import views

urlpatterns = [
    path("", views.projects, name="projects"),
    path("healthz", views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("login/", auth_views.LoginView.as_view(template_name="login.html"), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("project/<str:name>/", stage_views.project_page, name="project"),
    path("project/<str:name>/stage/<str:stage>/", stage_views.stage_page, name="stage"),
    path("project/<str:name>/stage/<str:stage>/promote", stage_views.promote, name="promote"),
    path(
        "project/<str:name>/stage/<str:stage>/refresh",
        stage_views.refresh_stage,
        name="refresh-stage",
    ),
    path("project/<str:name>/freight/<str:freight>/", stage_views.freight_page, name="freight"),
    path("project/<str:name>/freight/<str:freight>/approve", stage_views.approve, name="approve"),
    path(
        "project/<str:name>/promotion/<str:promotion>/",
        stage_views.promotion_page,
        name="promotion",
    ),
    path("project/<str:name>/promotion/<str:promotion>/abort", stage_views.abort, name="abort"),
    path(
        "project/<str:name>/warehouse/<str:warehouse>/refresh",
        stage_views.refresh_warehouse,
        name="refresh-warehouse",
    ),
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
    path("api/v1/projects/<str:project>/freight", api.list_freight, name="api-freight"),
    path(
        "api/v1/projects/<str:project>/freight/<str:freight>/approve",
        api.approve,
        name="api-approve",
    ),
    path(
        "api/v1/projects/<str:project>/warehouses/<str:warehouse>/refresh",
        api.refresh_warehouse,
        name="api-refresh-warehouse",
    ),
    path(
        "api/v1/projects/<str:project>/promotions/<str:name>",
        api.get_promotion,
        name="api-promotion",
    ),
    path("api/v1/projects/<str:project>/promotions/<str:name>/abort", api.abort, name="api-abort"),
]

"""The project's URLs: each app brings its own; here live the login pages, the admin and the API
for manifests and tokens (kargo_ui.api), which spans the apps."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from projects import oidc
from stages import api as stages_api

from . import api

API = "api/v1/projects/<str:project>"

urlpatterns = [
    path("admin/", admin.site.urls),
    # Password login, with "Sign in with SSO" where single sign-on is configured (projects.oidc).
    path("login/", oidc.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path(f"{API}/manifests", api.apply, name="api-apply"),
    path(f"{API}/manifests/<str:kind>", api.list_resources, name="api-resources"),
    path(f"{API}/manifests/<str:kind>/<str:name>", api.resource, name="api-resource"),
    path(f"{API}/tokens", api.tokens, name="api-tokens"),
    path(f"{API}/tokens/<str:name>", api.token, name="api-token"),
    path(f"{API}/credentials", api.credentials, name="api-credentials"),
    path(f"{API}/credentials/<str:name>", api.credential, name="api-credential"),
    path(f"{API}/configmaps", api.config_maps, name="api-configmaps"),
    path(f"{API}/configmaps/<str:name>", api.config_map, name="api-configmap"),
    path(
        f"{API}/stages/<str:stage>/verification/abort",
        stages_api.abort_verification,
        name="api-abort-verification",
    ),
    path("", include("projects.urls")),
    path("", include("freight.urls")),
    path("", include("stages.urls")),
]

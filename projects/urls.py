from django.urls import path

from . import oidc, views

urlpatterns = [
    path("", views.projects, name="projects"),
    path("healthz", views.healthz, name="healthz"),
    path("project/<str:name>/audit/", views.audit, name="audit"),
    path("project/<str:name>/tokens/", views.tokens, name="tokens"),
    path("project/<str:name>/credentials/", views.credentials, name="credentials"),
    # Single sign-on (projects.oidc); 404 unless KARGO_OIDC_ISSUER_URL is set. The callback is
    # the redirect URI to register with the provider: <this server>/oidc/callback/.
    path("oidc/authenticate/", oidc.SsoLoginView.as_view(), name="oidc-login"),
    path("oidc/callback/", oidc.SsoCallbackView.as_view(), name="oidc-callback"),
]

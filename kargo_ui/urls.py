"""The project's URLs: each app brings its own; only the login pages and the admin live here."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("login/", auth_views.LoginView.as_view(template_name="login.html"), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", include("projects.urls")),
    path("", include("freight.urls")),
    path("", include("stages.urls")),
]

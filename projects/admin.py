from django.contrib import admin

from .models import ApiToken, Event, Membership, Project


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "created_at"]
    search_fields = ["name"]
    # Projects come from manifests (`kargo apply`); the admin is for people and roles.
    readonly_fields = ["name", "labels", "annotations", "spec", "status", "generation"]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["project", "user", "role"]
    list_filter = ["role", "project"]
    autocomplete_fields = ["user"]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens are listed and revoked (deleted) here; they are created with `manage.py kargo
    create token`, which shows the secret once. Only the secret's digest is stored."""

    list_display = ["name", "project", "role", "created_at", "expires_at", "last_used_at"]
    list_filter = ["role", "project"]
    exclude = ["key_id", "digest"]
    readonly_fields = ["project", "name", "role", "created_by", "expires_at", "last_used_at"]

    def has_add_permission(self, request):
        return False


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ["created_at", "project", "reason", "actor", "message"]
    list_filter = ["reason", "project"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

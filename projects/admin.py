from django import forms
from django.contrib import admin

from . import oidc
from .access import actor_of
from .models import ApiToken, Event, Membership, Project, RoleClaim, SsoIdentity


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "created_at"]
    search_fields = ["name"]
    # Projects come from manifests (`kargo apply`); the admin is for people and roles.
    readonly_fields = ["name", "labels", "annotations", "spec", "status", "generation"]


class MembershipForm(forms.ModelForm):
    class Meta:
        model = Membership
        fields = ["project", "user", "granted_role"]

    def clean(self):
        data = super().clean()
        if not data.get("granted_role") and not self.instance.claims_role:
            raise forms.ValidationError(
                "Choose the role granted by hand, or delete the membership."
            )
        return data


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    """Grants by hand are made here; the role from SSO claims is shown, and changes only with the
    user's claims or the claim mappings (RoleClaim)."""

    list_display = ["project", "user", "role", "granted_role", "claims_role"]
    list_filter = ["role", "project"]
    autocomplete_fields = ["user"]
    fields = ["project", "user", "granted_role", "claims_role", "role"]
    readonly_fields = ["claims_role", "role"]

    form = MembershipForm


@admin.register(RoleClaim)
class RoleClaimAdmin(admin.ModelAdmin):
    """Kargo's claims on a project role: SSO users with this claim value get the role. Every
    change recomputes the SSO users' roles from the claims of their last login."""

    list_display = ["project", "role", "claim", "value"]
    list_filter = ["role", "project", "claim"]
    search_fields = ["value"]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        oidc.reapply_claims(actor_of(request))

    def delete_model(self, request, obj):
        super().delete_model(request, obj)
        oidc.reapply_claims(actor_of(request))

    def delete_queryset(self, request, queryset):
        super().delete_queryset(request, queryset)
        oidc.reapply_claims(actor_of(request))


@admin.register(SsoIdentity)
class SsoIdentityAdmin(admin.ModelAdmin):
    """Who signed in through the provider, and the claims of their last login (read only)."""

    list_display = ["user", "subject", "issuer", "last_login_at"]
    search_fields = ["user__username", "subject"]
    readonly_fields = ["user", "issuer", "subject", "claims", "last_login_at"]

    def has_add_permission(self, request):
        return False


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

"""Single sign-on's mapping of claims to roles (projects.oidc), on ORM fixtures: claims roles
come and go with the claims and the mappings, grants by hand never go with them, and a user is
found by issuer and subject. The protocol itself (a real provider, real tokens) is tested in
tests/integration/test_oidc.py."""

import io

import pytest
from django.contrib.auth import authenticate
from django.core.exceptions import ImproperlyConfigured, SuspiciousOperation
from django.core.management import call_command
from django.test import RequestFactory

from kargo_ui import settings as settings_module
from projects import oidc
from projects.access import role_in
from projects.actions import do_create_project, do_set_membership
from projects.models import Event, Membership, RoleClaim, SsoIdentity

ISSUER = "https://sso.example.com"


@pytest.fixture
def sso(settings):
    settings.OIDC_ENABLED = True
    settings.OIDC_ISSUER_URL = ISSUER
    settings.OIDC_RP_CLIENT_ID = "kargo-ui"
    settings.OIDC_USERNAME_CLAIM = "email"
    settings.OIDC_SYSTEM_ADMINS = {}
    settings.OIDC_SYSTEM_VIEWERS = {}
    settings.AUTHENTICATION_BACKENDS = [
        "projects.access.KargoBackend",
        "projects.oidc.OIDCBackend",
    ]
    return settings


def claims_of(name: str, *groups: str, sub: str | None = None) -> dict:
    return {"sub": sub or f"sub-{name}", "email": f"{name}@example.com", "groups": list(groups)}


def membership(user, project) -> Membership | None:
    return Membership.objects.filter(user=user, project=project).first()


def map_claim(project, role, claim, value):
    oidc.grant_claim(project, role, claim, value, actor="test")


def unmap_claim(project, role, claim, value):
    oidc.revoke_claim(project, role, claim, value, actor="test")


# ------------------------------------------------------------------------------------------------
# Claims to roles


def test_a_mapped_group_gives_its_role_and_loses_it_with_the_mapping(sso, project):
    map_claim(project, "promoter", "groups", "devops")
    alice = oidc.sign_in(ISSUER, claims_of("alice", "devops", "qa"))
    assert role_in(alice, project) == "promoter"
    m = membership(alice, project)
    assert (m.granted_role, m.claims_role) == ("", "promoter")

    unmap_claim(project, "promoter", "groups", "devops")
    # At once, from the claims of her last login, and again at her next login.
    assert membership(alice, project) is None
    assert role_in(oidc.sign_in(ISSUER, claims_of("alice", "devops")), project) is None


def test_no_mapping_no_role(sso, project):
    map_claim(project, "promoter", "groups", "devops")
    bob = oidc.sign_in(ISSUER, claims_of("bob", "qa"))
    assert role_in(bob, project) is None
    assert not Membership.objects.filter(user=bob).exists()


def test_claims_are_matched_as_kargo_matches_them(sso, project):
    """Any value of any mapped claim; a string claim equals the value, a list claim holds it;
    the highest role of all matches wins."""
    map_claim(project, "viewer", "email", "carol@example.com")
    map_claim(project, "admin", "sub", "sub-dave")
    map_claim(project, "promoter", "groups", "devops")
    carol = oidc.sign_in(ISSUER, claims_of("carol"))
    dave = oidc.sign_in(ISSUER, claims_of("dave", "devops"))
    erin = oidc.sign_in(
        ISSUER, {"sub": "sub-erin", "email": "erin@example.com", "groups": "devops"}
    )
    frank = oidc.sign_in(ISSUER, claims_of("frank", "devops-team", "Devops"))
    assert role_in(carol, project) == "viewer"
    assert role_in(dave, project) == "admin"
    assert role_in(erin, project) == "promoter"
    assert role_in(frank, project) is None


def test_a_claims_role_changes_with_the_users_claims(sso, project):
    map_claim(project, "promoter", "groups", "devops")
    map_claim(project, "viewer", "groups", "qa")
    alice = oidc.sign_in(ISSUER, claims_of("alice", "devops"))
    assert role_in(alice, project) == "promoter"
    oidc.sign_in(ISSUER, claims_of("alice", "qa"))
    assert role_in(alice, project) == "viewer"
    oidc.sign_in(ISSUER, claims_of("alice"))
    assert role_in(alice, project) is None
    reasons = list(
        Event.objects.filter(project=project, involved="User/alice@example.com")
        .order_by("id")
        .values_list("reason", flat=True)
    )
    assert reasons == ["RoleGranted", "RoleGranted", "RoleRevoked"]


def test_mappings_are_per_project(sso, project):
    other = do_create_project("other", actor="test")
    map_claim(other, "admin", "groups", "devops")
    alice = oidc.sign_in(ISSUER, claims_of("alice", "devops"))
    assert role_in(alice, other) == "admin"
    assert role_in(alice, project) is None


# ------------------------------------------------------------------------------------------------
# Grants by hand and claims roles side by side


def test_revoking_a_mapping_never_takes_a_grant_by_hand(sso, project):
    map_claim(project, "admin", "groups", "devops")
    alice = oidc.sign_in(ISSUER, claims_of("alice", "devops"))
    do_set_membership(project, alice, "viewer")  # `kargo grant --user`
    m = membership(alice, project)
    assert (m.role, m.granted_role, m.claims_role) == ("admin", "viewer", "admin")

    unmap_claim(project, "admin", "groups", "devops")
    m = membership(alice, project)
    assert (m.role, m.granted_role, m.claims_role) == ("viewer", "viewer", "")
    oidc.sign_in(ISSUER, claims_of("alice", "devops"))
    assert role_in(alice, project) == "viewer"


def test_a_grant_by_hand_above_the_claims_role_is_the_role(sso, project):
    map_claim(project, "viewer", "groups", "devops")
    alice = oidc.sign_in(ISSUER, claims_of("alice", "devops"))
    do_set_membership(project, alice, "admin")
    assert role_in(alice, project) == "admin"
    oidc.sign_in(ISSUER, claims_of("alice", "devops"))
    assert role_in(alice, project) == "admin"


def test_a_grant_by_hand_of_the_claims_role_itself_is_kept(sso, project):
    """do_set_membership knows only `role`; naming it is a grant by hand even when it is the role
    the claims give already."""
    map_claim(project, "promoter", "groups", "devops")
    alice = oidc.sign_in(ISSUER, claims_of("alice", "devops"))
    do_set_membership(project, alice, "promoter")
    unmap_claim(project, "promoter", "groups", "devops")
    assert role_in(alice, project) == "promoter"
    assert membership(alice, project).granted_role == "promoter"


def test_memberships_made_the_old_way_are_grants_by_hand(project, django_user_model):
    bob = django_user_model.objects.create_user("bob")
    m = Membership.objects.create(project=project, user=bob, role="promoter")
    assert (m.role, m.granted_role, m.claims_role) == ("promoter", "promoter", "")


def test_revoking_by_hand_leaves_the_claims_role(sso, project):
    map_claim(project, "viewer", "groups", "devops")
    alice = oidc.sign_in(ISSUER, claims_of("alice", "devops"))
    do_set_membership(project, alice, "admin")
    assert oidc.revoke_by_hand(project, alice) is not None
    assert role_in(alice, project) == "viewer"
    assert oidc.revoke_by_hand(project, alice) is None  # nothing granted by hand any more
    bob = oidc.sign_in(ISSUER, claims_of("bob"))
    do_set_membership(project, bob, "viewer")
    oidc.revoke_by_hand(project, bob)
    assert membership(bob, project) is None


# ------------------------------------------------------------------------------------------------
# System admins and viewers (KARGO_OIDC_ADMINS / KARGO_OIDC_VIEWERS)


def test_system_admins_and_viewers_by_claim_in_every_project(sso, project):
    other = do_create_project("other", actor="test")
    sso.OIDC_SYSTEM_ADMINS = {"groups": ["platform"], "email": ["root@example.com"]}
    sso.OIDC_SYSTEM_VIEWERS = {"groups": ["auditors"]}
    map_claim(other, "promoter", "groups", "auditors")
    carol = oidc.sign_in(ISSUER, claims_of("carol", "platform"))
    root = oidc.sign_in(ISSUER, claims_of("root"))
    dave = oidc.sign_in(ISSUER, claims_of("dave", "auditors"))
    for p in (project, other):
        assert role_in(carol, p) == "admin"
        assert role_in(root, p) == "admin"
    assert role_in(dave, project) == "viewer"
    assert role_in(dave, other) == "promoter"  # the higher of the two
    # Admins in every project, but not of this Django installation.
    assert not carol.is_superuser and not carol.is_staff

    oidc.sign_in(ISSUER, claims_of("carol"))
    assert role_in(carol, project) is None and role_in(carol, other) is None


# ------------------------------------------------------------------------------------------------
# Users


def test_a_user_is_found_by_issuer_and_subject(sso, project):
    first = oidc.sign_in(ISSUER, claims_of("alice", "devops"))
    again = oidc.sign_in(ISSUER, {**claims_of("alice"), "email": "alice@new.example.com"})
    assert again == first
    again.refresh_from_db()
    assert again.username == "alice@example.com"  # named once, at the first login
    assert again.email == "alice@new.example.com"
    identity = SsoIdentity.objects.get(user=first)
    assert (identity.issuer, identity.subject) == (ISSUER, "sub-alice")
    assert identity.claims["email"] == "alice@new.example.com"
    assert not first.has_usable_password()


def test_an_existing_local_account_is_not_taken_over(sso, project, django_user_model):
    local = django_user_model.objects.create_user("alice@example.com", password="pw-local")
    do_set_membership(project, local, "admin")
    with pytest.raises(SuspiciousOperation):
        oidc.sign_in(ISSUER, claims_of("alice"))
    # Nor by a second subject claiming an SSO user's name.
    oidc.sign_in(ISSUER, claims_of("bob"))
    with pytest.raises(SuspiciousOperation):
        oidc.sign_in(ISSUER, claims_of("bob", sub="someone-else"))
    assert SsoIdentity.objects.count() == 1


def test_the_username_claim_is_required(sso, project):
    sso.OIDC_USERNAME_CLAIM = "preferred_username"
    with pytest.raises(SuspiciousOperation):
        oidc.sign_in(ISSUER, claims_of("alice"))
    user = oidc.sign_in(ISSUER, {**claims_of("alice"), "preferred_username": "alice"})
    assert user.username == "alice"


def test_a_password_login_never_asks_the_provider(sso, project, django_user_model):
    # The issuer is unreachable: a password login must not need it.
    sso.OIDC_ISSUER_URL = "https://sso.invalid"
    django_user_model.objects.create_user("bob", password="pw-bob-123")
    request = RequestFactory().post("/login/", REMOTE_ADDR="10.1.2.3")
    user = authenticate(request, username="bob", password="pw-bob-123")
    assert user is not None and user.backend == "projects.access.KargoBackend"


# ------------------------------------------------------------------------------------------------
# Managing mappings: the CLI and the admin


def kargo(*args) -> str:
    out = io.StringIO()
    call_command("kargo", "--actor", "test", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_kargo_grant_and_revoke_a_claim(sso, project):
    alice = oidc.sign_in(ISSUER, claims_of("alice", "devops"))
    out = kargo(
        "grant", "--project", "kargo-demo", "--role", "promoter", "--claim", "groups=devops"
    )
    assert "groups=devops" in out and "promoter" in out
    assert RoleClaim.objects.filter(project=project, role="promoter").count() == 1
    assert role_in(alice, project) == "promoter"  # from the claims of her last login

    kargo("revoke", "--project", "kargo-demo", "--role", "promoter", "--claim", "groups=devops")
    assert not RoleClaim.objects.exists()
    assert role_in(alice, project) is None


def test_kargo_grant_and_revoke_check_their_arguments(sso, project):
    with pytest.raises(Exception, match="CLAIM=VALUE"):
        kargo("grant", "--project", "kargo-demo", "--role", "viewer", "--claim", "devops")
    with pytest.raises(Exception, match="no claim"):
        kargo("revoke", "--project", "kargo-demo", "--role", "viewer", "--claim", "groups=x")
    with pytest.raises(Exception, match="--role"):
        kargo("revoke", "--project", "kargo-demo", "--claim", "groups=x")


def test_kargo_revoke_user_takes_only_the_grant_by_hand(sso, project):
    map_claim(project, "viewer", "groups", "devops")
    alice = oidc.sign_in(ISSUER, claims_of("alice", "devops"))
    kargo("grant", "--project", "kargo-demo", "--user", alice.username, "--role", "admin")
    assert role_in(alice, project) == "admin"
    kargo("revoke", "--project", "kargo-demo", "--user", alice.username)
    assert role_in(alice, project) == "viewer"


def test_the_admin_manages_mappings_and_recomputes_roles(sso, project, admin_client):
    alice = oidc.sign_in(ISSUER, claims_of("alice", "devops"))
    response = admin_client.post(
        "/admin/projects/roleclaim/add/",
        {"project": project.id, "role": "promoter", "claim": "groups", "value": "devops"},
    )
    assert response.status_code == 302
    assert role_in(alice, project) == "promoter"
    mapping = RoleClaim.objects.get()
    admin_client.post(f"/admin/projects/roleclaim/{mapping.id}/delete/", {"post": "yes"})
    assert role_in(alice, project) is None


def test_the_admin_edits_only_the_grant_by_hand(sso, project, admin_client):
    map_claim(project, "promoter", "groups", "devops")
    alice = oidc.sign_in(ISSUER, claims_of("alice", "devops"))
    m = membership(alice, project)
    response = admin_client.post(
        f"/admin/projects/membership/{m.id}/change/",
        {"project": project.id, "user": alice.id, "granted_role": "admin", "claims_role": ""},
    )
    assert response.status_code == 302
    m.refresh_from_db()
    assert (m.role, m.granted_role, m.claims_role) == ("admin", "admin", "promoter")


# ------------------------------------------------------------------------------------------------
# Pages and settings


def test_the_login_page_offers_sso_only_when_it_is_on(client, settings, db):
    settings.OIDC_ENABLED = False
    assert "Sign in with SSO" not in client.get("/login/").content.decode()
    assert client.get("/oidc/authenticate/").status_code == 404
    assert client.get("/oidc/callback/?code=x&state=y").status_code == 404
    settings.OIDC_ENABLED = True
    page = client.get("/login/?next=/project/kargo-demo/").content.decode()
    assert "Sign in with SSO" in page
    assert 'href="/oidc/authenticate/?next=/project/kargo-demo/"' in page


def test_an_unreachable_provider_sends_back_to_the_login_page(client, sso):
    sso.OIDC_ISSUER_URL = "https://sso.invalid"
    sso.OIDC_TIMEOUT = 2.0
    response = client.get("/oidc/authenticate/", follow=True)
    assert response.redirect_chain[-1][0] == "/login/"
    assert "cannot be reached" in response.content.decode()


def test_the_egress_policy_checks_the_issuer_at_start(sso):
    sso.OIDC_ISSUER_URL = "http://127.0.0.1:9/o"
    sso.EGRESS_ALLOW = []
    sso.EGRESS_ALLOW_LOCAL = False
    errors = oidc.check_issuer()
    assert [e.id for e in errors] == ["projects.E001"]
    sso.EGRESS_ALLOW_LOCAL = True
    assert oidc.check_issuer() == []
    sso.OIDC_ENABLED = False
    sso.EGRESS_ALLOW_LOCAL = False
    assert oidc.check_issuer() == []


def test_claim_lists_in_the_environment(monkeypatch):
    monkeypatch.setenv("KARGO_OIDC_ADMINS", "groups=platform, email=a@x.io,groups=sre")
    assert settings_module.env_claims("KARGO_OIDC_ADMINS") == {
        "groups": ["platform", "sre"],
        "email": ["a@x.io"],
    }
    monkeypatch.setenv("KARGO_OIDC_ADMINS", "")
    assert settings_module.env_claims("KARGO_OIDC_ADMINS") == {}
    monkeypatch.setenv("KARGO_OIDC_ADMINS", "platform")
    with pytest.raises(ImproperlyConfigured, match="CLAIM=VALUE"):
        settings_module.env_claims("KARGO_OIDC_ADMINS")

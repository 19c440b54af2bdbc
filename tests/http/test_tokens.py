"""API tokens: made by `manage.py kargo create token` or by an admin over the API, stored as a
digest, good only for the JSON API, only in their project, capped by their role, until they
expire or are deleted."""

import hashlib
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from projects.actions import do_create_project
from projects.models import ApiToken, Event
from projects.tokens import do_create_token
from stages.actions import do_promote
from stages.models import Promotion, Stage

NOW = datetime(2030, 5, 17, 12, 0, tzinfo=UTC)


def kargo(*args) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("kargo", "--actor", "test", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def bearer(secret: str) -> dict:
    return {"Authorization": f"Bearer {secret}"}


def api(method, path, secret=None, body=None, client=None, **headers):
    client = client or Client(enforce_csrf_checks=True)
    if secret:
        headers |= bearer(secret)
    data = json.dumps(body) if body is not None else ""
    return client.generic(
        method, path, data, content_type="application/json", headers=headers or None
    )


@pytest.fixture
def fixed_now(monkeypatch):
    monkeypatch.setattr("django.utils.timezone.now", lambda: NOW)
    return NOW


def test_create_prints_the_token_once_and_keeps_only_its_digest(project, fixed_now):
    out, err = kargo(
        "create", "token", "ci", "--project", "kargo-demo", "--role", "promoter", "--expires", "30d"
    )
    secret = out.strip()
    assert secret.startswith("kui_") and "\n" not in secret
    assert "role promoter in project/kargo-demo" in err and "not shown again" in err
    token = ApiToken.objects.get(name="ci")
    assert token.role == "promoter"
    assert token.expires_at == NOW + timedelta(days=30)
    assert token.digest == hashlib.sha256(secret.split("_", 2)[2].encode()).hexdigest()
    # Nothing stored holds the secret itself.
    row = json.dumps(list(ApiToken.objects.values()), default=str)
    assert secret.split("_", 2)[2] not in row
    assert Event.objects.filter(reason="APITokenCreated", actor="test").exists()


def test_tokens_live_ninety_days_unless_told_and_odd_expiries_are_refused(project, fixed_now):
    kargo("create", "token", "a", "--project", "kargo-demo", "--role", "viewer")
    assert ApiToken.objects.get(name="a").expires_at == NOW + timedelta(days=90)
    kargo("create", "token", "b", "--project", "kargo-demo", "--role", "viewer", "--expires", "12h")
    assert ApiToken.objects.get(name="b").expires_at == NOW + timedelta(hours=12)
    for bad in ("30", "30x", "0d", "99999d", "-1d"):
        with pytest.raises(CommandError, match="invalid expiry"):
            kargo(
                "create", "token", "c", "--project=kargo-demo", "--role=viewer", f"--expires={bad}"
            )
    with pytest.raises(CommandError, match="already exists"):
        kargo("create", "token", "a", "--project", "kargo-demo", "--role", "admin")
    with pytest.raises(CommandError, match="invalid token name"):
        kargo("create", "token", "Not_A_Name", "--project", "kargo-demo", "--role", "admin")
    with pytest.raises(CommandError, match="not found"):
        kargo("create", "token", "a", "--project", "nope", "--role", "admin")


def test_get_tokens_lists_names_roles_and_dates_never_the_secret(project, fixed_now):
    secret = kargo("create", "token", "ci", "--project", "kargo-demo", "--role", "admin")[0].strip()
    table = kargo("get", "tokens", "--project", "kargo-demo")[0]
    assert table.splitlines()[0].split() == ["NAME", "ROLE", "CREATED", "EXPIRES", "LAST", "USED"]
    assert "ci" in table and "admin" in table and "2030-08-15T12:00:00Z" in table
    assert "never" in table  # not used yet
    assert api("GET", "/api/v1/projects/kargo-demo/stages", secret).status_code == 200
    listed = json.loads(kargo("get", "tokens", "--project", "kargo-demo", "-o", "json")[0])
    (info,) = listed["items"]
    assert info["lastUsedAt"] == "2030-05-17T12:00:00Z"
    assert set(info) == {
        "name", "role", "createdBy", "createdAt", "expiresAt", "lastUsedAt", "expired"
    }  # fmt: skip
    for output in ("table", "json", "yaml"):
        text = kargo("get", "tokens", "--project", "kargo-demo", "-o", output)[0]
        assert secret.split("_", 2)[2] not in text
        assert ApiToken.objects.get().digest not in text


def test_a_deleted_token_is_refused_at_once(project):
    secret = kargo("create", "token", "ci", "--project", "kargo-demo", "--role", "admin")[0].strip()
    assert api("GET", "/api/v1/projects/kargo-demo/stages", secret).status_code == 200
    assert (
        kargo("delete", "token", "ci", "--project", "kargo-demo")[0].strip() == "token/ci deleted"
    )
    response = api("GET", "/api/v1/projects/kargo-demo/stages", secret)
    assert response.status_code == 401
    assert response.json() == {"error": "invalid or revoked token"}
    assert response["WWW-Authenticate"] == "Bearer"
    with pytest.raises(CommandError, match="not found"):
        kargo("delete", "token", "ci", "--project", "kargo-demo")


def test_an_expired_token_is_refused(project):
    _, secret = do_create_token(project, "old", "admin", "test")
    ApiToken.objects.update(expires_at=datetime(2020, 1, 1, tzinfo=UTC))
    response = api("GET", "/api/v1/projects/kargo-demo/stages", secret)
    assert response.status_code == 401
    assert response.json() == {"error": "token 'old' expired at 2020-01-01T00:00:00Z"}
    table = kargo("get", "tokens", "--project", "kargo-demo")[0]
    assert "(expired)" in table


def test_malformed_credentials_are_refused(project):
    _, secret = do_create_token(project, "ci", "admin", "test")
    key_id = secret.split("_")[1]
    for header in (
        "Bearer nonsense",
        f"Bearer kui_{key_id}_wrong-secret",
        f"Bearer kui_{'0' * 16}_{secret.split('_', 2)[2]}",
        f"Token {secret}",
        f"Basic {secret}",
        "Bearer ",
    ):
        response = api("GET", "/api/v1/projects/kargo-demo/stages", Authorization=header)
        assert response.status_code == 401, header
        assert "error" in response.json()
    response = api("GET", "/api/v1/projects/kargo-demo/stages", Authorization=f"Basic {secret}")
    assert response.json() == {"error": "send Authorization: Bearer <token>"}


def test_another_authorization_scheme_leaves_the_session_in_charge(users):
    """A proxy's Basic auth in front of the dashboard does not lock sessions out of the API."""
    client = Client()
    client.force_login(users["carol"])
    response = api(
        "GET", "/api/v1/projects/kargo-demo/stages", client=client, Authorization="Basic eDp5"
    )
    assert response.status_code == 200


def test_a_token_works_only_in_its_project(project):
    other = do_create_project("other", "test")
    _, secret = do_create_token(other, "ci", "admin", "test")
    response = api("GET", "/api/v1/projects/kargo-demo/stages", secret)
    assert response.status_code == 404
    assert api("GET", "/api/v1/projects/other/stages", secret).status_code == 200


def test_a_token_authenticates_only_the_json_api(project, freight):
    _, secret = do_create_token(project, "ci", "admin", "test")
    client = Client()
    response = client.get("/project/kargo-demo/", headers=bearer(secret))
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    response = client.post(
        "/project/kargo-demo/stage/test/promote", {"freight": freight.name}, headers=bearer(secret)
    )
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    assert client.get("/", headers=bearer(secret)).status_code == 302
    assert not Promotion.objects.exists()


def test_csrf_is_for_sessions_not_tokens(users, freight):
    body = {"freight": freight.name}
    url = "/api/v1/projects/kargo-demo/stages/test/promotions"
    session = Client(enforce_csrf_checks=True)
    session.force_login(users["bob"])
    response = api("POST", url, body=body, client=session)
    assert response.status_code == 403
    assert response.json()["error"].startswith("CSRF check failed")
    assert not Promotion.objects.exists()
    _, secret = do_create_token(freight.project, "ci", "promoter", "test")
    response = api("POST", url, secret, body=body)
    assert response.status_code == 201
    promotion = Promotion.objects.get()
    assert promotion.actor == "token:ci"


def test_a_token_acts_with_its_own_role_whatever_session_comes_along(users, freight):
    """Alice's admin session does not lift a viewer token: the token is who acts."""
    test = Stage.objects.get(name="test")
    pending = do_promote(test, freight, actor="test")
    _, secret = do_create_token(freight.project, "ro", "viewer", "test")
    client = Client()
    client.force_login(users["alice"])
    response = api(
        "POST", f"/api/v1/projects/kargo-demo/promotions/{pending.name}/abort", secret, {}, client
    )
    assert response.status_code == 403
    assert response.json()["error"] == (
        "This needs the admin role in project kargo-demo; token 'ro' has the viewer role"
    )
    assert Promotion.objects.get(id=pending.id).phase == "Pending"


def test_a_token_role_caps_what_it_may_do(project, freight):
    """A viewer token cannot promote; a promoter token cannot abort; an admin token can."""
    tokens = {
        role: do_create_token(project, role, role, "test")[1]
        for role in ("viewer", "promoter", "admin")
    }
    url = "/api/v1/projects/kargo-demo/stages/test/promotions"
    assert api("POST", url, tokens["viewer"], {"freight": freight.name}).status_code == 403
    created = api("POST", url, tokens["promoter"], {"freight": freight.name})
    assert created.status_code == 201
    abort = f"/api/v1/projects/kargo-demo/promotions/{created.json()['metadata']['name']}/abort"
    assert api("POST", abort, tokens["promoter"], {}).status_code == 403
    response = api("POST", abort, tokens["admin"], {})
    assert response.status_code == 200
    assert response.json()["status"]["phase"] == "Aborted"


def test_admins_manage_tokens_over_the_api(project):
    _, admin = do_create_token(project, "root", "admin", "test")
    _, viewer = do_create_token(project, "ro", "viewer", "test")
    url = "/api/v1/projects/kargo-demo/tokens"
    assert api("GET", url, viewer).status_code == 403
    assert api("POST", url, viewer, {"name": "x", "role": "admin"}).status_code == 403
    created = api("POST", url, admin, {"name": "deploy", "role": "promoter", "expires": "7d"})
    assert created.status_code == 201
    secret = created.json()["token"]
    assert created.json()["role"] == "promoter"
    listed = api("GET", url, admin).json()["items"]
    assert [t["name"] for t in listed] == ["deploy", "ro", "root"]
    assert all("token" not in t and "digest" not in t for t in listed)
    assert "deploy" in api("GET", f"{url}?output=table", admin).content.decode()
    assert api("GET", "/api/v1/projects/kargo-demo/stages", secret).status_code == 200
    bad = api("POST", url, admin, {"name": "deploy", "role": "promoter"})
    assert bad.status_code == 400 and "already exists" in bad.json()["error"]
    assert api("POST", url, admin, {"name": "y", "role": "owner"}).status_code == 400
    assert api("DELETE", f"{url}/deploy", admin).json() == {"deleted": "token/deploy deleted"}
    assert api("GET", "/api/v1/projects/kargo-demo/stages", secret).status_code == 401
    assert api("DELETE", f"{url}/deploy", admin).status_code == 404


def test_json_bodies_are_bounded(project):
    _, secret = do_create_token(project, "root", "admin", "test")
    url = "/api/v1/projects/kargo-demo/stages/test/promotions"
    deep = '{"freight": ' + "[" * 40 + "]" * 40 + "}"
    response = Client().post(url, deep, content_type="application/json", headers=bearer(secret))
    assert response.status_code == 400
    assert response.json() == {"error": "request body: JSON nests deeper than 32 levels"}
    brackets_in_strings = json.dumps({"freight": "[" * 100})
    response = Client().post(
        url, brackets_in_strings, content_type="application/json", headers=bearer(secret)
    )
    assert response.status_code == 404  # parsed: there is no such Freight
    big = json.dumps({"freight": "x" * 70_000})
    response = Client().post(url, big, content_type="application/json", headers=bearer(secret))
    assert response.status_code == 413
    assert response.json() == {"error": "request body too large"}

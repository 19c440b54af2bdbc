"""The API tokens page: admins create (the secret shown once), list and revoke tokens."""

from projects.models import ApiToken
from projects.tokens import authenticate

URL = "/project/kargo-demo/tokens/"


def test_only_admins_see_the_tokens_page(client, users):
    for who, status in (("alice", 200), ("bob", 403), ("carol", 403), ("dave", 404)):
        client.force_login(users[who])
        assert client.get(URL).status_code == status
    client.logout()
    assert client.get(URL).status_code == 302


def test_an_admin_creates_a_token_and_sees_its_secret_once(client, users):
    client.force_login(users["alice"])
    response = client.post(URL, {"name": "ci", "role": "promoter", "expires": "30d"})
    assert response.status_code == 201
    assert response["Cache-Control"] == "no-store"
    secret = response.context["created"]
    assert secret.startswith("kui_") and secret in response.content.decode()
    token = authenticate(f"Bearer {secret}")
    assert (token.name, token.role) == ("ci", "promoter")
    # Listed afterwards, never with its secret.
    listing = client.get(URL).content.decode()
    assert 'data-token="ci"' in listing and secret not in listing


def test_bad_token_requests_say_why(client, users):
    client.force_login(users["alice"])
    response = client.post(URL, {"name": "Bad Name", "role": "admin", "expires": "30d"})
    assert response.status_code == 200
    assert b"invalid token name" in response.content
    response = client.post(URL, {"name": "ok", "role": "admin", "expires": "forever"})
    assert response.status_code == 200 and not ApiToken.objects.exists()


def test_an_admin_revokes_a_token(client, users):
    client.force_login(users["alice"])
    secret = client.post(URL, {"name": "ci", "role": "admin", "expires": "1d"}).context["created"]
    response = client.post(URL, {"revoke": "ci"})
    assert response.status_code == 302
    assert not ApiToken.objects.filter(name="ci").exists()
    assert client.post(URL, {"revoke": "ci"}).status_code == 404
    try:
        authenticate(f"Bearer {secret}")
    except ValueError as exc:
        assert "revoked" in str(exc)
    else:
        raise AssertionError("a revoked token still authenticates")


def test_promoters_cannot_create_or_revoke(client, users):
    client.force_login(users["bob"])
    assert client.post(URL, {"name": "ci", "role": "admin"}).status_code == 403
    assert not ApiToken.objects.exists()

"""Single sign-on through a real OpenID Connect provider: the dashboard (`manage.py serve`) and a
provider (django-oauth-toolkit, tests/integration/oidc_provider) run as two processes, and an
HTTP client walks the authorization-code flow between them as a browser would: to the provider,
through its login form, back to the dashboard with a code that the dashboard exchanges server to
server (PKCE), checking the RS256 ID token against the provider's JWKS. Nothing is mocked: the
keys are made here, the tokens by the provider.

The dashboard runs on 127.0.0.1 and the provider on localhost, so their cookies stay apart.
"""

import re
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit, urlunsplit

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.e2e.servers import (
    PYTHON,
    ROOT,
    ServerError,
    ServerProcess,
    clean_env,
    embedded_env,
    free_port,
    manage,
    seed_demo,
    serve_argv,
)

PROVIDER = ROOT / "tests" / "integration" / "oidc_provider" / "manage.py"
CLIENT_ID = "kargo-ui"


def rsa_private_key_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def run_provider_command(env: dict, *args: str) -> None:
    """`manage.py ARGS` of the provider, on its own database."""
    proc = subprocess.run(
        [PYTHON, str(PROVIDER), *args], env=env, capture_output=True, text=True, timeout=120
    )
    if proc.returncode != 0:
        raise ServerError(f"provider manage.py {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}")


@dataclass
class Sites:
    app: str  # the dashboard's base URL
    issuer: str
    app_env: dict
    app_server: ServerProcess
    provider_server: ServerProcess
    rogue_key_file: Path

    def logs(self) -> str:
        return (
            f"--- dashboard\n{self.app_server.tail(60)}\n"
            f"--- provider\n{self.provider_server.tail(30)}"
        )

    def kargo(self, *args: str) -> str:
        return manage(self.app_env, "kargo", "--actor", "test", *args)


@pytest.fixture(scope="module")
def sites(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("oidc")
    app_port, provider_port = free_port(), free_port()
    app = f"http://127.0.0.1:{app_port}"
    issuer = f"http://localhost:{provider_port}/o"
    client_secret = secrets.token_urlsafe(32)

    key_file = tmp / "provider-key.pem"
    key_file.write_text(rsa_private_key_pem())
    provider_env = clean_env(
        OIDC_PROVIDER_DATA_DIR=str(tmp),
        OIDC_PROVIDER_ISSUER=issuer,
        OIDC_PROVIDER_KEY_FILE=str(key_file),
        # Absent until a test puts a key there (see oidc_provider/validators.py).
        OIDC_PROVIDER_ROGUE_KEY_FILE=str(tmp / "rogue-key.pem"),
    )
    run_provider_command(provider_env, "migrate", "--noinput")
    run_provider_command(
        provider_env,
        "seed_provider",
        "--client-id",
        CLIENT_ID,
        "--client-secret",
        client_secret,
        "--redirect-uri",
        f"{app}/oidc/callback/",
    )
    provider = ServerProcess(
        "oidc-provider",
        [PYTHON, str(PROVIDER), "runserver", f"127.0.0.1:{provider_port}", "--noreload"],
        provider_env,
        tmp,
    )

    secret_file = tmp / "client-secret"
    secret_file.write_text(client_secret + "\n")
    data_dir = tmp / "app"
    data_dir.mkdir()
    app_env = embedded_env(data_dir) | {
        "KARGO_OIDC_ISSUER_URL": issuer,
        "KARGO_OIDC_CLIENT_ID": CLIENT_ID,
        "KARGO_OIDC_CLIENT_SECRET_FILE": str(secret_file),
        "KARGO_OIDC_ADMINS": "groups=platform",
        # The provider is on this machine: the egress policy must let the dashboard reach it.
        "KARGO_EGRESS_ALLOW_LOCAL": "1",
    }
    server = None
    try:
        provider.wait_for_http(f"{issuer}/.well-known/openid-configuration")
        seed_demo(app_env)
        server = ServerProcess("kargo-ui-sso", serve_argv(app_port), app_env, tmp)
        server.wait_for_http(f"{app}/healthz")
        yield Sites(app, issuer, app_env, server, provider, tmp / "rogue-key.pem")
    finally:
        if server is not None:
            server.stop()
        provider.stop()


@pytest.fixture
def devops_promoters(sites):
    """The claim mapping of the tests: group devops is promoter in kargo-demo."""
    out = sites.kargo(
        "grant", "--project", "kargo-demo", "--role", "promoter", "--claim", "groups=devops"
    )
    assert "groups=devops" in out
    yield
    try:
        sites.kargo(
            "revoke", "--project", "kargo-demo", "--role", "promoter", "--claim", "groups=devops"
        )
    except ServerError:
        pass  # the test took it away itself


def with_state(url: str, state: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()} | {"state": state}
    return urlunsplit(parts._replace(query=urlencode(query)))


def sso_login(
    sites: Sites, username: str, *, state: str | None = None
) -> tuple[httpx.Client, httpx.Response]:
    """A browser's single sign-on as `username`: a new client (no cookies at either site) from
    the dashboard's "Sign in with SSO" to the page the dashboard finally shows. `state`, if given,
    replaces the state the provider sends back."""
    browser = httpx.Client(timeout=60)
    login_page = browser.get(f"{sites.app}/login/")
    assert "Sign in with SSO" in login_page.text

    # 1. The dashboard sends the browser to the provider's authorization endpoint (discovered),
    #    with a state, a nonce and a PKCE challenge.
    start = browser.get(f"{sites.app}/oidc/authenticate/", params={"next": "/"})
    assert start.status_code == 302, sites.logs()
    authorize = start.headers["location"]
    asked = parse_qs(urlsplit(authorize).query)
    assert authorize.startswith(f"{sites.issuer}/authorize/")
    assert asked["client_id"] == [CLIENT_ID]
    assert asked["scope"] == ["openid email profile groups"]
    assert asked["code_challenge_method"] == ["S256"] and asked["code_challenge"][0]
    assert asked["state"][0] and asked["nonce"][0]
    assert asked["redirect_uri"] == [f"{sites.app}/oidc/callback/"]

    # 2. Nobody is signed in at the provider: it shows its login form.
    form = browser.get(authorize, follow_redirects=True)
    assert form.status_code == 200 and "Test OIDC provider" in form.text, sites.logs()
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)

    # 3. Signed in there, the browser goes back to the authorization endpoint, which (the client
    #    skips the consent screen) sends it to the dashboard's callback with a code.
    signed_in = browser.post(
        str(form.url),
        data={"csrfmiddlewaretoken": csrf, "username": username, "password": f"pw-{username}"},
    )
    assert signed_in.status_code == 302, signed_in.text
    back = browser.get(urljoin(str(form.url), signed_in.headers["location"]))
    assert back.status_code == 302, back.text
    callback = back.headers["location"]
    assert callback.startswith(f"{sites.app}/oidc/callback/?")
    assert parse_qs(urlsplit(callback).query)["state"] == asked["state"]
    if state is not None:
        callback = with_state(callback, state)

    # 4. The dashboard exchanges the code for tokens, checks the ID token and signs the user in
    #    (or refuses), and sends the browser on.
    landed = browser.get(callback, follow_redirects=True)
    return browser, landed


def signed_in_as(browser: httpx.Client, sites: Sites) -> str | None:
    page = browser.get(f"{sites.app}/", follow_redirects=True)
    if urlsplit(str(page.url)).path == "/login/":
        return None
    return re.search(r'<span class="who">([^<]+)</span>', page.text).group(1)


def promote(browser: httpx.Client, sites: Sites) -> httpx.Response:
    return browser.post(
        f"{sites.app}/api/v1/projects/kargo-demo/stages/test/promotions",
        json={"origin": "Warehouse/guestbook"},
        headers={"X-CSRFToken": browser.cookies.get("csrftoken", domain="127.0.0.1")},
    )


def test_a_mapped_group_signs_in_as_promoter_and_promotes(sites, devops_promoters):
    browser, landed = sso_login(sites, "alice")
    assert landed.status_code == 200, sites.logs()
    assert urlsplit(str(landed.url)).path == "/"
    assert signed_in_as(browser, sites) == "alice@example.com"
    assert "kargo-demo" in landed.text
    project = browser.get(f"{sites.app}/project/kargo-demo/")
    assert project.status_code == 200
    assert 'title="Your role in this project">promoter<' in project.text

    promoted = promote(browser, sites)
    assert promoted.status_code == 201, promoted.text
    assert promoted.json()["spec"]["stage"] == "test"
    # Promoter, not admin: API tokens are the admin's.
    tokens = browser.get(f"{sites.app}/api/v1/projects/kargo-demo/tokens")
    assert tokens.status_code == 403


def test_without_a_mapping_no_project_is_visible(sites, devops_promoters):
    browser, landed = sso_login(sites, "bob")
    assert landed.status_code == 200, sites.logs()
    assert signed_in_as(browser, sites) == "bob@example.com"
    assert "kargo-demo" not in landed.text
    assert browser.get(f"{sites.app}/project/kargo-demo/").status_code == 404
    assert promote(browser, sites).status_code == 404


def test_system_admins_by_claim_are_project_admins_not_superusers(sites):
    # KARGO_OIDC_ADMINS=groups=platform; carol is in platform.
    browser, landed = sso_login(sites, "carol")
    assert signed_in_as(browser, sites) == "carol@example.com", sites.logs()
    assert "kargo-demo" in landed.text
    assert browser.get(f"{sites.app}/api/v1/projects/kargo-demo/tokens").status_code == 200
    # The Django admin stays with the accounts given it by hand.
    admin = browser.get(f"{sites.app}/admin/", follow_redirects=True)
    assert urlsplit(str(admin.url)).path == "/admin/login/"


def test_removing_the_mapping_removes_the_role(sites, devops_promoters):
    browser, _ = sso_login(sites, "alice")
    assert browser.get(f"{sites.app}/project/kargo-demo/").status_code == 200, sites.logs()

    sites.kargo(
        "revoke", "--project", "kargo-demo", "--role", "promoter", "--claim", "groups=devops"
    )
    # At once, for the session she has (from the claims of her last login)...
    assert browser.get(f"{sites.app}/project/kargo-demo/").status_code == 404
    # ...and at her next login, though the provider still says she is in devops.
    browser, landed = sso_login(sites, "alice")
    assert signed_in_as(browser, sites) == "alice@example.com"
    assert "kargo-demo" not in landed.text
    assert browser.get(f"{sites.app}/project/kargo-demo/").status_code == 404
    assert promote(browser, sites).status_code == 404


def test_a_tampered_state_is_refused(sites, devops_promoters):
    browser, landed = sso_login(sites, "alice", state="forged-" + secrets.token_urlsafe(16))
    assert urlsplit(str(landed.url)).path == "/login/"
    assert "Single sign-on did not sign you in" in landed.text
    assert signed_in_as(browser, sites) is None
    assert "single sign-on refused: OIDC callback state not found" in sites.app_server.log()


def test_an_id_token_signed_by_another_key_is_refused(sites, devops_promoters):
    # The provider signs the next ID tokens with a key of its own making, under its real kid.
    sites.rogue_key_file.write_text(rsa_private_key_pem())
    try:
        browser, landed = sso_login(sites, "alice")
    finally:
        sites.rogue_key_file.unlink()
    assert urlsplit(str(landed.url)).path == "/login/"
    assert "Single sign-on did not sign you in" in landed.text
    assert signed_in_as(browser, sites) is None
    assert "ID token refused: Signature verification failed" in sites.app_server.log()

    # With the provider's own key again, the same person signs in.
    browser, _ = sso_login(sites, "alice")
    assert signed_in_as(browser, sites) == "alice@example.com"

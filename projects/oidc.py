"""Single sign-on through OpenID Connect, and Kargo's mapping of claims to project roles.

The protocol is mozilla-django-oidc's: the authorization-code flow with PKCE (S256), `state` and
`nonce` kept in the session, the ID token verified as RS256 against the provider's JWKS. Here it
is told where the provider is (discovery from `<issuer>/.well-known/openid-configuration`, or the
endpoints the settings name, all through the egress policy), verifies what the library leaves
out (the ID token's issuer and audience, userinfo about the same subject), and turns the claims
into a user and their roles:

- A user is found by the provider's issuer and subject (SsoIdentity), never by a name or email
  alone: a local account of the same name is refused, not taken over. A new user is named after
  the KARGO_OIDC_USERNAME_CLAIM claim (default `email`).
- As Kargo maps claims to a project role's ServiceAccount (`rbac.kargo.akuity.io/claims`),
  RoleClaim rows map a claim value to a role in one project; KARGO_OIDC_ADMINS and
  KARGO_OIDC_VIEWERS (Kargo's `api.oidc.admins`/`viewers`) make the matching users admins or
  viewers in every project. They are not made Django superusers: the Django admin stays with
  the accounts given it by hand.
- At every SSO login the user's claims roles are recomputed (Membership.claims_role); a grant by
  hand (Membership.granted_role) is never touched. When a mapping changes, the roles of every
  SSO user are recomputed from the claims of their last login, so a revoked mapping takes effect
  at once, not only at the next login.
"""

import logging
import threading
from dataclasses import dataclass

import httpx
import jwt
import requests
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth import views as auth_views
from django.contrib.auth.backends import ModelBackend
from django.core import checks
from django.core.exceptions import SuspiciousOperation
from django.db import transaction
from django.http import Http404
from django.shortcuts import redirect
from django.urls import reverse
from django.views.generic import View
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.views import (
    OIDCAuthenticationCallbackView,
    OIDCAuthenticationRequestView,
)

from .actions import record_event
from .egress import OutboundNotAllowed, check_outbound
from .models import Membership, Project, Role, RoleClaim, SsoIdentity, higher_role

log = logging.getLogger(__name__)

# Claims about the token rather than the person: not kept with the identity.
TOKEN_CLAIMS = frozenset(
    {"aud", "exp", "iat", "nbf", "nonce", "at_hash", "c_hash", "auth_time", "jti", "azp", "sid"}
)
# Allowed clock difference with the provider when checking the ID token's times (seconds).
LEEWAY = 60
FAILED = "Single sign-on did not sign you in. Try again, or ask an administrator."


# --------------------------------------------------------------------------------------------
# The provider
# --------------------------------------------------------------------------------------------


class ProviderError(RuntimeError):
    """The provider could not be found or used: discovery failed, or the egress policy refuses it."""


@dataclass(frozen=True)
class Provider:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str


_provider_lock = threading.Lock()
_providers: dict[tuple, Provider] = {}


def provider() -> Provider:
    """The configured provider's endpoints, discovered once and kept (a failure is retried at
    the next login)."""
    key = (
        settings.OIDC_ISSUER_URL,
        settings.OIDC_OP_AUTHORIZATION_ENDPOINT,
        settings.OIDC_OP_TOKEN_ENDPOINT,
        settings.OIDC_OP_JWKS_ENDPOINT,
        settings.OIDC_OP_USER_ENDPOINT,
    )
    with _provider_lock:
        found = _providers.get(key)
        if found is None:
            found = _providers[key] = discover()
        return found


def _allowed(url: str) -> str:
    try:
        check_outbound(url)
    except OutboundNotAllowed as exc:
        raise ProviderError(str(exc)) from None
    return url


def discover() -> Provider:
    """Endpoints from the settings, the ones they leave out from the discovery document."""
    issuer = settings.OIDC_ISSUER_URL
    found = {
        "authorization_endpoint": settings.OIDC_OP_AUTHORIZATION_ENDPOINT,
        "token_endpoint": settings.OIDC_OP_TOKEN_ENDPOINT,
        "jwks_uri": settings.OIDC_OP_JWKS_ENDPOINT,
        "userinfo_endpoint": settings.OIDC_OP_USER_ENDPOINT,
    }
    if not all(found[k] for k in ("authorization_endpoint", "token_endpoint", "jwks_uri")):
        url = _allowed(issuer.rstrip("/") + "/.well-known/openid-configuration")
        try:
            response = httpx.get(url, timeout=settings.OIDC_TIMEOUT)
            response.raise_for_status()
            document = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise ProviderError(f"discovery at {url} failed: {exc}") from None
        if not isinstance(document, dict) or document.get("issuer") != issuer:
            # OpenID Connect Discovery 1.0, section 4.3: the issuer must be the one asked for.
            raise ProviderError(f"{url} is not the discovery document of issuer {issuer!r}")
        algorithms = document.get("id_token_signing_alg_values_supported") or ["RS256"]
        if "RS256" not in algorithms:
            raise ProviderError(f"issuer {issuer!r} does not sign ID tokens with RS256")
        for name, value in found.items():
            found[name] = value or str(document.get(name) or "")
    missing = [k for k in ("authorization_endpoint", "token_endpoint", "jwks_uri") if not found[k]]
    if missing:
        raise ProviderError(f"issuer {issuer!r} names no {', '.join(missing)}")
    # The browser goes to the authorization endpoint; this server calls the others.
    for name in ("token_endpoint", "jwks_uri", "userinfo_endpoint"):
        if found[name]:
            _allowed(found[name])
    return Provider(issuer=issuer, **found)


@checks.register(checks.Tags.security)
def check_issuer(app_configs=None, **kwargs) -> list:
    """At start (every manage.py command, `serve` included): the egress policy must let this
    server reach the issuer. Registered on import, which projects.admin makes at setup."""
    if not settings.OIDC_ENABLED:
        return []
    try:
        check_outbound(settings.OIDC_ISSUER_URL)
    except OutboundNotAllowed as exc:
        return [
            checks.Error(
                f"KARGO_OIDC_ISSUER_URL: {exc}",
                hint="allow the provider in KARGO_EGRESS_ALLOW (a provider on this machine "
                "needs KARGO_EGRESS_ALLOW_LOCAL)",
                id="projects.E001",
            )
        ]
    return []


# --------------------------------------------------------------------------------------------
# Claims
# --------------------------------------------------------------------------------------------


def claim_values(claims: dict, name: str) -> set[str]:
    """The values a claim holds: one string, or the strings of a list (`groups`)."""
    value = claims.get(name)
    if isinstance(value, str):
        return {value}
    if isinstance(value, list):
        return {v for v in value if isinstance(v, str)}
    return set()


def matches(claims: dict, wanted: dict[str, list[str]]) -> bool:
    """Kargo's rule for a ServiceAccount's claims: any wanted value of any named claim."""
    return any(claim_values(claims, name) & set(values) for name, values in wanted.items())


def parse_claim(text: str) -> tuple[str, str]:
    """`groups=devops` as (claim, value)."""
    claim, sep, value = text.partition("=")
    if not sep or not claim.strip() or not value.strip():
        raise ValueError(f"{text!r} is not CLAIM=VALUE (for example groups=devops)")
    return claim.strip(), value.strip()


def roles_from_claims(claims: dict) -> dict[int, str]:
    """The role these claims give in each project (by project id)."""
    system = (
        Role.ADMIN
        if matches(claims, settings.OIDC_SYSTEM_ADMINS)
        else Role.VIEWER
        if matches(claims, settings.OIDC_SYSTEM_VIEWERS)
        else ""
    )
    roles = dict.fromkeys(Project.objects.values_list("id", flat=True), system) if system else {}
    for mapping in RoleClaim.objects.filter(claim__in=list(claims)):
        if mapping.value in claim_values(claims, mapping.claim):
            roles[mapping.project_id] = higher_role(roles.get(mapping.project_id, ""), mapping.role)
    return roles


def actor_for(user) -> str:
    return f"email:{user.email}" if user.email else f"user:{user.get_username()}"


@transaction.atomic
def apply_claims(user, claims: dict, actor: str = "") -> None:
    """Set the user's claims roles to what `claims` give now; grants by hand stay as they are.
    The changes are recorded as the user's own unless `actor` (who changed a mapping) is given."""
    wanted = roles_from_claims(claims)
    actor = actor or actor_for(user)
    memberships = {
        m.project_id: m
        for m in Membership.objects.select_for_update().filter(user=user).select_related("project")
    }
    for project_id, membership in memberships.items():
        role = wanted.get(project_id, "")
        if membership.claims_role == role:
            continue
        name = user.get_username()
        if not role and not membership.granted_role:
            membership.delete()
            message = f"{name} has no role any more (SSO claims)"
        else:
            membership.claims_role = role
            membership.save(update_fields=["claims_role"])
            message = f"{name} is now {membership.role} ({role or 'no role'} from SSO claims)"
        reason = "RoleGranted" if role else "RoleRevoked"
        record_event(membership.project, reason, actor, message, f"User/{name}")
    for project_id, role in wanted.items():
        if project_id not in memberships:
            membership = Membership.objects.create(
                project_id=project_id, user=user, claims_role=role
            )
            name = user.get_username()
            record_event(
                membership.project,
                "RoleGranted",
                actor,
                f"{name} is now {role} (SSO claims)",
                f"User/{name}",
            )


def reapply_claims(actor: str) -> None:
    """After `actor` changed a claim mapping: every SSO user's claims roles, from the claims of
    their last login."""
    for identity in SsoIdentity.objects.select_related("user"):
        apply_claims(identity.user, identity.claims, actor)


@transaction.atomic
def sign_in(issuer: str, claims: dict):
    """The user these verified claims are about (created at their first login), with their
    claims roles brought up to date."""
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise SuspiciousOperation("the ID token names no subject")
    username_claim = settings.OIDC_USERNAME_CLAIM
    username = claims.get(username_claim)
    if not isinstance(username, str) or not username.strip() or len(username) > 150:
        raise SuspiciousOperation(
            f"the provider gave no usable {username_claim!r} claim (KARGO_OIDC_USERNAME_CLAIM)"
        )
    email = claims.get("email") if isinstance(claims.get("email"), str) else ""
    identity = (
        SsoIdentity.objects.select_related("user").filter(issuer=issuer, subject=subject).first()
    )
    if identity is None:
        User = get_user_model()
        if User.objects.filter(username=username).exists():
            raise SuspiciousOperation(
                f"user {username!r} exists and is not this SSO subject's: "
                "single sign-on does not take over an account"
            )
        # No usable password: this user signs in only through the provider.
        user = User.objects.create_user(username, email=email)
        identity = SsoIdentity(user=user, issuer=issuer, subject=subject)
    user = identity.user
    if email and user.email != email:
        user.email = email
        user.save(update_fields=["email"])
    identity.claims = {k: v for k, v in claims.items() if k not in TOKEN_CLAIMS}
    identity.save()
    apply_claims(user, identity.claims)
    return user


# --------------------------------------------------------------------------------------------
# Roles by claim, and by hand (manage.py kargo grant|revoke, the admin)
# --------------------------------------------------------------------------------------------


def grant_claim(project: Project, role: str, claim: str, value: str, actor: str) -> bool:
    """Map `claim=value` to `role` in `project`. False if it was mapped already."""
    if role not in Role.values:
        raise ValueError(f"unknown role {role!r}; use one of {', '.join(Role.values)}")
    _, created = RoleClaim.objects.get_or_create(
        project=project, role=role, claim=claim, value=value
    )
    if created:
        record_event(
            project, "RoleGranted", actor, f"claim {claim}={value} is now {role}", f"Role/{role}"
        )
        reapply_claims(actor)
    return created


def revoke_claim(project: Project, role: str, claim: str, value: str, actor: str) -> bool:
    """Take the mapping of `claim=value` to `role` in `project` away. False if there was none."""
    deleted, _ = RoleClaim.objects.filter(
        project=project, role=role, claim=claim, value=value
    ).delete()
    if deleted:
        record_event(
            project,
            "RoleRevoked",
            actor,
            f"claim {claim}={value} is no longer {role}",
            f"Role/{role}",
        )
        reapply_claims(actor)
    return bool(deleted)


def revoke_by_hand(project: Project, user) -> Membership | None:
    """Take away the user's grant by hand; a role from their claims stays. None if they had no
    grant by hand."""
    membership = Membership.objects.filter(project=project, user=user).first()
    if membership is None or not membership.granted_role:
        return None
    if membership.claims_role:
        membership.granted_role = ""
        membership.save(update_fields=["granted_role"])
    else:
        membership.delete()
    return membership


# --------------------------------------------------------------------------------------------
# The authentication backend and the views
# --------------------------------------------------------------------------------------------


class OIDCBackend(OIDCAuthenticationBackend):
    """mozilla-django-oidc's backend, told the provider's endpoints at the callback and checking
    what it does not: the ID token's issuer and audience, and that userinfo is about its subject."""

    def __init__(self, *args, **kwargs):
        # Django builds every backend for every authentication, password logins included: the
        # provider is looked up only when an SSO callback needs it.
        self.UserModel = get_user_model()
        self.OIDC_RP_SIGN_ALGO = "RS256"
        self.OIDC_RP_IDP_SIGN_KEY = None

    def authenticate(self, request, **kwargs):
        # Only the callback view passes a nonce; a password login asks every backend too.
        if not settings.OIDC_ENABLED or request is None or "nonce" not in kwargs:
            return None
        found = provider()
        self.issuer = found.issuer
        self.OIDC_OP_TOKEN_ENDPOINT = found.token_endpoint
        self.OIDC_OP_USER_ENDPOINT = found.userinfo_endpoint
        self.OIDC_OP_JWKS_ENDPOINT = found.jwks_uri
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID
        self.OIDC_RP_CLIENT_SECRET = settings.OIDC_RP_CLIENT_SECRET
        return super().authenticate(request, **kwargs)

    def get_payload_data(self, token, key):
        """The ID token's claims, once its RS256 signature (`key` is the provider's JWK with the
        token's kid), issuer, audience and times are right."""
        try:
            return jwt.decode(
                token,
                key,
                algorithms=["RS256"],
                audience=self.OIDC_RP_CLIENT_ID,
                issuer=self.issuer,
                leeway=LEEWAY,
                options={"require": ["iss", "sub", "aud", "exp", "iat"]},
            )
        except jwt.PyJWTError as exc:
            raise SuspiciousOperation(f"ID token refused: {exc}") from None

    def get_or_create_user(self, access_token, id_token, payload):
        claims = dict(payload)
        if self.OIDC_OP_USER_ENDPOINT:
            info = self.get_userinfo(access_token, id_token, payload)
            if not isinstance(info, dict) or info.get("sub") != payload.get("sub"):
                # OpenID Connect Core 1.0, section 5.3.2.
                raise SuspiciousOperation("the provider's userinfo is about another subject")
            claims = {**info, **payload}
        return sign_in(self.issuer, claims)

    def get_user(self, user_id):
        # Django's rule, which mozilla-django-oidc drops: an inactive user has no session.
        return ModelBackend.get_user(self, user_id)


class SsoLoginView(OIDCAuthenticationRequestView):
    """Start the flow: to the provider, with state, nonce and the PKCE challenge."""

    def __init__(self, **kwargs):
        # The library's own __init__ reads the endpoint from the settings; ours is discovered.
        View.__init__(self, **kwargs)

    def get(self, request):
        if not settings.OIDC_ENABLED:
            raise Http404("Single sign-on is not configured")
        try:
            found = provider()
        except ProviderError as exc:
            log.warning("single sign-on unavailable: %s", exc)
            messages.error(request, "The single sign-on provider cannot be reached now.")
            return redirect("login")
        self.OIDC_OP_AUTH_ENDPOINT = found.authorization_endpoint
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID
        return super().get(request)


class SsoCallbackView(OIDCAuthenticationCallbackView):
    """The provider sends the browser back here with the code. A refusal (unknown state, a token
    that does not verify) is logged and the user is back on the login page, signed out."""

    def get(self, request):
        if not settings.OIDC_ENABLED:
            raise Http404("Single sign-on is not configured")
        try:
            return super().get(request)
        except (SuspiciousOperation, jwt.PyJWTError) as exc:
            log.warning("single sign-on refused: %s", exc)
        except (ProviderError, requests.RequestException) as exc:
            log.warning("single sign-on failed, the provider did not answer as expected: %s", exc)
        return self.login_failure()

    @property
    def failure_url(self) -> str:
        return reverse("login")

    def login_failure(self):
        messages.error(self.request, FAILED)
        return super().login_failure()


class LoginView(auth_views.LoginView):
    """The password login page, offering single sign-on where it is configured."""

    template_name = "login.html"

    def get_context_data(self, **kwargs):
        return super().get_context_data(**kwargs) | {"sso_enabled": settings.OIDC_ENABLED}

"""Who may do what, everywhere: every action x every surface x every role, with the exact status.

Roles are Kargo's (projects.access.Needs): a viewer reads; a promoter also promotes, approves,
refreshes, reverifies and aborts a verification; only an admin aborts a promotion (Kargo gives
`patch` on Promotions to kargo-admin alone), applies, deletes and manages API tokens.
The surfaces: the full page (a form POST, or a GET), its htmx partial, the JSON API with a
session (and its CSRF token) and with an API token of the role, and the websocket (in
test_role_matrix_websocket.py: its tests commit, so they cannot share this module's world).

Who is who: viewer carol, promoter bob, admin alice, outsider dave (no role in the project; on the
token surface, an admin token of another project), anonymous (no session, no token).
"""

import json
from dataclasses import dataclass

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client

from freight.models import Freight, Warehouse
from projects.actions import do_create_project
from projects.models import ApiToken, Event
from projects.tokens import do_create_token
from stages.actions import do_finish, do_promote, do_start_next
from stages.models import Promotion, Stage
from tests.conftest import make_cast
from tests.http.conftest import build_project

ROLES = ("viewer", "promoter", "admin", "outsider", "anonymous")
CAST = {"viewer": "carol", "promoter": "bob", "admin": "alice", "outsider": "dave"}
RANK = {"viewer": 1, "promoter": 2, "admin": 3}
CSRF = "rolematrixcsrfsecret0123456789ab"  # a 32-character CSRF secret, cookie and header
SURFACES = ("page", "partial", "api-session", "api-token")
ANONYMOUS = {"page": 302, "partial": 302, "api-session": 401, "api-token": 401}

WAREHOUSE_YAML = """\
apiVersion: kargo.akuity.io/v1alpha1
kind: Warehouse
metadata:
  name: extra
  namespace: kargo-demo
spec:
  subscriptions:
    - image:
        repoURL: example.com/extra
"""


@dataclass(frozen=True)
class Action:
    """One thing a person can do, as each surface asks for it: (method, path, data, htmx
    target) for the page and its partial, (method, path, body) for the API. Paths may name
    {freight} and {promotion}, the world's newest Freight and its pending Promotion."""

    name: str
    needs: str
    page: tuple | None
    api: tuple
    ok: dict  # surface -> status when allowed
    changes: bool = True  # whether an allowed request changes anything

    def statuses(self):
        surfaces = SURFACES if self.page else ("api-session", "api-token")
        for surface in surfaces:
            for role in ROLES:
                yield surface, role, expected(self, surface, role)


def expected(action: Action, surface: str, role: str) -> int:
    if role == "anonymous":
        return ANONYMOUS[surface]
    if role == "outsider":
        return 404  # the project's existence is not revealed
    if RANK[role] < RANK[action.needs]:
        return 403
    return action.ok[surface]


READ = {"page": 200, "partial": 200, "api-session": 200, "api-token": 200}
ACTIONS = [
    Action(
        "read project",
        "viewer",
        ("GET", "/project/kargo-demo/", None, "timeline"),
        ("GET", "/api/v1/projects/kargo-demo/stages", None),
        READ,
        changes=False,
    ),
    Action(
        "read stage",
        "viewer",
        ("GET", "/project/kargo-demo/stage/test/", None, "drawer"),
        ("GET", "/api/v1/projects/kargo-demo/manifests/Stage/test", None),
        READ,
        changes=False,
    ),
    Action(
        "read freight",
        "viewer",
        ("GET", "/project/kargo-demo/freight/{freight}/", None, "drawer"),
        ("GET", "/api/v1/projects/kargo-demo/freight", None),
        READ,
        changes=False,
    ),
    Action(
        "read promotion",
        "viewer",
        ("GET", "/project/kargo-demo/promotion/{promotion}/", None, "drawer"),
        ("GET", "/api/v1/projects/kargo-demo/promotions/{promotion}", None),
        READ,
        changes=False,
    ),
    Action(
        "export manifests",
        "viewer",
        None,
        ("GET", "/api/v1/projects/kargo-demo/manifests/Warehouse?output=yaml", None),
        READ,
        changes=False,
    ),
    Action(
        "promote",
        "promoter",
        ("POST", "/project/kargo-demo/stage/test/promote", {"freight": "{freight}"}, "drawer"),
        ("POST", "/api/v1/projects/kargo-demo/stages/test/promotions", {"freight": "{freight}"}),
        {"page": 302, "partial": 200, "api-session": 201, "api-token": 201},
    ),
    Action(
        "approve",
        "promoter",
        ("POST", "/project/kargo-demo/freight/{freight}/approve", {"stage": "prod"}, "drawer"),
        ("POST", "/api/v1/projects/kargo-demo/freight/{freight}/approve?stage=prod", {}),
        {"page": 302, "partial": 200, "api-session": 200, "api-token": 200},
    ),
    Action(
        "refresh stage",
        "promoter",
        ("POST", "/project/kargo-demo/stage/test/refresh", {}, "flash"),
        ("POST", "/api/v1/projects/kargo-demo/stages/test/refresh", {}),
        {"page": 302, "partial": 200, "api-session": 202, "api-token": 202},
    ),
    Action(
        "refresh warehouse",
        "promoter",
        ("POST", "/project/kargo-demo/warehouse/guestbook/refresh", {}, "flash"),
        ("POST", "/api/v1/projects/kargo-demo/warehouses/guestbook/refresh", {}),
        {"page": 302, "partial": 200, "api-session": 202, "api-token": 202},
    ),
    Action(
        "reverify",
        "promoter",
        ("POST", "/project/kargo-demo/stage/test/reverify", {}, "drawer"),
        ("POST", "/api/v1/projects/kargo-demo/stages/test/verification", {}),
        {"page": 302, "partial": 200, "api-session": 200, "api-token": 200},
    ),
    Action(
        "abort verification",
        "promoter",
        ("POST", "/project/kargo-demo/stage/test/abort-verification", {}, "drawer"),
        ("POST", "/api/v1/projects/kargo-demo/stages/test/verification/abort", {}),
        {"page": 302, "partial": 200, "api-session": 200, "api-token": 200},
    ),
    Action(
        "auto-promotion on",
        "admin",
        ("POST", "/project/kargo-demo/stage/test/auto-promotion", {"enabled": "on"}, "drawer"),
        ("POST", "/api/v1/projects/kargo-demo/stages/test/auto-promotion", {"enabled": True}),
        {"page": 302, "partial": 200, "api-session": 200, "api-token": 200},
    ),
    Action(
        "abort promotion",
        "admin",
        ("POST", "/project/kargo-demo/promotion/{promotion}/abort", {}, "drawer"),
        ("POST", "/api/v1/projects/kargo-demo/promotions/{promotion}/abort", {}),
        {"page": 302, "partial": 200, "api-session": 200, "api-token": 200},
    ),
    Action(
        "apply",
        "admin",
        None,
        ("POST", "/api/v1/projects/kargo-demo/manifests", WAREHOUSE_YAML),
        {"api-session": 200, "api-token": 200},
    ),
    Action(
        "delete",
        "admin",
        None,
        ("DELETE", "/api/v1/projects/kargo-demo/manifests/Stage/prod", None),
        {"api-session": 200, "api-token": 200},
    ),
    Action(
        "list tokens",
        "admin",
        None,
        ("GET", "/api/v1/projects/kargo-demo/tokens", None),
        READ,
        changes=False,
    ),
    Action(
        "create token",
        "admin",
        None,
        ("POST", "/api/v1/projects/kargo-demo/tokens", {"name": "ci", "role": "viewer"}),
        {"api-session": 201, "api-token": 201},
    ),
]

CASES = [
    pytest.param(action, surface, role, status, id=f"{action.name}-{surface}-{role}-{status}")
    for action in ACTIONS
    for surface, role, status in action.statuses()
]


def build_world() -> dict:
    """kargo-demo with something for every action: Freight v1.2.0 in test, its verification
    still running (to abort or reverify), a pending Promotion of v1.1.0 (to abort), and an API
    token per role, plus an admin token of another project (the outsider's)."""
    project = build_project()
    freight = Freight.objects.filter(project=project).first()  # the newest, v1.2.0
    users = make_cast(get_user_model(), project)
    test = Stage.objects.get(project=project, name="test")
    do_promote(test, freight, actor="fixture")
    running = do_start_next(test.id)
    do_finish(running, "Succeeded", "done")
    test.refresh_from_db()
    test.status["freightHistory"][0]["verificationHistory"][0]["phase"] = "Running"
    Stage.objects.filter(id=test.id).update(status=test.status)
    older = Freight.objects.filter(project=freight.project).exclude(id=freight.id).first()
    pending = do_promote(test, older, actor="fixture")
    tokens = {
        role: do_create_token(freight.project, f"{role}-token", role, "fixture")[1]
        for role in ("viewer", "promoter", "admin")
    }
    elsewhere = do_create_project("elsewhere", actor="fixture")
    tokens["outsider"] = do_create_token(elsewhere, "admin-token", "admin", "fixture")[1]
    return {
        "users": {name: user.pk for name, user in users.items()},
        "freight": freight.name,
        "promotion": pending.name,
        "tokens": tokens,
    }


@pytest.fixture(scope="module")
def shared_world(shared_rows) -> dict:
    # Built once for the module's 250 requests (it took most of their time when each built its
    # own); every test below runs on `db`, so whatever a request changes is rolled back.
    return shared_rows(build_world)


@pytest.fixture
def world(db, data_dir, shared_world) -> dict:
    """The shared world, with its users loaded afresh for this test."""
    users = get_user_model().objects.in_bulk(shared_world["users"].values())
    return {
        **shared_world,
        "users": {name: users[pk] for name, pk in shared_world["users"].items()},
    }


def fingerprint() -> tuple:
    """What any action of the matrix changes (a token's last use aside)."""
    stages = list(Stage.objects.order_by("name").values_list("name", "annotations", "status"))
    return (
        Event.objects.count(),
        sorted(Promotion.objects.values_list("name", "phase")),
        sorted(name for name, _, _ in stages),
        [annotations for _, annotations, _ in stages],
        [status for _, _, status in stages],
        list(Freight.objects.order_by("name").values_list("status", flat=True)),
        list(Warehouse.objects.values_list("name", "refresh_requested_at")),
        ApiToken.objects.count(),
    )


def session_client(world, role: str) -> Client:
    """A browser: CSRF checks on, the CSRF cookie set (as after any page), logged in unless
    anonymous."""
    client = Client(enforce_csrf_checks=True)
    if role != "anonymous":
        client.force_login(world["users"][CAST[role]])
    client.cookies[settings.CSRF_COOKIE_NAME] = CSRF
    return client


def fill(value, world):
    if isinstance(value, str):
        return value.format(freight=world["freight"], promotion=world["promotion"])
    if isinstance(value, dict):
        return {k: fill(v, world) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(fill(v, world) for v in value)
    return value


def request(world, action: Action, surface: str, role: str):
    if surface in ("page", "partial"):
        method, path, data, target = fill(action.page, world)
        headers = {"X-CSRFToken": CSRF}
        if surface == "partial":
            headers |= {"HX-Request": "true", "HX-Target": target}
        client = session_client(world, role)
        if method == "GET":
            return client.get(path, headers=headers)
        return client.post(path, data, headers=headers)
    method, path, body = fill(action.api, world)
    if surface == "api-session":
        client, headers = session_client(world, role), {"X-CSRFToken": CSRF}
    else:
        # No session and no CSRF token: a token request needs neither.
        client, headers = Client(enforce_csrf_checks=True), {}
        if role != "anonymous":
            headers["Authorization"] = f"Bearer {world['tokens'][role]}"
    if isinstance(body, dict):
        return client.generic(
            method, path, json.dumps(body), content_type="application/json", headers=headers
        )
    if isinstance(body, str):
        return client.generic(method, path, body, content_type="application/yaml", headers=headers)
    return client.generic(method, path, headers=headers)


@pytest.mark.parametrize("action,surface,role,status", CASES)
def test_role_matrix(world, action, surface, role, status):
    before = fingerprint()
    response = request(world, action, surface, role)
    assert response.status_code == status, response.content.decode()[:500]
    if status in (401, 403, 404) or role == "anonymous":
        # Refused: nothing happened; the API says why in its JSON envelope, a page sends
        # the anonymous visitor to the login page.
        assert fingerprint() == before
        if surface.startswith("api"):
            assert "error" in response.json()
        else:
            assert status != 302 or response["Location"].startswith("/login/")
    elif action.changes:
        assert fingerprint() != before


def test_the_matrix_covers_every_action_surface_and_role():
    assert len(CASES) == 12 * 4 * 5 + 5 * 2 * 5 == 290
    seen = {(a.name, s, r) for a, s, r, _ in (c.values for c in CASES)}
    assert {r for _, _, r in seen} == set(ROLES)
    assert {s for _, s, _ in seen} == set(SURFACES)

"""Secrets never reach a viewer: a token planted in every place a user (or a worker) can put one
is masked on every surface carol, a viewer, can reach — pages, htmx partials, the JSON API with
her session and with a viewer token, `kargo get` and exports, the websocket pushes — and in the
logs of a failing discovery and a failing step. One rule masks them all: kargo.redaction.

Each walk also checks that the planted values did reach the surface, masked (`https://***@`,
`private_token=***`): a surface that showed nothing at all would prove nothing."""

import hashlib
import io
import json
import logging

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from freight import actions as freight_actions
from freight.actions import do_create_freight
from freight.models import Freight, Warehouse
from kargo.conditions import condition
from kargo.specs import KINDS, StageSpec, WarehouseSpec, dump
from kargo_ui.asgi import application
from kargo_ui.manifests import apply_text
from projects.actions import record_event
from projects.live import send_change
from projects.models import Event, Project
from projects.tokens import do_create_token
from stages import engine
from stages.models import AnalysisTemplate, Promotion, PromotionTask, Stage

TOKEN = "s3cr3t-tok"
REPO = f"https://ci-bot:{TOKEN}@git.example.com/app.git"  # userinfo
GITOPS = f"https://ci-bot:{TOKEN}@git.example.com/gitops.git"
HOOK = f"https://hooks.example.com/deploy?private_token={TOKEN}"  # token-like query parameter
CHART = f"oci://ci-bot:{TOKEN}@registry.example.com/charts"
MASKED = ("https://***@git.example.com", "private_token=***")
PROJECT = "kargo-demo"

# Things a user applies: a PromotionTask whose step reaches a repository with a token, an
# AnalysisTemplate whose argument and metric URL carry one.
MANIFESTS = f"""
apiVersion: kargo.akuity.io/v1alpha1
kind: PromotionTask
metadata:
  name: publish
  namespace: {PROJECT}
  annotations:
    example.com/docs: {HOOK}
spec:
  steps:
  - uses: git-clone
    config:
      repoURL: {GITOPS}
      checkout:
      - branch: main
        path: ./src
---
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata:
  name: smoke
  namespace: {PROJECT}
spec:
  args:
  - name: endpoint
    value: https://ci-bot:{TOKEN}@metrics.example.com/q
  metrics:
  - name: up
    successCondition: result == 200
    provider:
      web:
        url: "https://status.example.com/?access_token={TOKEN}"
        jsonPath: "{{$.status}}"
"""


def plant(project: Project) -> dict:
    """The token in every place a user can put one, stored as the server stores it (the ORM, the
    project's own actions, `apply`): what the walks look for. Returns the objects planted."""
    now = timezone.now()
    project.annotations = {"example.com/repo": REPO}
    project.status = {
        **project.status,
        "conditions": [condition("Ready", True, "Synced", f"synced from {REPO}", now)],
    }
    project.save(update_fields=["annotations", "status"])

    # A Warehouse's repoURL keeps its token in the database on purpose: discovery needs it.
    warehouse = Warehouse.objects.get(project=project, name="guestbook")
    warehouse.spec = dump(
        WarehouseSpec.model_validate(
            {"subscriptions": [{"git": {"repoURL": REPO, "semverConstraint": ">=1.0.0"}}]}
        )
    )
    warehouse.annotations = {"example.com/mirror": HOOK}
    warehouse.status = {
        "conditions": [
            condition("Healthy", False, "DiscoveryFailed", f"cannot list tags of {REPO}", now)
        ]
    }
    warehouse.save(update_fields=["spec", "annotations", "status"])

    # A Stage's promotion steps: a repoURL with userinfo, a hook URL with a token parameter.
    stage = Stage.objects.get(project=project, name="test")
    steps = [
        {
            "uses": "git-clone",
            "as": "clone",
            "config": {"repoURL": GITOPS, "checkout": [{"branch": "main", "path": "./src"}]},
        },
        {"uses": "compose-output", "as": "notify", "config": {"hook": HOOK}},
    ]
    stage.spec = dump(
        StageSpec.model_validate(
            {
                "requestedFreight": [
                    {
                        "origin": {"kind": "Warehouse", "name": "guestbook"},
                        "sources": {"direct": True},
                    }
                ],
                "promotionTemplate": {
                    "spec": {"vars": [{"name": "gitops", "value": GITOPS}], "steps": steps}
                },
            }
        )
    )
    stage.annotations = {"example.com/runbook": HOOK}
    stage.status = {
        **stage.status,
        "conditions": [
            condition("Healthy", False, "HealthCheckFailed", f"Argo CD at {HOOK} said no", now)
        ],
    }
    stage.save(update_fields=["spec", "annotations", "status"])

    # Freight whose commit comes from a repository with a token (and a chart from a registry
    # with one); the commit message names a URL with a token parameter.
    freight, _ = do_create_freight(
        project,
        "guestbook",
        commits=[
            {
                "repoURL": REPO,
                "id": hashlib.sha1(b"v2.0.0").hexdigest(),
                "tag": "v2.0.0",
                "message": f"Release v2.0.0, built at {HOOK}",
            }
        ],
        charts=[{"repoURL": CHART, "name": "app", "version": "2.0.0"}],
        actor="fixture",
    )
    Freight.objects.filter(id=freight.id).update(annotations={"example.com/build": HOOK})
    freight.refresh_from_db()

    # A finished promotion as a worker records it: step config (engine.py masks it, but records
    # from before it did are shown too), step messages, step outputs, the promotion's message.
    failed = Promotion.objects.create(
        project=project,
        stage=stage,
        name=f"test.01failed.{freight.name[:7]}",
        freight_name=freight.name,
        actor="user:bob",
        phase="Failed",
        message=f"step notify failed: POST {HOOK}: 500",
        started_at=now,
        finished_at=now,
        annotations={"example.com/ticket": HOOK},
        spec={"stage": stage.name, "freight": freight.name, "steps": steps},
        status={
            "phase": "Failed",
            "message": f"step notify failed: POST {HOOK}: 500",
            "freight": freight.reference(),
            "stepExecutionMetadata": [
                {
                    "alias": "clone",
                    "status": "Succeeded",
                    "startedAt": "2030-01-01T00:00:00Z",
                    "finishedAt": "2030-01-01T00:00:05Z",
                    "message": f"cloned {GITOPS}",
                    "config": steps[0]["config"],
                },
                {
                    "alias": "notify",
                    "status": "Failed",
                    "startedAt": "2030-01-01T00:00:05Z",
                    "finishedAt": "2030-01-01T00:00:06Z",
                    "message": f"POST {HOOK}: 500",
                    "config": steps[1]["config"],
                },
            ],
            "state": {
                "clone": {"remote": GITOPS, "commit": "abc123"},
                "notify": {"request": HOOK, "log": [f"retrying {HOOK}", {"url": REPO}]},
            },
        },
    )
    # A queued one: its drawer shows the pending reason.
    pending = Promotion.objects.create(
        project=project,
        stage=stage,
        name=f"test.02pending.{freight.name[:7]}",
        freight_name=freight.name,
        actor="user:bob",
        phase="Pending",
        message=f"waiting to clone {GITOPS}",
        spec={"stage": stage.name, "freight": freight.name, "steps": steps},
        status={"phase": "Pending", "freight": freight.reference()},
    )
    stage.status = {
        **stage.status,
        "freightHistory": [{"items": {"Warehouse/guestbook": freight.reference()}}],
    }
    stage.save(update_fields=["status"])

    # Events: one recorded now (record_event masks its message as it stores it) and one stored
    # before it did.
    record_event(project, "WarehouseUpdated", "user:alice", f"repoURL set to {REPO}")
    Event.objects.create(project=project, reason="LegacyNote", actor="user:alice", message=HOOK)

    apply_text(MANIFESTS, "planted.yaml", "user:alice")
    return {
        "warehouse": warehouse,
        "stage": stage,
        "freight": freight,
        "promotions": [failed, pending],
    }


def stored_with_token(planted: dict) -> list[str]:
    """Which planted objects hold the token in the database: the test plants for real."""
    stored = {
        "Warehouse": Warehouse.objects.filter(id=planted["warehouse"].id),
        "Stage": Stage.objects.filter(id=planted["stage"].id),
        "Freight": Freight.objects.filter(id=planted["freight"].id),
        "Promotion": Promotion.objects.filter(id__in=[p.id for p in planted["promotions"]]),
        "Event": Event.objects.filter(reason="LegacyNote"),
        "PromotionTask": PromotionTask.objects.all(),
        "AnalysisTemplate": AnalysisTemplate.objects.all(),
        "Project": Project.objects.filter(name=PROJECT),
    }
    return [
        f"{kind} {i}"
        for kind, qs in stored.items()
        for i, row in enumerate(qs.values())
        if TOKEN in json.dumps(row, default=str)
    ]


class Seen:
    """Every text a viewer was sent, by name and by surface; none may hold the token."""

    def __init__(self):
        self.texts: dict[str, str] = {}
        self.surface_of: dict[str, str] = {}
        self.surface = ""  # what add() is recording now

    def add(self, name: str, text: str) -> None:
        assert name not in self.texts, name
        self.texts[name] = text
        self.surface_of[name] = self.surface

    def leaks(self) -> list[str]:
        return [name for name, text in self.texts.items() if TOKEN in text]

    def count(self, surface: str) -> int:
        return sum(s == surface for s in self.surface_of.values())

    def masked(self, surface: str) -> set[str]:
        """Which of the masked forms the surface showed: the planted values did reach it."""
        texts = [t for n, t in self.texts.items() if self.surface_of[n] == surface]
        return {m for m in MASKED if any(m in text for text in texts)}


def get(client: Client, seen: Seen, url: str, status: int = 200, **headers) -> str:
    response = client.get(url, headers=headers or None)
    assert response.status_code == status, (url, response.status_code)
    text = response.content.decode()
    seen.add(f"GET {url} {headers or ''}".strip(), text)
    return text


def kargo_get(seen: Seen, *args: str) -> None:
    out, err = io.StringIO(), io.StringIO()
    call_command("kargo", "--actor", "test", "get", *args, stdout=out, stderr=err)
    seen.add("kargo get " + " ".join(args), out.getvalue() + err.getvalue())


def test_a_viewer_sees_no_secret_on_pages_partials_api_and_cli(project, users):
    planted = plant(project)
    assert len(stored_with_token(planted)) == 9
    # An event's message is masked as it is recorded (the audit page and its exports show it).
    recorded = Event.objects.get(reason="WarehouseUpdated", actor="user:alice").message
    assert recorded == "repoURL set to https://***@git.example.com/app.git"
    stages = list(Stage.objects.filter(project=project))
    freights = list(Freight.objects.filter(project=project))
    promotions = planted["promotions"]
    seen = Seen()

    # Pages and htmx partials, as carol.
    seen.surface = "pages"
    client = Client()
    client.force_login(users["carol"])
    base = f"/project/{PROJECT}"
    drawer = {"HX-Request": "true", "HX-Target": "drawer"}
    get(client, seen, "/")
    page = get(client, seen, f"{base}/")
    assert 'class="node-error"' in page and 'class="event-message"' in page
    get(client, seen, f"{base}/?before={freights[0].name}")
    get(client, seen, f"{base}/", **{"HX-Request": "true", "HX-Target": "timeline"})
    for s in stages:
        get(client, seen, f"{base}/stage/{s.name}/")
        get(client, seen, f"{base}/stage/{s.name}/", **drawer)
    for f in freights:
        get(client, seen, f"{base}/freight/{f.name}/")
        get(client, seen, f"{base}/freight/{f.alias}/", **drawer)
    for p in promotions:
        get(client, seen, f"{base}/promotion/{p.name}/")
        drawer_html = get(client, seen, f"{base}/promotion/{p.name}/", **drawer)
        assert f'id="promotion-drawer-{p.id}"' in drawer_html
    assert (
        'data-testid="pending-reason"'
        in seen.texts[f"GET {base}/promotion/{promotions[1].name}/ {drawer}"]
    )
    get(client, seen, f"{base}/audit/", status=403)  # admins only

    # The JSON API: with carol's session, and with a viewer token.
    seen.surface = "api"
    _, secret = do_create_token(project, "viewer-ci", "viewer", "user:alice")
    api = f"/api/v1/projects/{PROJECT}"
    for auth in ({}, {"Authorization": f"Bearer {secret}"}):
        caller = client if not auth else Client()
        urls = [f"{api}/stages", f"{api}/freight"]
        urls += [f"{api}/promotions/{p.name}" for p in promotions]
        for url in urls:
            get(caller, seen, url, **auth)
        for kind, spec in KINDS.items():
            if spec.cluster_scoped and kind != "Project":
                continue
            listing = get(caller, seen, f"{api}/manifests/{kind}", **auth)
            for o in ("yaml", "table"):
                get(caller, seen, f"{api}/manifests/{kind}?output={o}", **auth)
            for doc in json.loads(listing)["items"]:
                name = doc["metadata"]["name"]
                for o in ("json", "yaml"):
                    get(caller, seen, f"{api}/manifests/{kind}/{name}?output={o}", **auth)
        get(caller, seen, f"{api}/tokens", status=403, **auth)  # admins only

    # `manage.py kargo get` (the operator's CLI and its exports), every kind, every format.
    seen.surface = "cli"
    for kind, spec in KINDS.items():
        scope = [] if spec.cluster_scoped else ["--project", PROJECT]
        for output in ("yaml", "json", "table"):
            kargo_get(seen, kind, *scope, "-o", output)
    kargo_get(seen, "Promotion", promotions[0].name, "--project", PROJECT, "-o", "yaml")
    kargo_get(seen, "Freight", planted["freight"].alias, "--project", PROJECT, "-o", "json")

    assert seen.leaks() == []
    for surface in ("pages", "api", "cli"):
        assert seen.masked(surface) == set(MASKED), surface
    # What was inspected: 23 pages and partials, 116 API responses, 35 CLI outputs.
    pages = 1 + 3 + 2 * len(stages) + 2 * len(freights) + 2 * len(promotions) + 1
    assert (seen.count("pages"), seen.count("cli")) == (pages, 3 * len(KINDS) + 2)
    assert seen.count("api") > 100


def communicator(client: Client) -> WebsocketCommunicator:
    """The project socket through the whole ASGI application (origin check, session auth)."""
    name = django_settings.SESSION_COOKIE_NAME
    cookie = f"{name}={client.cookies[name].value}"
    return WebsocketCommunicator(
        application,
        f"/ws/project/{PROJECT}/",
        headers=[(b"cookie", cookie.encode()), (b"origin", b"http://localhost")],
    )


@pytest.mark.django_db(transaction=True)
def test_a_viewer_gets_no_secret_in_websocket_pushes(project, users, settings):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    planted = plant(project)
    client = Client()
    client.force_login(users["carol"])
    changes = [("project", project.id), ("warehouse", planted["warehouse"].id)]
    changes += [("stage", s.id) for s in Stage.objects.filter(project=project)]
    changes += [("freight", f.id) for f in Freight.objects.filter(project=project)]
    changes += [("promotion", p.id) for p in planted["promotions"]]

    async def scenario():
        comm = communicator(client)
        connected, _ = await comm.connect()
        assert connected
        pushed = []
        for kind, obj_id in changes:
            # The page has the changed object's drawer open, so the push carries it too.
            drawer = f"{kind}-drawer-{obj_id}" if kind in ("stage", "freight", "promotion") else ""
            await comm.send_to(text_data=json.dumps({"watch": {"drawer": drawer}}))
            await database_sync_to_async(send_change)(project.id, kind, obj_id)
            pushed.append((kind, obj_id, await comm.receive_from(timeout=5)))
        await comm.disconnect()
        return pushed

    seen = Seen()
    seen.surface = "websocket"
    for kind, obj_id, html in async_to_sync(scenario)():
        seen.add(f"push {kind} {obj_id}", html)
    assert seen.leaks() == []
    assert seen.masked("websocket") == set(MASKED)
    assert seen.count("websocket") == len(changes) == 2 + 3 + 4 + 2
    promotion_push = seen.texts[f"push promotion {planted['promotions'][0].id}"]
    assert f'id="promotion-drawer-{planted["promotions"][0].id}"' in promotion_push


class CrashingStep:
    """A step whose tool fails naming the repository it was given, token and all."""

    @staticmethod
    def validate(config):
        return config

    def run(self, ctx, config):
        raise RuntimeError(f"git ls-remote {config['repoURL']} exited 128")


def test_logs_of_a_failing_discovery_and_step_hold_no_secret(
    project, data_dir, caplog, monkeypatch
):
    planted = plant(project)
    # Past the egress policy (the host is not reachable from a test) to the point where git
    # fails, naming the URL it was given.
    monkeypatch.setattr(freight_actions, "check_repo_url", lambda url: None)
    monkeypatch.setattr(engine, "check_repo_url", lambda url: None)

    def failing_discovery(git, *args, **kwargs):
        raise RuntimeError(f"fatal: could not read from {git.repoURL}?private_token={TOKEN}")

    monkeypatch.setattr(freight_actions, "discover_git", failing_discovery)
    monkeypatch.setattr(engine, "get_step", lambda name: CrashingStep)
    promotion = planted["promotions"][0]
    step = promotion.typed_spec.steps[0]

    with caplog.at_level(logging.INFO):
        freight_actions.do_discover(planted["warehouse"].id)
        status, message, _, _ = engine.run_step(
            promotion,
            step,
            "clone",
            engine.build_env(promotion, "", {}, set()),
            {},
            {},
            data_dir / "work",
            {},
        )
        logging.getLogger("django.request").error("Bad request: GET /?private_token=%s", TOKEN)

    # The failures happened, and the step's own record carries the URL as given (it is masked
    # where shown: see the walks above).
    assert status == "Errored" and TOKEN in message
    crashed = [r for r in caplog.records if r.exc_info]
    assert {r.name for r in crashed} == {"freight.actions", "stages.engine"}
    assert all("RuntimeError" in r.exc_text and "https://***@" in r.exc_text for r in crashed)
    texts = [caplog.text] + [r.getMessage() + (r.exc_text or "") for r in caplog.records]
    assert len(caplog.records) >= 4
    assert [t for t in texts if TOKEN in t] == []
    assert "https://***@git.example.com/app.git?private_token=***" in caplog.text

"""`manage.py kargo`: apply/get round trips for every kind, whole-file rejection of bad
manifests with file, document, path and reason, and the action verbs."""

import io
import json
import textwrap

import pytest
import yaml
from django.core.management import CommandError, call_command

from freight.models import Freight, Warehouse
from kargo.specs import validate_document
from projects.models import Event, Project
from stages.models import Promotion, Stage


def kargo(*args) -> str:
    out = io.StringIO()
    call_command("kargo", *args, stdout=out)
    return out.getvalue()


def write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


ALL_KINDS = """
apiVersion: kargo.akuity.io/v1alpha1
kind: Project
metadata:
  name: shop
---
apiVersion: kargo.akuity.io/v1alpha1
kind: ProjectConfig
metadata:
  name: shop
  namespace: shop
spec:
  promotionPolicies:
  - stageSelector:
      name: dev
    autoPromotionEnabled: true
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Warehouse
metadata:
  name: web
  namespace: shop
spec:
  interval: 10m
  subscriptions:
  - git:
      repoURL: https://git.example.com/shop/web.git
      commitSelectionStrategy: SemVer
      semverConstraint: ^1.0.0
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata:
  name: dev
  namespace: shop
  annotations:
    kargo.akuity.io/color: blue
spec:
  vars:
  - name: repo
    value: https://git.example.com/shop/gitops.git
  requestedFreight:
  - origin: {kind: Warehouse, name: web}
    sources: {direct: true}
  promotionTemplate:
    spec:
      steps:
      - uses: git-clone
        config:
          repoURL: ${{ vars.repo }}
          checkout:
          - branch: main
            path: ./src
      - task:
          name: render
        as: render
  verification:
    analysisTemplates:
    - name: smoke
---
apiVersion: kargo.akuity.io/v1alpha1
kind: PromotionTask
metadata:
  name: render
  namespace: shop
spec:
  vars:
  - name: path
    value: ./src
  steps:
  - uses: kustomize-build
    config:
      path: ${{ vars.path }}
      outPath: ./out.yaml
---
apiVersion: kargo.akuity.io/v1alpha1
kind: ClusterPromotionTask
metadata:
  name: notify
spec:
  steps:
  - uses: compose-output
    config:
      done: true
---
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata:
  name: smoke
  namespace: shop
spec:
  args:
  - name: url
  metrics:
  - name: up
    count: 3
    interval: 5s
    successCondition: result == 200
    provider:
      web:
        url: "{{args.url}}"
        jsonPath: "{$.status}"
---
apiVersion: argoproj.io/v1alpha1
kind: ClusterAnalysisTemplate
metadata:
  name: always
spec:
  metrics:
  - name: ok
    provider:
      job:
        spec:
          template:
            spec:
              containers:
              - name: ok
                image: alpine
              restartPolicy: Never
---
apiVersion: argoproj.io/v1alpha1
kind: AnalysisRun
metadata:
  name: dev.run1
  namespace: shop
spec:
  metrics:
  - name: up
    provider:
      web:
        url: http://127.0.0.1/health
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Freight
metadata:
  name: whatever
  namespace: shop
alias: first-one
origin: {kind: Warehouse, name: web}
commits:
- repoURL: https://git.example.com/shop/web.git
  id: 0123456789abcdef0123456789abcdef01234567
  tag: v1.0.0
"""


@pytest.fixture
def applied(db, tmp_path):
    path = write(tmp_path, "all.yaml", ALL_KINDS)
    return path, kargo("apply", "-f", str(path))


def test_apply_reports_each_object(applied):
    _, out = applied
    lines = out.splitlines()
    assert "project/shop created" in lines
    assert "warehouse/web created" in lines
    assert "stage/dev created" in lines
    assert "freight/whatever created" in lines
    assert "clusteranalysistemplate/always created" in lines
    assert len(lines) == 10
    assert "projectconfig/shop created" in lines


def test_reapplying_is_unchanged_and_a_change_is_configured(applied, tmp_path):
    path, _ = applied
    out = kargo("apply", "-f", str(path))
    assert all(line.endswith("unchanged") for line in out.splitlines())
    changed = path.read_text().replace("interval: 10m", "interval: 20m")
    out = kargo("apply", "-f", str(write(tmp_path, "changed.yaml", changed)))
    assert "warehouse/web configured" in out.splitlines()
    assert Warehouse.objects.get(name="web").generation == 2


@pytest.mark.parametrize(
    "kind,name,project",
    [
        ("Project", "shop", ""),
        ("ProjectConfig", "shop", "shop"),
        ("Warehouse", "web", "shop"),
        ("Stage", "dev", "shop"),
        ("PromotionTask", "render", "shop"),
        ("ClusterPromotionTask", "notify", ""),
        ("AnalysisTemplate", "smoke", "shop"),
        ("ClusterAnalysisTemplate", "always", ""),
        ("AnalysisRun", "dev.run1", "shop"),
    ],
)
def test_every_kind_round_trips_through_get(applied, kind, name, project):
    source = next(
        d
        for d in yaml.safe_load_all(ALL_KINDS)
        if d["kind"] == kind and d["metadata"]["name"] == name
    )
    args = ["get", kind.lower(), name, "-o", "yaml"] + (["--project", project] if project else [])
    exported = yaml.safe_load(kargo(*args))
    assert exported["apiVersion"] == source["apiVersion"]
    assert exported["metadata"]["name"] == name
    # Everything the file said comes back unchanged; Kargo's defaults are filled in beside it.
    assert_contains(exported.get("spec"), source.get("spec"))
    for key in ("labels", "annotations"):
        assert exported["metadata"].get(key) == source["metadata"].get(key)
    # What get prints is itself valid input for apply.
    assert validate_document(exported) == []


def assert_contains(actual, expected, path="spec"):
    """`expected` is `actual` with some keys left out (at any depth)."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), path
        for key, value in expected.items():
            assert key in actual, f"{path}.{key} missing"
            assert_contains(actual[key], value, f"{path}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), path
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            assert_contains(a, e, f"{path}[{i}]")
    else:
        assert actual == expected, path


def test_exports_show_the_defaults_kargo_fills(applied, tmp_path):
    bare = """
        apiVersion: kargo.akuity.io/v1alpha1
        kind: Warehouse
        metadata:
          name: bare
          namespace: shop
        spec:
          subscriptions:
          - git:
              repoURL: https://git.example.com/shop/bare.git
        """
    kargo("apply", "-f", str(write(tmp_path, "bare.yaml", bare)))
    exported = yaml.safe_load(kargo("get", "warehouse", "bare", "--project", "shop", "-o", "yaml"))
    assert exported["spec"]["interval"] == "5m0s"
    assert exported["spec"]["freightCreationPolicy"] == "Automatic"
    git = exported["spec"]["subscriptions"][0]["git"]
    assert git["commitSelectionStrategy"] == "NewestFromBranch"
    assert git["discoveryLimit"] == 20
    assert git["strictSemvers"] is True
    # Applying the export changes nothing.
    path = tmp_path / "exported.yaml"
    path.write_text(yaml.safe_dump(exported))
    assert kargo("apply", "-f", str(path)).strip() == "warehouse/bare unchanged"


def test_freight_is_named_by_content_and_exports_in_kargo_shape(applied):
    from kargo.freight_ids import freight_id

    freight = Freight.objects.get()
    commit = {
        "repoURL": "https://git.example.com/shop/web.git",
        "id": "0123456789abcdef0123456789abcdef01234567",
        "tag": "v1.0.0",
    }
    assert freight.name == freight_id("web", [commit], [], [])
    exported = json.loads(kargo("get", "freight", "first-one", "--project", "shop", "-o", "json"))
    assert exported["metadata"]["name"] == freight.name
    assert exported["alias"] == "first-one"
    assert exported["origin"] == {"kind": "Warehouse", "name": "web"}
    assert exported["commits"] == [commit]


def test_stage_status_exports_in_kargo_layout(demo):
    freight = Freight.objects.filter(project=demo).first()
    kargo("promote", "--project", "kargo-demo", "--stage", "test", "--freight", freight.name)
    status = yaml.safe_load(kargo("get", "stage", "test", "--project", "kargo-demo", "-o", "yaml"))[
        "status"
    ]
    item = status["freightHistory"][0]["items"]["Warehouse/guestbook"]
    assert item["name"] == freight.name
    assert item["origin"] == {"kind": "Warehouse", "name": "guestbook"}
    assert status["freightHistory"][0]["verificationHistory"][0]["phase"] == "Successful"
    assert status["lastPromotion"]["status"]["phase"] == "Succeeded"
    assert {c["type"] for c in status["conditions"]} >= {
        "Ready",
        "Promoting",
        "Healthy",
        "Verified",
    }
    promotions = yaml.safe_load(
        kargo("get", "promotions", "--project", "kargo-demo", "-o", "json")
    )["items"]
    assert promotions[0]["status"]["phase"] == "Succeeded"
    assert promotions[0]["status"]["stepExecutionMetadata"][0]["status"] == "Succeeded"


BAD_FILE = """
apiVersion: kargo.akuity.io/v1alpha1
kind: Project
metadata:
  name: broken
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Warehouse
metadata:
  name: web
  namespace: broken
spec:
  subscriptions:
  - git:
      repoURL: https://git.example.com/x.git
      colour: blue
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata:
  name: dev
  namespace: broken
spec:
  requestedFreight:
  - origin: {kind: Bucket, name: web}
    sources: {direct: true}
"""


def test_a_file_with_any_invalid_document_is_rejected_whole(db, tmp_path):
    path = write(tmp_path, "bad.yaml", BAD_FILE)
    with pytest.raises(CommandError) as exc:
        kargo("apply", "-f", str(path))
    message = str(exc.value)
    assert (
        f"{path}: document 2 (Warehouse/web): spec.subscriptions[0].git.colour: unknown field"
        in message
    )
    assert f"{path}: document 3 (Stage/dev): spec.requestedFreight[0].origin.kind:" in message
    assert not Project.objects.filter(name="broken").exists()
    assert not Warehouse.objects.exists()


def test_malformed_yaml_names_the_line(db, tmp_path):
    path = write(tmp_path, "bad.yaml", "kind: Project\nmetadata:\n  name: [oops\n")
    with pytest.raises(CommandError, match=r"bad.yaml: line \d+, column \d+: invalid YAML"):
        kargo("apply", "-f", str(path))


def test_pipeline_cycles_are_refused(db, tmp_path):
    stages = "".join(
        f"""---
apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata: {{name: {name}, namespace: loop}}
spec:
  requestedFreight:
  - origin: {{kind: Warehouse, name: w}}
    sources: {{stages: [{up}]}}
"""
        for name, up in (("a", "c"), ("b", "a"), ("c", "b"))
    )
    path = write(
        tmp_path,
        "loop.yaml",
        "apiVersion: kargo.akuity.io/v1alpha1\nkind: Project\nmetadata: {name: loop}\n" + stages,
    )
    with pytest.raises(CommandError, match="creates a cycle in the pipeline: a -> c -> b -> a"):
        kargo("apply", "-f", str(path))
    assert not Stage.objects.exists()


def test_documents_need_an_existing_project(db, tmp_path):
    path = write(
        tmp_path,
        "w.yaml",
        "apiVersion: kargo.akuity.io/v1alpha1\nkind: Warehouse\nmetadata: {name: w, namespace: ghost}\nspec:\n  subscriptions:\n  - git: {repoURL: 'https://x.example.com/r.git'}\n",
    )
    with pytest.raises(CommandError, match="project 'ghost' does not exist"):
        kargo("apply", "-f", str(path))


def test_promote_wait_exits_zero_on_success_and_records_the_actor(demo):
    out = kargo(
        "--actor",
        "cli:ops",
        "promote",
        "--project",
        "kargo-demo",
        "--stage",
        "test",
        "--warehouse",
        "guestbook",
        "--wait",
    )
    assert "Succeeded: All 6 steps succeeded" in out
    promotion = Promotion.objects.get()
    assert promotion.actor == "cli:ops"
    assert Event.objects.filter(reason="PromotionCreated", actor="cli:ops").exists()


def test_promote_wait_exits_nonzero_when_the_promotion_fails(demo):
    stage = Stage.objects.get(name="test")
    spec = stage.spec
    spec["promotionTemplate"]["spec"]["steps"][0]["config"]["repoURL"] = (
        "file:///nonexistent/repo.git"
    )
    Stage.objects.filter(id=stage.id).update(spec=spec)
    with pytest.raises(SystemExit) as exc:
        kargo(
            "promote",
            "--project",
            "kargo-demo",
            "--stage",
            "test",
            "--warehouse",
            "guestbook",
            "--wait",
        )
    assert exc.value.code == 1


def test_promote_by_alias_and_unavailable_freight(demo):
    freight = Freight.objects.filter(project=demo).first()
    with pytest.raises(CommandError, match="not available to Stage uat"):
        kargo(
            "promote", "--project", "kargo-demo", "--stage", "uat", "--freight-alias", freight.alias
        )
    kargo("approve", "--project", "kargo-demo", "--freight-alias", freight.alias, "--stage", "uat")
    assert "created" in kargo(
        "promote", "--project", "kargo-demo", "--stage", "uat", "--freight-alias", freight.alias
    )


def test_refresh_wait_and_verify(demo):
    out = kargo(
        "refresh", "warehouse", "guestbook", "--project", "kargo-demo", "--wait", "--timeout", "30"
    )
    assert "refreshed: Ready=True" in out
    assert Warehouse.objects.get(name="guestbook").status["lastHandledRefresh"]
    assert "refresh requested" in kargo(
        "refresh", "stage", "test", "--project", "kargo-demo", "--wait", "--timeout", "30"
    )
    with pytest.raises(CommandError, match="no Freight to verify"):
        kargo("verify", "stage", "test", "--project", "kargo-demo")
    kargo("promote", "--project", "kargo-demo", "--stage", "test", "--warehouse", "guestbook")
    assert "verification Successful" in kargo("verify", "stage", "test", "--project", "kargo-demo")
    with pytest.raises(CommandError, match="no verification in progress"):
        kargo("verify", "stage", "test", "--project", "kargo-demo", "--abort")


def test_delete_refuses_freight_in_use(demo):
    freight = Freight.objects.filter(project=demo).first()
    kargo("promote", "--project", "kargo-demo", "--stage", "test", "--freight", freight.name)
    with pytest.raises(CommandError, match="in use by Stage"):
        kargo("delete", "freight", freight.name, "--project", "kargo-demo")
    assert "stage/test deleted" in kargo("delete", "stage", "test", "--project", "kargo-demo")
    freight.refresh_from_db()
    assert "test" not in freight.status["currentlyIn"]
    assert "test" not in freight.status["verifiedIn"]
    assert Event.objects.filter(reason="StageDeleted").exists()
    assert "freight/" in kargo("delete", "freight", freight.name, "--project", "kargo-demo")


def test_get_table_and_unknown_kind(demo):
    out = kargo("get", "stages", "--project", "kargo-demo")
    assert "kargo-demo   prod" in out
    with pytest.raises(CommandError, match="unknown kind 'gadget'"):
        kargo("get", "gadget")


def test_creating_the_same_freight_twice_returns_the_first(demo):
    from freight.actions import do_create_freight

    commit = {"repoURL": "file:///x", "id": "a" * 40}
    first, created = do_create_freight(demo, "guestbook", commits=[commit], actor="t")
    again, created_again = do_create_freight(demo, "guestbook", commits=[commit], actor="t")
    assert (created, created_again) == (True, False)
    assert again.id == first.id


def test_grant_and_revoke_roles(demo, django_user_model):
    out = kargo(
        "grant", "--project", "kargo-demo", "--user", "erin", "--role", "promoter", "--create-user"
    )
    assert "user/erin created with password" in out
    assert "user/erin is promoter in project/kargo-demo" in out
    from projects.access import role_in

    erin = django_user_model.objects.get(username="erin")
    assert role_in(erin, demo) == "promoter"
    kargo("grant", "--project", "kargo-demo", "--user", "erin", "--role", "viewer")
    assert role_in(erin, demo) == "viewer"
    kargo("revoke", "--project", "kargo-demo", "--user", "erin")
    assert role_in(erin, demo) is None
    with pytest.raises(CommandError, match="not found"):
        kargo("grant", "--project", "kargo-demo", "--user", "nobody", "--role", "viewer")
    assert Event.objects.filter(reason="RoleGranted").count() == 2


def test_cycle_detection_is_linear_on_deep_pipelines():
    from kargo_ui.manifests import find_cycle

    # 40 layers of 3 stages, each depending on all 3 of the layer before: 3**40 paths.
    graph = {
        f"s{layer}-{i}": [f"s{layer - 1}-{j}" for j in range(3)] if layer else []
        for layer in range(40)
        for i in range(3)
    }
    assert find_cycle("s39-0", graph) is None
    graph["s0-0"] = ["s39-0"]
    cycle = find_cycle("s39-0", graph)
    assert cycle[0] == cycle[-1] == "s39-0" and len(cycle) == 41


def test_abort_marks_a_running_verification_failed_as_kargo_does(demo):
    kargo("promote", "--project", "kargo-demo", "--stage", "test", "--warehouse", "guestbook")
    stage = Stage.objects.get(name="test")
    # What a verification in progress looks like (AnalysisRun verification is a later piece).
    stage.status["freightHistory"][0]["verificationHistory"][0]["phase"] = "Running"
    Stage.objects.filter(id=stage.id).update(status=stage.status)
    assert "abort requested" in kargo(
        "verify", "stage", "test", "--project", "kargo-demo", "--abort"
    )
    info = Stage.objects.get(id=stage.id).status["freightHistory"][0]["verificationHistory"][0]
    assert (info["phase"], info["message"]) == ("Failed", "Verification aborted by user")


def test_a_promotion_manifest_promotes_and_round_trips(demo, tmp_path):
    freight = Freight.objects.filter(project=demo).first()
    path = write(
        tmp_path,
        "promo.yaml",
        f"""
        apiVersion: kargo.akuity.io/v1alpha1
        kind: Promotion
        metadata:
          name: test.by-hand.{freight.name[:7]}
          namespace: kargo-demo
        spec:
          stage: test
          freight: {freight.name}
        """,
    )
    assert (
        kargo("apply", "-f", str(path)).strip()
        == f"promotion/test.by-hand.{freight.name[:7]} created"
    )
    assert kargo("apply", "-f", str(path)).strip().endswith("unchanged")
    exported = yaml.safe_load(
        kargo(
            "get",
            "promotion",
            f"test.by-hand.{freight.name[:7]}",
            "--project",
            "kargo-demo",
            "-o",
            "yaml",
        )
    )
    assert exported["spec"]["stage"] == "test"
    assert exported["spec"]["freight"] == freight.name
    assert exported["status"]["phase"] == "Succeeded"
    assert [s["uses"] for s in exported["spec"]["steps"]][:2] == ["git-clone", "git-clear"]
    assert validate_document(exported) == []


YAML_AS_THE_API_SERVER_READS_IT = """
apiVersion: kargo.akuity.io/v1alpha1
kind: Warehouse
metadata:
  name: since
  namespace: shop
  labels:
    team: null
spec:
  subscriptions:
  - git:
      repoURL: https://git.example.com/shop/web.git
      since: 2024-07-15T22:13:57Z
---
apiVersion: argoproj.io/v1alpha1
kind: AnalysisRun
metadata:
  name: dev.run2
  namespace: shop
spec:
  metrics:
  - name: smoke
    provider:
      web:
        url: https://example.com/health
status:
  phase: Successful
  startedAt: 2024-07-15T22:10:00Z
  metricResults:
  - name: smoke
    phase: Successful
    measurements:
    - phase: Successful
      startedAt: 2024-07-15T22:10:00Z
      finishedAt: 2024-07-15T22:10:01Z
"""


def test_unquoted_timestamps_and_null_labels_apply_as_kubectl_would(applied, tmp_path):
    # Unquoted timestamps used to crash apply (datetime is not JSON); null labels were refused.
    path = write(tmp_path, "api-server.yaml", YAML_AS_THE_API_SERVER_READS_IT)
    assert kargo("apply", "-f", str(path)).split("\n")[:2] == [
        "warehouse/since created",
        "analysisrun/dev.run2 created",
    ]
    warehouse = Warehouse.objects.get(name="since")
    assert warehouse.labels == {}
    assert warehouse.spec["subscriptions"][0]["git"]["since"] == "2024-07-15T22:13:57Z"
    exported = yaml.safe_load(
        kargo("get", "analysisrun", "dev.run2", "--project", "shop", "-o", "yaml")
    )
    assert exported["status"]["startedAt"] == "2024-07-15T22:10:00Z"

"""`manage.py demo`: seeds project kargo-demo with real local git repositories, so a person can
promote Freight through test -> uat -> prod and watch the rendered manifests land on the
stage/<name> branches. Its ProjectConfig auto-promotes test, so new Freight flows into test by
itself (`--no-auto-promotion` leaves it out: the demo as it is before any promotion, which the
tests start from). Safe to run again: existing repositories and objects are kept.

With Debian's docker-registry installed, the demo also pushes an image, demo/guestbook 1.0.0,
1.1.0 and 1.2.0, to its own registry on 127.0.0.1:DEMO_REGISTRY_PORT (kargo_ui.demo_registry;
started only for the push, then stopped: `manage.py serve` runs it in demo mode), the Warehouse
subscribes to that image too and the Stages set it. `--no-registry` leaves all that out."""

import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from kargo_ui import demo_registry, manifests
from projects.actions import do_set_membership
from projects.models import Project, Role

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Demo Developer",
    "GIT_AUTHOR_EMAIL": "dev@example.com",
    "GIT_COMMITTER_NAME": "Demo Developer",
    "GIT_COMMITTER_EMAIL": "dev@example.com",
    "GIT_TERMINAL_PROMPT": "0",
}

BASE_FILES = {
    "base/kustomization.yaml": "resources:\n- deployment.yaml\n- service.yaml\nimages:\n- name: demo/guestbook\n  newTag: placeholder\n",
    "base/deployment.yaml": """apiVersion: apps/v1
kind: Deployment
metadata:
  name: guestbook
spec:
  replicas: 1
  selector:
    matchLabels: {app: guestbook}
  template:
    metadata:
      labels: {app: guestbook}
    spec:
      containers:
      - name: guestbook
        image: demo/guestbook
        ports:
        - containerPort: 8080
""",
    "base/service.yaml": """apiVersion: v1
kind: Service
metadata:
  name: guestbook
spec:
  selector: {app: guestbook}
  ports:
  - port: 80
    targetPort: 8080
""",
}


def stage_overlay(stage: str, replicas: int) -> str:
    return f"""resources:
- ../../base
namespace: kargo-demo-{stage}
patches:
- target: {{kind: Deployment, name: guestbook}}
  patch: |-
    - op: replace
      path: /spec/replicas
      value: {replicas}
"""


def manifest_text(app_url: str, gitops_url: str, verify_url: str = "", image_url: str = "") -> str:
    """The demo's manifests; with `verify_url`, uat verifies its Freight with a web metric
    against that URL (the dashboard's own /healthz); with `image_url` (the demo registry's
    image), the Warehouse subscribes to that image as well and the Stages set the image to the
    Freight's (imageFrom), else to the app release's tag (commitFrom)."""
    if image_url:
        set_image = """          - image: demo/guestbook
            newName: ${{ vars.imageRepo }}
            tag: ${{ imageFrom(vars.imageRepo).Tag }}"""
    else:
        set_image = """          - image: ${{ vars.imageRepo }}
            tag: ${{ commitFrom(vars.appRepo).Tag }}"""
    stages = []
    for name, source in (
        ("test", "direct: true"),
        ("uat", "stages: [test]"),
        ("prod", "stages: [uat]"),
    ):
        stages.append(f"""---
apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata:
  name: {name}
  namespace: kargo-demo
spec:
  requestedFreight:
  - origin:
      kind: Warehouse
      name: guestbook
    sources:
      {source}
  promotionTemplate:
    spec:
      vars:
      - name: gitopsRepo
        value: {gitops_url}
      - name: appRepo
        value: {app_url}
      - name: imageRepo
        value: {image_url or "demo/guestbook"}
      - name: srcPath
        value: ./src
      - name: outPath
        value: ./out
      - name: targetBranch
        value: stage/${{{{ ctx.stage }}}}
      steps:
      - uses: git-clone
        config:
          repoURL: ${{{{ vars.gitopsRepo }}}}
          checkout:
          - branch: main
            path: ${{{{ vars.srcPath }}}}
          - branch: stage/${{{{ ctx.stage }}}}
            create: true
            path: ${{{{ vars.outPath }}}}
      - uses: git-clear
        config:
          path: ${{{{ vars.outPath }}}}
      - uses: kustomize-set-image
        as: update-image
        config:
          path: ${{{{ vars.srcPath }}}}/base
          images:
{set_image}
      - uses: kustomize-build
        config:
          path: ${{{{ vars.srcPath }}}}/stages/${{{{ ctx.stage }}}}
          outPath: ${{{{ vars.outPath }}}}/manifests.yaml
      - uses: git-commit
        as: commit
        config:
          path: ${{{{ vars.outPath }}}}
          messageFromSteps:
          - update-image
      - uses: git-push
        config:
          path: ${{{{ vars.outPath }}}}
          branch: ${{{{ vars.targetBranch }}}}
""")
        if name == "uat" and verify_url:
            stages[-1] += UAT_VERIFICATION.format(url=verify_url)
    return (
        f"""apiVersion: kargo.akuity.io/v1alpha1
kind: Project
metadata:
  name: kargo-demo
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Warehouse
metadata:
  name: guestbook
  namespace: kargo-demo
spec:
  interval: 30s
  subscriptions:
  - git:
      repoURL: {app_url}
      commitSelectionStrategy: SemVer
      semverConstraint: ">=1.0.0"
      discoveryLimit: 10
"""
        + (IMAGE_SUBSCRIPTION.format(url=image_url) if image_url else "")
        + "".join(stages)
    )


IMAGE_SUBSCRIPTION = """  - image:
      repoURL: {url}
      imageSelectionStrategy: SemVer
      discoveryLimit: 10
"""


# uat checks what it deployed, as a Kargo user's verification would: three measurements two
# seconds apart of a health endpoint (here the dashboard's own), each must answer "ok".
UAT_VERIFICATION = """  verification:
    analysisTemplates:
    - name: guestbook-health
    args:
    - name: url
      value: "{url}"
---
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata:
  name: guestbook-health
  namespace: kargo-demo
spec:
  args:
  - name: url
  metrics:
  - name: healthz
    interval: 2s
    count: 3
    successCondition: result == "ok"
    provider:
      web:
        url: "{{{{args.url}}}}"
        timeoutSeconds: 5
"""

# The demo's first Stage takes new Freight by itself (stages.autopromotion).
PROJECT_CONFIG = """---
apiVersion: kargo.akuity.io/v1alpha1
kind: ProjectConfig
metadata:
  name: kargo-demo
  namespace: kargo-demo
spec:
  promotionPolicies:
  - stageSelector:
      name: test
    autoPromotionEnabled: true
"""


def older_freight(app: Path, image_url: str = "", digests: dict | None = None) -> str:
    """Freight for the releases before the newest, so the timeline has history from the start
    (a Warehouse itself only ever makes Freight of the newest artifacts, as in Kargo); with
    `image_url`, each carries the image of its release too (`digests`: tag -> digest)."""
    docs = []
    for hours, tag in ((2, "v1.0.0"), (1, "v1.1.0")):
        commit = git("rev-list", "-n", "1", tag, cwd=app).strip()
        when = (datetime.now(UTC) - timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")
        docs.append(f"""---
apiVersion: kargo.akuity.io/v1alpha1
kind: Freight
metadata:
  name: guestbook-{tag.replace(".", "-")}
  namespace: kargo-demo
origin:
  kind: Warehouse
  name: guestbook
commits:
- repoURL: {app.as_uri()}
  id: {commit}
  tag: {tag}
""")
        if image_url:
            docs[-1] += f"""images:
- repoURL: {image_url}
  tag: {tag.removeprefix("v")}
  digest: {digests[tag.removeprefix("v")]}
"""
        docs[-1] += f'discoveredAt: "{when}"\n'
    return "".join(docs)


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(
        ["git", *args],
        cwd=cwd,
        env={**os.environ, **GIT_ENV},
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout


def make_repo(bare: Path, work: Path, files_by_commit: list[tuple[str, dict, str]]) -> None:
    """A bare repository built from commits of (message, files, tag)."""
    git("init", "--quiet", "--bare", "--initial-branch=main", str(bare), cwd=bare.parent)
    work.mkdir(parents=True, exist_ok=True)
    git("init", "--quiet", "--initial-branch=main", cwd=work)
    for message, files, tag in files_by_commit:
        for rel, text in files.items():
            (work / rel).parent.mkdir(parents=True, exist_ok=True)
            (work / rel).write_text(text)
        git("add", "-A", cwd=work)
        git("commit", "--quiet", "-m", message, cwd=work)
        if tag:
            git("tag", "-a", tag, "-m", f"Release {tag}", cwd=work)
    git("push", "--quiet", "--follow-tags", str(bare), "main", cwd=work)


class Command(BaseCommand):
    help = (
        "Seed the kargo-demo project with local git repositories and a test -> uat -> prod pipeline"
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--no-auto-promotion",
            action="store_true",
            help="leave out the ProjectConfig that auto-promotes Stage test",
        )
        parser.add_argument(
            "--no-verification",
            action="store_true",
            help="leave out uat's verification (an AnalysisRun against the dashboard's /healthz)",
        )
        parser.add_argument(
            "--server-url",
            default=os.environ.get("KARGO_DEMO_URL")
            or f"http://127.0.0.1:{os.environ.get('PORT') or 8000}",
            help="where the dashboard will answer, for uat's verification "
            "(default: $KARGO_DEMO_URL, else http://127.0.0.1:$PORT, PORT defaulting to 8000)",
        )
        parser.add_argument(
            "--no-registry",
            action="store_true",
            help="leave out the demo's image registry and the Warehouse's image subscription",
        )

    def handle(self, *args, **opts):
        root = settings.DATA_DIR / "demo"
        repos = root / "repos"
        repos.mkdir(parents=True, exist_ok=True)
        app, gitops = repos / "guestbook-app.git", repos / "guestbook-gitops.git"
        if not app.exists():
            make_repo(
                app,
                root / "work" / "app",
                [
                    ("Initial guestbook", {"main.py": "print('guestbook 1.0.0')\n"}, "v1.0.0"),
                    ("Add comments", {"main.py": "print('guestbook 1.1.0')\n"}, "v1.1.0"),
                    ("Dark mode", {"main.py": "print('guestbook 1.2.0')\n"}, "v1.2.0"),
                ],
            )
        if not gitops.exists():
            files = dict(BASE_FILES)
            for stage, replicas in (("test", 1), ("uat", 2), ("prod", 3)):
                files[f"stages/{stage}/kustomization.yaml"] = stage_overlay(stage, replicas)
            make_repo(
                gitops, root / "work" / "gitops", [("GitOps base and stage overlays", files, "")]
            )
        verify_url = "" if opts["no_verification"] else opts["server_url"].rstrip("/") + "/healthz"
        image_url, digests = "", {}
        if not opts["no_registry"]:
            image_url, digests = self.seed_registry()
        text = manifest_text(app.as_uri(), gitops.as_uri(), verify_url, image_url)
        text += older_freight(app, image_url, digests)
        if not opts["no_auto_promotion"]:
            text += PROJECT_CONFIG
        (root / "kargo-demo.yaml").write_text(text)
        for line in manifests.apply_text(text, str(root / "kargo-demo.yaml"), actor="demo-seed"):
            self.stdout.write(line)
        User = get_user_model()
        user, created = User.objects.get_or_create(username=settings.DEMO_USERNAME)
        if created:
            user.set_password(settings.DEMO_USERNAME)
            user.save()
        do_set_membership(Project.objects.get(name="kargo-demo"), user, Role.ADMIN)
        self.stdout.write(f"demo ready: app repo {app.as_uri()}, gitops repo {gitops.as_uri()}")
        if image_url:
            self.stdout.write(
                f"demo image: {image_url} (tags {', '.join(digests)}; "
                "`manage.py serve` runs its registry in demo mode)"
            )

    def seed_registry(self) -> tuple[str, dict[str, str]]:
        """(image repoURL, tag -> digest) of the demo image, pushed to the demo registry if it
        is not there yet; ("", {}) when the registry cannot run, which the demo says."""
        if not demo_registry.available():
            self.stdout.write(
                f"demo: {demo_registry.BINARY} is not installed (Debian package docker-registry): "
                "the Warehouse tracks the app repository only"
            )
            return "", {}
        try:
            digests = demo_registry.ensure_images()
        except demo_registry.RegistryUnavailable as exc:
            self.stdout.write(
                self.style.WARNING(
                    f"demo: no image registry: {exc}; the Warehouse tracks the app repository only"
                )
            )
            return "", {}
        return demo_registry.image_url(), digests

"""Promotion step plug-ins, exercised against a real bare GitOps repo (file://)
and the real ``kubectl kustomize``."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from stages.steps import STEPS, StepContext, StepError, UnknownStepError, get_step
from stages.steps.git_push import GitPush, commit_url
from stages.steps.yaml_update import set_values, split_key

needs_kubectl = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")

GIT_ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "Seeder",
    "GIT_AUTHOR_EMAIL": "seeder@example.com",
    "GIT_COMMITTER_NAME": "Seeder",
    "GIT_COMMITTER_EMAIL": "seeder@example.com",
    "GIT_TERMINAL_PROMPT": "0",
}

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: demo
spec:
  selector:
    matchLabels:
      app: demo
  template:
    metadata:
      labels:
        app: demo
    spec:
      containers:
      - name: app
        image: demo/app:v0.0.1
"""

FREIGHT = [
    {
        "name": "f00d",
        "origin": {"kind": "Warehouse", "name": "demo"},
        "commits": [],
        "images": [{"repoURL": "demo/app", "tag": "v1.2.3", "digest": "sha256:abc"}],
        "charts": [],
    }
]


def sh(*args: str, cwd: Path) -> str:
    return subprocess.run(
        args, cwd=cwd, env=GIT_ENV, check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture
def remote(tmp_path) -> str:
    """A bare repo whose main branch holds base/ and stages/test/."""
    seed = tmp_path / "seed"
    (seed / "base").mkdir(parents=True)
    (seed / "stages" / "test").mkdir(parents=True)
    (seed / "base" / "kustomization.yaml").write_text(
        "# the app's base\nresources:\n- deployment.yaml\n"
    )
    (seed / "base" / "deployment.yaml").write_text(DEPLOYMENT)
    (seed / "stages" / "test" / "kustomization.yaml").write_text("resources:\n- ../../base\n")
    sh("git", "init", "-q", "-b", "main", cwd=seed)
    sh("git", "add", ".", cwd=seed)
    sh("git", "commit", "-q", "-m", "seed", cwd=seed)
    bare = tmp_path / "remote.git"
    sh("git", "clone", "-q", "--bare", str(seed), str(bare), cwd=tmp_path)
    return bare.as_uri()


def make_ctx(tmp_path: Path, name: str = "work", **kw) -> StepContext:
    work = tmp_path / name
    work.mkdir()
    defaults = dict(
        work_dir=work,
        project="demo",
        stage="test",
        promotion="test.01j0000000000000000000000.f00d123",
        actor="admin",
        freight=FREIGHT,
        outputs={},
    )
    defaults.update(kw)
    return StepContext(**defaults)


def run(ctx: StepContext, uses: str, config: dict, alias: str | None = None):
    """Validate and run a step the way the engine does; record its outputs."""
    impl = get_step(uses)
    result = impl().run(ctx, impl.validate(config))
    if alias:
        ctx.outputs[alias] = result.outputs
    return result


def clone_remote(url: str, dest: Path, branch: str) -> Path:
    sh("git", "clone", "-q", "--branch", branch, url, str(dest), cwd=dest.parent)
    return dest


def checkout_src_and_out(ctx: StepContext, url: str):
    return run(
        ctx,
        "git-clone",
        {
            "repoURL": url,
            "checkout": [
                {"branch": "main", "path": "./src"},
                {"branch": "stage/test", "create": True, "path": "./out"},
            ],
        },
        alias="clone",
    )


# --- registry ------------------------------------------------------------------------


def test_all_steps_registered():
    expected = {
        "git-clone",
        "git-clear",
        "git-commit",
        "git-push",
        "yaml-update",
        "kustomize-set-image",
        "kustomize-build",
        "compose-output",
    }
    assert expected <= set(STEPS)
    assert get_step("git-clone").name == "git-clone"


def test_unknown_step_lists_known_names():
    with pytest.raises(UnknownStepError) as exc:
        get_step("helm-template-v9")
    assert "helm-template-v9" in str(exc.value)
    assert "git-clone" in str(exc.value) and "kustomize-build" in str(exc.value)
    assert isinstance(exc.value, StepError)


# --- the seed promotion flow ---------------------------------------------------------


@needs_kubectl
@pytest.mark.parametrize(
    "commit_config, push_config, expected_message",
    [
        (
            {"path": "./out", "messageFromSteps": ["update-image"]},
            {"path": "./out", "branch": "stage/test"},
            "Updated ./src/base to use new image\n\n- demo/app:v1.2.3",
        ),
        (
            {"path": "./out", "message": "Promote demo/app v1.2.3 to test"},
            {"path": "./out", "targetBranch": "stage/test"},
            "Promote demo/app v1.2.3 to test",
        ),
    ],
)
def test_seed_flow_renders_commits_and_pushes(
    tmp_path, remote, commit_config, push_config, expected_message
):
    ctx = make_ctx(tmp_path)
    cloned = checkout_src_and_out(ctx, remote)
    commits = cloned.outputs["commits"]
    assert set(commits) == {"./src", "./out"}
    assert all(len(sha) == 40 for sha in commits.values())
    # create: true pushed an empty orphan branch right away (as Kargo does).
    assert "stage/test" in sh("git", "ls-remote", "--heads", remote, cwd=tmp_path)

    run(ctx, "git-clear", {"path": "./out"})
    set_image = run(
        ctx,
        "kustomize-set-image",
        {"path": "./src/base", "images": [{"image": "demo/app", "tag": "v1.2.3"}]},
        alias="update-image",
    )
    assert set_image.outputs["commitMessage"] == (
        "Updated ./src/base to use new image\n\n- demo/app:v1.2.3"
    )
    kustomization = (ctx.work_dir / "src/base/kustomization.yaml").read_text()
    assert kustomization.startswith("# the app's base\n")  # comment kept
    assert "images:\n- name: demo/app\n  newTag: v1.2.3\n" in kustomization

    run(ctx, "kustomize-build", {"path": "./src/stages/test", "outPath": "./out/manifests.yaml"})
    commit = run(ctx, "git-commit", commit_config, alias="commit")
    push = run(ctx, "git-push", push_config, alias="push")
    assert push.status == "Succeeded"
    assert push.outputs["branch"] == "stage/test"
    assert push.outputs["commit"] == commit.outputs["commit"]
    assert "commitURL" not in push.outputs  # no web URL for a file:// remote

    # An independent clone sees the rendered manifests on stage/test.
    check = clone_remote(remote, tmp_path / "check", "stage/test")
    assert sorted(p.name for p in check.iterdir() if p.name != ".git") == ["manifests.yaml"]
    assert "image: demo/app:v1.2.3" in (check / "manifests.yaml").read_text()
    assert sh("git", "log", "-1", "--format=%B", cwd=check) == expected_message
    assert sh("git", "rev-parse", "HEAD", cwd=check) == push.outputs["commit"]
    assert sh("git", "log", "-1", "--format=%an <%ae>", cwd=check) == "Kargo <no-reply@kargo.io>"
    # main is untouched: the image change lives only in the rendered branch.
    assert "images:" not in sh("git", "show", "origin/main:base/kustomization.yaml", cwd=check)


@needs_kubectl
def test_second_promotion_builds_on_existing_branch(tmp_path, remote):
    for n, tag in enumerate(["v1.0.0", "v2.0.0"]):
        ctx = make_ctx(tmp_path, f"work{n}")
        checkout_src_and_out(ctx, remote)
        run(ctx, "git-clear", {"path": "./out"})
        run(
            ctx,
            "kustomize-set-image",
            {"path": "./src/base", "images": [{"image": "demo/app", "tag": tag}]},
        )
        run(
            ctx, "kustomize-build", {"path": "./src/stages/test", "outPath": "./out/manifests.yaml"}
        )
        run(ctx, "git-commit", {"path": "./out", "message": f"promote {tag}"})
        run(ctx, "git-push", {"path": "./out"})  # current branch is the target
    check = clone_remote(remote, tmp_path / "check", "stage/test")
    log = sh("git", "log", "--format=%s", cwd=check).splitlines()
    assert log == ["promote v2.0.0", "promote v1.0.0", "Initial commit"]
    assert "demo/app:v2.0.0" in (check / "manifests.yaml").read_text()


def test_git_clone_aliases_commit_tag_and_default_branch(tmp_path, remote):
    seed_sha = sh("git", "ls-remote", remote, "refs/heads/main", cwd=tmp_path).split()[0]
    sh("git", "--git-dir", remote.removeprefix("file://"), "tag", "v1", seed_sha, cwd=tmp_path)
    ctx = make_ctx(tmp_path)
    result = run(
        ctx,
        "git-clone",
        {
            "repoURL": remote,
            "author": {"name": "Promoter", "email": "promoter@example.com"},
            "checkout": [
                {"path": "default", "as": "dflt"},
                {"commit": seed_sha, "path": "pinned"},
                {"tag": "v1", "path": "tagged"},
            ],
        },
    )
    assert result.outputs["commits"] == {"dflt": seed_sha, "pinned": seed_sha, "tagged": seed_sha}
    assert (ctx.work_dir / "default/base/deployment.yaml").is_file()
    # The clone itself is hidden inside the work dir; the author went into its config.
    assert (ctx.work_dir / ".git-clones").is_dir()
    name = subprocess.run(
        ["git", "config", "user.name"], cwd=ctx.work_dir / "pinned", capture_output=True, text=True
    ).stdout.strip()
    assert name == "Promoter"


def test_git_clone_missing_branch_without_create_fails(tmp_path, remote):
    ctx = make_ctx(tmp_path)
    with pytest.raises(StepError, match="set create=true"):
        run(ctx, "git-clone", {"repoURL": remote, "checkout": [{"branch": "nope", "path": "x"}]})


def test_git_clear_keeps_only_dot_git(tmp_path, remote):
    ctx = make_ctx(tmp_path)
    run(ctx, "git-clone", {"repoURL": remote, "checkout": [{"branch": "main", "path": "src"}]})
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("x")
    (ctx.work_dir / "src" / "link").symlink_to(outside)
    run(ctx, "git-clear", {"path": "src"})
    assert [p.name for p in (ctx.work_dir / "src").iterdir()] == [".git"]
    assert (outside / "keep.txt").exists()  # symlink removed, not followed


def test_git_commit_with_nothing_to_commit_returns_head(tmp_path, remote):
    ctx = make_ctx(tmp_path)
    cloned = run(
        ctx, "git-clone", {"repoURL": remote, "checkout": [{"branch": "main", "path": "src"}]}
    )
    result = run(ctx, "git-commit", {"path": "src", "message": "noop"})
    assert result.status == "Succeeded"
    assert result.outputs["commit"] == cloned.outputs["commits"]["src"]


def test_message_from_steps_joins_several_fragments(tmp_path, remote):
    ctx = make_ctx(tmp_path)
    run(ctx, "git-clone", {"repoURL": remote, "checkout": [{"branch": "main", "path": "src"}]})
    (ctx.work_dir / "src" / "new.txt").write_text("x")
    ctx.outputs.update({"a": {"commitMessage": "first"}, "b": {"commitMessage": "second"}, "c": {}})
    result = run(ctx, "git-commit", {"path": "src", "messageFromSteps": ["a", "b", "c", "missing"]})
    message = sh("git", "log", "-1", "--format=%B", cwd=ctx.work_dir / "src")
    assert message == "Kargo applied multiple changes\n\nIncluding:\n\n  * first\n  * second"
    assert len(result.outputs["commit"]) == 40


def test_git_push_generate_target_branch(tmp_path, remote):
    ctx = make_ctx(tmp_path)
    run(ctx, "git-clone", {"repoURL": remote, "checkout": [{"branch": "main", "path": "src"}]})
    (ctx.work_dir / "src" / "new.txt").write_text("x")
    run(ctx, "git-commit", {"path": "src", "message": "change"})
    result = run(ctx, "git-push", {"path": "src", "generateTargetBranch": True})
    assert result.outputs["branch"] == f"kargo/promotion/{ctx.promotion}"
    heads = sh("git", "ls-remote", "--heads", remote, cwd=tmp_path)
    assert f"{result.outputs['commit']}\trefs/heads/kargo/promotion/{ctx.promotion}" in heads


def test_git_push_tag(tmp_path, remote):
    ctx = make_ctx(tmp_path)
    cloned = run(
        ctx, "git-clone", {"repoURL": remote, "checkout": [{"branch": "main", "path": "src"}]}
    )
    result = run(ctx, "git-push", {"path": "src", "tag": "v1.0.0"})
    assert result.outputs == {"commit": cloned.outputs["commits"]["src"], "branch": "main"}
    tags = sh("git", "ls-remote", "--tags", remote, cwd=tmp_path)
    assert "refs/tags/v1.0.0^{}" in tags  # annotated, peeled to the commit
    assert f"{result.outputs['commit']}\trefs/tags/v1.0.0^{{}}" in tags


def _commit_file(ctx: StepContext, name: str, text: str) -> None:
    (ctx.work_dir / "src" / name).write_text(text)
    run(ctx, "git-commit", {"path": "src", "message": f"add {name}"})


def test_git_push_retries_after_concurrent_push(tmp_path, remote, monkeypatch):
    monkeypatch.setattr(GitPush, "retry_base_delay", 0.0)
    ours = make_ctx(tmp_path, "ours")
    theirs = make_ctx(tmp_path, "theirs")
    for ctx in (ours, theirs):
        run(ctx, "git-clone", {"repoURL": remote, "checkout": [{"branch": "main", "path": "src"}]})
    _commit_file(ours, "ours.txt", "ours")
    _commit_file(theirs, "theirs.txt", "theirs")
    # Another promotion pushed since our clone, so our first push is rejected as non-fast-forward;
    # and it pushes again right after our rebase and before our second push, which is rejected
    # too.
    assert run(theirs, "git-push", {"path": "src"}).status == "Succeeded"
    real_integrate = GitPush._integrate
    rebases = []

    def racing_integrate(self, ctx, tree, branch):
        real_integrate(self, ctx, tree, branch)
        rebases.append(branch)
        if len(rebases) == 1:
            _commit_file(theirs, "theirs-again.txt", "theirs")
            assert run(theirs, "git-push", {"path": "src"}).status == "Succeeded"

    monkeypatch.setattr(GitPush, "_integrate", racing_integrate)
    result = run(ours, "git-push", {"path": "src", "targetBranch": "main"})
    assert result.status == "Succeeded"
    assert rebases == ["main", "main"]  # after each rejection; theirs never needed one

    check = clone_remote(remote, tmp_path / "check", "main")
    assert {"ours.txt", "theirs.txt", "theirs-again.txt"} <= {p.name for p in check.iterdir()}
    assert sh("git", "rev-parse", "HEAD", cwd=check) == result.outputs["commit"]
    assert sh("git", "log", "-1", "--format=%s", cwd=check) == "add ours.txt"


def test_git_push_gives_up_after_max_attempts(tmp_path, remote, monkeypatch):
    monkeypatch.setattr(GitPush, "retry_base_delay", 0.0)
    ours = make_ctx(tmp_path, "ours")
    theirs = make_ctx(tmp_path, "theirs")
    for ctx in (ours, theirs):
        run(ctx, "git-clone", {"repoURL": remote, "checkout": [{"branch": "main", "path": "src"}]})
    _commit_file(ours, "ours.txt", "ours")
    _commit_file(theirs, "theirs.txt", "theirs")
    assert run(theirs, "git-push", {"path": "src"}).status == "Succeeded"
    real_integrate = GitPush._integrate
    rebases = []

    def racing_integrate(self, ctx, tree, branch):
        real_integrate(self, ctx, tree, branch)
        if ctx is ours:
            rebases.append(branch)
            _commit_file(theirs, f"theirs-{len(rebases)}.txt", "theirs")
            assert run(theirs, "git-push", {"path": "src"}).status == "Succeeded"

    monkeypatch.setattr(GitPush, "_integrate", racing_integrate)
    with pytest.raises(StepError, match=r"kept moving \(1 attempts\)"):
        run(ours, "git-push", {"path": "src", "maxAttempts": 1})
    assert rebases == ["main"]  # one attempt: one rebase, one push after it


def test_git_push_rebase_conflict_fails_the_step(tmp_path, remote):
    ours = make_ctx(tmp_path, "ours")
    theirs = make_ctx(tmp_path, "theirs")
    for ctx in (ours, theirs):
        run(ctx, "git-clone", {"repoURL": remote, "checkout": [{"branch": "main", "path": "src"}]})
    _commit_file(theirs, "same.txt", "theirs")
    run(theirs, "git-push", {"path": "src"})
    _commit_file(ours, "same.txt", "ours")
    result = run(ours, "git-push", {"path": "src"})
    assert result.status == "Failed"
    assert "conflict" in result.message


def test_commit_url_for_known_providers():
    sha = "abc123"
    assert (
        commit_url("https://github.com/org/repo.git", sha)
        == "https://github.com/org/repo/commit/abc123"
    )
    assert (
        commit_url("git@gitlab.com:org/repo.git", sha)
        == "https://gitlab.com/org/repo/-/commit/abc123"
    )
    assert commit_url("https://git.example.com/org/repo", sha, "gitea") == (
        "https://git.example.com/org/repo/commit/abc123"
    )
    assert commit_url("file:///tmp/repo.git", sha) is None


# --- paths and validation ------------------------------------------------------------


def test_paths_must_stay_inside_the_work_dir(tmp_path):
    ctx = make_ctx(tmp_path)
    (tmp_path / "x").mkdir()
    (ctx.work_dir / "sneaky").symlink_to(tmp_path / "x")
    for bad in ("../x", "/etc", "sneaky", "sneaky/file", "a/../../x", str(tmp_path / "x")):
        with pytest.raises(StepError, match="escapes the work directory"):
            ctx.path(bad)
    assert ctx.path("a/../b") == ctx.work_dir.resolve() / "b"
    assert ctx.path(str(ctx.work_dir / "c")) == ctx.work_dir.resolve() / "c"
    # Steps route config paths through ctx.path.
    with pytest.raises(StepError, match="escapes"):
        run(ctx, "git-clear", {"path": "../x"})
    with pytest.raises(StepError, match="escapes"):
        run(
            ctx,
            "yaml-update",
            {"path": "sneaky/values.yaml", "updates": [{"key": "a", "value": 1}]},
        )
    with pytest.raises(StepError, match="escapes"):
        run(ctx, "kustomize-build", {"path": "src", "outPath": "/tmp/out.yaml"})


def test_unknown_config_fields_are_named():
    with pytest.raises(StepError) as exc:
        get_step("git-clone").validate(
            {"repoURL": "https://x", "checkout": [{"path": "a", "bogus": 1}], "extra": True}
        )
    assert "config.extra: unknown field" in str(exc.value)
    assert "config.checkout[0].bogus: unknown field" in str(exc.value)


@pytest.mark.parametrize(
    "uses, config, fragment",
    [
        ("git-clone", {"checkout": [{"path": "a"}]}, "config.repoURL: field required"),
        ("git-clone", {"repoURL": "u", "checkout": []}, "config.checkout"),
        (
            "git-clone",
            {"repoURL": "u", "checkout": [{"path": "a", "branch": "b", "tag": "t"}]},
            "mutually exclusive",
        ),
        (
            "git-clone",
            {"repoURL": "u", "checkout": [{"path": "a"}], "blobless": "yes"},
            "config.blobless",
        ),
        (
            "git-clone",
            {"repoURL": "u", "checkout": [{"path": "a", "branch": "--upload-pack=x"}]},
            "not a valid git ref name",
        ),
        ("git-commit", {"path": "a"}, "message is required"),
        (
            "git-commit",
            {"path": "a", "message": "m", "messageFromSteps": ["x"]},
            "mutually exclusive",
        ),
        ("git-push", {"path": "a", "tag": "v1", "force": True}, "mutually exclusive"),
        (
            "git-push",
            {"path": "a", "generateTargetBranch": True, "targetBranch": "b"},
            "mutually exclusive",
        ),
        ("git-push", {"path": "a", "maxAttempts": 0}, "config.maxAttempts"),
        (
            "yaml-update",
            {"path": "a", "updates": [{"key": "k"}]},
            "config.updates[0].value: field required",
        ),
        (
            "kustomize-set-image",
            {"path": "a", "images": [{"image": "i", "tag": "t", "digest": "d"}]},
            "mutually exclusive",
        ),
        (
            "kustomize-build",
            {"path": "a", "outPath": "b", "outputFormat": "helm"},
            "config.outputFormat",
        ),
        ("compose-output", {}, "config"),
    ],
)
def test_invalid_configs_are_rejected(uses, config, fragment):
    with pytest.raises(StepError) as exc:
        get_step(uses).validate(config)
    assert fragment in str(exc.value)


def test_git_push_accepts_older_branch_field():
    config = get_step("git-push").validate({"path": "out", "branch": "stage/test"})
    assert config.target_branch == "stage/test"


# --- yaml-update ---------------------------------------------------------------------

VALUES = """\
# Helm values for demo
image:
  repository: demo/app  # the image
  tag: "v0.0.1"
replicas: 1
containers:
  - name: app
    image: demo/app:v0.0.1
  - name: sidecar
    image: 'envoy:1.0'
example.com/version: old
"""


def test_yaml_update_nested_keys_and_list_indices(tmp_path):
    ctx = make_ctx(tmp_path)
    (ctx.work_dir / "values.yaml").write_text(VALUES)
    result = run(
        ctx,
        "yaml-update",
        {
            "path": "values.yaml",
            "updates": [
                {"key": "image.tag", "value": "v1.2.3"},
                {"key": "replicas", "value": 3},
                {"key": "containers.0.image", "value": "demo/app:v1.2.3"},
                {"key": "containers[1].image", "value": "envoy:2.0"},
                {"key": "example\\.com/version", "value": "1.10"},
            ],
        },
    )
    text = (ctx.work_dir / "values.yaml").read_text()
    assert text == (
        "# Helm values for demo\n"
        "image:\n"
        "  repository: demo/app  # the image\n"
        '  tag: "v1.2.3"\n'
        "replicas: 3\n"
        "containers:\n"
        "  - name: app\n"
        "    image: demo/app:v1.2.3\n"
        "  - name: sidecar\n"
        "    image: 'envoy:2.0'\n"
        'example.com/version: "1.10"\n'
    )
    assert result.outputs["commitMessage"] == (
        "Updated values.yaml\n\n- image.tag: v1.2.3\n- replicas: 3\n"
        "- containers.0.image: demo/app:v1.2.3\n- containers[1].image: envoy:2.0\n"
        '- example\\.com/version: "1.10"'
    )


def test_yaml_update_errors_on_missing_or_non_scalar_keys(tmp_path):
    ctx = make_ctx(tmp_path)
    (ctx.work_dir / "values.yaml").write_text(VALUES)
    with pytest.raises(StepError, match="key path not found"):
        run(
            ctx,
            "yaml-update",
            {"path": "values.yaml", "updates": [{"key": "image.nope", "value": 1}]},
        )
    with pytest.raises(StepError, match="mapping instead of a scalar"):
        run(ctx, "yaml-update", {"path": "values.yaml", "updates": [{"key": "image", "value": 1}]})
    with pytest.raises(StepError, match="out of range"):
        run(
            ctx,
            "yaml-update",
            {"path": "values.yaml", "updates": [{"key": "containers.5.name", "value": 1}]},
        )
    assert (ctx.work_dir / "values.yaml").read_text() == VALUES  # untouched on error


def test_yaml_key_syntax_and_block_scalars():
    assert split_key("a.b\\.c.0") == [("a", False), ("b.c", False), ("0", False)]
    assert split_key("list[2][0].x") == [("list", False), ("2", False), ("0", False), ("x", False)]
    assert split_key("m.:1") == [("m", False), ("1", True)]
    text = "a: |\n  old\n  text\nb: 2\n"
    assert set_values(text, [("a", "new"), ("b", None)]) == "a: new\nb: null\n"


# --- kustomize-set-image -------------------------------------------------------------


def test_kustomize_set_image_uses_freight_when_images_omitted(tmp_path):
    ctx = make_ctx(
        tmp_path,
        freight=[
            *FREIGHT,
            {
                "name": "b",
                "origin": {"kind": "Warehouse", "name": "other"},
                "images": [{"repoURL": "other/img", "tag": "2.0"}],
            },
        ],
    )
    (ctx.work_dir / "app").mkdir()
    (ctx.work_dir / "app" / "kustomization.yml").write_text(
        "resources:\n- deployment.yaml\n# images are managed by Kargo\nimages:\n"
        "- name: zzz/keep\n  newTag: '1'\n- name: demo/app  # old\n  newTag: v0\n\n# trailing\nnamespace: demo\n"
    )
    result = run(ctx, "kustomize-set-image", {"path": "app"})
    text = (ctx.work_dir / "app" / "kustomization.yml").read_text()
    assert text == (
        "resources:\n- deployment.yaml\n# images are managed by Kargo\nimages:\n"
        "- name: demo/app\n  newTag: v1.2.3\n  digest: sha256:abc\n"
        "- name: other/img\n  newTag: '2.0'\n"
        "- name: zzz/keep\n  newTag: '1'\n"
        "\n# trailing\nnamespace: demo\n"
    )
    assert result.outputs["commitMessage"] == (
        "Updated app to use new images\n\n- demo/app:v1.2.3@sha256:abc\n- other/img:2.0"
    )


def test_kustomize_set_image_entry_without_version_takes_it_from_freight(tmp_path):
    ctx = make_ctx(tmp_path)
    (ctx.work_dir / "kustomization.yaml").write_text("resources: []\n")
    run(
        ctx,
        "kustomize-set-image",
        {"path": ".", "images": [{"image": "demo/app", "newName": "mirror/app"}]},
    )
    assert (ctx.work_dir / "kustomization.yaml").read_text() == (
        "resources: []\nimages:\n- name: demo/app\n  newName: mirror/app\n  newTag: v1.2.3\n"
    )
    run(
        ctx,
        "kustomize-set-image",
        {"path": ".", "images": [{"image": "demo/app", "useDigest": True}]},
    )
    assert "digest: sha256:abc" in (ctx.work_dir / "kustomization.yaml").read_text()
    with pytest.raises(StepError, match="no image from that repository"):
        run(ctx, "kustomize-set-image", {"path": ".", "images": [{"image": "unknown/img"}]})


def test_kustomize_set_image_needs_a_kustomization(tmp_path):
    ctx = make_ctx(tmp_path)
    with pytest.raises(StepError, match="could not find any Kustomization"):
        run(ctx, "kustomize-set-image", {"path": ".", "images": [{"image": "a", "tag": "1"}]})


# --- kustomize-build -----------------------------------------------------------------


def _write_app(root: Path) -> None:
    (root / "app").mkdir(parents=True)
    (root / "app" / "deployment.yaml").write_text(DEPLOYMENT)
    (root / "app" / "service.yaml").write_text(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: demo\n  namespace: web\nspec:\n  ports:\n  - port: 80\n"
    )
    (root / "app" / "kustomization.yaml").write_text(
        "resources:\n- deployment.yaml\n- service.yaml\n"
    )


@needs_kubectl
@pytest.mark.parametrize(
    "out_format, names",
    [
        (None, ["deployment-demo.yaml", "web-service-demo.yaml"]),
        ("kustomize", ["apps_v1_deployment_demo.yaml", "v1_service_demo.yaml"]),
    ],
)
def test_kustomize_build_to_a_directory(tmp_path, out_format, names):
    ctx = make_ctx(tmp_path)
    _write_app(ctx.work_dir)
    config = {"path": "app", "outPath": "out/rendered"}
    if out_format:
        config["outputFormat"] = out_format
    run(ctx, "kustomize-build", config)
    out = ctx.work_dir / "out" / "rendered"
    assert sorted(p.name for p in out.iterdir()) == names
    assert "kind: Deployment" in (out / names[0]).read_text()


@needs_kubectl
def test_kustomize_build_error_shows_kustomize_message(tmp_path):
    ctx = make_ctx(tmp_path)
    (ctx.work_dir / "broken").mkdir()
    (ctx.work_dir / "broken" / "kustomization.yaml").write_text("resources:\n- missing.yaml\n")
    with pytest.raises(StepError) as exc:
        run(ctx, "kustomize-build", {"path": "broken", "outPath": "out.yaml"})
    message = str(exc.value)
    assert "kustomize build of broken failed" in message
    assert "accumulating resources" in message and "missing.yaml" in message
    assert str(ctx.work_dir) not in message  # host paths are not leaked
    assert not (ctx.work_dir / "out.yaml").exists()


@needs_kubectl
def test_kustomize_build_refuses_resources_outside_the_work_dir(tmp_path):
    ctx = make_ctx(tmp_path)
    _write_app(tmp_path / "elsewhere")
    (ctx.work_dir / "app").mkdir()
    (ctx.work_dir / "app" / "kustomization.yaml").write_text("resources:\n- ../../elsewhere/app\n")
    with pytest.raises(StepError, match="escapes the work directory"):
        run(ctx, "kustomize-build", {"path": "app", "outPath": "out.yaml"})


# --- compose-output ------------------------------------------------------------------


def test_compose_output_returns_its_config():
    config = {"prURL": "https://example.com/pull/1", "nested": {"a": [1, 2]}, "flag": True}
    result = get_step("compose-output")().run(None, get_step("compose-output").validate(config))
    assert result.status == "Succeeded"
    assert result.outputs == config

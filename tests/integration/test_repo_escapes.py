"""Issue 6, items 2 and 3: no local repository outside the allowed roots by any route, and every
outbound connection through one egress policy. Real git repositories and real kubectl."""

import pytest

from projects.egress import OutboundNotAllowed, check_outbound
from projects.repos import RepoNotAllowed, check_repo_url
from stages.steps import StepError
from tests.integration.test_steps import make_ctx, run, sh


def bare_repo(root, name: str, files: dict[str, str], submodules=()) -> str:
    """A bare repository `name.git` under root with `files`, and submodules (path, url)."""
    seed = root / f"{name}-seed"
    seed.mkdir(parents=True)
    for path, text in files.items():
        (seed / path).parent.mkdir(parents=True, exist_ok=True)
        (seed / path).write_text(text)
    sh("git", "init", "-q", "-b", "main", cwd=seed)
    for path, url in submodules:
        # Building the fixture needs file transport for submodules; the server's git does not.
        sh("git", "-c", "protocol.file.allow=always", "submodule", "add", "-q", url, path, cwd=seed)
    sh("git", "add", ".", cwd=seed)
    sh("git", "commit", "-q", "-m", name, cwd=seed)
    bare = root / f"{name}.git"
    sh("git", "clone", "-q", "--bare", str(seed), str(bare), cwd=root)
    return bare.as_uri()


@pytest.fixture
def roots(settings, tmp_path):
    allowed = tmp_path / "allowed"
    private = tmp_path / "private"
    allowed.mkdir()
    private.mkdir()
    settings.FILE_REPO_ROOTS = [str(allowed)]
    settings.EGRESS_ALLOW, settings.EGRESS_DENY, settings.EGRESS_ALLOW_LOCAL = [], [], False
    return allowed, private


def clone(ctx, url: str):
    config = {"repoURL": url, "recurseSubmodules": True, "checkout": [{"path": "src"}]}
    return run(ctx, "git-clone", config)


def test_submodules_inside_the_roots_are_cloned_at_every_level(tmp_path, roots):
    allowed, _ = roots
    leaf = bare_repo(allowed, "leaf", {"leaf.txt": "leaf"})
    middle = bare_repo(allowed, "middle", {"m.txt": "m"}, [("deep", leaf)])
    top = bare_repo(allowed, "top", {"t.txt": "t"}, [("mid", middle)])
    ctx = make_ctx(tmp_path)
    clone(ctx, top)
    assert (ctx.work_dir / "src" / "mid" / "deep" / "leaf.txt").read_text() == "leaf"


def test_a_submodule_outside_the_roots_is_refused_before_it_is_fetched(tmp_path, roots):
    allowed, private = roots
    secret = bare_repo(private, "secret", {"secret.txt": "another project's data"})
    top = bare_repo(allowed, "top", {"t.txt": "t"}, [("stolen", secret)])
    ctx = make_ctx(tmp_path)
    with pytest.raises(StepError, match="submodule stolen: .*outside the directories"):
        clone(ctx, top)
    assert not (ctx.work_dir / "src" / "stolen" / "secret.txt").exists()


def test_a_nested_submodule_outside_the_roots_is_refused(tmp_path, roots):
    allowed, private = roots
    secret = bare_repo(private, "secret", {"secret.txt": "x"})
    middle = bare_repo(allowed, "middle", {"m.txt": "m"}, [("deep", secret)])
    top = bare_repo(allowed, "top", {"t.txt": "t"}, [("mid", middle)])
    ctx = make_ctx(tmp_path)
    with pytest.raises(StepError, match="submodule deep: .*outside the directories"):
        clone(ctx, top)
    assert not (ctx.work_dir / "src" / "mid" / "deep" / "secret.txt").exists()


def test_a_relative_submodule_url_is_checked_where_it_resolves(tmp_path, roots):
    allowed, private = roots
    bare_repo(private, "secret", {"secret.txt": "x"})
    top = bare_repo(allowed, "top", {"t.txt": "t"}, [("rel", "../../private/secret.git")])
    ctx = make_ctx(tmp_path)
    with pytest.raises(StepError, match="submodule rel: .*outside the directories"):
        clone(ctx, top)


def test_a_submodule_on_a_loopback_host_is_refused(tmp_path, roots):
    allowed, _ = roots
    leaf = bare_repo(allowed, "leaf", {"leaf.txt": "leaf"})
    top = bare_repo(allowed, "top", {"t.txt": "t"}, [("sub", leaf)])
    # Point the recorded URL at an internal service, as a hostile repository would.
    seed = allowed / "top-seed"
    sh(
        "git",
        "config",
        "-f",
        ".gitmodules",
        "submodule.sub.url",
        "http://127.0.0.1:9/x.git",
        cwd=seed,
    )
    sh("git", "commit", "-qam", "internal", cwd=seed)
    sh("git", "push", "-q", top, "main", cwd=seed)
    ctx = make_ctx(tmp_path)
    with pytest.raises(StepError, match="submodule sub: .*egress policy"):
        clone(ctx, top)


KUSTOMIZATION_WITH = "resources:\n- {}\n"


@pytest.mark.parametrize(
    "entry",
    [
        "file://{private}/secret.git//base",
        "git::file://{private}/secret.git//base",
        "https://127.0.0.1:9/org/repo//base",
        "http://169.254.169.254/latest/meta-data/x.yaml",
        "ssh://git@127.0.0.1/org/repo//base",
        "git@[::1]:org/repo//base",
    ],
)
def test_kustomize_remote_resources_pass_the_same_policy(tmp_path, roots, entry):
    _, private = roots
    bare_repo(
        private,
        "secret",
        {
            "base/kustomization.yaml": "resources:\n- cm.yaml\n",
            "base/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: secret\n",
        },
    )
    ctx = make_ctx(tmp_path)
    (ctx.work_dir / "app").mkdir()
    (ctx.work_dir / "app" / "kustomization.yaml").write_text(
        KUSTOMIZATION_WITH.format(entry.format(private=private))
    )
    with pytest.raises(StepError, match="outside the directories|egress policy"):
        run(ctx, "kustomize-build", {"path": "app", "outPath": "out.yaml"})
    assert not (ctx.work_dir / "out.yaml").exists()


def test_the_egress_policy(settings):
    settings.EGRESS_ALLOW, settings.EGRESS_DENY, settings.EGRESS_ALLOW_LOCAL = [], [], False
    for url in (
        "https://127.0.0.1/x.git",
        "http://localhost:8080/x",
        "ssh://git@[::1]/x.git",
        "git@127.0.0.2:org/repo.git",
        "http://169.254.169.254/latest/",
        "http://[::ffff:127.0.0.1]/x",
        "http://2130706433/x",  # 127.0.0.1 as one number
        "https://0.0.0.0/",
    ):
        with pytest.raises(OutboundNotAllowed, match="not allowed by this server's egress policy"):
            check_outbound(url)
    check_outbound("https://10.1.2.3/x.git")  # private networks are an operator's choice
    check_outbound("file:///srv/repos/x.git")  # local paths are the repository policy's
    settings.EGRESS_ALLOW_LOCAL = True
    check_outbound("http://127.0.0.1:5000/x")
    settings.EGRESS_ALLOW_LOCAL = False
    settings.EGRESS_ALLOW = ["*.example.com", "10.0.0.0/8"]
    check_outbound("https://git.example.com/x.git")
    check_outbound("https://10.1.2.3/x.git")
    with pytest.raises(OutboundNotAllowed):
        check_outbound("https://github.com/x.git")
    settings.EGRESS_ALLOW, settings.EGRESS_DENY = [], ["10.0.0.0/8", "bad.example.com"]
    for url in ("https://10.9.9.9/x", "https://bad.example.com/x", "git@bad.example.com:x"):
        with pytest.raises(OutboundNotAllowed):
            check_outbound(url)


def test_refusals_read_the_same_whatever_the_reason(settings):
    settings.EGRESS_ALLOW, settings.EGRESS_DENY, settings.EGRESS_ALLOW_LOCAL = (
        [],
        ["10.0.0.0/8"],
        False,
    )
    messages = set()
    for url in ("https://127.0.0.1/x", "https://10.0.0.1/x"):
        with pytest.raises(OutboundNotAllowed) as caught:
            check_outbound(url)
        messages.add(str(caught.value).split("'")[2])
    assert len(messages) == 1


def test_repository_urls_go_through_the_egress_policy(roots):
    with pytest.raises(RepoNotAllowed, match="egress policy"):
        check_repo_url("https://user:token@127.0.0.1/org/repo.git")
    with pytest.raises(RepoNotAllowed) as caught:
        check_repo_url("https://user:token@127.0.0.1/org/repo.git")
    assert "token" not in str(caught.value)
    with pytest.raises(RepoNotAllowed, match="absolute"):
        check_repo_url("../elsewhere/repo.git")


def test_git_never_follows_a_redirect():
    from kargo.runner import tool_env

    env = tool_env()
    keys = {
        env[f"GIT_CONFIG_KEY_{i}"]: env[f"GIT_CONFIG_VALUE_{i}"]
        for i in range(int(env["GIT_CONFIG_COUNT"]))
    }
    assert keys["http.followRedirects"] == "false"


def test_a_kustomize_remote_base_inside_the_roots_builds(tmp_path, roots):
    allowed, _ = roots
    url = bare_repo(
        allowed,
        "lib",
        {
            "base/kustomization.yaml": "resources:\n- cm.yaml\n",
            "base/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: shared\n",
        },
    )
    ctx = make_ctx(tmp_path)
    (ctx.work_dir / "app").mkdir()
    (ctx.work_dir / "app" / "kustomization.yaml").write_text(
        KUSTOMIZATION_WITH.format(f"{url}//base?ref=main")
    )
    run(ctx, "kustomize-build", {"path": "app", "outPath": "out.yaml"})
    assert "name: shared" in (ctx.work_dir / "out.yaml").read_text()

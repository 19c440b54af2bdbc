"""Issue 7, engine: how many git commands git-clone, git-commit and git-push run for the demo's
promotion shape, counted at kargo.runner.run (the one way a step runs a program), against a
real bare repository over file://.

The same work in plain bash: `git clone --bare` and one `git worktree add` per checkout (3),
`git add` + `git commit` (2), `git push` (1). The steps add one command each where Kargo's
outputs need it: the commit each checkout starts from (one `cat-file` for all of them), the
commit made, and HEAD's commit for the push's output.
"""

from pathlib import Path

import pytest

from kargo import runner
from stages.steps import StepError
from stages.steps.git_push import GitPush
from tests.integration.test_steps import checkout_src_and_out, make_ctx, run, sh

# Commands that talk to the remote.
NETWORK = {"clone", "fetch", "pull", "push", "ls-remote"}


@pytest.fixture
def git_commands(monkeypatch) -> list[list[str]]:
    """The argument list of every git command a step runs from here on."""
    ran = []
    real_run = runner.run

    def counting_run(args, **kw):
        if Path(args[0]).name == "git":
            ran.append(list(args))
        return real_run(args, **kw)

    monkeypatch.setattr(runner, "run", counting_run)
    return ran


def verbs(commands: list[list[str]]) -> list[str]:
    """Each command's git subcommand, global options (`-c name=value`) left out; `worktree`
    with its own subcommand."""
    named = []
    for args in commands:
        words = iter(args[1:])
        for word in words:
            if word == "-c":
                next(words)
            elif not word.startswith("-"):
                named.append(f"worktree {next(words)}" if word == "worktree" else word)
                break
    return named


@pytest.fixture
def remote(tmp_path) -> str:
    """A bare GitOps repository shaped like the demo's: main holds base/ and stages/test/."""
    seed = tmp_path / "seed"
    (seed / "base").mkdir(parents=True)
    (seed / "stages" / "test").mkdir(parents=True)
    (seed / "base" / "kustomization.yaml").write_text("resources: []\n")
    (seed / "stages" / "test" / "kustomization.yaml").write_text("resources:\n- ../../base\n")
    sh("git", "init", "-q", "-b", "main", cwd=seed)
    sh("git", "add", ".", cwd=seed)
    sh("git", "commit", "-q", "-m", "seed", cwd=seed)
    bare = tmp_path / "remote.git"
    sh("git", "clone", "-q", "--bare", str(seed), str(bare), cwd=tmp_path)
    return bare.as_uri()


def remote_head(remote: str, branch: str, cwd: Path) -> str:
    listed = sh("git", "ls-remote", "--heads", remote, f"refs/heads/{branch}", cwd=cwd)
    return listed.split()[0] if listed else ""


def render(ctx, text: str, message: str = "render") -> dict:
    """What the demo's middle steps leave in ./out, committed by git-commit."""
    (ctx.work_dir / "out" / "manifests.yaml").write_text(text)
    return run(ctx, "git-commit", {"path": "./out", "message": message}).outputs


# --- git-clone -------------------------------------------------------------------------


def test_clone_of_the_demo_shape_creating_the_stage_branch(tmp_path, remote, git_commands):
    ctx = make_ctx(tmp_path)
    commits = checkout_src_and_out(ctx, remote).outputs["commits"]
    # Was 14: clone, 3 x config, and per checkout rev-parse --verify, worktree add and
    # rev-parse HEAD; creating the branch took mktree, commit-tree, update-ref and push.
    assert verbs(git_commands) == [
        "clone",
        "cat-file",  # every checkout's commit, at once
        "worktree add",
        "mktree",
        "commit-tree",
        "push",  # Kargo pushes the new orphan branch at once
        "worktree add",  # -b: makes the local branch too
    ]
    assert commits["./out"] == remote_head(remote, "stage/test", tmp_path)
    assert commits["./src"] == remote_head(remote, "main", tmp_path)
    assert sh("git", "log", "--format=%s", cwd=ctx.work_dir / "out") == "Initial commit"
    assert sh("git", "branch", "--show-current", cwd=ctx.work_dir / "out") == "stage/test"


def test_clone_of_the_demo_shape_when_the_stage_branch_exists(tmp_path, remote, git_commands):
    checkout_src_and_out(make_ctx(tmp_path, "first"), remote)
    git_commands.clear()
    ctx = make_ctx(tmp_path)
    commits = checkout_src_and_out(ctx, remote).outputs["commits"]
    assert verbs(git_commands) == ["clone", "cat-file", "worktree add", "worktree add"]  # was 10
    assert commits["./out"] == remote_head(remote, "stage/test", tmp_path)
    # The identity Kargo commits with went into the clone's config with the clone itself.
    name = sh("git", "config", "user.name", cwd=ctx.work_dir / "out")
    assert name == "Kargo"


def test_a_ref_name_with_a_control_character_is_refused_before_any_git_command(
    tmp_path, remote, git_commands
):
    # Checkouts are looked up one per line of `git cat-file --batch-check`'s input.
    ctx = make_ctx(tmp_path)
    checkout = {"branch": "main\nrefs/heads/other", "path": "src"}
    with pytest.raises(StepError, match="not a valid git ref name"):
        run(ctx, "git-clone", {"repoURL": remote, "checkout": [checkout]})
    assert git_commands == []


# --- git-commit ------------------------------------------------------------------------


def test_commit_of_a_change_and_of_no_change(tmp_path, remote, git_commands):
    ctx = make_ctx(tmp_path)
    checkout_src_and_out(ctx, remote)
    git_commands.clear()
    made = render(ctx, "kind: List\n")
    # Was 4: add, status --porcelain, commit, rev-parse.
    assert verbs(git_commands) == ["add", "commit", "rev-parse"]
    assert made["commit"] == sh("git", "rev-parse", "HEAD", cwd=ctx.work_dir / "out")

    git_commands.clear()
    again = run(ctx, "git-commit", {"path": "./out", "message": "again"})
    assert verbs(git_commands) == ["add", "commit", "rev-parse"]
    assert again.message == "nothing to commit; HEAD unchanged"
    assert again.outputs["commit"] == made["commit"]


# --- git-push --------------------------------------------------------------------------


def test_push_when_the_remote_has_not_moved(tmp_path, remote, git_commands):
    ctx = make_ctx(tmp_path)
    checkout_src_and_out(ctx, remote)
    made = render(ctx, "kind: List\n")
    git_commands.clear()
    pushed = run(ctx, "git-push", {"path": "./out", "branch": "stage/test"})
    # Was 12: branch --show-current, ls-remote + pull --rebase, ls-remote + rev-parse +
    # cat-file x2 + rev-parse x2 (had it landed?), push, rev-parse, remote get-url.
    assert verbs(git_commands) == ["rev-parse", "push"]
    assert [v for v in verbs(git_commands) if v in NETWORK] == ["push"]
    assert pushed.outputs == {"commit": made["commit"], "branch": "stage/test"}
    assert pushed.message == ""
    assert remote_head(remote, "stage/test", tmp_path) == made["commit"]


def test_push_when_the_remote_moved(tmp_path, remote, git_commands):
    ours, theirs = make_ctx(tmp_path, "ours"), make_ctx(tmp_path, "theirs")
    checkout_src_and_out(ours, remote)
    checkout_src_and_out(theirs, remote)
    render(ours, "kind: List\n")
    (theirs.work_dir / "out" / "notes.txt").write_text("pushed first")
    run(theirs, "git-commit", {"path": "./out", "message": "theirs"})
    run(theirs, "git-push", {"path": "./out"})
    git_commands.clear()
    pushed = run(ours, "git-push", {"path": "./out", "branch": "stage/test"})
    # Was 12, as when it had not moved.
    assert verbs(git_commands) == [
        "rev-parse",
        "push",  # rejected: the branch moved on since the clone
        "pull",  # --rebase: fetch and rebase onto it, as Kargo does before every push
        "rev-parse",  # the rebased HEAD
        "push",
    ]
    head = remote_head(remote, "stage/test", tmp_path)
    assert pushed.outputs["commit"] == head
    check = tmp_path / "check"
    sh("git", "clone", "-q", "--branch", "stage/test", remote, str(check), cwd=tmp_path)
    assert sh("git", "log", "--format=%s", cwd=check).splitlines() == [
        "render",
        "theirs",
        "Initial commit",
    ]


def test_push_of_a_change_that_already_landed(tmp_path, remote, git_commands):
    # A resumed run: its fresh clone already holds what the stopped run pushed.
    first = make_ctx(tmp_path, "first")
    checkout_src_and_out(first, remote)
    render(first, "kind: List\n")
    run(first, "git-push", {"path": "./out"})
    ctx = make_ctx(tmp_path)
    checkout_src_and_out(ctx, remote)
    render(ctx, "kind: List\n")
    git_commands.clear()
    pushed = run(ctx, "git-push", {"path": "./out", "branch": "stage/test"})
    # Was 6: branch --show-current, ls-remote + pull --rebase, ls-remote, rev-parse, remote.
    assert verbs(git_commands) == ["rev-parse", "push"]  # the push finds it up to date
    landed = remote_head(remote, "stage/test", tmp_path)
    assert pushed.outputs["commit"] == landed
    assert pushed.message.startswith(
        f"nothing to push: remote branch 'stage/test' is already at {landed[:12]}"
    )


def test_push_to_a_generated_branch_creates_it_with_one_push(tmp_path, remote, git_commands):
    ctx = make_ctx(tmp_path)
    checkout_src_and_out(ctx, remote)
    made = render(ctx, "kind: List\n")
    git_commands.clear()
    pushed = run(ctx, "git-push", {"path": "./out", "generateTargetBranch": True})
    # Was 5: branch --show-current, ls-remote, push --force, rev-parse, remote get-url.
    assert verbs(git_commands) == ["rev-parse", "push"]
    branch = f"kargo/promotion/{ctx.promotion}"
    assert pushed.outputs == {"commit": made["commit"], "branch": branch}
    assert remote_head(remote, branch, tmp_path) == made["commit"]


def test_a_forced_push_that_landed_is_not_made_again(tmp_path, remote, git_commands):
    first = make_ctx(tmp_path, "first")
    checkout_src_and_out(first, remote)
    render(first, "kind: List\n", message="made by the stopped run")
    landed = run(first, "git-push", {"path": "./out", "generateTargetBranch": True})
    # The re-run makes the same change on the same base, as a different commit.
    ctx = make_ctx(tmp_path)
    checkout_src_and_out(ctx, remote)
    render(ctx, "kind: List\n", message="made again by the resumed run")
    git_commands.clear()
    pushed = run(ctx, "git-push", {"path": "./out", "generateTargetBranch": True})
    assert verbs(git_commands) == [  # was 10
        "rev-parse",
        "push",  # create only: refused, the branch exists
        "fetch",
        "log",  # its tree and parents are HEAD's
    ]
    branch = landed.outputs["branch"]
    assert remote_head(remote, branch, tmp_path) == landed.outputs["commit"]
    assert pushed.outputs == landed.outputs
    assert pushed.message.startswith("nothing to push")


def test_a_forced_push_replaces_a_different_commit(tmp_path, remote, git_commands):
    other = make_ctx(tmp_path, "other")
    checkout_src_and_out(other, remote)
    render(other, "kind: Other\n")
    run(other, "git-push", {"path": "./out", "targetBranch": "rendered", "force": True})
    ctx = make_ctx(tmp_path)
    checkout_src_and_out(ctx, remote)
    made = render(ctx, "kind: List\n")
    git_commands.clear()
    pushed = run(ctx, "git-push", {"path": "./out", "targetBranch": "rendered", "force": True})
    assert verbs(git_commands) == ["rev-parse", "push", "fetch", "log", "push"]  # was 10
    assert remote_head(remote, "rendered", tmp_path) == made["commit"]
    assert pushed.message == ""


def test_retries_wait_only_after_a_push_lost_a_race(tmp_path, remote, git_commands, monkeypatch):
    """The first rejection means the branch moved before this step: rebase at once, as Kargo's
    first attempt would have. Only a second one (someone pushed in between) waits."""
    waits = []
    monkeypatch.setattr(GitPush, "_delay", lambda self, attempt: waits.append(attempt) or 0.0)
    ours, theirs = make_ctx(tmp_path, "ours"), make_ctx(tmp_path, "theirs")
    checkout_src_and_out(ours, remote)
    checkout_src_and_out(theirs, remote)
    render(ours, "kind: List\n")
    (theirs.work_dir / "out" / "notes.txt").write_text("pushed first")
    run(theirs, "git-commit", {"path": "./out", "message": "theirs"})
    run(theirs, "git-push", {"path": "./out"})
    run(ours, "git-push", {"path": "./out"})
    assert waits == []

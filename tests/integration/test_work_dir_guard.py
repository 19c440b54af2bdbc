"""Issue 6, item 1: every path a step reads or writes stays in the work directory, whatever
symlinks the (hostile) GitOps repository commits. Real kubectl kustomize, real files."""

import os

import pytest

from kargo.workdir import PathEscape, WorkDir
from stages.steps import StepError
from tests.integration.test_steps import _write_app, make_ctx, run


def test_kustomize_directory_output_does_not_write_through_committed_symlinks(tmp_path):
    # The reported escape: outPath is a directory in the repo, and one of its entries is a link
    # named like a rendered resource file, pointing at a file the server owns.
    ctx = make_ctx(tmp_path)
    _write_app(ctx.work_dir)
    victim = tmp_path / "secret_key"
    victim.write_text("do not overwrite")
    out = ctx.work_dir / "out"
    out.mkdir()
    (out / "deployment-demo.yaml").symlink_to(victim)
    with pytest.raises(StepError, match="escapes the work directory"):
        run(ctx, "kustomize-build", {"path": "app", "outPath": "out"})
    assert victim.read_text() == "do not overwrite"


def test_kustomize_directory_output_does_not_create_files_through_a_linked_directory(tmp_path):
    ctx = make_ctx(tmp_path)
    _write_app(ctx.work_dir)
    outside = tmp_path / "outside"
    outside.mkdir()
    (ctx.work_dir / "out").symlink_to(outside)
    with pytest.raises(StepError, match="escapes the work directory"):
        run(ctx, "kustomize-build", {"path": "app", "outPath": "out/rendered"})
    assert list(outside.iterdir()) == []


def test_kustomize_single_file_output_does_not_write_through_a_symlink(tmp_path):
    ctx = make_ctx(tmp_path)
    _write_app(ctx.work_dir)
    victim = tmp_path / "victim.yaml"
    victim.write_text("mine")
    (ctx.work_dir / "out.yaml").symlink_to(victim)
    with pytest.raises(StepError, match="escapes the work directory"):
        run(ctx, "kustomize-build", {"path": "app", "outPath": "out.yaml"})
    assert victim.read_text() == "mine"


@pytest.mark.parametrize("linked", ["kustomization.yaml", "deployment.yaml", "patches"])
def test_kustomize_does_not_read_through_links_that_leave_the_work_dir(tmp_path, linked):
    ctx = make_ctx(tmp_path)
    _write_app(ctx.work_dir)
    secret = tmp_path / "server-file.yaml"
    secret.write_text("apiVersion: v1\nkind: Secret\nmetadata:\n  name: stolen\n")
    target = ctx.work_dir / "app" / linked
    if target.exists():
        target.unlink()
    target.symlink_to(secret if linked != "patches" else tmp_path)
    with pytest.raises(StepError, match="escapes the work directory"):
        run(ctx, "kustomize-build", {"path": "app", "outPath": "out.yaml"})
    assert not (ctx.work_dir / "out.yaml").exists()


def test_yaml_update_and_set_image_refuse_linked_files(tmp_path):
    ctx = make_ctx(tmp_path)
    victim = tmp_path / "values.yaml"
    victim.write_text("a: 1\n")
    (ctx.work_dir / "app").mkdir()
    (ctx.work_dir / "app" / "values.yaml").symlink_to(victim)
    (ctx.work_dir / "app" / "kustomization.yaml").symlink_to(victim)
    with pytest.raises(StepError, match="escapes"):
        run(ctx, "yaml-update", {"path": "app/values.yaml", "updates": [{"key": "a", "value": 2}]})
    # As in Kargo, a symlinked Kustomization file is not used at all.
    with pytest.raises(StepError, match="could not find any Kustomization files"):
        run(ctx, "kustomize-set-image", {"path": "app", "images": [{"image": "x", "tag": "1"}]})
    assert victim.read_text() == "a: 1\n"


def test_links_inside_the_work_dir_are_fine(tmp_path):
    ctx = make_ctx(tmp_path)
    _write_app(ctx.work_dir)
    (ctx.work_dir / "app" / "real").mkdir()
    (ctx.work_dir / "app" / "deployment.yaml").rename(ctx.work_dir / "app" / "real" / "d.yaml")
    (ctx.work_dir / "app" / "deployment.yaml").symlink_to(ctx.work_dir / "app" / "real" / "d.yaml")
    run(ctx, "kustomize-build", {"path": "app", "outPath": "out.yaml"})
    assert "kind: Deployment" in (ctx.work_dir / "out.yaml").read_text()


def test_the_guard_refuses_a_link_swapped_in_after_the_check(tmp_path):
    # O_NOFOLLOW: even if a link appears at the last component between check and open, the
    # open fails instead of following it.
    guard = WorkDir(tmp_path / "w")
    (tmp_path / "w").mkdir()
    victim = tmp_path / "victim"
    victim.write_text("x")
    checked = guard.path("file")
    checked.symlink_to(victim)
    with pytest.raises(PathEscape):
        guard._open(checked, os.O_WRONLY | os.O_CREAT)
    assert victim.read_text() == "x"


def test_errors_name_paths_relative_to_the_work_dir(tmp_path):
    guard = WorkDir(tmp_path)
    with pytest.raises(PathEscape) as caught:
        guard.path(f"{tmp_path}/../elsewhere")
    assert str(tmp_path) not in str(caught.value)


BILLION_LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(8)
)


@pytest.mark.parametrize(
    "uses,config,file",
    [
        (
            "yaml-update",
            {"path": "app/values.yaml", "updates": [{"key": "a", "value": 1}]},
            "values.yaml",
        ),
        (
            "kustomize-set-image",
            {"path": "app", "images": [{"image": "x", "tag": "1"}]},
            "kustomization.yaml",
        ),
        ("kustomize-build", {"path": "app", "outPath": "out.yaml"}, "kustomization.yaml"),
    ],
)
def test_repository_yaml_is_read_within_budgets(tmp_path, uses, config, file):
    # Files come from the (hostile) repository: an alias bomb is refused, not expanded.
    ctx = make_ctx(tmp_path)
    (ctx.work_dir / "app").mkdir()
    (ctx.work_dir / "app" / file).write_text(BILLION_LAUGHS)
    with pytest.raises(StepError, match="aliases expand to more than"):
        run(ctx, uses, config)

"""The file and data steps (copy, delete, file-write, tar, untar, json/yaml/toml parse and
update, yaml-merge) run in a real work directory, the way the engine runs them."""

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from stages.steps import StepContext, StepError
from stages.steps import untar as untar_module
from tests.integration.test_steps import make_ctx, run


@pytest.fixture
def ctx(tmp_path) -> StepContext:
    return make_ctx(tmp_path)


def tree(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): p.read_text()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


# --- copy ------------------------------------------------------------------------------


def test_copy_directory_with_ignore_skips_links_and_git(ctx):
    src = ctx.work_dir / "src"
    (src / "sub").mkdir(parents=True)
    (src / ".git").mkdir()
    (src / ".git" / "HEAD").write_text("ref")
    (src / "a.yaml").write_text("a")
    (src / "b.tmp").write_text("b")
    (src / "sub" / "c.yaml").write_text("c")
    (src / "sub" / "d.tmp").write_text("d")
    (src / "link").symlink_to("/etc/passwd")
    run(ctx, "copy", {"inPath": "src", "outPath": "out", "ignore": "*.tmp\n# comment\n"})
    assert tree(ctx.work_dir / "out") == {"a.yaml": "a", "sub/c.yaml": "c"}
    assert not os.path.lexists(ctx.work_dir / "out" / "link")


def test_copy_file_and_negated_ignore(ctx):
    (ctx.work_dir / "f.txt").write_text("x")
    run(ctx, "copy", {"inPath": "f.txt", "outPath": "deep/g.txt"})
    assert (ctx.work_dir / "deep" / "g.txt").read_text() == "x"
    src = ctx.work_dir / "s"
    src.mkdir()
    (src / "keep.log").write_text("k")
    (src / "drop.log").write_text("d")
    run(ctx, "copy", {"inPath": "s", "outPath": "o", "ignore": "*.log\n!keep.log"})
    assert tree(ctx.work_dir / "o") == {"keep.log": "k"}


def test_copy_refuses_paths_outside(ctx, tmp_path):
    (tmp_path / "secret").write_text("s")
    with pytest.raises(StepError, match="escapes"):
        run(ctx, "copy", {"inPath": "../secret", "outPath": "x"})
    (ctx.work_dir / "out").symlink_to(tmp_path)
    (ctx.work_dir / "f").write_text("f")
    with pytest.raises(StepError, match="escapes"):
        run(ctx, "copy", {"inPath": "f", "outPath": "out/f"})


# --- delete ----------------------------------------------------------------------------


def test_delete_literal_glob_and_strict(ctx, tmp_path):
    for name in ("a.yaml", "b.yaml", "keep.txt", "d/e.yaml"):
        (ctx.work_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (ctx.work_dir / name).write_text(name)
    run(ctx, "delete", {"path": "a.yaml"})
    assert not (ctx.work_dir / "a.yaml").exists()
    run(ctx, "delete", {"paths": ["**/*.yaml"], "pathsAreGlobs": True})
    assert tree(ctx.work_dir) == {"keep.txt": "keep.txt"}
    run(ctx, "delete", {"path": "missing"})  # not strict: fine
    with pytest.raises(StepError, match="does not exist"):
        run(ctx, "delete", {"path": "missing", "strict": True})
    with pytest.raises(StepError, match="no paths matched"):
        run(ctx, "delete", {"path": "*.nope", "pathsAreGlobs": True, "strict": True})


def test_delete_removes_links_not_their_targets(ctx, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious").write_text("p")
    (ctx.work_dir / "link").symlink_to(outside)
    run(ctx, "delete", {"path": "link"})
    assert (outside / "precious").exists() and not os.path.lexists(ctx.work_dir / "link")
    (ctx.work_dir / "link").symlink_to(outside)
    with pytest.raises(StepError, match="escapes"):
        run(ctx, "delete", {"path": "link/precious"})
    with pytest.raises(StepError, match="escapes"):
        run(ctx, "delete", {"path": "../outside"})
    with pytest.raises(StepError, match="work directory itself"):
        run(ctx, "delete", {"path": "."})
    assert (outside / "precious").exists()


# --- file-write ------------------------------------------------------------------------


def test_file_write_modes_and_overwrite(ctx):
    run(ctx, "file-write", {"path": "a/b.txt", "contents": "hello"})
    target = ctx.work_dir / "a" / "b.txt"
    assert target.read_text() == "hello"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    with pytest.raises(StepError, match="already exists"):
        run(ctx, "file-write", {"path": "a/b.txt", "contents": "again"})
    run(
        ctx,
        "file-write",
        {"path": "a/b.txt", "contents": "again", "overwrite": True, "permissions": "0644"},
    )
    assert target.read_text() == "again"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


@pytest.mark.parametrize(
    ("path", "perms", "fragment"),
    [
        ("/etc/x", None, "must be relative"),
        ("../x", None, "outside"),
        (".git/config", None, ".git"),
        ("x", "0755", "executable"),
        ("x", "0646", "world-writable"),
    ],
)
def test_file_write_refusals(ctx, path, perms, fragment):
    config = {"path": path, "contents": "c"} | ({"permissions": perms} if perms else {})
    with pytest.raises(StepError, match=fragment):
        run(ctx, "file-write", config)


def test_file_write_refuses_symlinks(ctx, tmp_path):
    (ctx.work_dir / "d").mkdir()
    (ctx.work_dir / "inside").symlink_to(ctx.work_dir / "d")
    with pytest.raises(StepError, match="symlink"):
        run(ctx, "file-write", {"path": "inside/x", "contents": "c"})


# --- tar / untar -----------------------------------------------------------------------


@pytest.mark.parametrize("gzip", [True, False])
def test_tar_then_untar_round_trip(ctx, gzip):
    src = ctx.work_dir / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("a")
    (src / "skip.tmp").write_text("s")
    (src / "sub" / "b.txt").write_text("b")
    (src / "rel-link").symlink_to("a.txt")
    run(ctx, "tar", {"inPath": "src", "outPath": "out/app.tar", "gzip": gzip, "ignore": "*.tmp"})
    data = (ctx.work_dir / "out" / "app.tar").read_bytes()
    assert (data[:2] == b"\x1f\x8b") is gzip
    run(ctx, "untar", {"inPath": "out/app.tar", "outPath": "x"})
    assert tree(ctx.work_dir / "x") == {"a.txt": "a", "sub/b.txt": "b"}
    assert os.readlink(ctx.work_dir / "x" / "rel-link") == "a.txt"
    run(ctx, "untar", {"inPath": "out/app.tar", "outPath": "y", "stripComponents": 1})
    assert tree(ctx.work_dir / "y") == {"b.txt": "b"}
    assert not [p for p in ctx.work_dir.iterdir() if p.name.startswith(".untar-")]


def test_tar_refuses_link_out_of_work_dir(ctx):
    src = ctx.work_dir / "src"
    src.mkdir()
    (src / "evil").symlink_to("/etc/passwd")
    with pytest.raises(StepError, match="escapes"):
        run(ctx, "tar", {"inPath": "src", "outPath": "a.tar"})
    assert not (ctx.work_dir / "a.tar").exists()


def make_tar(path: Path, *members: tuple[tarfile.TarInfo, bytes]) -> None:
    with tarfile.open(path, "w") as archive:
        for info, data in members:
            info.size = len(data) if info.isfile() else 0
            archive.addfile(info, io.BytesIO(data) if info.isfile() else None)


def member(name: str, kind=tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.mode = 0o644
    return info


@pytest.mark.parametrize(
    ("bad", "fragment"),
    [
        (member("../evil"), "leaves"),
        (member("a/../../evil"), "leaves"),
        (member("/etc/evil"), "absolute"),
        (member("l", tarfile.SYMTYPE, "/etc/passwd"), "absolute"),
        (member("d/l", tarfile.SYMTYPE, "../../x"), "outside"),
        (member("dev", tarfile.CHRTYPE), "device"),
        (member("fifo", tarfile.FIFOTYPE), "device"),
        (member("hard", tarfile.LNKTYPE, "ok.txt"), "hard link"),
    ],
)
def test_untar_refuses_unsafe_entries_and_writes_nothing(ctx, bad, fragment):
    make_tar(ctx.work_dir / "bad.tar", (member("ok.txt"), b"ok"), (bad, b"x"))
    with pytest.raises(StepError, match=fragment):
        run(ctx, "untar", {"inPath": "bad.tar", "outPath": "out"})
    assert not (ctx.work_dir / "out").exists()
    assert sorted(p.name for p in ctx.work_dir.iterdir()) == ["bad.tar"]


def test_untar_does_not_write_through_an_extracted_link(ctx):
    make_tar(
        ctx.work_dir / "bad.tar",
        (member("l", tarfile.SYMTYPE, "."), b""),
        (member("l/../../x"), b"x"),
    )
    with pytest.raises(StepError):
        run(ctx, "untar", {"inPath": "bad.tar", "outPath": "out"})


def test_untar_limits(ctx, monkeypatch):
    make_tar(ctx.work_dir / "a.tar", *[(member(f"f{i}"), b"12345") for i in range(5)])
    monkeypatch.setattr(untar_module, "MAX_ENTRIES", 3)
    with pytest.raises(StepError, match="more than 3 entries"):
        run(ctx, "untar", {"inPath": "a.tar", "outPath": "o"})
    monkeypatch.setattr(untar_module, "MAX_ENTRIES", 100)
    monkeypatch.setattr(untar_module, "MAX_FILE_BYTES", 4)
    with pytest.raises(StepError, match="over the limit"):
        run(ctx, "untar", {"inPath": "a.tar", "outPath": "o"})
    monkeypatch.setattr(untar_module, "MAX_FILE_BYTES", 100)
    monkeypatch.setattr(untar_module, "MAX_TOTAL_BYTES", 12)
    with pytest.raises(StepError, match="more than 12 bytes"):
        run(ctx, "untar", {"inPath": "a.tar", "outPath": "o"})
    assert not (ctx.work_dir / "o").exists()


# --- json ------------------------------------------------------------------------------

JSON_DOC = (
    '{\n  "image": {"repo": "demo/app", "tag": "v1"},\n  "replicas": 2,\n  "list": [1, 2]\n}\n'
)


def test_json_update_edits_only_the_values(ctx):
    (ctx.work_dir / "v.json").write_text(JSON_DOC)
    result = run(
        ctx,
        "json-update",
        {
            "path": "v.json",
            "updates": [
                {"key": "image.tag", "value": "v2"},
                {"key": "replicas", "value": 3},
                {"key": "list.-1", "value": 3},
                {"key": "new.nested", "value": True},
            ],
        },
    )
    text = (ctx.work_dir / "v.json").read_text()
    assert text == (
        '{\n  "image": {"repo": "demo/app", "tag": "v2"},\n  "replicas": 3,\n'
        '  "list": [1, 2,3]\n,"new":{"nested":true}}\n'
    )
    assert result.outputs["commitMessage"] == (
        'Updated v.json\n\n- image.tag: "v2"\n- replicas: 3\n- list.-1: 3\n- new.nested: true'
    )


def test_json_update_refuses_non_scalars_and_bad_paths(ctx):
    (ctx.work_dir / "v.json").write_text(JSON_DOC)
    with pytest.raises(StepError, match="not a scalar"):
        run(ctx, "json-update", {"path": "v.json", "updates": [{"key": "a", "value": {"b": 1}}]})
    with pytest.raises(StepError, match="not in an object"):
        run(ctx, "json-update", {"path": "v.json", "updates": [{"key": "replicas.x", "value": 1}]})
    (ctx.work_dir / "bad.json").write_text("{nope")
    with pytest.raises(StepError, match="JSON"):
        run(ctx, "json-update", {"path": "bad.json", "updates": [{"key": "a", "value": 1}]})


def test_json_parse_outputs_by_name(ctx):
    (ctx.work_dir / "v.json").write_text(JSON_DOC)
    result = run(
        ctx,
        "json-parse",
        {
            "path": "v.json",
            "outputs": [
                {"name": "tag", "fromExpression": "image.tag"},
                {"name": "more", "fromExpression": "replicas + 1"},
                {"name": "first", "fromExpression": "list[0]"},
            ],
        },
    )
    assert result.outputs == {"tag": "v1", "more": 3, "first": 1}
    with pytest.raises(StepError, match="error evaluating"):
        run(
            ctx,
            "json-parse",
            {"path": "v.json", "outputs": [{"name": "x", "fromExpression": "image.tag.x.y"}]},
        )


# --- yaml ------------------------------------------------------------------------------


def test_yaml_parse_outputs_by_name(ctx):
    (ctx.work_dir / "v.yaml").write_text("# c\nimage:\n  tag: v1\nports: [80, 443]\n")
    result = run(
        ctx,
        "yaml-parse",
        {
            "path": "v.yaml",
            "outputs": [
                {"name": "tag", "fromExpression": "image.tag"},
                {"name": "ports", "fromExpression": "len(ports)"},
            ],
        },
    )
    assert result.outputs == {"tag": "v1", "ports": 2}


def test_yaml_merge_later_files_win(ctx):
    (ctx.work_dir / "base.yaml").write_text("a: 1\nm:\n  x: 1\n  y: 2\nl: [1, 2]\ngone: yes\n")
    (ctx.work_dir / "over.yaml").write_text("m:\n  y: 3\n  z: 4\nl: [9]\ngone: null\n")
    result = run(
        ctx,
        "yaml-merge",
        {
            "inFiles": ["base.yaml", "missing.yaml", "over.yaml"],
            "outFile": "out/m.yaml",
            "ignoreMissingFiles": True,
        },
    )
    assert (ctx.work_dir / "out" / "m.yaml").read_text() == (
        "a: 1\nm:\n  x: 1\n  y: 3\n  z: 4\nl:\n- 9\n"
    )
    assert result.outputs["commitMessage"] == (
        "Merged 2 YAML files to out/m.yaml\n- base.yaml\n- over.yaml"
    )
    with pytest.raises(StepError, match="not found"):
        run(ctx, "yaml-merge", {"inFiles": ["missing.yaml"], "outFile": "x.yaml"})

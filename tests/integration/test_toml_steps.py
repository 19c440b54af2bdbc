"""toml-parse and toml-update run in a real work directory, the way the engine runs them."""

from pathlib import Path

import pytest

from stages.steps import StepContext, StepError
from tests.integration.test_steps import make_ctx, run

CARGO = """\
# The package manifest.
[package]
name = "app"   # the crate
version = "1.0.0"
authors = ['A <a@example.com>']

[server]
host = 'localhost'
port = 8080
ratio = 0.5
tags = ["a", "b"]
svc = { name = "api", port = 8080 }
"dotted.key" = "x"
started = 1979-05-27T07:32:00Z

[[services]]
name = "api"

[[services]]
name = "web"
"""


@pytest.fixture
def ctx(tmp_path: Path) -> StepContext:
    return make_ctx(tmp_path)


def write(ctx: StepContext, name: str, text: str) -> Path:
    path = ctx.work_dir / name
    path.write_text(text)
    return path


def test_toml_parse_outputs_by_name(ctx):
    write(ctx, "Cargo.toml", CARGO)
    result = run(
        ctx,
        "toml-parse",
        {
            "path": "Cargo.toml",
            "outputs": [
                {"name": "version", "fromExpression": "package.version"},
                {"name": "port", "fromExpression": "server.port + 1"},
                {"name": "second", "fromExpression": "services[1].name"},
                {"name": "tags", "fromExpression": "server.tags"},
                {"name": "dotted", "fromExpression": 'server["dotted.key"]'},
                {"name": "started", "fromExpression": "server.started"},
            ],
        },
    )
    assert result.outputs == {
        "version": "1.0.0",
        "port": 8081,
        "second": "web",
        "tags": ["a", "b"],
        "dotted": "x",
        "started": "1979-05-27T07:32:00+00:00",
    }


@pytest.mark.parametrize(
    ("text", "fragment"),
    [("", "empty TOML file"), ("a = \n", "could not parse TOML file"), (None, "no such file")],
)
def test_toml_parse_refuses_bad_files(ctx, text, fragment):
    if text is not None:
        write(ctx, "c.toml", text)
    config = {"path": "c.toml", "outputs": [{"name": "x", "fromExpression": "a"}]}
    with pytest.raises(StepError, match=fragment):
        run(ctx, "toml-parse", config)


def test_toml_parse_bad_expression_is_an_error(ctx):
    write(ctx, "c.toml", "a = 1\n")
    with pytest.raises(StepError, match="failed to extract outputs"):
        run(
            ctx,
            "toml-parse",
            {"path": "c.toml", "outputs": [{"name": "x", "fromExpression": "a +"}]},
        )


def test_toml_parse_stays_in_the_work_dir(ctx, tmp_path):
    (tmp_path / "secret.toml").write_text("a = 1\n")
    (ctx.work_dir / "link.toml").symlink_to(tmp_path / "secret.toml")
    config = {"outputs": [{"name": "x", "fromExpression": "a"}]}
    for path in ("../secret.toml", "link.toml"):
        with pytest.raises(StepError, match="escapes"):
            run(ctx, "toml-parse", {"path": path, **config})


def test_toml_update_keeps_comments_order_and_quoting(ctx):
    path = write(ctx, "Cargo.toml", CARGO)
    result = run(
        ctx,
        "toml-update",
        {
            "path": "Cargo.toml",
            "updates": [
                {"key": "package.version", "value": "1.1.0"},
                {"key": "server.host", "value": "0.0.0.0"},
                {"key": "server.port", "value": 9090},
                {"key": "server.ratio", "value": 0.75},
                {"key": "server.tags.1", "value": "c"},
                {"key": "server.svc.port", "value": 9091},
                {"key": r"server.dotted\.key", "value": "y"},
                {"key": "services.1.name", "value": "www"},
                {"key": "server.started", "value": True},
            ],
        },
    )
    assert path.read_text() == (
        CARGO.replace('version = "1.0.0"', 'version = "1.1.0"')
        .replace("host = 'localhost'", "host = '0.0.0.0'")
        .replace("port = 8080\n", "port = 9090\n")
        .replace("ratio = 0.5", "ratio = 0.75")
        .replace('tags = ["a", "b"]', 'tags = ["a", "c"]')
        .replace("port = 8080 }", "port = 9091 }")
        .replace('"dotted.key" = "x"', '"dotted.key" = "y"')
        .replace('name = "web"', 'name = "www"')
        .replace("started = 1979-05-27T07:32:00Z", "started = true")
    )
    assert result.outputs["commitMessage"] == (
        "Updated Cargo.toml\n\n- package.version: '1.1.0'\n- server.host: '0.0.0.0'"
        "\n- server.port: 9090\n- server.ratio: 0.75\n- server.tags.1: 'c'"
        "\n- server.svc.port: 9091\n- server.dotted\\.key: 'y'\n- services.1.name: 'www'"
        "\n- server.started: true"
    )


def test_toml_update_string_quoting_follows_the_value(ctx):
    path = write(ctx, "c.toml", "a = 'x'\nb = 1\nc = \"q\"\n")
    run(
        ctx,
        "toml-update",
        {
            "path": "c.toml",
            "updates": [
                {"key": "a", "value": "it's"},
                {"key": "b", "value": "two"},
                {"key": "c", "value": 'say "hi"'},
            ],
        },
    )
    assert path.read_text() == 'a = "it\'s"\nb = \'two\'\nc = "say \\"hi\\""\n'


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("package.missing", "x", "key path not found"),
        ("package", "x", "addresses a table instead of a scalar"),
        ("server.tags", "x", "addresses an array instead of a scalar"),
        ("services", "x", "addresses an array instead of a scalar"),
        ("services.2.name", "x", "key path not found"),
        ("server.tags.x", "x", "key path not found"),
        ("package.version.x", "x", "key path not found"),
        ("package.version", ["1"], "not a TOML scalar"),
        ("package.version", None, "not a TOML scalar"),
        ("package.version", {"a": 1}, "not a TOML scalar"),
    ],
)
def test_toml_update_refusals_write_nothing(ctx, key, value, fragment):
    path = write(ctx, "Cargo.toml", CARGO)
    updates = [{"key": "server.port", "value": 1}, {"key": key, "value": value}]
    with pytest.raises(StepError, match=fragment):
        run(ctx, "toml-update", {"path": "Cargo.toml", "updates": updates})
    assert path.read_text() == CARGO


def test_toml_update_bad_or_missing_file(ctx, tmp_path):
    updates = [{"key": "a", "value": 1}]
    with pytest.raises(StepError, match="no such file"):
        run(ctx, "toml-update", {"path": "c.toml", "updates": updates})
    write(ctx, "c.toml", "a = \n")
    with pytest.raises(StepError, match="error parsing TOML"):
        run(ctx, "toml-update", {"path": "c.toml", "updates": updates})
    (tmp_path / "out.toml").write_text("a = 0\n")
    with pytest.raises(StepError, match="escapes"):
        run(ctx, "toml-update", {"path": "../out.toml", "updates": updates})
    assert (tmp_path / "out.toml").read_text() == "a = 0\n"

"""kargo's small helpers: RE2 regexes, YAML as the API server reads it, the subprocess runner."""

import pytest

from kargo import runner
from kargo.regex import RegexError, compile_regex
from kargo.yamlio import YAMLSyntaxError, load, load_all


def test_regexes_are_re2_and_cannot_run_away():
    # Under Python's re this takes longer than the test run; RE2 answers in linear time.
    assert compile_regex(r"^(a+)+$").search("a" * 100_000 + "!") is None
    assert compile_regex(r"^v\d+\.\d+$").search("v1.2")


@pytest.mark.parametrize("pattern", [r"(a)\1", r"(?<=a)b", "("])
def test_patterns_go_refuses_are_clear_errors(pattern):
    with pytest.raises(RegexError, match="invalid regular expression"):
        compile_regex(pattern)


def test_oversized_patterns_are_refused():
    with pytest.raises(RegexError, match="longer than"):
        compile_regex("a" * 5000)


def test_yaml_timestamps_stay_strings():
    doc = load("since: 2024-07-15T22:13:57Z\nday: 2024-07-15\n")
    assert doc == {"since": "2024-07-15T22:13:57Z", "day": "2024-07-15"}


def test_yaml_keys_become_json_strings():
    assert load("1: a\nfalse: b\n2.5: c\n") == {"1": "a", "false": "b", "2.5": "c"}


def test_yaml_keeps_yaml_1_1_booleans_as_the_api_server_does():
    assert load("a: yes\nb: off\n") == {"a": True, "b": False}


def test_yaml_syntax_errors_name_line_and_column():
    with pytest.raises(YAMLSyntaxError) as caught:
        load_all("a: 1\nb: [\n")
    assert caught.value.line == 3
    assert "invalid YAML" in str(caught.value)


def test_a_value_starting_with_an_exclamation_mark_says_to_quote_it():
    with pytest.raises(YAMLSyntaxError, match="quote the value"):
        load("expressionFilter: !(author contains 'bot')\n")
    assert load("expressionFilter: \"!(author contains 'bot')\"\n") == {
        "expressionFilter": "!(author contains 'bot')"
    }


def test_runner_returns_output_and_exit_code():
    done = runner.run(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (done.returncode, done.stdout, done.stderr) == (3, "out\n", "err\n")


def test_runner_reports_a_missing_program():
    with pytest.raises(runner.CommandError, match="not installed"):
        runner.run(["no-such-program-here"])


def test_runner_stops_the_whole_process_group_on_timeout():
    with pytest.raises(runner.CommandError, match="timed out"):
        runner.run(["sh", "-c", "sleep 30 & sleep 30"], timeout=0.2)


def test_runner_never_lets_git_prompt_or_use_exotic_transports(monkeypatch):
    monkeypatch.setenv("GIT_DIR", "/elsewhere")
    env = runner.tool_env()
    assert env["GIT_TERMINAL_PROMPT"] == "0"
    assert "ext" not in env["GIT_ALLOW_PROTOCOL"].split(":")
    assert "GIT_DIR" not in env


def test_runner_tail_masks_credentials():
    text = "line\n\nfatal: https://user:tok@example.com/x.git not found\n"
    assert runner.tail(text) == "line\nfatal: https://***@example.com/x.git not found"


def test_messages_never_show_the_servers_directories():
    from kargo.redaction import hide_paths

    message = "fatal: '/srv/kargo/var/work/p1/out/x.yaml' and /srv/kargo/var/git-cache/ab"
    shown = hide_paths(
        message, ("/srv/kargo/var/work/p1", "."), ("/srv/kargo/var", "$KARGO_DATA_DIR")
    )
    assert shown == "fatal: 'out/x.yaml' and $KARGO_DATA_DIR/git-cache/ab"

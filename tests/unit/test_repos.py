"""Local repositories are allowed only under the configured roots."""

import random
import re

import pytest

from kargo.redaction import redact, redact_values
from projects.repos import RepoNotAllowed, check_repo_url, repo_urls_in


def test_remote_urls_pass_and_local_ones_need_an_allowed_root(settings, tmp_path):
    settings.FILE_REPO_ROOTS = [str(tmp_path / "repos")]
    check_repo_url("https://github.com/example/repo.git")
    check_repo_url("git@github.com:example/repo.git")
    check_repo_url(f"file://{tmp_path}/repos/app.git")
    for url in (
        f"file://{tmp_path}/elsewhere.git",
        f"file://{tmp_path}/repos/../elsewhere.git",
        "/etc",
        "file:///",
    ):
        with pytest.raises(RepoNotAllowed, match="outside the directories this server allows"):
            check_repo_url(url)


def test_the_servers_own_mirrors_and_work_dirs_are_never_a_source(settings, tmp_path):
    settings.DATA_DIR = tmp_path
    settings.FILE_REPO_ROOTS = [str(tmp_path)]
    check_repo_url(f"file://{tmp_path}/repos/app.git")
    for private in ("git-cache/0a1b2c", "work/other-project/promo/.git-clones/repo-1"):
        with pytest.raises(RepoNotAllowed, match="private data"):
            check_repo_url(f"file://{tmp_path}/{private}")


def test_by_default_only_the_repos_dirs_are_allowed(settings, tmp_path):
    settings.DATA_DIR = tmp_path
    settings.FILE_REPO_ROOTS = []
    check_repo_url(f"file://{tmp_path}/repos/app.git")
    check_repo_url(f"file://{tmp_path}/demo/repos/app.git")
    with pytest.raises(RepoNotAllowed):
        check_repo_url(f"file://{tmp_path}/elsewhere/app.git")


def test_repo_urls_are_found_anywhere_in_a_config():
    config = {"repoURL": "a", "apps": [{"sources": [{"repoURL": "b"}]}], "other": "c"}
    assert repo_urls_in(config) == ["a", "b"]


def test_url_credentials_are_masked_everywhere_they_are_shown():
    assert (
        redact("clone https://bot:s3cr3t@git.example.com/a.git failed")
        == "clone https://***@git.example.com/a.git failed"
    )
    assert redact("https://user:p@ss@host/x") == "https://***@host/x"
    assert (
        redact("git@github.com:org/repo.git") == "git@github.com:org/repo.git"
    )  # scp-style user, no secret
    assert redact_values({"repoURL": "https://t0k3n@h/x", "n": [1, "ssh://u:p@h/y"]}) == {
        "repoURL": "https://***@h/x",
        "n": [1, "ssh://***@h/y"],
    }


def test_masking_a_huge_text_ends_and_masks_every_url():
    # Python's backtracking took seconds on 60k characters and minutes on 5 MB: RE2 is linear.
    text = "a" * 5_000_000 + " https://bot:tok@h/x " + "1" * 5_000_000 + "://u:p@h/y"
    masked = redact(text)
    assert masked == "a" * 5_000_000 + " https://***@h/x " + "1" * 5_000_000 + "://u:p@h/y"
    assert redact("x://" * 1_000_000) == "x://" * 1_000_000
    assert redact("https://" + "a@" * 1_000_000 + "/") == "https://***@/"


@pytest.mark.parametrize(
    "url, masked",
    [
        (
            "https://gitlab.example.com/api/v4/projects?private_token=glpat-abc&ref=main",
            "https://gitlab.example.com/api/v4/projects?private_token=***&ref=main",
        ),
        ("https://h/x?access_token=t0k#frag", "https://h/x?access_token=***#frag"),
        ("https://h/cb#access_token=t0k&state=1", "https://h/cb#access_token=***&state=1"),
        ("https://h/x?TOKEN=t0k", "https://h/x?TOKEN=***"),
        ("https://h/x?a=1&password=hunter2", "https://h/x?a=1&password=***"),
        ("https://h/x?client_secret=s", "https://h/x?client_secret=***"),
        ("https://h/x?api_key=k&apikey=k&key=k", "https://h/x?api_key=***&apikey=***&key=***"),
        (
            "https://b.s3.amazonaws.com/o?X-Amz-Credential=AK%2F1&X-Amz-Signature=beef"
            "&X-Amz-Security-Token=zz",
            "https://b.s3.amazonaws.com/o?X-Amz-Credential=***&X-Amz-Signature=***"
            "&X-Amz-Security-Token=***",
        ),
        (
            "https://acct.blob.core.windows.net/c?sv=2024&sig=abc%3D",
            "https://acct.blob.core.windows.net/c?sv=2024&sig=***",
        ),
        ('see "https://h/?token=abc" here', 'see "https://h/?token=***" here'),
        ("https://u:p@h/x?token=abc", "https://***@h/x?token=***"),
    ],
)
def test_secret_query_parameters_are_masked(url, masked):
    assert redact(url) == masked


@pytest.mark.parametrize(
    "text",
    [
        "https://h/x?tokens=1&monkey=2&keyboard=3&page=4",
        "https://h/x?token=",  # nothing to hide
        "a=b and token=c outside a query",
    ],
)
def test_ordinary_parameters_are_kept(text):
    assert redact(text) == text


def test_user_info_masking_is_the_former_rule_on_any_text():
    # The pattern that was replaced, on random texts made of the characters that matter to it:
    # the new one masks exactly the same spans (Python's \s included, which RE2's is not).
    former = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/\s]+@")
    pieces = ["a", "Z", "1", "+", ".", "-", ":", "/", "://", "@", " ", "\v", "\xa0", "\u2028", "é"]
    rng = random.Random(6)
    for _ in range(20_000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 16)))
        assert redact(text) == former.sub(r"\1***@", text), repr(text)

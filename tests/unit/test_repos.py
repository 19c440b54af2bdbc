"""Local repositories are allowed only under the configured roots."""

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

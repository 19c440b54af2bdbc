"""Webhook receivers (freight.webhooks): each sender's proof, checked on the raw body, and what
its payload asks to refresh. Payloads are shaped like the senders' own (their docs' examples and
Kargo's test fixtures in pkg/webhook/external/*_test.go), trimmed to the fields that matter plus
a few that do not."""

import hashlib
import hmac
import json

import pytest

from freight.webhooks import (
    MAX_JSON_DEPTH,
    Delivery,
    Target,
    WebhookError,
    parse_delivery,
    plan_generic,
    receiver_details,
    receiver_path,
    should_refresh,
)
from kargo.specs import WarehouseSpec
from kargo.specs.project import WebhookReceiver

SECRET = "s3cr3t-token-value"


def receiver(kind: str, **extra) -> WebhookReceiver:
    return WebhookReceiver.model_validate(
        {"name": f"my-{kind}", kind: {"secretRef": {"name": "wh-secret"}, **extra}}
    )


def body_of(payload) -> bytes:
    return json.dumps(payload).encode()


def hub(body: bytes, secret: str = SECRET, algorithm: str = "sha256") -> str:
    return f"{algorithm}=" + hmac.new(secret.encode(), body, algorithm).hexdigest()


def bare(body: bytes, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), body, "sha256").hexdigest()


def deliver(
    kind: str, payload, headers=None, secret: str = SECRET, raw: bytes | None = None, **cfg
):
    body = raw if raw is not None else body_of(payload)
    return parse_delivery(receiver(kind, **cfg), Delivery(headers or {}, body), secret)


def refused(kind, payload, headers=None, raw=None, **cfg) -> WebhookError:
    with pytest.raises(WebhookError) as caught:
        deliver(kind, payload, headers, raw=raw, **cfg)
    return caught.value


GITHUB_PUSH = {
    "ref": "refs/heads/main",
    "before": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
    "after": "0000000000000000000000000000000000000000",
    "repository": {
        "id": 186853002,
        "full_name": "example-org/guestbook",
        "html_url": "https://github.com/example-org/guestbook",
        "clone_url": "https://github.com/Example-Org/guestbook.git",
        "ssh_url": "git@github.com:Example-Org/guestbook.git",
        "default_branch": "main",
    },
    "pusher": {"name": "octocat", "email": "octocat@github.com"},
    "commits": [
        {
            "id": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
            "message": "Update README.md",
            "added": [],
            "removed": [],
            "modified": ["README.md"],
        }
    ],
    "head_commit": {
        "id": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
        "added": ["apps/guestbook/values.yaml"],
        "removed": [],
        "modified": [],
    },
}


def github_headers(body: bytes, event: str = "push") -> dict:
    return {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
        "X-Hub-Signature-256": hub(body),
        "User-Agent": "GitHub-Hookshot/044aadd",
    }


# -- paths ------------------------------------------------------------------------------------


def test_the_path_is_kargos_hash_of_project_receiver_name_and_secret():
    digest = hashlib.sha256(b"kargo-demo" + b"my-github" + SECRET.encode()).hexdigest()
    assert receiver_path("kargo-demo", "github", "my-github", SECRET) == f"/webhook/github/{digest}"
    # The secret is in the hash: rotating it moves the URL.
    assert (
        receiver_path("kargo-demo", "github", "my-github", "other") != f"/webhook/github/{digest}"
    )


def test_details_put_the_path_under_the_public_url():
    details = receiver_details(
        "kargo-demo", receiver("gitlab"), SECRET, "https://kargo.example.com/ci/"
    )
    assert details["name"] == "my-gitlab"
    assert details["path"].startswith("/ci/webhook/gitlab/")
    assert details["url"] == "https://kargo.example.com" + details["path"]
    assert SECRET not in json.dumps(details)


# -- GitHub -----------------------------------------------------------------------------------


def test_a_signed_github_push_names_both_clone_urls_the_ref_and_changed_files():
    body = body_of(GITHUB_PUSH)
    event = deliver("github", None, github_headers(body), raw=body)
    assert event.action == "refresh"
    assert event.repo_urls == (
        "git@github.com:Example-Org/guestbook.git",  # ssh URLs are not normalised (Kargo)
        "https://github.com/example-org/guestbook",
    )
    assert event.qualifiers == ("refs/heads/main",)
    assert event.changed_files == ("README.md", "apps/guestbook/values.yaml")


@pytest.mark.parametrize(
    "signature",
    [
        None,
        "",
        "sha256=" + "0" * 64,
        "sha256=deadbeef",
        "md5=" + "0" * 32,
        "sha256",
    ],
)
def test_a_github_delivery_without_the_right_signature_is_401(signature):
    body = body_of(GITHUB_PUSH)
    headers = github_headers(body)
    if signature is None:
        del headers["X-Hub-Signature-256"]
    else:
        headers["X-Hub-Signature-256"] = signature
    error = refused("github", None, headers, raw=body)
    assert error.status == 401
    assert SECRET not in error.message


def test_a_github_signature_over_other_bytes_or_with_another_secret_is_401():
    body = body_of(GITHUB_PUSH)
    headers = github_headers(body)
    # Same JSON, different bytes (whitespace): the signature covers the raw body.
    assert (
        refused("github", None, headers, raw=json.dumps(GITHUB_PUSH, indent=1).encode()).status
        == 401
    )
    headers["X-Hub-Signature-256"] = hub(body, secret="not-the-secret")
    assert refused("github", None, headers, raw=body).status == 401


def test_a_github_signature_in_sha1_is_accepted_as_go_github_does():
    body = body_of(GITHUB_PUSH)
    headers = {**github_headers(body), "X-Hub-Signature-256": hub(body, algorithm="sha1")}
    assert deliver("github", None, headers, raw=body).action == "refresh"


def test_github_ping_answers_without_refreshing():
    ping = {"zen": "Keep it logically awesome.", "hook_id": 1, "hook": {"type": "Repository"}}
    body = body_of(ping)
    event = deliver("github", None, github_headers(body, "ping"), raw=body)
    assert event.action == "reply"
    assert "configured correctly" in event.message


def test_unsupported_github_events_and_bad_json_are_400_after_the_signature():
    body = b'{"action": "created"}'
    error = refused("github", None, github_headers(body, "issues"), raw=body)
    assert (error.status, error.message) == (400, "event type 'issues' is not supported")
    body = b'{"ref": "refs/heads/main",'
    error = refused("github", None, github_headers(body), raw=body)
    assert error.status == 400
    assert error.message.startswith("invalid request body")
    body = b"[]"
    assert refused("github", None, github_headers(body), raw=body).status == 400
    deep = b"[" * (MAX_JSON_DEPTH + 5) + b"]" * (MAX_JSON_DEPTH + 5)
    assert refused("github", None, github_headers(deep), raw=deep).status == 400


def test_a_huge_push_has_no_path_filter():
    payload = {**GITHUB_PUSH, "commits": [{"modified": [f"f{i}"]} for i in range(2048)]}
    body = body_of(payload)
    assert deliver("github", None, github_headers(body), raw=body).changed_files is None


GITHUB_PACKAGE = {
    "action": "published",
    "package": {
        "id": 1,
        "name": "guestbook",
        "package_type": "CONTAINER",
        "package_version": {
            "id": 2,
            "version": "sha256:4d3a0b1c",
            "package_url": "ghcr.io/example-org/guestbook:v1.2.0",
            "container_metadata": {
                "tag": {"name": "v1.2.0", "digest": "sha256:4d3a0b1c"},
                "manifest": {"config": {"media_type": "application/vnd.oci.image.config.v1+json"}},
            },
        },
    },
    "repository": {"full_name": "example-org/guestbook"},
}


@pytest.mark.parametrize("event", ["package", "registry_package"])
def test_a_github_package_event_names_the_image_repository_and_tag(event):
    payload = dict(GITHUB_PACKAGE)
    if event == "registry_package":
        payload["registry_package"] = payload.pop("package")
        payload["registry_package"]["package_version"]["package_url"] = (
            "ghcr.io/example-org/guestbook:"
        )
    body = body_of(payload)
    got = deliver("github", None, github_headers(body, event), raw=body)
    assert got.repo_urls == ("ghcr.io/example-org/guestbook",)
    assert got.qualifiers == ("v1.2.0",)


def test_a_github_package_deleted_or_of_another_type_is_ignored():
    body = body_of({**GITHUB_PACKAGE, "action": "deleted"})
    assert deliver("github", None, github_headers(body, "package"), raw=body).action == "reply"
    npm = json.loads(json.dumps(GITHUB_PACKAGE))
    npm["package"]["package_type"] = "npm"
    body = body_of(npm)
    assert deliver("github", None, github_headers(body, "package"), raw=body).action == "reply"


# -- GitLab, Bitbucket, Gitea ------------------------------------------------------------------

GITLAB_PUSH = {
    "object_kind": "push",
    "ref": "refs/heads/main",
    "checkout_sha": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
    "project": {"path_with_namespace": "mike/diaspora"},
    "repository": {
        "name": "Diaspora",
        "git_http_url": "https://gitlab.example.com/mike/diaspora.git",
        "git_ssh_url": "git@gitlab.example.com:mike/diaspora.git",
    },
    "commits": [
        {"id": "b6568db1", "added": ["CHANGELOG"], "modified": ["app/controller.rb"], "removed": []}
    ],
    "total_commits_count": 1,
}


def test_gitlab_compares_its_token_and_reads_the_push():
    headers = {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": SECRET}
    event = deliver("gitlab", GITLAB_PUSH, headers)
    assert "https://gitlab.example.com/mike/diaspora" in event.repo_urls
    assert event.changed_files == ("CHANGELOG", "app/controller.rb")
    for token in ("", "wrong", SECRET + "x"):
        assert refused("gitlab", GITLAB_PUSH, {**headers, "X-Gitlab-Token": token}).status == 401
    truncated = {**GITLAB_PUSH, "total_commits_count": 40}
    assert deliver("gitlab", truncated, headers).changed_files is None
    tag = {**GITLAB_PUSH, "object_kind": "tag_push", "ref": "refs/tags/v1.0.0"}
    event = deliver("gitlab", tag, {**headers, "X-Gitlab-Event": "Tag Push Hook"})
    assert (event.qualifiers, event.changed_files) == (("refs/tags/v1.0.0",), None)


BITBUCKET_PUSH = {
    "actor": {"display_name": "Alice"},
    "repository": {
        "full_name": "team/guestbook",
        "links": {"html": {"href": "https://bitbucket.org/team/guestbook"}},
    },
    "push": {
        "changes": [
            {"new": {"type": "branch", "name": "main"}, "old": {"type": "branch", "name": "main"}},
            {"new": {"type": "tag", "name": "v1.0.0"}},
            {"new": None, "old": {"type": "branch", "name": "gone"}},
        ]
    },
}


def test_bitbucket_cloud_push_is_signed_with_x_hub_signature():
    body = body_of(BITBUCKET_PUSH)
    headers = {"X-Event-Key": "repo:push", "X-Hub-Signature": hub(body)}
    event = deliver("bitbucket", None, headers, raw=body)
    assert event.repo_urls == ("https://bitbucket.org/team/guestbook",)
    assert event.qualifiers == ("refs/heads/main", "refs/tags/v1.0.0")
    assert refused("bitbucket", None, {"X-Event-Key": "repo:push"}, raw=body).status == 401


def test_bitbucket_data_center_refs_changed_uses_the_clone_links():
    payload = {
        "eventKey": "repo:refs_changed",
        "repository": {
            "links": {
                "clone": [
                    {"href": "https://bitbucket.example.com/scm/prj/repo.git", "name": "http"},
                    {"href": "ssh://git@bitbucket.example.com:7999/prj/repo.git", "name": "ssh"},
                ]
            }
        },
        "changes": [{"ref": {"id": "refs/heads/main", "type": "BRANCH"}, "type": "UPDATE"}],
    }
    body = body_of(payload)
    headers = {"X-Event-Key": "repo:refs_changed", "X-Hub-Signature": hub(body)}
    event = deliver("bitbucket", None, headers, raw=body)
    assert "https://bitbucket.example.com/scm/prj/repo" in event.repo_urls
    assert event.qualifiers == ("refs/heads/main",)


GITEA_PUSH = {
    "ref": "refs/heads/develop",
    "repository": {"clone_url": "https://gitea.example.com/org/app.git", "full_name": "org/app"},
    "commits": [{"id": "abc", "added": ["a"], "modified": [], "removed": ["b"]}],
    "total_commits": 1,
}


def test_gitea_accepts_either_of_its_signature_headers():
    body = body_of(GITEA_PUSH)
    for signature in ({"X-Hub-Signature-256": hub(body)}, {"X-Gitea-Signature": bare(body)}):
        event = deliver("gitea", None, {"X-Gitea-Event": "push", **signature}, raw=body)
        assert event.repo_urls == ("https://gitea.example.com/org/app",)
        assert event.changed_files == ("a", "b")
    assert refused("gitea", None, {"X-Gitea-Event": "push"}, raw=body).status == 401
    wrong = {"X-Gitea-Event": "push", "X-Gitea-Signature": bare(body, "nope")}
    assert refused("gitea", None, wrong, raw=body).status == 401


# -- registries -------------------------------------------------------------------------------


def test_docker_hub_needs_nothing_but_the_path_and_normalises_library_images():
    payload = {
        "callback_url": "https://registry.hub.docker.com/u/svendowideit/testhook/hook/2141b5bi5i5b02bec211i4eeih0242eg11000a/",
        "push_data": {
            "pushed_at": 1417566161,
            "pusher": "trustedbuilder",
            "tag": "1.27.2",
            "media_type": "application/vnd.docker.distribution.manifest.list.v2+json",
        },
        "repository": {"repo_name": "library/nginx", "namespace": "library", "name": "nginx"},
    }
    event = deliver("dockerhub", payload)
    assert (event.repo_urls, event.qualifiers) == (("nginx",), ("1.27.2",))


def test_harbor_compares_the_authorization_header():
    payload = {
        "type": "PUSH_ARTIFACT",
        "occur_at": 1680501893,
        "operator": "harbor-jobservice",
        "event_data": {
            "resources": [
                {
                    "digest": "sha256:954b3",
                    "tag": "v1.0.0",
                    "resource_url": "harbor.example.com/library/alpine:v1.0.0",
                }
            ],
            "repository": {"name": "alpine", "namespace": "library"},
        },
    }
    event = deliver("harbor", payload, {"Authorization": SECRET})
    assert "harbor.example.com/library/alpine" in event.repo_urls
    assert event.qualifiers == ("v1.0.0",)
    error = refused("harbor", payload, {})
    assert (error.status, error.message) == (401, "missing authorization")
    assert refused("harbor", payload, {"Authorization": "Bearer x"}).status == 401
    other = {**payload, "type": "DELETE_ARTIFACT"}
    assert refused("harbor", other, {"Authorization": SECRET}).status == 400


def test_quay_reads_the_docker_url_and_updated_tags():
    payload = {
        "name": "repository",
        "repository": "mynamespace/repository",
        "namespace": "mynamespace",
        "docker_url": "quay.io/mynamespace/repository",
        "homepage": "https://quay.io/repository/mynamespace/repository",
        "updated_tags": ["latest", "v2.0.0"],
    }
    event = deliver("quay", payload)
    assert event.repo_urls == ("quay.io/mynamespace/repository",)
    assert event.qualifiers == ("latest", "v2.0.0")


ARTIFACTORY_PUSH = {
    "domain": "docker",
    "event_type": "pushed",
    "data": {
        "repo_key": "test-repo",
        "path": "foo/test-image/v1.0.0/manifest.json",
        "name": "manifest.json",
        "sha256": "35605",
        "size": 1201,
        "image_name": "test-image",
        "tag": "v1.0.0",
        "image_type": "docker",
    },
    "subscription_key": "test-sub",
    "jpd_origin": "https://artifactory.example.com",
    "source": "jfrog/user@example.com",
}


def test_artifactory_signs_with_a_bare_hmac_and_builds_the_repository_url():
    body = body_of(ARTIFACTORY_PUSH)
    event = deliver("artifactory", None, {"X-JFrog-Event-Auth": bare(body)}, raw=body)
    assert event.repo_urls == ("artifactory.example.com/test-repo/foo/test-image",)
    virtual = deliver(
        "artifactory", None, {"X-JFrog-Event-Auth": bare(body)}, raw=body, virtualRepoName="virt"
    )
    assert virtual.repo_urls == ("artifactory.example.com/virt/foo/test-image",)
    error = refused("artifactory", None, {}, raw=body)
    assert error.status == 401
    assert refused("artifactory", None, {"X-JFrog-Event-Auth": hub(body)}, raw=body).status == 401
    short = {**ARTIFACTORY_PUSH, "data": {**ARTIFACTORY_PUSH["data"], "path": "invalidpath"}}
    body = body_of(short)
    error = refused("artifactory", None, {"X-JFrog-Event-Auth": bare(body)}, raw=body)
    assert (error.status, error.message) == (
        400,
        "invalid value 'invalidpath' in payload's data.path field",
    )


def test_azure_tells_registry_from_devops_by_user_agent():
    acr = {
        "id": "cb8c3971-9adc-488b-bdd8-43cbb4974ff5",
        "action": "push",
        "target": {
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "repository": "guestbook",
            "tag": "v1.0.0",
        },
        "request": {"host": "fakeregistry.azurecr.io", "method": "PUT"},
    }
    agent = {"User-Agent": "AzureContainerRegistry/1.0"}
    event = deliver("azure", acr, agent)
    assert (event.repo_urls, event.qualifiers) == (
        ("fakeregistry.azurecr.io/guestbook",),
        ("v1.0.0",),
    )
    assert deliver("azure", {"action": "ping"}, agent).action == "reply"
    devops = {
        "eventType": "git.push",
        "resource": {
            "refUpdates": [{"name": "refs/heads/main", "oldObjectId": "aad", "newObjectId": "bbe"}],
            "repository": {"remoteUrl": "https://dev.azure.com/testorg/testproject/_git/testrepo"},
        },
    }
    event = deliver("azure", devops, {"User-Agent": "VSServices/16.255.35023.1"})
    assert event.repo_urls == ("https://dev.azure.com/testorg/testproject/_git/testrepo",)
    assert refused("azure", devops, {"User-Agent": "curl/8"}).status == 400


# -- which Warehouses ---------------------------------------------------------------------------


def spec(*subscriptions) -> WarehouseSpec:
    return WarehouseSpec.model_validate({"subscriptions": list(subscriptions)})


def github_event(ref="refs/heads/main", files=None):
    payload = {**GITHUB_PUSH, "ref": ref}
    if files is not None:
        payload["commits"], payload["head_commit"] = [{"modified": files}], None
    body = body_of(payload)
    return deliver("github", None, github_headers(body), raw=body)


def test_a_push_refreshes_a_branch_subscription_only_for_its_branch():
    default = spec({"git": {"repoURL": "https://github.com/example-org/guestbook.git/"}})
    assert should_refresh(default, github_event("refs/heads/main"))
    assert should_refresh(default, github_event("refs/heads/master"))
    assert not should_refresh(default, github_event("refs/heads/feature"))
    assert not should_refresh(default, github_event("refs/tags/v1.0.0"))
    dev = spec({"git": {"repoURL": "https://github.com/example-org/guestbook", "branch": "dev"}})
    assert should_refresh(dev, github_event("refs/heads/dev"))
    other = spec({"git": {"repoURL": "https://github.com/example-org/other"}})
    assert not should_refresh(other, github_event())


def test_a_tag_push_refreshes_tag_subscriptions_whose_filters_take_it():
    semver = spec(
        {
            "git": {
                "repoURL": "https://github.com/example-org/guestbook",
                "commitSelectionStrategy": "SemVer",
                "semverConstraint": "^1.0.0",
            }
        }
    )
    assert should_refresh(semver, github_event("refs/tags/v1.2.0"))
    assert not should_refresh(semver, github_event("refs/tags/v2.0.0"))
    assert not should_refresh(semver, github_event("refs/tags/nightly"))
    lexical = spec(
        {
            "git": {
                "repoURL": "https://github.com/example-org/guestbook",
                "commitSelectionStrategy": "Lexical",
                "ignoreTagsRegexes": ["^nightly"],
            }
        }
    )
    assert should_refresh(lexical, github_event("refs/tags/release-b"))
    assert not should_refresh(lexical, github_event("refs/tags/nightly-1"))


def test_path_filters_apply_to_the_changed_files():
    charts_only = spec(
        {"git": {"repoURL": "https://github.com/example-org/guestbook", "includePaths": ["charts"]}}
    )
    assert should_refresh(charts_only, github_event(files=["charts/app/values.yaml"]))
    assert not should_refresh(charts_only, github_event(files=["docs/README.md"]))


def test_image_and_chart_subscriptions_match_tags_and_versions():
    image = spec({"image": {"repoURL": "ghcr.io/example-org/guestbook", "constraint": "^1.0.0"}})
    body = body_of(GITHUB_PACKAGE)
    event = deliver("github", None, github_headers(body, "package"), raw=body)
    assert should_refresh(image, event)
    newer = spec({"image": {"repoURL": "ghcr.io/example-org/guestbook", "constraint": "^2.0.0"}})
    assert not should_refresh(newer, event)
    digest = spec(
        {
            "image": {
                "repoURL": "ghcr.io/example-org/guestbook",
                "imageSelectionStrategy": "Digest",
                "constraint": "v1.2.0",
            }
        }
    )
    assert should_refresh(digest, event)
    chart = spec({"chart": {"repoURL": "oci://harbor.example.com/library/alpine"}})
    harbor_push = {
        "type": "PUSH_ARTIFACT",
        "event_data": {
            "resources": [
                {"tag": "0.3.1", "resource_url": "harbor.example.com/library/alpine:0.3.1"}
            ]
        },
    }
    assert should_refresh(chart, deliver("harbor", harbor_push, {"Authorization": SECRET}))


# -- generic ---------------------------------------------------------------------------------


def test_the_generic_receiver_runs_its_actions_over_the_request():
    cfg = {
        "actions": [
            {
                "action": "Refresh",
                "whenExpression": "request.header('X-Event') == 'build' && request.body.ok",
                "parameters": {"repo": "https://github.com/example-org/guestbook"},
                "targetSelectionCriteria": [
                    {
                        "kind": "Warehouse",
                        "indexSelector": {
                            "matchIndices": [
                                {
                                    "key": "subscribedURLs",
                                    "operator": "Equals",
                                    "value": "${{ normalizeGit(params.repo) }}",
                                }
                            ]
                        },
                    },
                    {"kind": "Warehouse", "name": "${{ request.body.warehouse }}"},
                ],
            },
            {
                "action": "Refresh",
                "whenExpression": "false",
                "targetSelectionCriteria": [{"kind": "Warehouse", "name": "a"}],
            },
            {
                "action": "Refresh",
                "whenExpression": "1 +",
                "targetSelectionCriteria": [{"kind": "Warehouse", "name": "a"}],
            },
        ]
    }
    rcv = receiver("generic", **cfg)
    body = body_of({"ok": True, "warehouse": "named"})
    event = parse_delivery(rcv, Delivery({"X-Event": "build"}, body), SECRET)
    targets = [
        Target(
            1,
            "subscribed",
            {},
            spec({"git": {"repoURL": "https://github.com/Example-Org/guestbook.git"}}),
        ),
        Target(2, "named", {}, spec({"git": {"repoURL": "https://github.com/x/y"}})),
        Target(3, "other", {}, spec({"git": {"repoURL": "https://github.com/x/z"}})),
    ]
    planned = plan_generic(rcv.generic.actions, targets, event.env)
    (first, chosen), (second, none), (third, broken) = planned
    assert first["matchedWhenExpression"] is True
    assert [t.name for t in chosen] == ["named", "subscribed"]
    assert (second["result"], none) == ("NotApplicable", [])
    assert third["result"] == "Error" and broken == []

"""Kargo's credential Secrets and ConfigMaps as apply reads them (kargo.specs.core): what is
accepted, what is refused, and that no error ever quotes a value."""

import base64

import pytest

from kargo.specs.core import core_kind, validate_core

PASSWORD = "s3cr3t-Pa55word"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def secret(cred_type="git", data=None, string_data=None, **extra):
    doc = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "repo-creds",
            "namespace": "kargo-demo",
            "labels": {"kargo.akuity.io/cred-type": cred_type},
        },
        **extra,
    }
    if data is not None:
        doc["data"] = data
    if string_data is not None:
        doc["stringData"] = string_data
    return doc


def errors_of(doc) -> list[str]:
    return [str(e) for e in validate_core(doc)[1]]


def test_a_git_credential_in_data_is_decoded():
    obj, errors = validate_core(
        secret(
            data={
                "repoURL": b64("https://git.example.com/org/repo.git"),
                "username": b64("bot"),
                "password": b64(PASSWORD),
            }
        )
    )
    assert errors == []
    assert obj.cred_type == "git"
    assert obj.data == {
        "repoURL": "https://git.example.com/org/repo.git",
        "username": "bot",
        "password": PASSWORD,
    }


def test_string_data_wins_over_data_as_the_api_server_merges_them():
    obj, errors = validate_core(
        secret(
            data={"repoURL": b64("https://a.example.com/x"), "username": b64("old")},
            string_data={"username": "new", "password": PASSWORD, "repoURLIsRegex": "false"},
        )
    )
    assert errors == []
    assert obj.data["username"] == "new"


def test_a_secret_without_the_cred_type_label_is_refused():
    doc = secret(string_data={"token": PASSWORD})
    del doc["metadata"]["labels"]
    assert errors_of(doc) == [
        "metadata.labels.kargo.akuity.io/cred-type: required: this server stores only Kargo "
        "credentials (git, helm, image, generic)"
    ]


def test_an_unknown_cred_type_is_refused():
    assert errors_of(secret("ssh", string_data={"a": "b"})) == [
        "metadata.labels.kargo.akuity.io/cred-type: must be one of git, helm, image, generic"
    ]


def test_other_keys_in_a_repository_credential_are_refused_without_quoting_them():
    errors = errors_of(
        secret(
            "image",
            string_data={
                "repoURL": "ghcr.io/org/app",
                "username": "u",
                "password": PASSWORD,
                "sshPrivateKey": "-----BEGIN KEY-----" + PASSWORD,
            },
        )
    )
    assert len(errors) == 1 and errors[0].startswith("data.sshPrivateKey: not supported")
    assert PASSWORD not in " ".join(errors)


def test_a_repository_credential_needs_url_username_and_password():
    assert errors_of(secret("helm", string_data={"repoURL": "oci://ghcr.io/x"})) == [
        "data.username: required in a repository credential",
        "data.password: required in a repository credential",
    ]


def test_a_bad_regex_is_refused_with_its_field():
    errors = errors_of(
        secret(
            string_data={
                "repoURL": "^https://(unclosed",
                "repoURLIsRegex": "true",
                "username": "u",
                "password": PASSWORD,
            }
        )
    )
    assert len(errors) == 1 and errors[0].startswith("data.repoURL: invalid regular expression")


def test_repo_url_is_regex_must_be_true_or_false():
    errors = errors_of(
        secret(
            string_data={"repoURL": "x", "repoURLIsRegex": "yes", "username": "u", "password": "p"}
        )
    )
    assert errors == ["data.repoURLIsRegex: must be one of true, false"]


def test_bad_base64_names_the_key_not_the_value():
    errors = errors_of(secret("generic", data={"token": "not base64!" + PASSWORD}))
    assert errors == ["data.token: must be base64 of UTF-8 text"]


def test_the_mask_an_export_prints_is_not_a_value():
    errors = errors_of(secret("generic", string_data={"token": "***"}))
    assert errors == [
        "data.token: holds the mask an export prints, not a value: give the real value"
    ]


def test_generic_secrets_hold_any_keys():
    obj, errors = validate_core(secret("generic", string_data={"api-key": PASSWORD, "x.y_z": "1"}))
    assert errors == [] and obj.data == {"api-key": PASSWORD, "x.y_z": "1"}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"type": "kubernetes.io/dockerconfigjson"}, "type: must be Opaque"),
        ({"spec": {}}, "spec: unknown field"),
        (
            {"metadata": {"name": "Bad_Name", "labels": {"kargo.akuity.io/cred-type": "generic"}}},
            "metadata.name: must be",
        ),
        (
            {
                "metadata": {
                    "name": "x",
                    "ownerReferences": [],
                    "labels": {"kargo.akuity.io/cred-type": "generic"},
                }
            },
            "metadata.ownerReferences: unknown field",
        ),
    ],
)
def test_anything_else_in_a_secret_is_refused(change, expected):
    doc = {**secret("generic", string_data={"a": "b"}), **change}
    assert any(e.startswith(expected) for e in errors_of(doc)), errors_of(doc)


def test_configmaps_hold_string_data():
    obj, errors = validate_core(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "settings"},
            "data": {"env": "prod"},
        }
    )
    assert errors == [] and obj.data == {"env": "prod"}
    assert errors_of(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "s"}, "data": {"n": 1}}
    ) == ["data.n: must be a string"]


def test_other_v1_kinds_are_refused():
    assert errors_of({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}) == [
        "kind: must be one of Secret, ConfigMap for apiVersion v1"
    ]


def test_kind_names_the_cli_accepts():
    assert core_kind("credentials") == core_kind("repo-credentials") == "Secret"
    assert core_kind("cm") == "ConfigMap"
    assert core_kind("stages") is None

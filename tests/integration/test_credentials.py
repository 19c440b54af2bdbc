"""The credentials store against the database: apply of Kargo's credential Secrets and
ConfigMaps, encryption at rest and key rotation, Kargo's matching order (exact before regex,
project before shared, name order), generic Secrets, and exports that never carry a value."""

import base64
import io
import textwrap

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command
from django.db import connection

from kargo.expressions import ExpressionError, evaluate_template
from kargo_ui import manifests
from projects import credentials
from projects.actions import do_create_project, do_save_credential
from projects.credentials import config_map, generic, lookup
from projects.models import ConfigMap, Credential, Event

PASSWORD = "pa55-Word-7f3a9c"
pytestmark = pytest.mark.django_db


@pytest.fixture
def project():
    return do_create_project("shop", "test")


def apply(text: str, project: str = "") -> list[str]:
    return manifests.apply_text(textwrap.dedent(text), "creds.yaml", "test", project)


def kargo(*args, stdin: str | None = None) -> str:
    out = io.StringIO()
    call_command("kargo", *args, stdout=out)
    return out.getvalue()


def repo_cred(name, url, *, cred_type="git", regex=False, password=PASSWORD, namespace="shop"):
    return f"""
    apiVersion: v1
    kind: Secret
    metadata:
      name: {name}
      namespace: {namespace}
      labels:
        kargo.akuity.io/cred-type: {cred_type}
    stringData:
      repoURL: '{url}'
      repoURLIsRegex: "{str(regex).lower()}"
      username: bot-{name}
      password: {password}
    """


def test_apply_stores_a_git_credential_encrypted(project):
    encoded = base64.b64encode(PASSWORD.encode()).decode()
    results = apply(
        f"""
        apiVersion: v1
        kind: Secret
        metadata:
          name: gitops
          namespace: shop
          labels:
            kargo.akuity.io/cred-type: git
        data:
          repoURL: {base64.b64encode(b"https://git.example.com/org/gitops.git").decode()}
          username: {base64.b64encode(b"bot").decode()}
          password: {encoded}
        """
    )
    assert results == ["secret/gitops created"]
    row = Credential.objects.get(name="gitops")
    assert row.project == project and row.cred_type == "git"
    assert row.repo_url == "https://git.example.com/org/gitops.git"
    with connection.cursor() as cursor:
        cursor.execute("SELECT sealed, keys FROM projects_credential")
        stored = " ".join(map(str, cursor.fetchone()))
    assert PASSWORD not in stored and encoded not in stored
    assert lookup(project.id, "git", "https://GIT.example.com/org/gitops") == ("bot", PASSWORD)
    # Applying the same again changes nothing; the audit trail names keys, never values.
    assert apply(repo_cred("gitops", "https://git.example.com/org/gitops.git")) == [
        "secret/gitops configured"
    ]
    events = Event.objects.filter(involved="Secret/gitops")
    assert [e.reason for e in events] == ["CredentialUpdated", "CredentialCreated"]
    assert all(PASSWORD not in f"{e.message}{e.before}{e.after}" for e in events)


def test_a_bad_secret_is_refused_with_document_and_field_and_no_value(project):
    with pytest.raises(manifests.ManifestError) as caught:
        apply(
            f"""
            apiVersion: v1
            kind: Secret
            metadata: {{name: bad, namespace: shop, labels: {{kargo.akuity.io/cred-type: git}}}}
            stringData: {{repoURL: x, username: u, password: {PASSWORD}, githubAppID: "1"}}
            """
        )
    (error,) = caught.value.errors
    assert error.startswith("creds.yaml: document 1 (Secret/bad): data.githubAppID: not supported")
    assert PASSWORD not in error
    assert not Credential.objects.exists()


def test_a_secret_for_a_missing_project_is_refused(project):
    with pytest.raises(manifests.ManifestError) as caught:
        apply(repo_cred("x", "https://a.example.com/r", namespace="nowhere"))
    assert "metadata.namespace: project 'nowhere' does not exist" in caught.value.errors[0]


def test_matching_follows_kargos_order(project):
    other = do_create_project("other", "test")
    apply(
        repo_cred("a-regex", r"^https://git\.example\.com/", regex=True)
        + "---"
        + repo_cred("z-exact", "https://git.example.com/org/app.git")
        + "---"
        + repo_cred(
            "b-shared", "https://git.example.com/org/app", namespace="kargo-shared-resources"
        )
        + "---"
        + repo_cred("c-shared-regex", "example", regex=True, namespace="kargo-shared-resources")
    )
    # Exact before regex, though the regex comes first by name.
    assert lookup(project.id, "git", "https://git.example.com/org/app") == ("bot-z-exact", PASSWORD)
    # The project's regex before a shared exact match.
    assert lookup(project.id, "git", "https://git.example.com/org/other")[0] == "bot-a-regex"
    # Another project sees only the shared ones: exact first.
    assert lookup(other.id, "git", "https://git.example.com/org/app.git")[0] == "bot-b-shared"
    assert lookup(other.id, "git", "https://example.org/x")[0] == "bot-c-shared-regex"
    assert lookup(other.id, "git", "https://nothing.test/x") is None
    # Types are separate.
    assert lookup(project.id, "helm", "https://git.example.com/org/app") is None


def test_credentials_are_not_sent_over_plain_http_off_this_machine(project, settings):
    apply(
        repo_cred("plain", "http://git.example.com/org/app")
        + "---"
        + repo_cred("local", "http://127.0.0.1:8080/r")
    )
    assert lookup(project.id, "git", "http://git.example.com/org/app") is None
    assert lookup(project.id, "git", "http://127.0.0.1:8080/r")[0] == "bot-local"
    settings.CREDENTIALS_OVER_HTTP = True
    assert lookup(project.id, "git", "http://git.example.com/org/app")[0] == "bot-plain"


def test_image_and_helm_urls_are_normalised_as_kargo_does(project):
    apply(
        repo_cred("hub", "docker.io/library/nginx", cred_type="image")
        + "---"
        + repo_cred("charts", "oci://GHCR.io/org/charts", cred_type="helm")
    )
    assert lookup(project.id, "image", "nginx")[0] == "bot-hub"
    assert lookup(project.id, "helm", "oci://ghcr.io/org/charts")[0] == "bot-charts"


def test_generic_secrets_and_configmaps(project):
    apply(
        f"""
        apiVersion: v1
        kind: Secret
        metadata: {{name: slack, labels: {{kargo.akuity.io/cred-type: generic}}}}
        stringData: {{token: {PASSWORD}}}
        ---
        apiVersion: v1
        kind: Secret
        metadata: {{name: slack, namespace: kargo-shared-resources, labels: {{kargo.akuity.io/cred-type: generic}}}}
        stringData: {{token: shared-{PASSWORD}}}
        ---
        apiVersion: v1
        kind: ConfigMap
        metadata: {{name: settings}}
        data: {{region: eu}}
        ---
        apiVersion: v1
        kind: ConfigMap
        metadata: {{name: settings, namespace: kargo-shared-resources}}
        data: {{region: global}}
        """,
        project="shop",
    )
    assert generic(project.id, "slack") == {"token": PASSWORD}
    assert generic(None, "slack") == {"token": f"shared-{PASSWORD}"}
    assert generic(project.id, "missing") is None
    assert config_map(project.id, "settings") == {"region": "eu"}
    assert config_map(None, "settings") == {"region": "global"}
    assert ConfigMap.objects.count() == 2


def test_exports_print_every_value_as_stars(project):
    apply(repo_cred("gitops", "https://git.example.com/org/gitops.git"))
    docs = manifests.export_core("Secret", project.id)
    assert docs[0]["stringData"] == {
        "password": "***",
        "repoURL": "***",
        "repoURLIsRegex": "***",
        "username": "***",
    }
    assert PASSWORD not in str(docs)
    # An export applied back is refused rather than storing the mask as a password.
    with pytest.raises(manifests.ManifestError) as caught:
        manifests.apply_docs(manifests.load(manifests.dump_yaml(docs), "export.yaml"), "test")
    assert "holds the mask an export prints" in caught.value.errors[0]


def test_rotation_re_encrypts_with_the_first_key(project, settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.CREDENTIALS_KEYS = [old]
    do_save_credential(
        project,
        "gitops",
        "git",
        {"repoURL": "https://a.test/r", "username": "u", "password": PASSWORD},
        "test",
    )
    sealed = Credential.objects.get().sealed
    settings.CREDENTIALS_KEYS = [new, old]
    assert lookup(project.id, "git", "https://a.test/r") == ("u", PASSWORD)  # old key decrypts
    assert "1 credential(s) re-encrypted" in kargo("rotate-credentials-key")
    assert Credential.objects.get().sealed != sealed
    settings.CREDENTIALS_KEYS = [new]
    assert lookup(project.id, "git", "https://a.test/r") == ("u", PASSWORD)
    settings.CREDENTIALS_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(credentials.CredentialsError) as caught:
        lookup(project.id, "git", "https://a.test/r")
    assert "gitops" in str(caught.value) and PASSWORD not in str(caught.value)
    with pytest.raises(CommandError):
        kargo("rotate-credentials-key")


def test_expression_functions_read_the_store_and_mask_what_they_reveal(project):
    apply(
        f"""
        apiVersion: v1
        kind: Secret
        metadata: {{name: slack, labels: {{kargo.akuity.io/cred-type: generic}}}}
        stringData: {{token: {PASSWORD}}}
        ---
        apiVersion: v1
        kind: Secret
        metadata: {{name: slack, namespace: kargo-shared-resources, labels: {{kargo.akuity.io/cred-type: generic}}}}
        stringData: {{token: shared-{PASSWORD}}}
        ---
        apiVersion: v1
        kind: ConfigMap
        metadata: {{name: settings}}
        data: {{region: eu}}
        ---
        apiVersion: v1
        kind: ConfigMap
        metadata: {{name: settings, namespace: kargo-shared-resources}}
        data: {{region: global}}
        """,
        project="shop",
    )
    apply(
        repo_cred("gitops", "https://git.example.com/org/gitops.git")
        + "---"
        + repo_cred("shared-git", "https://git.example.com/", namespace="kargo-shared-resources")
    )
    revealed: set[str] = set()
    env = credentials.expression_functions(project.id, revealed)

    def ev(text):
        return evaluate_template(text, env)

    assert ev("${{ secret('slack').token }}") == PASSWORD
    assert ev("${{ sharedSecret('slack').token }}") == f"shared-{PASSWORD}"
    assert ev("${{ configMap('settings').region }}") == "eu"
    assert ev("${{ sharedConfigMap('settings').region }}") == "global"
    # The project's own repository credentials can be read; shared ones only if generic.
    assert ev("${{ secret('gitops').username }}") == "bot-gitops"
    for text, message in [
        ("${{ sharedSecret('shared-git') }}", "shared generic secret 'shared-git' not found"),
        ("${{ secret('nope') }}", "secret 'nope' not found in this project"),
        ("${{ configMap('nope') }}", "configmap 'nope' not found in this project"),
        ("${{ secret(1) }}", "secret() takes a non-empty string"),
    ]:
        with pytest.raises(ExpressionError) as caught:
            ev(text)
        assert message in str(caught.value)
    assert PASSWORD in revealed
    shown = credentials.mask({"url": f"https://hooks.test/?t={PASSWORD}", "n": 1}, revealed)
    assert shown == {"url": "https://hooks.test/?t=***", "n": 1}


def test_the_cli_creates_lists_and_deletes_credentials_with_values_from_stdin_or_files(
    project, monkeypatch, tmp_path
):
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    out = kargo(
        "create", "repo-credentials", "gitops", "--project", "shop", "--type", "git",
        "--repo-url", "https://git.example.com/org/gitops.git", "--username", "bot",
        "--password-stdin",
    )  # fmt: skip
    assert out.strip() == "secret/gitops created"
    assert lookup(project.id, "git", "https://git.example.com/org/gitops") == ("bot", PASSWORD)
    key_file = tmp_path / "key"
    key_file.write_text("file-value\n")
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD))
    out = kargo(
        "create", "generic-credentials", "slack", "--shared",
        "--set", "token=-", "--set", f"extra=@{key_file}",
    )  # fmt: skip
    assert out.strip() == "secret/slack created"
    assert generic(None, "slack") == {"token": PASSWORD, "extra": "file-value"}
    with pytest.raises(CommandError) as caught:
        kargo("create", "generic-credentials", "bad", "--project", "shop", "--set", "token=abc")
    assert "a value on the command line" in str(caught.value)
    with pytest.raises(CommandError) as caught:
        kargo("create", "repo-credentials", "x", "--project", "shop", "--type", "git")
    assert "needs --repo-url, --username, --password-stdin" in str(caught.value)
    table = kargo("get", "credentials", "--project", "shop")
    assert "gitops" in table and "password=***" in table and PASSWORD not in table
    exported = kargo("get", "secrets", "--shared", "-o", "yaml")
    assert "token: '***'" in exported and PASSWORD not in exported
    assert kargo("delete", "credentials", "gitops", "--project", "shop").strip() == (
        "secret/gitops deleted"
    )
    assert not Credential.objects.filter(name="gitops").exists()

"""kustomize-build: render a Kustomization with ``kubectl kustomize`` and write
the manifests to ``outPath``.

Output layout follows Kargo (pkg/promotion/runner/builtin/kustomize_builder.go):
an ``outPath`` ending in ``.yaml``/``.yml`` gets all resources in one file;
otherwise it is a directory with one file per resource, named
``[namespace-]kind-name.yaml`` (outputFormat ``kargo``, the default) or
``[namespace_]group_version_kind_name.yaml`` (``kustomize``, the naming of
``kustomize build -o dir/``; namespace only when several are present), all
lower-cased.

Containment: Kargo runs kustomize on a filesystem chrooted to the work dir. We
run the kubectl binary instead, so (1) kustomize keeps its default
LoadRestrictionsRootOnly (files such as patches must live under their
kustomization's directory), (2) before building, every local entry is followed
and must stay inside the work dir, no link below a kustomization may leave it,
and every remote entry passes the repository and egress policy, and (3) git,
when kustomize runs it, may use only the transports of entries that passed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field

from kargo import yamlio
from kargo.remotes import kustomize_remote, parse_remote
from kargo.runner import tail
from kargo.yamlio import YAMLLimitError, YAMLSyntaxError
from projects.repos import RepoNotAllowed, check_repo_url

from .base import Step, StepContext, StepError, StepModel, StepResult, register, run_command
from .kustomize_set_image import KUSTOMIZATION_FILES

_KLOG_ERR = re.compile(r'err="((?:[^"\\]|\\.)*)"')


class HelmPlugin(StepModel):
    api_versions: list[str] | None = Field(None, alias="apiVersions")
    kube_version: str | None = Field(None, alias="kubeVersion")


class Plugin(StepModel):
    helm: HelmPlugin | None = None


class KustomizeBuildConfig(StepModel):
    path: str = Field(min_length=1)
    out_path: str = Field(alias="outPath", min_length=1)
    output_format: Literal["kargo", "kustomize"] | None = Field(None, alias="outputFormat")
    plugin: Plugin | None = None


# Kustomization fields whose entries kustomize loads as files, directories or remote targets.
LOADED_FIELDS = ("resources", "components", "bases", "generators", "transformers", "validators")


def check_references(ctx: StepContext, directory: Path, seen: set[Path] | None = None) -> set[str]:
    """Vet what kustomize will load before it runs, and return the git transports it may use.

    Local entries must stay inside the work dir (kustomize would follow them anywhere), and no
    link below a kustomization may lead out. Remote entries pass the same repository and egress
    policy as every other fetch: a `file://` repository only under the allowed roots, a host
    only where the egress policy allows."""
    seen = set() if seen is None else seen
    transports: set[str] = set()
    if directory in seen:
        return transports
    seen.add(directory)
    files = [directory / n for n in KUSTOMIZATION_FILES if (directory / n).is_file()]
    if not files:
        return transports  # kustomize reports the missing file itself
    # kustomize reads every file below a kustomization itself: no link there may lead out.
    ctx.check_links(directory)
    try:
        document = yamlio.load(ctx.read_text(files[0])) or {}
    except YAMLLimitError as exc:
        raise StepError(f"{files[0].name} in {ctx.guard.shown(str(directory))}: {exc}") from None
    except (YAMLSyntaxError, UnicodeDecodeError):
        return transports  # kustomize reports the parse error itself, in its own words
    if not isinstance(document, dict):
        return transports
    for field in LOADED_FIELDS:
        entries = document.get(field) or []
        if not isinstance(entries, list):
            continue
        for entry in entries:
            if not isinstance(entry, str) or "\n" in entry:
                continue  # inline generator/transformer configs are not loaded from anywhere
            url = kustomize_remote(entry)
            if url is not None:
                transports.add(check_remote(url, f"{field} entry {entry!r}"))
                continue
            target = ctx.path(directory / entry)  # raises if it escapes
            if target.is_dir():
                transports |= check_references(ctx, target, seen)
    for chart in document.get("helmCharts") or []:
        if isinstance(chart, dict) and isinstance(chart.get("repo"), str):
            check_remote(chart["repo"], f"helmCharts repo {chart['repo']!r}")
    return transports


def check_remote(url: str, what: str) -> str:
    try:
        check_repo_url(url)
    except RepoNotAllowed as exc:
        raise StepError(f"{what}: {exc}") from None
    return parse_remote(url).scheme


def kustomize_error(stderr: str, work_dir: Path) -> str:
    """kubectl logs errors as klog lines (`E1127 ... "command failed" err="..."`);
    show the err text, without the host's work dir prefix."""
    messages = []
    for raw in _KLOG_ERR.findall(stderr):
        try:
            messages.append(json.loads(f'"{raw}"'))  # Go's quoting is JSON-compatible
        except ValueError:
            messages.append(raw)
    text = "\n".join(messages) if messages else tail(stderr)
    return text.replace(f"{work_dir}/", "").replace(str(work_dir), ".")


def _filename(doc: dict, out_format: str, several_namespaces: bool) -> str:
    kind = str(doc.get("kind", ""))
    metadata = doc.get("metadata") or {}
    name = str(metadata.get("name", ""))
    namespace = str(metadata.get("namespace") or "")
    if out_format == "kustomize":
        api_version = str(doc.get("apiVersion", ""))
        group, _, version = api_version.rpartition("/")
        gvk = "_".join(p for p in (group, version, kind) if p)
        fname = f"{gvk}_{name}.yaml"
        if several_namespaces and namespace:
            fname = f"{namespace}_{fname}"
    else:
        fname = f"{namespace}-{kind}-{name}.yaml" if namespace else f"{kind}-{name}.yaml"
    fname = fname.lower()
    # Names come from rendered metadata: never let one climb out of outPath.
    if fname in (".", "..") or "/" in fname or "\\" in fname or fname.startswith("."):
        raise StepError(f"unsafe generated resource filename {fname!r}")
    return fname


def write_directory(ctx: StepContext, out_dir: Path, rendered: str, out_format: str) -> list[str]:
    # kustomize separates documents with a bare "---" line and never emits one
    # inside a value, so splitting the text keeps each resource byte-identical.
    chunks = [c.strip("\n") + "\n" for c in re.split(r"(?m)^---[ \t]*$", rendered) if c.strip()]
    docs = [yaml.safe_load(c) for c in chunks]
    namespaces = {str((d.get("metadata") or {}).get("namespace") or "") for d in docs}
    several = len(namespaces - {""}) > 1
    written: list[str] = []
    for chunk, doc in zip(chunks, docs, strict=True):
        fname = _filename(doc, out_format, several)
        if fname in written:
            raise StepError(f"two resources map to the same output file {fname}")
        # Through the guard: the output directory comes from a repository, and a committed
        # symlink named like a resource file must not carry the write outside the work dir.
        ctx.write_text(out_dir / fname, chunk)
        written.append(fname)
    return written


@register
class KustomizeBuild(Step):
    name = "kustomize-build"
    Config = KustomizeBuildConfig

    timeout = 300

    def run(self, ctx: StepContext, config: KustomizeBuildConfig) -> StepResult:
        source = ctx.path(config.path)
        out_path = ctx.path(config.out_path)
        if not source.is_dir():
            raise StepError(f"{config.path}: no such directory")
        transports = check_references(ctx, source)

        args = ["kubectl", "kustomize", str(source), "--enable-helm"]
        helm = config.plugin.helm if config.plugin else None
        if helm and helm.api_versions:
            args += [f"--helm-api-versions={v}" for v in helm.api_versions]
        if helm and helm.kube_version:
            args.append(f"--helm-kube-version={helm.kube_version}")
        # kustomize clones remote bases with git: only the transports of entries that passed.
        allowed = ":".join(sorted(transports & {"file", "git", "http", "https", "ssh"})) or "https"
        proc = run_command(
            ctx,
            args,
            cwd=source,
            timeout=self.timeout,
            check=False,
            env={"GIT_ALLOW_PROTOCOL": allowed},
        )
        if proc.returncode != 0:
            detail = kustomize_error(proc.stderr, ctx.path("."))
            raise StepError(f"kustomize build of {config.path} failed: {detail}")

        if out_path.suffix in (".yaml", ".yml"):
            ctx.write_text(out_path, proc.stdout)
        else:
            write_directory(ctx, out_path, proc.stdout, config.output_format or "kargo")
        return StepResult()

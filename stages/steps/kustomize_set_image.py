"""kustomize-set-image: set image overrides in a Kustomization's ``images:``
list, the way ``kustomize edit set image`` does.

Behaviour follows Kargo (pkg/promotion/runner/builtin/kustomize_image_setter.go):

* ``images`` omitted: every image of the target freight is set (name = repoURL,
  newTag = tag, digest = digest); one repoURL with different versions in the
  collection is ambiguous and needs explicit config.
* an entry replaces the existing entry with the same name (``name`` or else
  ``image``); ``"*"`` as newName/tag/digest keeps the existing value.
* entries without tag/digest (older Kargo configs) take the version from the
  freight image with that repoURL (its digest when ``useDigest`` is true).
* the resulting list is sorted by name.

Only the ``images:`` block of the file is rewritten; every other line
(comments included) is kept byte for byte.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import Field, model_validator

from kargo import yamlio
from kargo.yamlio import YAMLSyntaxError

from .base import Step, StepContext, StepError, StepModel, StepResult, register

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
PRESERVE = "*"
FIELD_ORDER = ("name", "newName", "newTag", "digest")


class ImageUpdate(StepModel):
    image: str = Field(min_length=1)
    tag: str | None = None
    digest: str | None = None
    name: str | None = None
    new_name: str | None = Field(None, alias="newName")
    # Older Kargo: with no tag/digest given, use the freight image's digest.
    use_digest: bool = Field(False, alias="useDigest")

    @model_validator(mode="after")
    def _tag_or_digest(self):
        if self.tag and self.digest:
            raise ValueError("tag and digest are mutually exclusive")
        return self


class KustomizeSetImageConfig(StepModel):
    path: str = Field(min_length=1)
    images: list[ImageUpdate] | None = None


def find_kustomization(ctx: StepContext, rel: str) -> Path:
    directory = ctx.path(rel)
    if not directory.is_dir():
        raise StepError(f"{rel}: no such directory")
    # Lstat-based like Kargo: a symlinked kustomization file is not used.
    found = [
        directory / n
        for n in KUSTOMIZATION_FILES
        if (directory / n).is_file() and not (directory / n).is_symlink()
    ]
    if not found:
        raise StepError(f"could not find any Kustomization files in {rel!r}")
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise StepError(f"ambiguous result: found multiple Kustomization files in {rel!r}: {names}")
    return found[0]


def _freight_images(ctx: StepContext, repo_url: str | None = None) -> list[dict]:
    images = []
    for freight in ctx.freight:
        for image in freight.get("images") or []:
            if repo_url is None or image.get("repoURL") == repo_url:
                images.append(image)
    return images


def _one_version(images: list[dict], repo_url: str) -> dict:
    versions = {(i.get("tag") or "", i.get("digest") or "") for i in images}
    if len(versions) > 1:
        raise StepError(
            f"manual configuration required due to ambiguous result: the freight holds "
            f"several versions of image {repo_url}"
        )
    return images[0]


def target_images(ctx: StepContext, config: KustomizeSetImageConfig) -> dict[str, dict]:
    """Desired kustomize image entries keyed by name."""
    targets: dict[str, dict] = {}
    if not config.images:
        by_repo: dict[str, list[dict]] = {}
        for image in _freight_images(ctx):
            by_repo.setdefault(image.get("repoURL", ""), []).append(image)
        for repo_url, images in by_repo.items():
            if not repo_url:
                continue
            image = _one_version(images, repo_url)
            targets[repo_url] = {
                "name": repo_url,
                "newTag": image.get("tag"),
                "digest": image.get("digest"),
            }
        if not targets:
            raise StepError("images not set and the freight being promoted has no images")
        return targets

    for update in config.images:
        entry = {"name": update.name or update.image, "newName": update.new_name}
        if update.digest:
            entry["digest"] = update.digest
        elif update.tag:
            entry["newTag"] = update.tag
        else:
            matches = _freight_images(ctx, update.image)
            if not matches:
                raise StepError(
                    f"image {update.image} has no tag or digest and the freight being "
                    "promoted has no image from that repository"
                )
            image = _one_version(matches, update.image)
            if update.use_digest:
                if not image.get("digest"):
                    raise StepError(
                        f"useDigest is set but the freight's image {update.image} has no digest"
                    )
                entry["digest"] = image["digest"]
            else:
                entry["newTag"] = image.get("tag")
        targets[entry["name"]] = entry
    return targets


def merge_images(current: list[dict], targets: dict[str, dict]) -> list[dict]:
    merged = dict(targets)
    for existing in current:
        name = existing.get("name")
        if name in merged:
            target = merged[name]
            for field in ("newName", "newTag", "digest"):
                if target.get(field) == PRESERVE:
                    target[field] = existing.get(field)
        else:
            merged[name] = existing
    result = []
    for entry in merged.values():
        ordered = {k: entry[k] for k in FIELD_ORDER if entry.get(k) not in (None, "", PRESERVE)}
        # Keep fields we do not manage (e.g. tagSuffix) on untouched entries.
        ordered.update({k: v for k, v in entry.items() if k not in FIELD_ORDER})
        result.append(ordered)
    return sorted(result, key=lambda e: str(e.get("name", "")))


def commit_message(path: str, targets: dict[str, dict]) -> str:
    lines = []
    for name in sorted(targets):
        entry = targets[name]
        ref = (
            entry.get("newName") if entry.get("newName") not in (None, PRESERVE) else entry["name"]
        )
        if entry.get("newTag") not in (None, "", PRESERVE):
            ref += f":{entry['newTag']}"
        if entry.get("digest") not in (None, "", PRESERVE):
            ref += f"@{entry['digest']}"
        lines.append(f"\n- {ref}")
    plural = "s" if len(targets) > 1 else ""
    return f"Updated {path} to use new image{plural}\n" + "".join(lines)


def _last_line(node: yaml.Node) -> int:
    """Last line holding content of ``node``. Block collections' end marks point
    at the next token (past trailing comments), so only scalars and flow
    collections - whose marks are exact - are measured."""
    if isinstance(node, yaml.ScalarNode) or getattr(node, "flow_style", False):
        end = node.end_mark
        # An end mark at column 0 (block scalars) belongs to the previous line.
        return end.line - 1 if end.column == 0 and end.line > node.start_mark.line else end.line
    last = node.start_mark.line
    children = (
        node.value if isinstance(node, yaml.SequenceNode) else [n for kv in node.value for n in kv]
    )
    for child in children:
        last = max(last, _last_line(child))
    return last


def write_images(text: str, images: list[dict]) -> str:
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        raise StepError(f"could not parse Kustomization file: {exc}") from None
    if root is not None and not isinstance(root, yaml.MappingNode):
        raise StepError("Kustomization file is not a mapping")
    if root is not None and root.flow_style:
        # A one-line {...} document has no lines to splice; rewrite it whole.
        document = yaml.safe_load(text)
        document["images"] = images
        return yaml.safe_dump(document, sort_keys=False, default_flow_style=False)

    block = yaml.safe_dump({"images": images}, sort_keys=False, default_flow_style=False)
    lines = text.splitlines(keepends=True)
    for key, value in root.value if root is not None else []:
        if isinstance(key, yaml.ScalarNode) and key.value == "images":
            first = key.start_mark.line
            last = _last_line(value) if value.tag != "tag:yaml.org,2002:null" else first
            indent = " " * key.start_mark.column
            new = "".join(indent + line for line in block.splitlines(keepends=True))
            return "".join(lines[:first]) + new + "".join(lines[last + 1 :])
    # No images: key yet - append one.
    if text and not text.endswith("\n"):
        text += "\n"
    return text + block


@register
class KustomizeSetImage(Step):
    name = "kustomize-set-image"
    Config = KustomizeSetImageConfig

    def run(self, ctx: StepContext, config: KustomizeSetImageConfig) -> StepResult:
        kustomization = find_kustomization(ctx, config.path)
        text = ctx.read_text(kustomization)
        try:
            yamlio.check(text)
        except YAMLSyntaxError as exc:
            raise StepError(
                f"could not parse {kustomization.name} in {config.path}: {exc}"
            ) from None
        try:
            current = (yaml.safe_load(text) or {}).get("images") or []
        except (yaml.YAMLError, AttributeError):
            raise StepError(f"could not parse {kustomization.name} in {config.path}") from None
        if not isinstance(current, list) or not all(isinstance(i, dict) for i in current):
            raise StepError(f"images in {kustomization.name} is not a list of objects")

        targets = target_images(ctx, config)
        updated = write_images(text, merge_images(current, targets))
        ctx.write_text(kustomization, updated)
        return StepResult(outputs={"commitMessage": commit_message(config.path, targets)})

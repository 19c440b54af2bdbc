"""Image subscriptions: which tags of an image repository a Warehouse selects, newest first, the
way Kargo's image selectors do it (pkg/image/*_selector.go; facts only, not code).

- SemVer: tags that are versions (strictSemvers) allowed by `constraint`, highest first.
- Lexical: tags in reverse lexical order.
- NewestBuild: every matching tag's build date (the `org.opencontainers.image.created` or
  `org.label-schema.build-date` annotation, else the config's `created`, or a later label),
  newest first.
- Digest: the one mutable tag named by `constraint`, whatever digest it points to now.

allowTagsRegexes / ignoreTagsRegexes (RE2) narrow the tag strategies; `platform` keeps images
whose index has that os/arch[/variant]. The first `discoveryLimit` matches are returned.

Metadata of a tag (digest, build date, annotations, platforms) comes from its manifest, the
manifests an index lists and their config blobs. It is kept in the database (ImageMetadata), so a
poll asks the registry only about tags it has not seen: tags are taken to be immutable, except
for the Digest strategy's, which is re-resolved every poll with one HEAD request (its digest),
and read again only if that digest is new to the repository.

Where this differs from Kargo, on purpose: a plain (single-platform) image counts as built for the
os/arch in its config, so `platform` selects it (Kargo only matches platforms listed in an
index, so a constraint never matches a single-platform image); and `os/arch` matches an index
entry of any variant (Kargo wants the variant equal, and its schema cannot name one).
"""

import json
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

from kargo.specs import ImageSubscription
from kargo.times import is_rfc3339, parse_rfc3339, rfc3339
from kargo.versions import Constraint, parse_version

from ..models import ImageMetadata
from .base import DiscoveryError
from .registry import INDEX_TYPES, MANIFEST_TYPES, RegistryClient, parse_image_repo
from .tags import TagNameFilter, tag_name_filter

CREATED_ANNOTATIONS = ("org.opencontainers.image.created", "org.label-schema.build-date")
UNKNOWN = "unknown"
# Manifests fetched at once for tags not seen before (NewestBuild reads every matching tag).
PARALLEL_REQUESTS = 8


# --------------------------------------------------------------------------------------------
# What is known about an image
# --------------------------------------------------------------------------------------------


@dataclass
class Platform:
    os: str
    arch: str
    variant: str = ""
    created_at: datetime | None = None
    annotations: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> dict:
        return {
            "os": self.os,
            "arch": self.arch,
            "variant": self.variant,
            "createdAt": rfc3339(self.created_at),
            "annotations": self.annotations,
        }

    @classmethod
    def from_json(cls, data: dict) -> "Platform":
        return cls(
            data.get("os", ""),
            data.get("arch", ""),
            data.get("variant", ""),
            parse_rfc3339(data.get("createdAt")),
            data.get("annotations") or {},
        )


@dataclass
class ImageInfo:
    digest: str
    created_at: datetime | None = None
    annotations: dict[str, str] = field(default_factory=dict)
    platforms: list[Platform] = field(default_factory=list)


@dataclass
class DiscoveredImage:
    """Kargo's DiscoveredImageReference."""

    tag: str
    digest: str
    annotations: dict[str, str] = field(default_factory=dict)
    created_at: datetime | None = None

    def as_dict(self) -> dict:
        data: dict = {"tag": self.tag, "digest": self.digest}
        if self.annotations:
            data["annotations"] = self.annotations
        if self.created_at:
            data["createdAt"] = rfc3339(self.created_at)
        return data


# --------------------------------------------------------------------------------------------
# Pure rules
# --------------------------------------------------------------------------------------------


def parse_platform(text: str | None) -> tuple[str, str, str] | None:
    """`os/arch[/variant]` as a triple; None for no constraint. Raises DiscoveryError."""
    if not text:
        return None
    parts = text.split("/", 2)
    if len(parts) < 2 or not all(parts):
        raise DiscoveryError(f"invalid platform {text!r}: expected <os>/<arch>[/<variant>]")
    return parts[0], parts[1], parts[2] if len(parts) == 3 else ""


def platform_of(info: ImageInfo, wanted: tuple[str, str, str] | None) -> Platform | None:
    """The image's platform `wanted` names. Without a variant (Kargo's schema allows only
    os/arch) an entry of any variant matches, one without a variant first: Kargo compares
    variants exactly, so `linux/arm64` would never match the `v8` entries builders write."""
    if wanted is None:
        return None
    loose = None
    for platform in info.platforms:
        if (platform.os, platform.arch, platform.variant) == wanted:
            return platform
        if not wanted[2] and (platform.os, platform.arch) == wanted[:2] and loose is None:
            loose = platform
    return loose


def matches_platform(info: ImageInfo, wanted: tuple[str, str, str] | None) -> bool:
    return wanted is None or platform_of(info, wanted) is not None


def annotations_for(info: ImageInfo, wanted: tuple[str, str, str] | None) -> dict[str, str]:
    """The image's annotations, overlaid by the chosen platform's (as Kargo's getAnnotations)."""
    platform = platform_of(info, wanted)
    return {**info.annotations, **(platform.annotations if platform else {})}


def creation_time(metadata: dict | None) -> datetime | None:
    """The first of the build-date keys holding an RFC 3339 time."""
    for key in CREATED_ANNOTATIONS:
        value = (metadata or {}).get(key)
        if isinstance(value, str) and is_rfc3339(value):
            return parse_rfc3339(value)
    return None


def image_created(
    annotations: dict | None, labels: dict | None, config_created: datetime | None
) -> datetime | None:
    """A plain image's build date: its manifest's annotation, else the config's `created`,
    unless a build-date label says later (Kargo's getCreationTime)."""
    annotated = creation_time(annotations)
    if annotated:
        return annotated
    labelled = creation_time(labels)
    if labelled and (config_created is None or labelled > config_created):
        return labelled
    return config_created


def semver_order(
    tags: Iterable[str], names: TagNameFilter, constraint: Constraint, strict: bool
) -> list[str]:
    """Tags that are versions allowed by the constraint, highest first; equal versions in
    reverse lexical order of the tag."""
    versions = {}
    for tag in tags:
        if not names(tag):
            continue
        version = parse_version(tag, strict=strict)
        if version is not None and constraint.allows(version):
            versions[tag] = version
    return sorted(versions, key=lambda tag: (versions[tag], tag), reverse=True)


def lexical_order(tags: Iterable[str], names: TagNameFilter) -> list[str]:
    return sorted((tag for tag in tags if names(tag)), reverse=True)


def newest_build_order(images: list[tuple[str, ImageInfo]]) -> list[tuple[str, ImageInfo]]:
    """Newest build first; equal dates in reverse lexical order of the tag. An image without
    any build date sorts last."""
    return sorted(
        images,
        key=lambda item: (item[1].created_at is not None, item[1].created_at or 0, item[0]),
        reverse=True,
    )


# --------------------------------------------------------------------------------------------
# Reading an image from the registry
# --------------------------------------------------------------------------------------------


def resolve(
    client: RegistryClient, reference: str, children: dict | None = None
) -> ImageInfo | None:
    """What the manifest `reference` (a tag or digest) describes; None if the registry has no
    manifest by that name. Raises RegistryError (a DiscoveryError) for a malformed one.
    `children` caches the per-platform images of indexes by digest within one discovery."""
    manifest = client.get_manifest(reference)
    if manifest is None:
        return None
    if manifest.media_type in INDEX_TYPES:
        return _from_index(client, manifest, children if children is not None else {})
    if manifest.media_type in MANIFEST_TYPES:
        return _from_manifest(client, manifest.digest, manifest.body)
    raise client.malformed(
        f"tag {reference!r}", f"unknown artifact type {manifest.media_type[:100]!r}"
    )


def _from_manifest(client: RegistryClient, digest: str, body: dict) -> ImageInfo:
    config_ref = body.get("config")
    if not isinstance(config_ref, dict) or not isinstance(config_ref.get("digest"), str):
        raise client.malformed(f"manifest {digest}", "it has no config descriptor")
    try:
        config = _json_object(client.get_blob(config_ref["digest"]))
    except ValueError:
        raise client.malformed(f"config of {digest}", "it is not a JSON object") from None
    inner = config.get("config") if isinstance(config.get("config"), dict) else {}
    labels = inner.get("Labels") if isinstance(inner.get("Labels"), dict) else {}
    created = config.get("created")
    annotations = _strings(body.get("annotations"))
    created_at = image_created(
        annotations, _strings(labels), parse_rfc3339(created) if isinstance(created, str) else None
    )
    platforms = []
    os_, arch = config.get("os"), config.get("architecture")
    if isinstance(os_, str) and isinstance(arch, str) and os_ and arch:
        variant = config.get("variant") if isinstance(config.get("variant"), str) else ""
        platforms.append(Platform(os_, arch, variant, created_at, {}))
    return ImageInfo(digest, created_at, annotations, platforms)


def _from_index(client: RegistryClient, manifest, children: dict) -> ImageInfo:
    entries = manifest.body.get("manifests")
    if not isinstance(entries, list):
        raise client.malformed(f"index {manifest.digest}", "it has no manifests list")
    platforms, newest = [], None
    for entry in entries:
        platform = entry.get("platform") if isinstance(entry, dict) else None
        if not isinstance(platform, dict):
            continue
        os_, arch = platform.get("os"), platform.get("architecture")
        # Attestations and other non-image entries carry "unknown" platforms.
        if not os_ or not arch or UNKNOWN in (os_, arch):
            continue
        digest = entry.get("digest")
        if not isinstance(digest, str):
            raise client.malformed(f"index {manifest.digest}", "an entry has no digest")
        child = children.get(digest)
        if child is None:
            child_manifest = client.get_manifest(digest)
            if child_manifest is None:
                raise client.malformed(
                    f"index {manifest.digest}", f"it lists {digest}, which the registry lacks"
                )
            if child_manifest.media_type not in MANIFEST_TYPES:
                raise client.malformed(
                    f"index {manifest.digest}", f"{digest} is not an image manifest"
                )
            child = children[digest] = _from_manifest(client, digest, child_manifest.body)
        annotations = _strings(entry.get("annotations"))
        created = creation_time(annotations) or child.created_at
        if created and (newest is None or created > newest):
            newest = created
        variant = platform.get("variant") if isinstance(platform.get("variant"), str) else ""
        platforms.append(Platform(str(os_), str(arch), variant, created, annotations))
    if not platforms:
        raise client.malformed(
            f"index {manifest.digest}", "an empty manifest list or OCI index is not supported"
        )
    annotations = _strings(manifest.body.get("annotations"))
    return ImageInfo(manifest.digest, creation_time(annotations) or newest, annotations, platforms)


def _json_object(data: bytes) -> dict:
    value = json.loads(data)
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def _strings(value) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(k): str(v) for k, v in value.items() if isinstance(v, str)}


# --------------------------------------------------------------------------------------------
# The metadata cache
# --------------------------------------------------------------------------------------------


class MetadataCache:
    """A project's ImageMetadata of one repository, read once per discovery (as plain values:
    a repository may hold thousands of tags, and a repeated poll reads them all)."""

    FIELDS = ("id", "tag", "digest", "created_at", "annotations", "platforms")

    def __init__(self, project_id: int, repository: str):
        self.project_id = project_id
        self.repository = repository
        self._rows: dict[str, tuple] | None = None

    @property
    def rows(self) -> dict[str, tuple]:
        """tag -> (id, tag, digest, created_at, annotations, platforms)."""
        if self._rows is None:
            self._rows = {
                row[1]: row
                for row in ImageMetadata.objects.filter(
                    project_id=self.project_id, repository=self.repository
                ).values_list(*self.FIELDS)
            }
        return self._rows

    def get(self, tag: str) -> ImageInfo | None:
        row = self.rows.get(tag)
        return _info(row) if row else None

    def by_digest(self, digest: str) -> ImageInfo | None:
        for row in self.rows.values():
            if row[2] == digest:
                return _info(row)
        return None

    def put(self, found: dict[str, ImageInfo]) -> None:
        """Store what was read of these tags, in one statement per 500 rows."""
        rows = [
            ImageMetadata(
                project_id=self.project_id,
                repository=self.repository,
                tag=tag,
                digest=info.digest,
                created_at=info.created_at,
                annotations=info.annotations,
                platforms=[p.as_json() for p in info.platforms],
            )
            for tag, info in found.items()
        ]
        ImageMetadata.objects.bulk_create(
            rows,
            batch_size=500,
            update_conflicts=True,
            unique_fields=["project", "repository", "tag"],
            update_fields=["digest", "created_at", "annotations", "platforms", "seen_at"],
        )
        self.rows.update(
            (r.tag, (r.id, r.tag, r.digest, r.created_at, r.annotations, r.platforms)) for r in rows
        )

    def keep_only(self, tags: set[str]) -> None:
        """Forget tags the repository no longer lists (a tag deleted and pushed again is new)."""
        gone = [row[0] for tag, row in self.rows.items() if tag not in tags]
        for start in range(0, len(gone), 500):
            ImageMetadata.objects.filter(id__in=gone[start : start + 500]).delete()
        self._rows = {tag: row for tag, row in self.rows.items() if tag in tags}


def _info(row: tuple) -> ImageInfo:
    _, _, digest, created_at, annotations, platforms = row
    return ImageInfo(
        digest, created_at, dict(annotations), [Platform.from_json(p) for p in platforms]
    )


# --------------------------------------------------------------------------------------------
# Discovery
# --------------------------------------------------------------------------------------------


def discover_image(
    sub: ImageSubscription,
    project_id: int,
    *,
    credentials: tuple[str, str] | None = None,
    client: RegistryClient | None = None,
) -> list[DiscoveredImage]:
    """Discover images for a Kargo image subscription, best first (index 0 is what new Freight
    would use), at most `discoveryLimit`. Raises DiscoveryError naming the repository and why."""
    if sub.allowTags or sub.ignoreTags:
        # Kargo refuses these since v1.11.
        field_name = "allowTags" if sub.allowTags else "ignoreTags"
        raise DiscoveryError(
            f"{field_name} is no longer supported for images; use {field_name}Regexes"
        )
    wanted = parse_platform(sub.platform)
    if client is None:
        client = RegistryClient(
            parse_image_repo(sub.repoURL),
            sub.repoURL,
            credentials=credentials,
            insecure=bool(sub.insecureSkipTLSVerify),
        )
    cache = MetadataCache(project_id, client.repo.name)
    strategy = sub.imageSelectionStrategy
    if strategy == "Digest":
        return _digest(client, cache, sub, wanted)
    try:
        names = tag_name_filter(sub)
        constraint = Constraint(sub.constraint or "") if strategy == "SemVer" else None
    except ValueError as exc:
        raise DiscoveryError(f"{exc} (image {sub.repoURL})") from None
    tags = client.list_tags()
    cache.keep_only(set(tags))
    if strategy == "NewestBuild":
        candidates = [tag for tag in tags if names(tag)]
        infos = _infos(client, cache, candidates)
        images = [(tag, info) for tag, info in infos.items() if matches_platform(info, wanted)]
        ordered = newest_build_order(images)[: sub.discoveryLimit]
        return [_discovered(tag, info, wanted) for tag, info in ordered]
    if strategy == "SemVer":
        ordered_tags = semver_order(tags, names, constraint, sub.strictSemvers)
    else:
        ordered_tags = lexical_order(tags, names)
    found: list[DiscoveredImage] = []
    # Read in batches, in order, until `discoveryLimit` images fit the platform.
    position = 0
    while len(found) < sub.discoveryLimit and position < len(ordered_tags):
        batch = ordered_tags[position : position + sub.discoveryLimit - len(found)]
        position += len(batch)
        infos = _infos(client, cache, batch)
        found += [
            _discovered(tag, infos[tag], wanted)
            for tag in batch
            if matches_platform(infos[tag], wanted)
        ]
    return found[: sub.discoveryLimit]


def _digest(client, cache, sub, wanted) -> list[DiscoveredImage]:
    tag = sub.constraint or ""
    if not tag:
        raise DiscoveryError(
            f"constraint must name the tag to follow when imageSelectionStrategy is Digest "
            f"(image {sub.repoURL})"
        )
    # One HEAD tells whether the tag moved; its manifest is read only for a digest not seen.
    digest = client.head_manifest(tag)
    known = cache.get(tag)
    if digest is not None and known is not None and known.digest == digest:
        info = known
    else:
        info = cache.by_digest(digest) if digest else None
        if info is None:
            info = resolve(client, tag)
            if info is None:
                return []  # no such tag: nothing discovered, as Kargo
        cache.put({tag: info})
    return [_discovered(tag, info, wanted)] if matches_platform(info, wanted) else []


def _infos(client: RegistryClient, cache: MetadataCache, tags: list[str]) -> dict:
    """Metadata for `tags`: cached, or read from the registry (several at once) and cached."""
    infos, missing = {}, []
    for tag in tags:
        info = cache.get(tag)
        if info is None:
            missing.append(tag)
        else:
            infos[tag] = info
    if missing:
        children: dict = {}

        def read(tag: str) -> ImageInfo:
            info = resolve(client, tag, children)
            if info is None:
                raise client.malformed(f"tag {tag!r}", "it is listed but has no manifest")
            return info

        if len(missing) == 1:
            fetched = [read(missing[0])]
        else:
            with ThreadPoolExecutor(max_workers=PARALLEL_REQUESTS) as pool:
                fetched = list(pool.map(read, missing))
        # The database is written from this thread only (the pool's threads have no connection).
        found = dict(zip(missing, fetched, strict=True))
        cache.put(found)
        infos.update(found)
    return infos


def _discovered(tag: str, info: ImageInfo, wanted) -> DiscoveredImage:
    return DiscoveredImage(tag, info.digest, annotations_for(info, wanted), info.created_at)

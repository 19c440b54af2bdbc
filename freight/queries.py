"""Read paths of Warehouses and Freight, tuned for the pages."""

from dataclasses import dataclass, field

from projects.models import Project

from .models import Freight, FreightCount, Warehouse


def freight_total(project: Project) -> int:
    """How much Freight the project holds: its maintained count (FreightCount), one read by
    primary key, not a COUNT over its Freight. A project whose Freight was never created or
    deleted one at a time (none yet, or only bulk-inserted) has no count: its rows are counted."""
    total = (
        FreightCount.objects.filter(project_id=project.id).values_list("total", flat=True).first()
    )
    return Freight.objects.filter(project_id=project.id).count() if total is None else total


# --- assembling Freight by hand (freightCreationPolicy: Manual, or any time) -------------------


@dataclass
class ArtifactChoice:
    """One discovered artifact a person may put into Freight: its key (commit id, image tag,
    chart version), how the form shows it, and the artifact as Freight carries it."""

    key: str
    label: str
    artifact: dict


@dataclass
class SubscriptionChoices:
    index: int
    kind: str  # git | image | chart
    repo_url: str
    title: str
    options: list[ArtifactChoice] = field(default_factory=list)


def _named(sub) -> dict:
    return {"subscriptionName": sub.name} if sub.name else {}


def _discovered_entry(entries: list[dict], sub, repo_url: str, chart_name: str = "") -> dict:
    """The discoveredArtifacts entry of one subscription: by its name when it has one, else by
    repository (and chart name)."""
    for entry in entries:
        if sub.name:
            if entry.get("subscriptionName") == sub.name:
                return entry
        elif entry.get("repoURL") == repo_url and (entry.get("name") or "") == chart_name:
            return entry
    return {}


def assembly_choices(warehouse: Warehouse) -> list[SubscriptionChoices]:
    """Per subscription of the Warehouse, what its last discovery found (Kargo's "create Freight"
    view): commits, image references and chart versions, newest first, as discovered."""
    found = warehouse.status.get("discoveredArtifacts") or {}
    out = []
    for index, sub in enumerate(warehouse.typed_spec.subscriptions):
        if sub.git is not None:
            git = sub.git
            entry = _discovered_entry(found.get("git") or [], sub, git.repoURL)
            options = [
                ArtifactChoice(
                    c["id"],
                    " · ".join(x for x in (c.get("tag"), c["id"][:7], c.get("subject")) if x),
                    {
                        "repoURL": git.repoURL,
                        "id": c["id"],
                        **({"branch": c["branch"]} if c.get("branch") else {}),
                        **({"tag": c["tag"]} if c.get("tag") else {}),
                        **({"message": c["subject"]} if c.get("subject") else {}),
                        **({"author": c["author"]} if c.get("author") else {}),
                        **({"committer": c["committer"]} if c.get("committer") else {}),
                        **_named(sub),
                    },
                )
                for c in entry.get("commits") or []
            ]
            out.append(SubscriptionChoices(index, "git", git.repoURL, git.repoURL, options))
        elif sub.image is not None:
            image = sub.image
            entry = _discovered_entry(found.get("images") or [], sub, image.repoURL)
            options = [
                ArtifactChoice(
                    r["tag"],
                    " · ".join(x for x in (r["tag"], (r.get("digest") or "")[:19]) if x),
                    {
                        "repoURL": image.repoURL,
                        "tag": r["tag"],
                        "digest": r.get("digest", ""),
                        **({"annotations": r["annotations"]} if r.get("annotations") else {}),
                        **_named(sub),
                    },
                )
                for r in entry.get("references") or []
            ]
            out.append(SubscriptionChoices(index, "image", image.repoURL, image.repoURL, options))
        elif sub.chart is not None:
            chart = sub.chart
            entry = _discovered_entry(
                found.get("charts") or [], sub, chart.repoURL, chart.name or ""
            )
            title = f"{chart.repoURL} {chart.name}" if chart.name else chart.repoURL
            options = [
                ArtifactChoice(
                    v,
                    v,
                    {
                        "repoURL": chart.repoURL,
                        **({"name": chart.name} if chart.name else {}),
                        "version": v,
                        **_named(sub),
                    },
                )
                for v in entry.get("versions") or []
            ]
            out.append(SubscriptionChoices(index, "chart", chart.repoURL, title, options))
    return out


def picks_by_name(warehouse: Warehouse, artifacts: object) -> dict[int, str]:
    """The API's and CLI's picks, {subscription: artifact}, as the form's {index: key}: a
    subscription by its name or its repoURL (a chart's also as "repoURL name"), an artifact by
    its key or, for a commit, its tag or an abbreviated id (7 characters or more)."""
    if not isinstance(artifacts, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in artifacts.items()
    ):
        raise ValueError('give "artifacts" as {"<subscription>": "<artifact>"}')
    choices = assembly_choices(warehouse)
    picks, used = {}, set()
    for c in choices:
        sub = warehouse.typed_spec.subscriptions[c.index]
        names = [n for n in (sub.name, c.repo_url, c.title) if n]
        wanted = next((artifacts[n] for n in names if n in artifacts), None)
        used.update(n for n in names if n in artifacts)
        if wanted is None:
            continue
        match = next((o.key for o in c.options if o.key == wanted), None)
        if match is None and c.kind == "git":
            match = next(
                (
                    o.key
                    for o in c.options
                    if o.artifact.get("tag") == wanted
                    or (len(wanted) >= 7 and o.key.startswith(wanted))
                ),
                None,
            )
        picks[c.index] = match or wanted
    unknown = sorted(set(artifacts) - used)
    if unknown:
        known = ", ".join(c.title for c in choices) or "none"
        raise ValueError(
            f"no subscription {unknown[0]!r} in this Warehouse (subscriptions: {known})"
        )
    return picks

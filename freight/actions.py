"""Every state change of Warehouses and Freight. Each broadcasts its change on commit."""

import logging
import re
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from kargo.conditions import condition, set_condition
from kargo.durations import duration_seconds
from kargo.expressions import ExpressionError, evaluate
from kargo.freight_ids import freight_id, generate_alias, normalize_chart_url, normalize_git_url
from kargo.redaction import hide_paths
from kargo.specs import RepoSubscription
from kargo.times import parse_rfc3339, rfc3339
from projects.actions import record_event
from projects.credentials import git_env, lookup
from projects.live import broadcast_on_commit
from projects.models import Project
from projects.queue import enqueue_on_commit
from projects.repos import RepoNotAllowed, check_repo_url

from .discovery import DiscoveryError, discover_chart, discover_git, discover_image
from .models import Freight, Warehouse
from .queries import assembly_choices

log = logging.getLogger(__name__)


class FreightError(ValueError):
    """A request about Freight that cannot be honoured; the message is for the user."""


def do_create_freight(
    project: Project,
    origin_name: str,
    *,
    commits=(),
    images=(),
    charts=(),
    artifacts=(),
    alias: str = "",
    actor: str,
    discovered_at=None,
) -> tuple[Freight, bool]:
    """Create Freight by content (its name is Kargo's content hash). Returns (freight, created)."""
    commits, images, charts, artifacts = list(commits), list(images), list(charts), list(artifacts)
    name = freight_id(origin_name, commits, images, charts, artifacts)
    existing = Freight.objects.filter(project=project, name=name).first()
    if existing:
        return existing, False
    taken = AliasesInUse(project)
    if alias and alias in taken:
        raise FreightError(
            f"alias {alias!r} is already used by other Freight in project {project.name}"
        )
    alias = alias or generate_alias(taken)
    try:
        # A savepoint: two discoveries of the same Warehouse may race to create the same Freight.
        with transaction.atomic():
            freight = Freight.objects.create(
                project=project,
                name=name,
                alias=alias,
                origin_name=origin_name,
                commits=commits,
                images=images,
                charts=charts,
                artifacts=artifacts,
                labels={"kargo.akuity.io/alias": alias},
                discovered_at=discovered_at or timezone.now(),
            )
    except IntegrityError:
        existing = Freight.objects.filter(project=project, name=name).first()
        if existing is None:
            raise FreightError(f"alias {alias!r} was taken concurrently; try again") from None
        return existing, False
    record_event(
        project,
        "FreightCreated",
        actor,
        f"Freight {freight.alias} created by Warehouse/{origin_name}",
        f"Freight/{name}",
    )
    broadcast_on_commit(project.id, "freight", freight.id)
    # New Freight may be a Stage's auto-promotion candidate (the task is the stages app's).
    enqueue_on_commit("stages.tasks.auto_promote", project.id)
    return freight, True


class AliasesInUse:
    """`alias in AliasesInUse(project)` asks the database, so creating Freight never loads every
    alias of a project with tens of thousands of Freight."""

    def __init__(self, project: Project):
        self.project = project

    def __contains__(self, alias: str) -> bool:
        return Freight.objects.filter(project=self.project, alias=alias).exists()


def do_update_alias(freight: Freight, alias: str, actor: str) -> Freight:
    if Freight.objects.filter(project=freight.project, alias=alias).exclude(id=freight.id).exists():
        raise FreightError(f"alias {alias!r} is already used by other Freight")
    old = freight.alias
    freight.alias = alias
    freight.labels = {**freight.labels, "kargo.akuity.io/alias": alias}
    freight.save(update_fields=["alias", "labels"])
    record_event(
        freight.project,
        "FreightAliasUpdated",
        actor,
        f"Freight alias {old} changed to {alias}",
        f"Freight/{freight.name}",
    )
    broadcast_on_commit(freight.project_id, "freight", freight.id)
    return freight


def do_set_freight_metadata(freight: Freight, values: dict) -> Freight:
    """The set-metadata step for Freight: each key of `values` set in status.metadata (Kargo's
    FreightStatus.UpsertMetadata), the others kept."""
    with transaction.atomic():
        freight = Freight.objects.select_for_update().get(id=freight.id)
        metadata = {**(freight.status.get("metadata") or {}), **values}
        freight.status = {**freight.status, "metadata": metadata}
        freight.save(update_fields=["status"])
        broadcast_on_commit(freight.project_id, "freight", freight.id)
    return freight


def do_approve(freight: Freight, stage_name: str, actor: str) -> Freight:
    """Kargo's manual approval: the Freight becomes available to the Stage regardless of upstream."""
    with transaction.atomic():
        freight = Freight.objects.select_for_update().get(id=freight.id)
        approved = dict(freight.status.get("approvedFor", {}))
        approved[stage_name] = {"approvedAt": rfc3339(timezone.now())}
        freight.status = {**freight.status, "approvedFor": approved}
        freight.save(update_fields=["status"])
        record_event(
            freight.project,
            "FreightApproved",
            actor,
            f"Freight {freight.alias} approved for Stage {stage_name}",
            f"Freight/{freight.name}",
        )
        broadcast_on_commit(freight.project_id, "freight", freight.id)
    return freight


def do_request_refresh(warehouse: Warehouse, actor: str) -> None:
    Warehouse.objects.filter(id=warehouse.id).update(refresh_requested_at=timezone.now())
    record_event(
        warehouse.project,
        "WarehouseRefreshRequested",
        actor,
        f"Refresh of Warehouse {warehouse.name} requested",
        f"Warehouse/{warehouse.name}",
    )
    broadcast_on_commit(warehouse.project_id, "warehouse", warehouse.id)
    enqueue_on_commit("freight.tasks.discover_warehouse", warehouse.id)


DISCOVERY_LEASE = timedelta(minutes=10)  # longer than git's own network timeout (5 minutes)


def discovery_due(warehouse: Warehouse, now) -> bool:
    """Kargo discovers when never discovered, on refresh, on a spec change or when the interval
    elapsed; not while another discovery of it is running."""
    if warehouse.discovery_started_at and now - warehouse.discovery_started_at < DISCOVERY_LEASE:
        return False
    if warehouse.last_discovery_at is None or warehouse.refresh_requested_at is not None:
        return True
    if warehouse.status.get("observedGeneration") != warehouse.generation:
        return True
    interval = max(duration_seconds(warehouse.typed_spec.interval), settings.MIN_DISCOVERY_INTERVAL)
    return (now - warehouse.last_discovery_at).total_seconds() >= interval


def discover_git_subscription(warehouse: Warehouse, sub: RepoSubscription) -> tuple[dict, dict]:
    """A git subscription's discoveredArtifacts.git entry and its newest commit (for Freight)."""
    git = sub.git
    check_repo_url(git.repoURL)
    expression = git.expressionFilter
    found = discover_git(
        git,
        settings.DATA_DIR / "git-cache",
        expression_filter=(lambda env, e=expression: evaluate(e, env)) if expression else None,
        auth_env=git_env(warehouse.project_id, git.repoURL),
    )
    named = {"subscriptionName": sub.name} if sub.name else {}
    entry = {"repoURL": git.repoURL, **named, "commits": [c.as_dict() for c in found]}
    if not found:
        raise DiscoveryError(f"no commits of {git.repoURL} match the subscription")
    best = found[0]
    commit = {
        "repoURL": git.repoURL,
        "id": best.id,
        **({"branch": best.branch} if best.branch else {}),
        **({"tag": best.tag} if best.tag else {}),
        **({"message": best.subject} if best.subject else {}),
        **({"author": best.author} if best.author else {}),
        **({"committer": best.committer} if best.committer else {}),
        **named,
    }
    return entry, commit


def discover_image_subscription(warehouse: Warehouse, sub: RepoSubscription) -> tuple[dict, dict]:
    """An image subscription's discoveredArtifacts.images entry and its newest image."""
    image = sub.image
    found = discover_image(
        image,
        warehouse.project_id,
        credentials=lookup(warehouse.project_id, "image", image.repoURL),
    )
    named = {"subscriptionName": sub.name} if sub.name else {}
    entry = {
        "repoURL": image.repoURL,
        **({"platform": image.platform} if image.platform else {}),
        **named,
        "references": [i.as_dict() for i in found],
    }
    if not found:
        raise DiscoveryError(f"no images of {image.repoURL} match the subscription")
    best = found[0]
    newest = {
        "repoURL": image.repoURL,
        "tag": best.tag,
        "digest": best.digest,
        **({"annotations": best.annotations} if best.annotations else {}),
        **named,
    }
    return entry, newest


def discover_chart_subscription(warehouse: Warehouse, sub: RepoSubscription) -> tuple[dict, dict]:
    """A chart subscription's discoveredArtifacts.charts entry and its newest version."""
    chart = sub.chart
    found = discover_chart(
        chart,
        credentials=lookup(warehouse.project_id, "helm", chart.repoURL),
    )
    named = {"subscriptionName": sub.name} if sub.name else {}
    entry = {**found.as_dict(), **named}
    if not found.versions:
        what = f"chart {chart.name} in {chart.repoURL}" if chart.name else chart.repoURL
        raise DiscoveryError(f"no versions of {what} match the subscription")
    newest = {
        "repoURL": chart.repoURL,
        **({"name": chart.name} if chart.name else {}),
        "version": found.versions[0],
        **named,
    }
    return entry, newest


# Per subscription kind: its discovery, its key in status.discoveredArtifacts and in Freight.
SUBSCRIPTION_KINDS = {
    "git": (discover_git_subscription, "git", "commits"),
    "image": (discover_image_subscription, "images", "images"),
    "chart": (discover_chart_subscription, "charts", "charts"),
}


def criteria_functions(discovered: dict) -> dict:
    """imageFrom, commitFrom and chartFrom over discovered artifacts (the newest of each
    subscription), for freightCreationCriteria (Kargo's DiscoveredArtifactsOperations). They
    answer in the promotion functions' shapes (stages.engine), plus the fields Kargo's
    discovered-artifact types add (Subject and CreatorDate of a commit, CreatedAt of an image)."""

    def commit_from(repo_url, *rest):
        _arity("commitFrom", rest, 0)
        for entry in discovered.get("git", []):
            if normalize_git_url(entry["repoURL"]) == normalize_git_url(str(repo_url)):
                if entry.get("commits"):
                    c = entry["commits"][0]
                    return {
                        "RepoURL": entry["repoURL"],
                        "ID": c.get("id", ""),
                        "Branch": c.get("branch", ""),
                        "Tag": c.get("tag", ""),
                        "Message": c.get("subject", ""),
                        "Subject": c.get("subject", ""),
                        "Author": c.get("author", ""),
                        "Committer": c.get("committer", ""),
                        "CreatorDate": parse_rfc3339(c.get("creatorDate")),
                    }
        return None

    def image_from(repo_url, *rest):
        _arity("imageFrom", rest, 0)
        # Kargo compares NormalizeImage forms; normalize_chart_url is that (and drops oci://).
        wanted = normalize_chart_url(str(repo_url))
        for entry in discovered.get("images", []):
            if normalize_chart_url(entry["repoURL"]) == wanted and entry.get("references"):
                ref = entry["references"][0]
                return {
                    "RepoURL": entry["repoURL"],
                    "Tag": ref.get("tag", ""),
                    "Digest": ref.get("digest", ""),
                    "Annotations": ref.get("annotations", {}),
                    "CreatedAt": parse_rfc3339(ref.get("createdAt")),
                }
        return None

    def chart_from(repo_url, *rest):
        _arity("chartFrom", rest, 1)
        name = rest[0] if rest else ""
        if not isinstance(name, str):
            raise ExpressionError("chartFrom: the chart name must be a string")
        wanted = normalize_chart_url(str(repo_url))
        for entry in discovered.get("charts", []):
            if normalize_chart_url(entry["repoURL"]) != wanted:
                continue
            if name and entry.get("name", "") != name:
                continue
            if entry.get("versions"):
                return {
                    "RepoURL": entry["repoURL"],
                    "Name": entry.get("name", ""),
                    "Version": entry["versions"][0],
                }
        return None

    return {"commitFrom": commit_from, "imageFrom": image_from, "chartFrom": chart_from}


def _arity(name: str, rest: tuple, most: int) -> None:
    if len(rest) > most:
        raise ExpressionError(
            f"{name}: expected at most {most + 1} argument(s), got {len(rest) + 1}"
        )


def criteria_satisfied(expression: str, discovered: dict) -> bool:
    """Evaluate freightCreationCriteria.expression (budgeted). A non-boolean result counts as
    Go's strconv.ParseBool reads its text. Raises ExpressionError."""
    result = evaluate(expression, criteria_functions(discovered))
    if isinstance(result, bool):
        return result
    text = str(result)
    if text in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if text in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise ExpressionError(f"the result {text[:100]!r} is not a boolean")


def do_discover(warehouse_id: int) -> Freight | None:
    """Run artifact discovery for a Warehouse and create Freight from the newest of every
    subscription (Kargo's buildFreightFromLatestArtifacts), when freightCreationCriteria allow.
    Failures land in the Warehouse's conditions for the user to see; nothing is half-written."""
    now = timezone.now()
    free = Q(discovery_started_at__isnull=True) | Q(discovery_started_at__lt=now - DISCOVERY_LEASE)
    if not Warehouse.objects.filter(free, id=warehouse_id).update(discovery_started_at=now):
        return None  # another worker is discovering this Warehouse right now
    warehouse = Warehouse.objects.select_related("project").get(id=warehouse_id)
    refresh_token = warehouse.refresh_requested_at
    status = dict(warehouse.status)
    conditions = status.get("conditions", [])
    discovered: dict[str, list] = {"git": [], "images": [], "charts": []}
    latest: dict[str, list] = {"commits": [], "images": [], "charts": []}
    error = ""
    try:
        for sub in warehouse.typed_spec.subscriptions:
            kind = next(iter(sub.model_fields_set - {"name"}))  # exactly one, by the schema
            if kind not in SUBSCRIPTION_KINDS:
                raise DiscoveryError(f"{kind} subscriptions are not supported yet by this server")
            discover, status_key, freight_key = SUBSCRIPTION_KINDS[kind]
            entry, newest = discover(warehouse, sub)
            discovered[status_key].append(entry)
            latest[freight_key].append(newest)
    except (DiscoveryError, ExpressionError, RepoNotAllowed) as exc:
        # Git's messages may name the server's mirror; users see where, not the server's layout.
        error = hide_paths(str(exc), (settings.DATA_DIR, "$KARGO_DATA_DIR"))
    except Exception as exc:  # the Warehouse must show that discovery failed, not look idle
        log.exception("discovery for warehouse %s crashed", warehouse.name)
        error = f"internal error: {exc.__class__.__name__}: {exc}"

    freight = None
    try:
        with transaction.atomic():
            # The Warehouse before the project's Freight count (new Freight takes it), in the
            # order `apply` takes them (Warehouses before Freight): two transactions taking
            # them in opposite orders could deadlock on PostgreSQL.
            Warehouse.objects.select_for_update().filter(id=warehouse.id).exists()
            if error:
                conditions = set_condition(
                    conditions, condition("Healthy", False, "DiscoveryFailed", error, now)
                )
                conditions = set_condition(
                    conditions, condition("Ready", False, "DiscoveryFailed", error, now)
                )
            else:
                status["discoveredArtifacts"] = {
                    "discoveredAt": rfc3339(now),
                    # Kargo's shape: git always (as before), images and charts when subscribed.
                    "git": discovered["git"],
                    **{key: discovered[key] for key in ("images", "charts") if discovered[key]},
                }
                conditions = set_condition(
                    conditions,
                    condition("Healthy", True, "ArtifactsDiscovered", "Artifacts discovered", now),
                )
                spec = warehouse.typed_spec
                expression = (
                    (spec.freightCreationCriteria.expression or "").strip()
                    if spec.freightCreationCriteria
                    else ""
                )
                allowed = True
                if spec.freightCreationPolicy == "Automatic" and expression:
                    try:
                        allowed = criteria_satisfied(expression, discovered)
                    except ExpressionError as exc:
                        allowed = False
                        message = f"Evaluation of Freight creation criteria failed: {exc}"
                        reason = "CriteriaEvaluationFailed"
                    else:
                        reason = "CriteriaSatisfied" if allowed else "CriteriaNotSatisfied"
                        message = (
                            "Freight creation criteria satisfied"
                            if allowed
                            else f"Freight creation criteria were not satisfied: {expression}"
                        )
                    conditions = set_condition(
                        conditions,
                        condition(
                            "FreightCreationCriteriaSatisfied", allowed, reason, message, now
                        ),
                    )
                else:
                    conditions = [
                        c for c in conditions if c.get("type") != "FreightCreationCriteriaSatisfied"
                    ]
                if spec.freightCreationPolicy == "Automatic" and allowed:
                    freight, created = do_create_freight(
                        warehouse.project,
                        warehouse.name,
                        commits=latest["commits"],
                        images=latest["images"],
                        charts=latest["charts"],
                        actor=f"controller:warehouse/{warehouse.name}",
                    )
                    reason = "NewFreight" if created else "AlreadyExists"
                    conditions = set_condition(
                        conditions,
                        condition("FreightCreated", True, reason, f"Freight {freight.alias}", now),
                    )
                    status["lastFreightID"] = freight.name
                conditions = set_condition(
                    conditions,
                    condition("Ready", True, "ArtifactsDiscovered", "Warehouse is ready", now),
                )
            status["conditions"] = conditions
            status["observedGeneration"] = warehouse.generation
            if refresh_token:
                status["lastHandledRefresh"] = rfc3339(refresh_token)
            # Clear the refresh request only if no newer one arrived while we were discovering.
            Warehouse.objects.filter(id=warehouse.id).update(
                status=status, last_discovery_at=now, discovery_started_at=None
            )
            Warehouse.objects.filter(id=warehouse.id, refresh_requested_at=refresh_token).update(
                refresh_requested_at=None
            )
            broadcast_on_commit(warehouse.project_id, "warehouse", warehouse.id)
    except Exception:
        # Release the lease so the next reconcile retries instead of waiting it out.
        Warehouse.objects.filter(id=warehouse.id, discovery_started_at=now).update(
            discovery_started_at=None
        )
        raise
    if error:
        log.warning(
            "discovery for warehouse %s/%s failed: %s",
            warehouse.project.name,
            warehouse.name,
            error,
        )
    return freight


def delete_guard(freight: Freight) -> None:
    if freight.status.get("currentlyIn"):
        stages = ", ".join(sorted(freight.status["currentlyIn"]))
        raise FreightError(
            f"Freight {freight.alias} is in use by Stage(s) {stages} and cannot be deleted"
        )


# An alias is a label value (kargo.akuity.io/alias): what a person types is held to it.
ALIAS_PATTERN = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


def do_assemble_freight(
    warehouse: Warehouse, picks: dict[int, str], actor: str, alias: str = ""
) -> tuple[Freight, bool]:
    """Freight a person put together from what the Warehouse discovered (Kargo's "create
    Freight"; the way to get Freight when freightCreationPolicy is Manual): one artifact per
    subscription, each among those its last discovery found. Returns (freight, created): the same
    artifacts make the same Freight, which is then returned as it is."""
    commits, images, charts = [], [], []
    subscriptions = assembly_choices(warehouse)
    for choices in subscriptions:
        key = picks.get(choices.index, "")
        if not key:
            raise FreightError(f"choose an artifact of {choices.title}")
        chosen = next((o for o in choices.options if o.key == key), None)
        if chosen is None:
            raise FreightError(
                f"{key[:80]!r} is not among the discovered artifacts of {choices.title}"
            )
        {"git": commits, "image": images, "chart": charts}[choices.kind].append(chosen.artifact)
    unknown = set(picks) - {c.index for c in subscriptions}
    if unknown:
        raise FreightError(f"the Warehouse has no subscription number {min(unknown)}")
    if alias and not ALIAS_PATTERN.fullmatch(alias):
        raise FreightError(
            "an alias is lowercase letters, digits and dashes (at most 63), starting and ending "
            "with a letter or digit"
        )
    with transaction.atomic():
        return do_create_freight(
            warehouse.project,
            warehouse.name,
            commits=commits,
            images=images,
            charts=charts,
            alias=alias,
            actor=actor,
        )

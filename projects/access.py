"""Authentication and project access rules: the only place that decides who may do what."""

import ipaddress

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest

from .models import ROLE_RANK, Membership, Project, Role


def is_loopback(request: HttpRequest | None) -> bool:
    """A request made on this machine. A proxy on this machine makes every request look local, so
    requests that came through one (Forwarded headers) do not count."""
    if request is None:
        return False
    if "HTTP_X_FORWARDED_FOR" in request.META or "HTTP_FORWARDED" in request.META:
        return False
    addr = request.META.get("REMOTE_ADDR", "")
    try:
        return ipaddress.ip_address(addr).is_loopback
    except ValueError:
        return False


class KargoBackend(ModelBackend):
    """Django's password login, except that the seeded demo account works only in demo mode and
    only for requests from loopback, so a demo database exposed by mistake does not let anyone in."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if username == settings.DEMO_USERNAME and not (settings.DEMO_MODE and is_loopback(request)):
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


def role_in(user, project: Project) -> str | None:
    """The user's Kargo project role, or None. Superusers act as admin everywhere."""
    if not user.is_authenticated or not user.is_active:
        return None
    if user.is_superuser:
        return Role.ADMIN
    membership = Membership.objects.filter(project=project, user=user).only("role").first()
    return membership.role if membership else None


def roles_of(project_id: int, users: list) -> dict[int, str | None]:
    """role_in for many users of one project, read fresh in two queries (a live feed checks
    every open page this way before each push)."""
    ids = [u.pk for u in users if u.is_authenticated]
    accounts = get_user_model().objects.filter(id__in=ids).values("id", "is_active", "is_superuser")
    members = dict(
        Membership.objects.filter(project_id=project_id, user_id__in=ids).values_list(
            "user_id", "role"
        )
    )
    roles: dict[int, str | None] = {}
    for account in accounts:
        if not account["is_active"]:
            continue
        roles[account["id"]] = Role.ADMIN if account["is_superuser"] else members.get(account["id"])
    return roles


def has_role(role: str | None, needed: str) -> bool:
    return role is not None and ROLE_RANK[role] >= ROLE_RANK[needed]


class Needs:
    """The role each action needs, after the rules of Kargo's project roles
    (pkg/controller/management/projects): a viewer gets, lists and watches; a promoter also holds
    `promote` on Stages, `create` on Promotions and `patch` on freights/status (approval); only an
    admin holds `patch` on Promotions (abort promotion) and `*` on everything else (apply,
    delete, API tokens).

    Reverify and abort verification are held at promoter, not at admin as Kargo's `patch` on
    Stages would have it: whoever may move Freight into a Stage may re-check it there or stop a
    check that hangs (the dashboard's users asked for this; issue 8).

    Refresh is held at promoter: Kargo's current server asks only `get` for it, but here a
    refresh starts git discovery on the server, which is more than a viewer's look."""

    READ = Role.VIEWER
    PROMOTE = Role.PROMOTER
    APPROVE = Role.PROMOTER
    REFRESH = Role.PROMOTER
    REVERIFY = Role.PROMOTER
    ABORT_VERIFICATION = Role.PROMOTER
    ABORT_PROMOTION = Role.ADMIN
    MANAGE = Role.ADMIN


def can_promote(role: str | None) -> bool:
    return has_role(role, Needs.PROMOTE)


def can_abort(role: str | None) -> bool:
    return has_role(role, Needs.ABORT_PROMOTION)


def get_project_for_user(user, name: str, needed: str = Role.VIEWER) -> tuple[Project, str]:
    """The project and the user's role in it. Non-members get 404 (the project's existence is not
    revealed); members without the needed role get 403."""
    project = Project.objects.filter(name=name).first()
    role = role_in(user, project) if project else None
    if project is None or role is None:
        raise Http404("No such project")
    if not has_role(role, needed):
        raise PermissionDenied(f"This needs the {needed} role in project {name}")
    return project, role


def get_project_for_request(
    request: HttpRequest, name: str, needed: str = Role.VIEWER
) -> tuple[Project, str]:
    """get_project_for_user for the JSON API, where the caller is a session user or an API token
    (projects.web.api_view sets `request.api_token`). A token acts with its own role and only in
    its own project: elsewhere it gets the outsider's 404."""
    token = getattr(request, "api_token", None)
    if token is None:
        return get_project_for_user(request.user, name, needed)
    if token.project.name != name:
        raise Http404("No such project")
    if not has_role(token.role, needed):
        raise PermissionDenied(
            f"This needs the {needed} role in project {name}; "
            f"token {token.name!r} has the {token.role} role"
        )
    return token.project, token.role


def projects_for_user(user):
    qs = Project.objects.all()
    if user.is_superuser:
        return qs
    return qs.filter(memberships__user=user)


def actor_of(request: HttpRequest) -> str:
    """Kargo's actor string for a person, or for the API token a request came with."""
    token = getattr(request, "api_token", None)
    if token is not None:
        return f"token:{token.name}"
    user = request.user
    return f"email:{user.email}" if user.email else f"user:{user.get_username()}"

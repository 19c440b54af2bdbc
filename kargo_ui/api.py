"""JSON API for what `manage.py kargo` does with manifests and API tokens: apply, get (export),
delete, and create/list/delete tokens, per project. `kargo-ui` (kargo_ui.remote_cli) calls it.

Same authentication and errors as the rest of the API (projects.web.api_view: session with CSRF,
or an API token) and the same code as the CLI, so the messages are the CLI's: apply validates
with kargo_ui.manifests and reports every problem by file, document and field path. Unlike the
CLI, which acts with operator rights, a caller here acts with a project role: reading needs
viewer; apply, delete and tokens need admin. Everything stays inside the project in the URL:
documents for another project, and cluster-scoped kinds (ClusterPromotionTask, ...), are refused,
since a project admin has no say over them; the project's own Project document may be applied.
"""

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.http import Http404, HttpResponse, JsonResponse
from django.views.decorators.http import require_http_methods

from kargo.specs import KINDS
from kargo.specs.core import SHARED_NAMESPACE, is_core
from kargo_ui import manifests
from kargo_ui.management.commands.kargo import (
    config_map_table,
    credential_table,
    delete_resource,
    find_resource,
    table,
    token_table,
)
from projects.access import Needs, actor_of, get_project_for_request
from projects.actions import do_delete_config_map, do_delete_credential, do_save_credential
from projects.credentials import config_maps_of, credential_info, credentials_of
from projects.models import ApiToken, Project
from projects.queries import get_or_404
from projects.tokens import (
    DEFAULT_LIFETIME,
    do_create_token,
    do_delete_token,
    parse_expiry,
    token_info,
)
from projects.web import api_view, body_of

# All files of one apply together, as Kargo's /resources endpoint bounds a request (kargo.yamlio
# holds each text to its own budget of size, depth and aliases as well).
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
OUTPUTS = ("json", "yaml", "table")


def output_of(request) -> str:
    output = request.GET.get("output", "json")
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {', '.join(OUTPUTS)}")
    return output


def text_response(text: str, output: str) -> HttpResponse:
    content_type = "application/yaml" if output == "yaml" else "text/plain"
    return HttpResponse(text, content_type=f"{content_type}; charset=utf-8")


def manifest_sources(request) -> list[tuple[str, str]]:
    """(source name, text) of each file sent: multipart `file` parts, each named by the `source`
    field in the same position (the path as the caller gave it, so errors name it as the CLI
    does), or a raw YAML/JSON body named by `?source=`."""
    if request.content_type == "multipart/form-data":
        files = request.FILES.getlist("file")
        names = request.POST.getlist("source")
        if sum(f.size for f in files) > MAX_MANIFEST_BYTES:
            raise RequestDataTooBig("manifests over the size limit")
        sources = []
        for i, upload in enumerate(files):
            source = names[i] if i < len(names) and names[i] else upload.name
            sources.append((source, decoded(upload.read(), source)))
        return sources
    if len(request.body) > MAX_MANIFEST_BYTES:
        raise RequestDataTooBig("manifests over the size limit")
    source = request.GET.get("source") or "<request>"
    return [(source, decoded(request.body, source))]


def decoded(data: bytes, source: str) -> str:
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise ValueError(f"{source}: not UTF-8 text") from None


def check_in_project(docs: list[manifests.Doc], project: Project) -> None:
    """A project's API changes only that project: PermissionDenied names every document that
    reaches outside it. Unknown kinds are left to validation, which says what is wrong."""
    errors = []
    for doc in docs:
        if is_core(doc.body):
            # A project's Secrets and ConfigMaps; shared ones are the operator's, on the server.
            if doc.namespace == SHARED_NAMESPACE:
                errors.append(
                    f"{doc.where}: metadata.namespace: shared resources are applied on the "
                    "server, with manage.py kargo"
                )
            elif doc.namespace and doc.namespace != project.name:
                errors.append(
                    f"{doc.where}: metadata.namespace: {doc.namespace!r} is not project "
                    f"{project.name!r}"
                )
            continue
        kind = KINDS.get(doc.kind)
        if kind is None:
            continue
        if doc.kind == "Project":
            if doc.name != project.name:
                errors.append(
                    f"{doc.where}: metadata.name: only Project {project.name!r} can be applied here"
                )
        elif kind.cluster_scoped:
            errors.append(
                f"{doc.where}: {doc.kind} is cluster-scoped: apply it on the server with "
                "manage.py kargo"
            )
        elif doc.namespace and doc.namespace != project.name:
            errors.append(
                f"{doc.where}: metadata.namespace: {doc.namespace!r} is not project {project.name!r}"
            )
    if errors:
        raise PermissionDenied("\n".join(errors))


def kind_in_project(text: str) -> str:
    """The kind named by `text`, refused when it is cluster-scoped (Project aside)."""
    kind = manifests.kind_named(text)
    if KINDS[kind].cluster_scoped and kind != "Project":
        raise PermissionDenied(f"{kind} is cluster-scoped: use manage.py kargo on the server")
    return kind


@require_http_methods(["POST"])
@api_view
def apply(request, project):
    """`kargo apply -f ...`: every document validated first, then all written in one transaction.
    Answers `{"results": ["stage/test created", ...]}`, or 400 with every error."""
    project, _ = get_project_for_request(request, project, Needs.MANAGE)
    docs = []
    try:
        for source, text in manifest_sources(request):
            docs += manifests.load(text, source)
        if not docs:
            raise ValueError("no documents found")
        check_in_project(docs, project)
        results = manifests.apply_docs(docs, actor_of(request), project.name)
    except manifests.ManifestError as exc:
        return JsonResponse({"error": "\n".join(exc.errors), "errors": exc.errors}, status=400)
    return JsonResponse({"results": results})


@require_http_methods(["GET"])
@api_view
def list_resources(request, project, kind):
    """`kargo get KIND`: `?output=json` (a v1 List, as `-o json` prints), `yaml` or `table`."""
    project, _ = get_project_for_request(request, project, Needs.READ)
    kind = kind_in_project(kind)
    output = output_of(request)
    if kind == "Project":
        docs = manifests.export(kind, None, project.name)
    else:
        docs = manifests.export(kind, project.name)
    if output == "json":
        return JsonResponse({"apiVersion": "v1", "kind": "List", "items": docs})
    return text_response(
        manifests.dump_yaml(docs) if output == "yaml" else table(kind, docs), output
    )


@require_http_methods(["GET", "DELETE"])
@api_view
def resource(request, project, kind, name):
    """GET: `kargo get KIND NAME` (Freight by name or alias). DELETE: `kargo delete KIND NAME`."""
    needed = Needs.MANAGE if request.method == "DELETE" else Needs.READ
    project, _ = get_project_for_request(request, project, needed)
    kind = kind_in_project(kind)
    not_found = Http404(f'{kind} "{name}" not found')
    if kind == "Project" and name != project.name:
        raise not_found
    if request.method == "DELETE":
        if kind == "Project":
            raise PermissionDenied("a Project is deleted on the server, with manage.py kargo")
        obj = find_resource(kind, name, project.name)
        if obj is None:
            raise not_found
        return JsonResponse({"deleted": delete_resource(kind, obj, actor_of(request))})
    output = output_of(request)
    docs = manifests.export(kind, None if kind == "Project" else project.name, name)
    if not docs:
        raise not_found
    if output == "json":
        return JsonResponse(docs[0])
    return text_response(
        manifests.dump_yaml(docs) if output == "yaml" else table(kind, docs), output
    )


@require_http_methods(["GET", "POST"])
@api_view
def tokens(request, project):
    """GET: `kargo get tokens` (names, roles, dates; never a secret). POST `{"name", "role",
    "expires"?}`: `kargo create token`, answering the token itself, this once."""
    project, _ = get_project_for_request(request, project, Needs.MANAGE)
    if request.method == "POST":
        data = body_of(request)
        name, role = str(data.get("name", "")), str(data.get("role", ""))
        lifetime = parse_expiry(str(data.get("expires") or f"{DEFAULT_LIFETIME.days}d"))
        token, secret = do_create_token(project, name, role, actor_of(request), lifetime)
        return JsonResponse({**token_info(token), "token": secret}, status=201)
    infos = [token_info(t) for t in ApiToken.objects.filter(project=project)]
    output = output_of(request)
    if output == "json":
        return JsonResponse({"items": infos})
    return text_response(
        manifests.dump_yaml(infos) if output == "yaml" else token_table(infos), output
    )


@require_http_methods(["GET", "DELETE"])
@api_view
def token(request, project, name):
    """GET: one token's listing. DELETE: `kargo delete token NAME`, revoking it at once."""
    project, _ = get_project_for_request(request, project, Needs.MANAGE)
    obj = get_or_404(
        ApiToken.objects.select_related("project"), f"token {name!r}", project=project, name=name
    )
    if request.method == "DELETE":
        do_delete_token(obj, actor_of(request))
        return JsonResponse({"deleted": f"token/{obj.name} deleted"})
    info, output = token_info(obj), output_of(request)
    if output == "json":
        return JsonResponse(info)
    return text_response(
        manifests.dump_yaml([info]) if output == "yaml" else token_table([info]), output
    )


# ---------------------------------------------------------------- credentials and configmaps


def core_answer(request, kind: str, project, rows, name: str | None = None) -> HttpResponse:
    """A listing in the requested output: a v1 List of manifests (json), their YAML, or the
    table. Secrets print every value as ***."""
    output = output_of(request)
    docs = manifests.export_core(kind, project.id, name)
    if name and not docs:
        raise Http404(f'{kind} "{name}" not found')
    if output == "json":
        return JsonResponse(
            docs[0] if name else {"apiVersion": "v1", "kind": "List", "items": docs}
        )
    if output == "yaml":
        return text_response(manifests.dump_yaml(docs), output)
    if kind == "Secret":
        infos = [credential_info(r) for r in (rows.filter(name=name) if name else rows)]
        return text_response(credential_table(infos), output)
    return text_response(config_map_table(docs), output)


@require_http_methods(["GET", "POST"])
@api_view
def credentials(request, project):
    """GET: `kargo get credentials` (names, types, URLs; every value ***). POST `{"name", "type",
    "data"}`: `kargo create repo-credentials|generic-credentials` (admin). Values travel only in
    the request body, never in a URL."""
    project, _ = get_project_for_request(request, project, Needs.MANAGE)
    if request.method == "POST":
        body = body_of(request)
        data = body.get("data")
        if not isinstance(data, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in data.items()
        ):
            raise ValueError("data must be an object of string values")
        name, cred_type = str(body.get("name", "")), str(body.get("type", ""))
        result = do_save_credential(
            project, name, cred_type, data, actor_of(request), create_only=True
        )
        return JsonResponse({"name": name, "result": result}, status=201)
    return core_answer(request, "Secret", project, credentials_of(project.id))


@require_http_methods(["GET", "DELETE"])
@api_view
def credential(request, project, name):
    """GET: one credential's listing. DELETE: `kargo delete credentials NAME` (admin)."""
    project, _ = get_project_for_request(request, project, Needs.MANAGE)
    if request.method == "DELETE":
        row = get_or_404(credentials_of(project.id), f"credential {name!r}", name=name)
        do_delete_credential(row, actor_of(request))
        return JsonResponse({"deleted": f"secret/{row.name} deleted"})
    return core_answer(request, "Secret", project, credentials_of(project.id), name)


@require_http_methods(["GET"])
@api_view
def config_maps(request, project):
    """`kargo get configmaps`: plain data, readable by viewers as in Kargo's roles."""
    project, _ = get_project_for_request(request, project, Needs.READ)
    return core_answer(request, "ConfigMap", project, config_maps_of(project.id))


@require_http_methods(["GET", "DELETE"])
@api_view
def config_map(request, project, name):
    needed = Needs.MANAGE if request.method == "DELETE" else Needs.READ
    project, _ = get_project_for_request(request, project, needed)
    if request.method == "DELETE":
        row = get_or_404(config_maps_of(project.id), f"configmap {name!r}", name=name)
        do_delete_config_map(row, actor_of(request))
        return JsonResponse({"deleted": f"configmap/{row.name} deleted"})
    return core_answer(request, "ConfigMap", project, config_maps_of(project.id), name)

"""`manage.py kargo ...`: Kargo's CLI verbs against this server's database, with operator rights.
Every change records who acted (--actor, default the OS user). `kargo-ui` (kargo_ui.remote_cli)
runs the same verbs against a server's JSON API with an API token, which kargo_ui.api answers
with the helpers below (find_resource, delete_resource, table, token_table)."""

import argparse
import getpass
import json
import secrets
import sys
import time
from pathlib import Path
from types import SimpleNamespace

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Q

from freight.actions import delete_guard, do_approve, do_assemble_freight, do_request_refresh
from freight.models import Freight, Warehouse
from freight.queries import picks_by_name
from kargo.specs import KINDS
from kargo.specs.core import SHARED_NAMESPACE, core_kind
from kargo_ui import manifests
from kargo_ui.cli_verbs import (
    ROLES,
    add_verbs,
    auto_promotion_lines,
    credential_data,
    freight_request,
)
from projects import oidc
from projects.actions import (
    do_delete_config_map,
    do_delete_credential,
    do_rotate_credentials_key,
    do_save_credential,
    do_set_membership,
    record_event,
)
from projects.audit import audit_context
from projects.credentials import config_maps_of, credential_info, credentials_of
from projects.models import ApiToken, Membership, Project, Surface
from projects.tokens import (
    do_create_token,
    do_delete_token,
    parse_expiry,
    token_info,
)
from stages.actions import (
    do_abort,
    do_abort_verification,
    do_delete_stage,
    do_promote,
    do_refresh_stage,
    do_reverify,
    do_set_auto_promotion,
)
from stages.autopromotion import auto_promotion_answer
from stages.models import Promotion, Stage
from stages.queries import current_freight_names, newest_available


def default_actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:
        return "cli:unknown"


def server_project_option(parser, needed: bool) -> None:
    if needed:
        parser.add_argument("--project", required=True)
    else:
        parser.add_argument(
            "--project", default="", help="project for documents without metadata.namespace"
        )


class Command(BaseCommand):
    help = (
        "Kargo CLI verbs: apply, get, delete, promote, approve, refresh, verify, auto-promotion, "
        "create token|repo-credentials|generic-credentials, rotate-credentials-key"
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--actor", default=default_actor(), help="who is acting, recorded in events"
        )
        sub = parser.add_subparsers(dest="verb", required=True)
        add_verbs(sub, server_project_option)
        # Shared credentials and ConfigMaps (Kargo's kargo-shared-resources namespace) are the
        # operator's: only this CLI reaches them.
        for verb in ("create", "get", "delete"):
            sub.choices[verb].add_argument(
                "--shared",
                action="store_true",
                help=f"credentials and configmaps: the shared ones ({SHARED_NAMESPACE})",
            )
        for action in sub.choices["create"]._actions:
            if action.dest == "project":
                action.required = False  # --shared instead; a token still needs one
        sub.add_parser(
            "rotate-credentials-key",
            help="re-encrypt every stored credential with the first of KARGO_CREDENTIALS_KEYS",
        )

        p = sub.add_parser(
            "grant",
            help="give a user, or SSO users with a claim, a role in a project "
            "(viewer, promoter, admin)",
        )
        p.add_argument("--project", required=True)
        g = p.add_mutually_exclusive_group(required=True)
        g.add_argument("--user")
        g.add_argument(
            "--claim",
            metavar="CLAIM=VALUE",
            help="SSO users whose claim holds the value get the role (groups=devops)",
        )
        p.add_argument("--role", required=True, choices=ROLES)
        p.add_argument(
            "--create-user",
            action="store_true",
            help="create the user with a generated password, printed once",
        )

        p = sub.add_parser(
            "revoke", help="remove a user's role in a project, or a claim's (with --role)"
        )
        p.add_argument("--project", required=True)
        g = p.add_mutually_exclusive_group(required=True)
        g.add_argument("--user")
        g.add_argument("--claim", metavar="CLAIM=VALUE")
        p.add_argument("--role", choices=ROLES)

    def handle(self, *args, **opts):
        verb = opts["verb"]
        try:
            with audit_context(Surface.CLI, actor=opts["actor"]):
                getattr(self, f"do_{verb.replace('-', '_')}")(opts)
        except manifests.ManifestError as exc:
            raise CommandError("\n".join(exc.errors)) from None
        except ValueError as exc:
            raise CommandError(str(exc)) from None

    # -------------------------------------------------------------- apply / get / delete

    def do_apply(self, opts):
        docs = []
        for target in opts["filename"]:
            for source, text in read_sources(target):
                docs += manifests.load(text, source)
        if not docs:
            raise CommandError("no documents found")
        for line in manifests.apply_docs(docs, opts["actor"], opts["project"]):
            self.stdout.write(line)

    def do_get(self, opts):
        if opts["kind"] in TOKEN_KINDS:
            return self.get_tokens(opts)
        if core_kind(opts["kind"]):
            return self.get_core(opts)
        kind = manifests.kind_named(opts["kind"])
        docs = manifests.export(kind, opts["project"] or None, opts["name"])
        if opts["name"] and not docs:
            raise CommandError(f'{kind} "{opts["name"]}" not found')
        if opts["output"] == "yaml":
            self.stdout.write(manifests.dump_yaml(docs), ending="")
        elif opts["output"] == "json":
            payload = (
                docs[0] if opts["name"] else {"apiVersion": "v1", "kind": "List", "items": docs}
            )
            self.stdout.write(json.dumps(payload, indent=2))
        else:
            self.stdout.write(table(kind, docs))

    def do_delete(self, opts):
        if opts["kind"] in TOKEN_KINDS:
            token = project_token(opts["project"], opts["name"])
            do_delete_token(token, opts["actor"])
            self.stdout.write(f"token/{token.name} deleted")
            return
        if core_kind(opts["kind"]):
            return self.delete_core(opts)
        kind = manifests.kind_named(opts["kind"])
        if not KINDS[kind].cluster_scoped and not opts["project"]:
            raise CommandError("--project is required for " + kind)
        obj = find_resource(kind, opts["name"], opts["project"])
        if obj is None:
            raise CommandError(f'{kind} "{opts["name"]}" not found')
        self.stdout.write(delete_resource(kind, obj, opts["actor"]))

    # -------------------------------------------------------------- API tokens

    def do_create(self, opts):
        if opts["kind"] == "freight":
            return self.create_freight(opts)
        if opts["kind"] != "token":
            return self.create_credentials(opts)
        project = Project.objects.filter(name=opts["project"]).first()
        if project is None:
            raise CommandError(f"project {opts['project']!r} not found")
        if not opts["role"]:
            raise CommandError("create token needs --role")
        token, secret = do_create_token(
            project, opts["name"], opts["role"], opts["actor"], parse_expiry(opts["expires"])
        )
        info = token_info(token)
        # The secret alone on stdout (TOKEN=$(manage.py kargo create token ...)); it is shown
        # only now: the server keeps a digest of it.
        self.stderr.write(
            f"token/{token.name} created: role {token.role} in project/{project.name}, "
            f"expires {info['expiresAt']}. Keep it now: it is not shown again."
        )
        self.stdout.write(secret)

    def create_freight(self, opts):
        """Freight put together from a Warehouse's discovered artifacts (freight.api does the
        same for the remote CLI)."""
        project = Project.objects.filter(name=opts["project"]).first()
        if project is None:
            raise CommandError(f"project {opts['project']!r} not found")
        try:
            name, body = freight_request(SimpleNamespace(**opts))
            warehouse = Warehouse.objects.filter(project=project, name=name).first()
            if warehouse is None:
                raise CommandError(f"warehouse {name!r} not found in project {project.name}")
            picks = picks_by_name(warehouse, body["artifacts"])
            freight, created = do_assemble_freight(warehouse, picks, opts["actor"], body["alias"])
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        state = "created" if created else "unchanged (these artifacts made it before)"
        self.stdout.write(f"freight/{freight.name} ({freight.alias}) {state}")

    # -------------------------------------------------------------- credentials and configmaps

    def scope(self, opts) -> Project | None:
        """The project named by --project, or None with --shared."""
        if opts.get("shared"):
            return None
        name = opts.get("project")
        if not name:
            raise CommandError("--project is required (or --shared for the shared ones)")
        if name == SHARED_NAMESPACE:
            return None
        project = Project.objects.filter(name=name).first()
        if project is None:
            raise CommandError(f"project {name!r} not found")
        return project

    def create_credentials(self, opts):
        project = self.scope(opts)
        cred_type, data = credential_data(argparse.Namespace(**opts), sys.stdin)
        result = do_save_credential(
            project, opts["name"], cred_type, data, opts["actor"], create_only=True
        )
        self.stdout.write(f"secret/{opts['name']} {result}")

    def get_core(self, opts):
        project = self.scope(opts)
        kind = core_kind(opts["kind"])
        project_id = project.id if project else None
        docs = manifests.export_core(kind, project_id, opts["name"])
        if opts["name"] and not docs:
            raise CommandError(f'{kind} "{opts["name"]}" not found')
        if opts["output"] == "yaml":
            self.stdout.write(manifests.dump_yaml(docs), ending="")
        elif opts["output"] == "json":
            payload = (
                docs[0] if opts["name"] else {"apiVersion": "v1", "kind": "List", "items": docs}
            )
            self.stdout.write(json.dumps(payload, indent=2))
        elif kind == "Secret":
            rows = credentials_of(project_id)
            if opts["name"]:
                rows = rows.filter(name=opts["name"])
            self.stdout.write(credential_table([credential_info(r) for r in rows]))
        else:
            self.stdout.write(config_map_table(docs))

    def delete_core(self, opts):
        project = self.scope(opts)
        kind = core_kind(opts["kind"])
        project_id = project.id if project else None
        rows = credentials_of(project_id) if kind == "Secret" else config_maps_of(project_id)
        row = rows.filter(name=opts["name"]).first()
        if row is None:
            raise CommandError(f'{kind} "{opts["name"]}" not found')
        if kind == "Secret":
            do_delete_credential(row, opts["actor"])
        else:
            do_delete_config_map(row, opts["actor"])
        self.stdout.write(f"{kind.lower()}/{row.name} deleted")

    def do_rotate_credentials_key(self, opts):
        count = do_rotate_credentials_key(opts["actor"])
        self.stdout.write(f"{count} credential(s) re-encrypted with the first configured key")

    def get_tokens(self, opts):
        if not opts["project"]:
            raise CommandError("--project is required for tokens")
        if not Project.objects.filter(name=opts["project"]).exists():
            raise CommandError(f"project {opts['project']!r} not found")
        tokens = ApiToken.objects.filter(project__name=opts["project"])
        if opts["name"]:
            tokens = tokens.filter(name=opts["name"])
            if not tokens:
                raise CommandError(f'token "{opts["name"]}" not found')
        infos = [token_info(t) for t in tokens]
        if opts["output"] == "yaml":
            self.stdout.write(manifests.dump_yaml(infos), ending="")
        elif opts["output"] == "json":
            self.stdout.write(json.dumps(infos[0] if opts["name"] else {"items": infos}, indent=2))
        else:
            self.stdout.write(token_table(infos))

    # -------------------------------------------------------------- promotions

    def do_promote(self, opts):
        if opts["abort"]:
            return self.abort_promotion(opts)
        if not opts["stage"] or not any(opts[k] for k in ("freight", "freight_alias", "warehouse")):
            raise CommandError(
                "promote needs --stage and one of --freight, --freight-alias or --warehouse "
                "(or --abort --name PROMOTION)"
            )
        stage = (
            Stage.objects.select_related("project")
            .filter(project__name=opts["project"], name=opts["stage"])
            .first()
        )
        if stage is None:
            raise CommandError(f"Stage {opts['stage']!r} not found in project {opts['project']!r}")
        freight_qs = Freight.objects.filter(project=stage.project)
        if opts["freight"]:
            freight = freight_qs.filter(name=opts["freight"]).first()
        elif opts["freight_alias"]:
            freight = freight_qs.filter(alias=opts["freight_alias"]).first()
        else:
            freight = newest_available(stage, opts["warehouse"])
        if freight is None:
            raise CommandError("no such Freight (or none available to the Stage)")
        promotion = do_promote(stage, freight, opts["actor"])
        self.stdout.write(f"promotion/{promotion.name} created")
        if opts["wait"]:
            promotion = wait_for(
                lambda: refreshed(promotion), lambda p: p.is_terminal, opts["timeout"], "promotion"
            )
            self.stdout.write(f"{promotion.phase}: {promotion.message}")
            if promotion.phase != "Succeeded":
                sys.exit(1)

    def abort_promotion(self, opts):
        if not opts["name"]:
            raise CommandError("--abort needs --name PROMOTION")
        promotion = Promotion.objects.filter(
            project__name=opts["project"], name=opts["name"]
        ).first()
        if promotion is None:
            raise CommandError(
                f"Promotion {opts['name']!r} not found in project {opts['project']!r}"
            )
        do_abort(promotion, opts["actor"])
        self.stdout.write(f"promotion/{promotion.name} abort requested")

    def do_approve(self, opts):

        lookup = Q(name=opts["freight"]) if opts["freight"] else Q(alias=opts["freight_alias"])
        freight = Freight.objects.filter(lookup, project__name=opts["project"]).first()
        if freight is None:
            raise CommandError("no such Freight")
        if not Stage.objects.filter(project__name=opts["project"], name=opts["stage"]).exists():
            raise CommandError(f"Stage {opts['stage']!r} not found")
        do_approve(freight, opts["stage"], opts["actor"])
        self.stdout.write(f"freight/{freight.name} approved for stage/{opts['stage']}")

    def do_refresh(self, opts):
        if opts["kind"] == "warehouse":
            obj = Warehouse.objects.filter(project__name=opts["project"], name=opts["name"]).first()
            if obj is None:
                raise CommandError(f"Warehouse {opts['name']!r} not found")
            do_request_refresh(obj, opts["actor"])
            Model, done = Warehouse, (lambda w: w.refresh_requested_at is None)
        else:
            obj = Stage.objects.filter(project__name=opts["project"], name=opts["name"]).first()
            if obj is None:
                raise CommandError(f"Stage {opts['name']!r} not found")
            do_refresh_stage(obj, opts["actor"])
            Model = Stage

            def done(s):
                return s.status.get("lastHandledRefresh") == s.annotations.get(
                    "kargo.akuity.io/refresh"
                )

        self.stdout.write(f"{opts['kind']}/{opts['name']} refresh requested")
        if opts["wait"]:
            obj = wait_for(lambda: Model.objects.get(id=obj.id), done, opts["timeout"], "refresh")
            conditions = {c["type"]: c for c in obj.status.get("conditions", [])}
            ready = conditions.get("Ready", {})
            self.stdout.write(
                f"refreshed: Ready={ready.get('status', 'Unknown')} {ready.get('message', '')}".rstrip()
            )

    def do_grant(self, opts):

        project = Project.objects.filter(name=opts["project"]).first()
        if project is None:
            raise CommandError(f"project {opts['project']!r} not found")
        if opts["claim"]:
            claim, value = oidc.parse_claim(opts["claim"])
            created = oidc.grant_claim(project, opts["role"], claim, value, opts["actor"])
            self.stdout.write(
                f"claim {claim}={value} is {'now' if created else 'already'} {opts['role']} "
                f"in project/{project.name}"
            )
            return
        User = get_user_model()
        user = User.objects.filter(username=opts["user"]).first()
        if user is None and not opts["create_user"]:
            raise CommandError(f"user {opts['user']!r} not found (add --create-user to create it)")
        if user is None:
            password = secrets.token_urlsafe(12)
            user = User.objects.create_user(opts["user"], password=password)
            self.stdout.write(f"user/{user.username} created with password {password}")
        old = Membership.objects.filter(project=project, user=user).values_list("role", flat=True)
        before = {"role": old.first()}
        do_set_membership(project, user, opts["role"])
        record_event(
            project,
            "RoleGranted",
            opts["actor"],
            f"{user.username} is now {opts['role']}",
            f"User/{user.username}",
            before=before,
            after={"role": opts["role"]},
        )
        self.stdout.write(f"user/{user.username} is {opts['role']} in project/{project.name}")

    def do_revoke(self, opts):

        project = Project.objects.filter(name=opts["project"]).first()
        if opts["claim"]:
            return self.revoke_claim(project, opts)
        membership = Membership.objects.filter(project=project, user__username=opts["user"]).first()
        # Only the grant by hand: a role from the user's SSO claims stays (projects.oidc).
        if membership is None or oidc.revoke_by_hand(project, membership.user) is None:
            raise CommandError(
                f"user {opts['user']!r} has no role granted by hand in project {opts['project']!r}"
            )
        left = membership.claims_role or None
        record_event(
            project,
            "RoleRevoked",
            opts["actor"],
            f"{opts['user']} has no role any more"
            if left is None
            else f"{opts['user']} is now {left} (from SSO claims)",
            f"User/{opts['user']}",
            before={"role": membership.role},
            after={"role": left},
        )
        self.stdout.write(f"user/{opts['user']} removed from project/{opts['project']}")
        if left:
            self.stdout.write(f"user/{opts['user']} keeps the {left} role from SSO claims")

    def revoke_claim(self, project, opts):
        if project is None:
            raise CommandError(f"project {opts['project']!r} not found")
        if not opts["role"]:
            raise CommandError("revoking a claim needs --role")
        claim, value = oidc.parse_claim(opts["claim"])
        if not oidc.revoke_claim(project, opts["role"], claim, value, opts["actor"]):
            raise CommandError(
                f"claim {claim}={value} is no claim of role {opts['role']} "
                f"in project {project.name!r}"
            )
        self.stdout.write(
            f"claim {claim}={value} is no longer {opts['role']} in project/{project.name}"
        )

    def do_verify(self, opts):

        stage = Stage.objects.filter(project__name=opts["project"], name=opts["name"]).first()
        if stage is None:
            raise CommandError(f"Stage {opts['name']!r} not found")
        if opts["abort"]:
            do_abort_verification(stage, opts["actor"])
            self.stdout.write(f"stage/{stage.name} verification abort requested")
        else:
            info = do_reverify(stage, opts["actor"])
            self.stdout.write(f"stage/{stage.name} verification {info['phase']}")

    def do_auto_promotion(self, opts):
        project = Project.objects.filter(name=opts["project"]).first()
        if project is None:
            raise CommandError(f"project {opts['project']!r} not found")
        stage = Stage.objects.filter(project=project, name=opts["name"]).first()
        if stage is None:
            raise CommandError(f"Stage {opts['name']!r} not found in project {project.name!r}")
        if opts["enabled"] is not None:
            do_set_auto_promotion(project, stage.name, opts["enabled"], opts["actor"])
            stage.refresh_from_db(fields=["status"])
        for line in auto_promotion_lines(auto_promotion_answer(stage)):
            self.stdout.write(line)


TOKEN_KINDS = ("token", "tokens")


def project_token(project: str, name: str) -> ApiToken:
    if not project:
        raise CommandError("--project is required for tokens")
    token = ApiToken.objects.filter(project__name=project, name=name).first()
    if token is None:
        raise CommandError(f"token {name!r} not found in project {project!r}")
    return token


def find_resource(kind: str, name: str, project: str):
    """The stored object of `kind` named `name` (in `project` for a namespaced kind), or None."""
    qs = manifests.MODELS[kind].objects.filter(name=name)
    if not KINDS[kind].cluster_scoped:
        qs = qs.filter(project__name=project)
    return qs.first()


def delete_resource(kind: str, obj, actor: str) -> str:
    """Delete as Kargo would: Freight in use is refused (a FreightError), a Stage leaves no
    Freight pointing at it. Returns the line the CLI prints."""
    if kind == "Freight":
        delete_guard(obj)
    if kind == "Stage":
        do_delete_stage(obj, actor)
    else:
        # A deleted Project takes its events with it: its own deletion is recorded outside it.
        project = None if kind == "Project" else getattr(obj, "project", None)
        obj.delete()
        record_event(
            project,
            f"{kind}Deleted",
            actor,
            f"{kind} {obj.name} deleted",
            f"{kind}/{obj.name}",
            # Freight has no spec; its name is its content.
            before={"spec": obj.spec} if hasattr(obj, "spec") else None,
        )
    return f"{kind.lower()}/{obj.name} deleted"


def refreshed(obj):
    return type(obj).objects.get(id=obj.id)


def wait_for(fetch, done, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        obj = fetch()
        if done(obj):
            return obj
        if time.monotonic() > deadline:
            raise CommandError(
                f"timed out after {timeout:.0f}s waiting for the {what}; is `manage.py serve` (or a worker) running?"
            )
        time.sleep(0.25)


def read_sources(target: str):
    if target == "-":
        yield "<stdin>", sys.stdin.read()
        return
    path = Path(target)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml", ".json"))
        for f in files:
            yield str(f), f.read_text()
    elif path.exists():
        yield str(path), path.read_text()
    else:
        raise CommandError(f"{target}: no such file or directory")


def table(kind: str, docs: list[dict]) -> str:
    rows = []
    for d in docs:
        meta = d["metadata"]
        row = [meta.get("namespace", ""), meta["name"]] if "namespace" in meta else [meta["name"]]
        status = d.get("status", {})
        if kind == "Freight":
            row += [d.get("alias", ""), f"{d['origin']['kind']}/{d['origin']['name']}"]
        elif kind == "Stage":
            row += [
                ",".join(n[:7] for n in current_freight_names(status)) or "-",
                (status.get("lastPromotion") or {}).get("status", {}).get("phase", "-"),
            ]
        elif kind == "Promotion":
            row += [
                d["spec"].get("stage", ""),
                d["spec"].get("freight", "")[:7],
                status.get("phase", ""),
            ]
        elif kind == "Warehouse":
            row += [status.get("lastFreightID", "")[:7] or "-"]
        rows.append(row)
    if not rows:
        return f"No {kind} resources found."
    return columns(rows)


def token_table(infos: list[dict]) -> str:
    """`get tokens`: name, role and dates; never the secret."""
    if not infos:
        return "No tokens found."
    rows = [["NAME", "ROLE", "CREATED", "EXPIRES", "LAST USED"]]
    for t in infos:
        expires = t["expiresAt"] + (" (expired)" if t["expired"] else "")
        rows.append([t["name"], t["role"], t["createdAt"], expires, t["lastUsedAt"] or "never"])
    return columns(rows)


def credential_table(infos: list[dict]) -> str:
    """`get credentials`: names, types, URLs and which keys are set; every value ***."""
    if not infos:
        return "No credentials found."
    rows = [["NAME", "TYPE", "REGEX", "REPO", "DATA"]]
    for c in infos:
        data = ",".join(
            f"{key}=***" for key in c["data"] if key not in ("repoURL", "repoURLIsRegex")
        )
        rows.append(
            [c["name"], c["type"], str(c["repoURLIsRegex"]).lower(), c["repoURL"] or "-", data]
        )
    return columns(rows)


def config_map_table(docs: list[dict]) -> str:
    if not docs:
        return "No ConfigMap resources found."
    rows = [["NAME", "DATA"]]
    for d in docs:
        rows.append([d["metadata"]["name"], ",".join(d.get("data") or {}) or "-"])
    return columns(rows)


def columns(rows: list[list]) -> str:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "   ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=False)).rstrip() for r in rows
    )

"""The Kargo CLI verbs both command lines share: `manage.py kargo` (on the server, operator
rights) and `kargo-ui` (remote, an API token's rights). One definition, so the two never drift.
Imports nothing of Django: the remote CLI runs without it."""

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import IO

ROLES = ["viewer", "promoter", "admin"]
CREATE_KINDS = ["token", "repo-credentials", "generic-credentials", "freight"]
REPO_CRED_TYPES = ["git", "helm", "image"]

# Adds --project to a verb's parser; `needed` says whether the verb cannot do without one (each
# CLI decides what that means: required on the server, or taken from the config file remotely).
ProjectOption = Callable[[argparse.ArgumentParser, bool], None]


def add_verbs(sub, project_option: ProjectOption) -> None:
    p = sub.add_parser("apply", help="create or update resources from Kargo YAML")
    p.add_argument(
        "-f", "--filename", action="append", required=True, help="FILE, DIR or - for stdin"
    )
    project_option(p, False)

    p = sub.add_parser("get", help="export resources in Kargo's shape (or: get tokens)")
    p.add_argument("kind")
    p.add_argument("name", nargs="?")
    project_option(p, False)
    p.add_argument("-o", "--output", choices=["yaml", "json", "table"], default="table")

    p = sub.add_parser("delete", help="delete a resource (or: delete token NAME)")
    p.add_argument("kind")
    p.add_argument("name")
    project_option(p, False)

    p = sub.add_parser(
        "create",
        help="create an API token for a project role, or repository or generic credentials (admin)",
    )
    p.add_argument("kind", choices=CREATE_KINDS)
    p.add_argument("name")
    project_option(p, True)
    p.add_argument("--role", choices=ROLES, help="token: the role it acts with")
    p.add_argument(
        "--expires", default="90d", help="token: lifetime, 30d, 12h or 90m (default 90d)"
    )
    p.add_argument("--type", choices=REPO_CRED_TYPES, help="repo-credentials: git, helm or image")
    p.add_argument("--repo-url", help="repo-credentials: the repository URL (or a regex, --regex)")
    p.add_argument("--regex", action="store_true", help="repo-credentials: --repo-url is a regex")
    p.add_argument("--username", help="repo-credentials: the username")
    p.add_argument(
        "--password-stdin",
        action="store_true",
        help="repo-credentials: read the password from stdin (never from the command line)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=-|KEY=@FILE",
        help="generic-credentials: a key whose value is read from stdin (-, once) or a file "
        "(@FILE); never a value on the command line",
    )
    p.add_argument("--warehouse", help="freight: the Warehouse whose discovered artifacts to use")
    p.add_argument(
        "--artifact",
        action="append",
        default=[],
        metavar="SUBSCRIPTION=ARTIFACT",
        help="freight: one per subscription (by name or repoURL): a commit (id, short id or "
        "tag), image tag or chart version it discovered. NAME is the alias (- for a generated one)",
    )

    p = sub.add_parser("promote", help="promote Freight to a Stage, or abort a promotion")
    project_option(p, True)
    p.add_argument("--stage")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--freight")
    g.add_argument("--freight-alias")
    g.add_argument(
        "--warehouse", help="promote the newest Freight of this Warehouse available to the Stage"
    )
    p.add_argument(
        "--wait", action="store_true", help="wait for the end; exit 0 only if it Succeeded"
    )
    p.add_argument("--timeout", type=float, default=600.0)
    p.add_argument("--abort", action="store_true", help="abort the promotion named by --name")
    p.add_argument("--name", help="with --abort: the promotion to abort")

    p = sub.add_parser("approve", help="approve Freight for a Stage")
    project_option(p, True)
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--freight")
    g.add_argument("--freight-alias")
    p.add_argument("--stage", required=True)

    p = sub.add_parser("refresh", help="refresh a Warehouse or Stage")
    p.add_argument("kind", choices=["warehouse", "stage"])
    p.add_argument("name")
    project_option(p, True)
    p.add_argument("--wait", action="store_true")
    p.add_argument("--timeout", type=float, default=120.0)

    p = sub.add_parser("verify", help="reverify a Stage's current Freight, or abort it")
    p.add_argument("kind", choices=["stage"])
    p.add_argument("name")
    project_option(p, True)
    p.add_argument("--abort", action="store_true")

    p = sub.add_parser(
        "auto-promotion",
        help="turn a Stage's auto-promotion on or off in the ProjectConfig (admin), or show it",
    )
    p.add_argument("kind", choices=["stage"])
    p.add_argument("name")
    project_option(p, True)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--on", dest="enabled", action="store_const", const=True)
    g.add_argument("--off", dest="enabled", action="store_const", const=False)


def auto_promotion_lines(answer: dict) -> list[str]:
    """What both CLIs print of a Stage's auto-promotion (the API's answer: stages.api)."""
    state = "on" if answer["autoPromotionEnabled"] else "off"
    lines = [f"stage/{answer['stage']} auto-promotion {state}"]
    for key, hold in sorted((answer.get("autoPromotionHolds") or {}).items()):
        by = f" by {hold['actor']}" if hold.get("actor") else ""
        promotion = f" (promotion {hold['promotionName']})" if hold.get("promotionName") else ""
        lines.append(f"  {key} held at Freight {hold.get('freightName', '?')}{by}{promotion}")
    return lines


def credential_data(args, stdin: IO[str]) -> tuple[str, dict[str, str]]:
    """(type, data) of `create repo-credentials|generic-credentials`, values read from stdin or
    files only: a value on the command line would be in process listings and shell history.
    ValueError says what is missing."""
    if args.kind == "repo-credentials":
        missing = [
            flag
            for flag, value in (
                ("--type", args.type),
                ("--repo-url", args.repo_url),
                ("--username", args.username),
                ("--password-stdin", args.password_stdin),
            )
            if not value
        ]
        if missing:
            raise ValueError(f"create repo-credentials needs {', '.join(missing)}")
        password = one_value(stdin.read())
        if not password:
            raise ValueError("--password-stdin: stdin held no password")
        return args.type, {
            "repoURL": args.repo_url,
            "repoURLIsRegex": "true" if args.regex else "false",
            "username": args.username,
            "password": password,
        }
    if not args.set:
        raise ValueError("create generic-credentials needs at least one --set KEY=- or KEY=@FILE")
    data: dict[str, str] = {}
    from_stdin = False
    for item in args.set:
        key, sep, source = item.partition("=")
        if not key or not sep or not (source == "-" or source.startswith("@")):
            raise ValueError(
                f"--set {key or item!r}: give KEY=- (the value from stdin) or KEY=@FILE; a "
                "value on the command line would be seen in process lists and shell history"
            )
        if key in data:
            raise ValueError(f"--set {key}: given twice")
        if source == "-":
            if from_stdin:
                raise ValueError(f"--set {key}=-: only one key can be read from stdin")
            from_stdin = True
            data[key] = one_value(stdin.read())
        else:
            try:
                data[key] = one_value(Path(source[1:]).read_text())
            except (OSError, UnicodeDecodeError) as exc:
                raise ValueError(
                    f"--set {key}: cannot read {source[1:]}: {exc.__class__.__name__}"
                ) from None
    return "generic", data


def one_value(text: str) -> str:
    """A value as read from stdin or a file: one trailing newline (echo's, an editor's) dropped."""
    return text.removesuffix("\n").removesuffix("\r")


def credential_lines(answer: dict) -> str:
    """What both CLIs print when credentials were created or changed."""
    return f"secret/{answer['name']} {answer['result']}"


# The names `get`/`delete` accept for Secrets and ConfigMaps (kargo.specs.core.KIND_ALIASES, which
# the remote CLI does not load), and the API route of each.
_CREDENTIAL_NAMES = {"secret", "secrets", "credential", "credentials", "creds"}
_CREDENTIAL_NAMES |= {"repo-credentials", "generic-credentials"}
_CONFIG_MAP_NAMES = {"configmap", "configmaps", "cm"}


def credentials_route(kind: str) -> str:
    """The API route for a kind name of credentials or configmaps, "" for other kinds."""
    if kind.lower() in _CREDENTIAL_NAMES:
        return "credentials"
    if kind.lower() in _CONFIG_MAP_NAMES:
        return "configmaps"
    return ""


def freight_request(args) -> tuple[str, dict]:
    """`create freight`'s Warehouse and API body from the command line (both CLIs)."""
    if not args.warehouse:
        raise ValueError("create freight needs --warehouse")
    artifacts = {}
    for item in args.artifact:
        subscription, sep, artifact = item.rpartition("=")
        if not sep or not subscription or not artifact:
            raise ValueError(f"--artifact {item!r}: give SUBSCRIPTION=ARTIFACT")
        artifacts[subscription] = artifact
    alias = "" if args.name == "-" else args.name
    return args.warehouse, {"artifacts": artifacts, "alias": alias}

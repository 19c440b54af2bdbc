"""`kargo-ui`: the verbs of `manage.py kargo` run against a server's JSON API with an API token,
acting with the token's role in the token's project (named `kargo-ui` so that it does not shadow
Kargo's own `kargo`):

    kargo-ui --server https://kargo.example.com get stages --project kargo-demo
    kargo-ui promote --project kargo-demo --stage test --warehouse guestbook --wait

The token comes from KARGO_TOKEN or from the config file (~/.config/kargo-ui/config, or
--config): a YAML mapping that only its owner may read or write (mode 0600), else it is refused.

    server: https://kargo.example.com
    token: kui_...
    project: kargo-demo        # optional: the default --project

--server (or KARGO_SERVER) wins over the file's server, KARGO_TOKEN over its token.

Exit status: 0 on success only; 1 when the server refuses or the action fails (with --wait, a
promotion that did not end Succeeded); 2 for a command line that does not parse.

This module is a plain HTTP client: it imports nothing of the server (no Django).
"""

import argparse
import json
import os
import stat
import sys
import time
from datetime import datetime
from pathlib import Path
from urllib.parse import quote, urlsplit

import httpx
import yaml

from kargo_ui.cli_verbs import (
    add_verbs,
    auto_promotion_lines,
    credential_data,
    credential_lines,
    credentials_route,
    freight_request,
)

DEFAULT_CONFIG = "~/.config/kargo-ui/config"
CONFIG_KEYS = {"server", "token", "project"}
TERMINAL_PHASES = {"Succeeded", "Failed", "Errored", "Aborted"}
TOKEN_KINDS = ("token", "tokens")
POLL_SECONDS = 0.5
USER_AGENT = "kargo-ui-cli/0.1"


class CliError(Exception):
    """A failure to report in one message on stderr, with exit status 1."""


# ------------------------------------------------------------------ command line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kargo-ui",
        description="Kargo's CLI verbs against a kargo_ui server, with an API token "
        "(KARGO_TOKEN or the config file).",
    )
    parser.add_argument("--server", help="the server's URL (default: KARGO_SERVER, the config)")
    parser.add_argument(
        "--config", help=f"config file, mode 0600 (default {DEFAULT_CONFIG}, if it exists)"
    )
    sub = parser.add_subparsers(dest="verb", required=True)
    add_verbs(sub, project_option)
    return parser


def project_option(parser: argparse.ArgumentParser, needed: bool) -> None:
    # Remotely a project may also come from the config file; a verb that needs one and gets
    # none says so when it runs.
    parser.add_argument("--project", help="the project (default: the config file's project)")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = load_config(args.config)
        server = server_url(args.server or os.environ.get("KARGO_SERVER") or config.get("server"))
        token = os.environ.get("KARGO_TOKEN") or config.get("token")
        if not token:
            raise CliError(
                f"no API token: set KARGO_TOKEN, or put `token:` in {args.config or DEFAULT_CONFIG} "
                "(create one with `manage.py kargo create token`)"
            )
        args.project = args.project or config.get("project")
        if not args.project:
            raise CliError("--project is required (or set `project:` in the config file)")
        with Api(server, token) as api:
            return VERBS[args.verb](api, args)
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except httpx.HTTPError as exc:
        print(f"error: {exc.__class__.__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


# ------------------------------------------------------------------ configuration


def load_config(path_text: str | None) -> dict:
    """The config file's settings ({} when the default file does not exist). A file that others
    could read or write, or that is not the caller's own, is refused: it holds a token."""
    path = Path(path_text or DEFAULT_CONFIG).expanduser()
    try:
        info = path.stat()
    except FileNotFoundError:
        if path_text:
            raise CliError(f"config file {path}: no such file") from None
        return {}
    if not stat.S_ISREG(info.st_mode):
        raise CliError(f"config file {path} is not a regular file")
    if info.st_uid != os.getuid():
        raise CliError(f"config file {path} is not owned by you; it holds an API token")
    if info.st_mode & 0o077:
        raise CliError(
            f"config file {path} has mode {stat.S_IMODE(info.st_mode):04o}: it holds an API "
            f"token, so only you may read it. Run: chmod 600 {path}"
        )
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise CliError(f"config file {path}: {exc}") from None
    if not isinstance(data, dict):
        raise CliError(f"config file {path}: expected a mapping of server, token and project")
    unknown = set(data) - CONFIG_KEYS
    if unknown:
        raise CliError(
            f"config file {path}: unknown setting {', '.join(sorted(map(str, unknown)))} "
            f"(known: {', '.join(sorted(CONFIG_KEYS))})"
        )
    return {key: str(value) for key, value in data.items() if value is not None}


def server_url(text: str | None) -> str:
    if not text:
        raise CliError(
            "no server: pass --server URL, set KARGO_SERVER, or put `server:` in the config"
        )
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CliError(f"server {text!r} is not an http:// or https:// URL")
    loopback = parts.hostname in ("localhost", "::1") or parts.hostname.startswith("127.")
    if parts.scheme == "http" and not loopback:
        print(
            f"warning: {parts.hostname} is reached over plain http: the token travels unencrypted",
            file=sys.stderr,
        )
    return text.rstrip("/")


# ------------------------------------------------------------------ the API


class Api:
    """The server's /api/v1/projects/<project>/ routes, authenticated with the bearer token.
    Every answer outside `ok` becomes a CliError carrying the server's own message."""

    def __init__(self, server: str, token: str):
        self.server = server
        self.http = httpx.Client(
            base_url=f"{server}/api/v1/projects/",
            headers={"Authorization": f"Bearer {token}", "User-Agent": USER_AGENT},
            timeout=httpx.Timeout(60.0, connect=10.0),
            follow_redirects=False,
        )

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.http.close()

    def call(self, method: str, project: str, path: str, **kwargs) -> httpx.Response:
        response = self.http.request(method, f"{q(project)}/{path}", **kwargs)
        if response.status_code >= 300:
            raise CliError(refusal(response))
        return response

    def json(self, method: str, project: str, path: str, **kwargs):
        return self.call(method, project, path, **kwargs).json()


def q(name: str) -> str:
    return quote(name, safe="")


def refusal(response: httpx.Response) -> str:
    """The server's reason, in words a person acts on."""
    try:
        body = response.json()
    except ValueError:
        body = None
    message = body.get("error") if isinstance(body, dict) else None
    status = response.status_code
    if message is None:
        message = f"unexpected answer from {response.request.url}"
    prefix = {
        401: "the server refused the token",
        403: "not allowed",
        404: "not found",
    }.get(status, "failed")
    return f"{prefix}: {message} (HTTP {status})"


# ------------------------------------------------------------------ verbs


def do_apply(api: Api, args) -> int:
    sources = [source for target in args.filename for source in read_sources(target)]
    if not sources:
        raise CliError("no documents found")
    response = api.http.post(
        f"{q(args.project)}/manifests",
        data={"source": [name for name, _ in sources]},
        files=[
            ("file", (Path(name).name or "stdin", text, "application/yaml"))
            for name, text in sources
        ],
    )
    body = (
        response.json()
        if response.headers.get("content-type", "").startswith("application/json")
        else {}
    )
    if response.status_code == 400 and body.get("errors"):
        for line in body["errors"]:
            print(line, file=sys.stderr)
        return 1
    if response.status_code >= 300:
        raise CliError(refusal(response))
    for line in body["results"]:
        print(line)
    return 0


def read_sources(target: str) -> list[tuple[str, bytes]]:
    """(name, content) of each file, named and ordered as `manage.py kargo apply` reads them."""
    if target == "-":
        return [("<stdin>", sys.stdin.buffer.read())]
    path = Path(target)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml", ".json"))
        return [(str(f), f.read_bytes()) for f in files]
    if path.exists():
        return [(str(path), path.read_bytes())]
    raise CliError(f"{target}: no such file or directory")


def do_get(api: Api, args) -> int:
    if args.kind in TOKEN_KINDS:
        path = f"tokens/{q(args.name)}" if args.name else "tokens"
    elif credentials_route(args.kind):
        path = credentials_route(args.kind) + (f"/{q(args.name)}" if args.name else "")
    else:
        path = f"manifests/{q(args.kind)}" + (f"/{q(args.name)}" if args.name else "")
    response = api.call("GET", args.project, path, params={"output": args.output})
    if args.output == "json":
        print(json.dumps(response.json(), indent=2))
    elif args.output == "yaml":
        sys.stdout.write(response.text)
    else:
        print(response.text)
    return 0


def do_delete(api: Api, args) -> int:
    if args.kind in TOKEN_KINDS:
        path = f"tokens/{q(args.name)}"
    elif credentials_route(args.kind):
        path = f"{credentials_route(args.kind)}/{q(args.name)}"
    else:
        path = f"manifests/{q(args.kind)}/{q(args.name)}"
    print(api.json("DELETE", args.project, path)["deleted"])
    return 0


def do_promote(api: Api, args) -> int:
    if args.abort:
        if not args.name:
            raise CliError("--abort needs --name PROMOTION")
        promotion = api.json("POST", args.project, f"promotions/{q(args.name)}/abort", json={})
        phase = promotion.get("status", {}).get("phase", "")
        print(f"promotion/{args.name} abort requested ({phase})")
        return 0
    if not args.stage or not (args.freight or args.freight_alias or args.warehouse):
        raise CliError(
            "promote needs --stage and one of --freight, --freight-alias or --warehouse "
            "(or --abort --name PROMOTION)"
        )
    if args.freight:
        body = {"freight": args.freight}
    elif args.freight_alias:
        body = {"freightAlias": args.freight_alias}
    else:
        body = {"origin": f"Warehouse/{args.warehouse}"}
    promotion = api.json("POST", args.project, f"stages/{q(args.stage)}/promotions", json=body)
    name = promotion["metadata"]["name"]
    print(f"promotion/{name} created")
    if not args.wait:
        return 0
    status = wait_for(
        lambda: api.json("GET", args.project, f"promotions/{q(name)}").get("status", {}),
        lambda s: s.get("phase") in TERMINAL_PHASES,
        args.timeout,
        f"promotion {name}",
    )
    print(f"{status['phase']}: {status.get('message', '')}".rstrip())
    return 0 if status["phase"] == "Succeeded" else 1


def do_approve(api: Api, args) -> int:
    key = args.freight or args.freight_alias
    answer = api.json(
        "POST", args.project, f"freight/{q(key)}/approve", params={"stage": args.stage}, json={}
    )
    approved = answer["approved"]
    print(f"freight/{approved['freight']} approved for stage/{approved['stage']}")
    return 0


def do_refresh(api: Api, args) -> int:
    kind = "Warehouse" if args.kind == "warehouse" else "Stage"
    resource = f"manifests/{kind}/{q(args.name)}"
    before = None
    if kind == "Warehouse" and args.wait:
        before = api.json("GET", args.project, resource).get("status", {}).get("lastHandledRefresh")
    plural = "warehouses" if kind == "Warehouse" else "stages"
    answer = api.json("POST", args.project, f"{plural}/{q(args.name)}/refresh", json={})
    print(f"{args.kind}/{args.name} refresh requested")
    if not args.wait:
        return 0
    token = answer.get("token")

    def done(status: dict) -> bool:
        handled = status.get("lastHandledRefresh")
        if kind == "Stage":
            # Handled when the Stage took this refresh, or a later one.
            return bool(handled) and not_before(handled, token)
        # A Warehouse records only the refresh it handled last: wait for it to move on.
        return bool(handled) and handled != before

    status = wait_for(
        lambda: api.json("GET", args.project, resource).get("status", {}),
        done,
        args.timeout,
        f"the refresh of {kind} {args.name}",
    )
    ready = {c.get("type"): c for c in status.get("conditions", [])}.get("Ready", {})
    print(f"refreshed: Ready={ready.get('status', 'Unknown')} {ready.get('message', '')}".rstrip())
    return 0


def not_before(handled: str, token: str | None) -> bool:
    if not token:
        return True
    try:
        return datetime.fromisoformat(handled) >= datetime.fromisoformat(token)
    except ValueError:
        return handled == token


def do_verify(api: Api, args) -> int:
    if args.abort:
        api.call("POST", args.project, f"stages/{q(args.name)}/verification/abort", json={})
        print(f"stage/{args.name} verification abort requested")
    else:
        info = api.json("POST", args.project, f"stages/{q(args.name)}/verification", json={})
        print(f"stage/{args.name} verification {info.get('phase', '')}".rstrip())
    return 0


def do_auto_promotion(api: Api, args) -> int:
    path = f"stages/{q(args.name)}/auto-promotion"
    if args.enabled is None:
        answer = api.json("GET", args.project, path)
    else:
        answer = api.json("POST", args.project, path, json={"enabled": args.enabled})
    for line in auto_promotion_lines(answer):
        print(line)
    return 0


def do_create(api: Api, args) -> int:
    if args.kind == "freight":
        try:
            warehouse, body = freight_request(args)
        except ValueError as exc:
            raise CliError(str(exc)) from None
        path = f"warehouses/{q(warehouse)}/freight"
        made = api.json("POST", args.project, path, json=body)
        print(f"freight/{made['metadata']['name']} ({made['alias']})")
        return 0
    if args.kind != "token":
        try:
            cred_type, data = credential_data(args, sys.stdin)
        except ValueError as exc:
            raise CliError(str(exc)) from None
        body = {"name": args.name, "type": cred_type, "data": data}
        print(credential_lines(api.json("POST", args.project, "credentials", json=body)))
        return 0
    if not args.role:
        raise CliError("create token needs --role")
    body = {"name": args.name, "role": args.role, "expires": args.expires}
    created = api.json("POST", args.project, "tokens", json=body)
    print(
        f"token/{created['name']} created: role {created['role']} in project/{args.project}, "
        f"expires {created['expiresAt']}. Keep it now: it is not shown again.",
        file=sys.stderr,
    )
    print(created["token"])
    return 0


VERBS = {
    "apply": do_apply,
    "get": do_get,
    "delete": do_delete,
    "promote": do_promote,
    "approve": do_approve,
    "refresh": do_refresh,
    "verify": do_verify,
    "auto-promotion": do_auto_promotion,
    "create": do_create,
}


def wait_for(fetch, done, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise CliError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(POLL_SECONDS)


if __name__ == "__main__":
    sys.exit(main())

"""The Kargo CLI verbs both command lines share: `manage.py kargo` (on the server, operator
rights) and `kargo-ui` (remote, an API token's rights). One definition, so the two never drift.
Imports nothing of Django: the remote CLI runs without it."""

import argparse
from collections.abc import Callable

ROLES = ["viewer", "promoter", "admin"]

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

    p = sub.add_parser("create", help="create an API token for a project role (admin)")
    p.add_argument("kind", choices=["token"])
    p.add_argument("name")
    project_option(p, True)
    p.add_argument("--role", required=True, choices=ROLES)
    p.add_argument("--expires", default="90d", help="lifetime: 30d, 12h or 90m (default 90d)")

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

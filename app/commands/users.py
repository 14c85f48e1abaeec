"""``abuse-desk users``: the accounts of the web desk and their API tokens."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from typing import Any

from sqlalchemy import Engine

from ...core.clock import Clock
from ...core.config import Config
from ...core.fields import iso_z
from ...web import auth


def add_user_commands(add: Any, common: argparse.ArgumentParser) -> None:
    u = add("users", "web desk accounts: add, list, passwd, role, disable, enable, unlock, "
                     "token",
            "Accounts of the web desk. Roles: specialist (review queue, cases) and supervisor "
            "(also approves restrictions, terminations and fee waivers). Passwords are asked "
            "at the terminal, or read from standard input with --password-stdin.")
    sub = u.add_subparsers(dest="users_command", metavar="ACTION", required=True)

    def named(name: str, help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=help_, description=help_)
        p.add_argument("name", metavar="NAME", help="the user's name (a-z, 0-9, . _ -)")
        return p

    a = named("add", "make an account")
    a.add_argument("--role", required=True, choices=auth.ROLES)
    a.add_argument("--password-stdin", action="store_true",
                   help="read the password from the first line of standard input")
    p = named("passwd", "set a new password (signs the user out everywhere and revokes their "
                        "API tokens)")
    p.add_argument("--password-stdin", action="store_true",
                   help="read the password from the first line of standard input")
    r = named("role", "change a user's role")
    r.add_argument("role", choices=auth.ROLES)
    named("disable", "lock an account out: its sessions end and its API tokens are revoked")
    named("enable", "let a disabled account sign in again")
    named("unlock", "let an account refused after wrong passwords sign in again at once "
                    "(every web process forgets its failed logins)")
    t = named("token", "make an API token for the user (printed once)")
    t.add_argument("--label", default="api", help="a name to tell tokens apart (default: api)")
    t.add_argument("--days", type=_days, default=None, metavar="N",
                   help=f"valid for N days, 1 to {auth.MAX_TOKEN_DAYS} "
                        "(default: web.api_token_days)")
    rv = named("revoke-tokens", "revoke the user's API tokens (all, or those with --label)")
    rv.add_argument("--label", default=None)
    ls = sub.add_parser("list", parents=[common], help="the accounts",
                        description="The accounts, their roles and whether they are disabled.")
    ls.add_argument("--json", action="store_true", help="one JSON array")


def cli_identity() -> str:
    """Who the audit trail names for a command that acts without ``--by`` (``users unlock``):
    the command line itself, as the system user that ran it, ``cli:root``. It is recorded with
    the actor kind ``system``, never as a person of the desk."""
    import pwd

    try:
        user = pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:  # a uid without a passwd entry (containers)
        user = str(os.geteuid())
    return f"cli:{user}"


def _days(text: str) -> int:
    try:
        days = int(text)
    except ValueError:
        days = 0
    if not 0 < days <= auth.MAX_TOKEN_DAYS:
        raise argparse.ArgumentTypeError(
            f"a whole number of days from 1 to {auth.MAX_TOKEN_DAYS} (got {text[:20]!r})")
    return days


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise auth.AuthError("no terminal to ask the password at: use --password-stdin")
    first = getpass.getpass(f"Password for {args.name}: ")
    if first != getpass.getpass("Again: "):
        raise auth.AuthError("the two passwords differ")
    return first


def run_users(args: argparse.Namespace, config: Config, engine: Engine, clock: Clock) -> int:
    """Run the ``users`` command in *args* on *engine*; returns the exit status."""
    try:
        action = args.users_command
        if action == "list":
            users = auth.list_users(engine)
            if args.json:
                print(json.dumps([{**u, "created_at": iso_z(u["created_at"])} for u in users]))
            elif not users:
                print("no users yet: abuse-desk users add NAME --role supervisor",
                      file=sys.stderr)
            for u in users if not args.json else []:
                print(f"{u['name']:<24} {u['role']:<11} "
                      f"{'disabled' if u['disabled'] else 'active'}")
        elif action == "add":
            user = auth.add_user(engine, args.name, args.role, _password(args), clock())
            print(f"user {user.name} ({user.role}) added; sign in at "
                  f"http://{config.web.host}:{config.web.port}/login", file=sys.stderr)
        elif action == "passwd":
            revoked = auth.set_password(engine, args.name, _password(args), clock())
            print(f"password of {args.name} changed; its sessions ended and {revoked} API "
                  "token(s) were revoked", file=sys.stderr)
        elif action == "role":
            auth.set_role(engine, args.name, args.role)
            print(f"{args.name} is now {args.role}", file=sys.stderr)
        elif action in ("disable", "enable"):
            auth.set_disabled(engine, args.name, action == "disable", clock())
            print(f"{args.name} {action}d", file=sys.stderr)
        elif action == "unlock":
            auth.unlock_logins(engine, args.name, clock(), "system", cli_identity())
            print(f"{auth.check_name(args.name)} unlocked: the web desk forgets its failed "
                  "logins at its next attempt", file=sys.stderr)
        elif action == "token":
            days = args.days if args.days is not None else config.web.api_token_days
            issued = auth.issue_token(engine, args.name, args.label, clock(), days)
            print(issued.token)
            print(f"API token for {args.name} ({args.label}), valid until "
                  f"{iso_z(issued.expires_at)}: shown once, keep it safe. Use it as "
                  "'Authorization: Bearer TOKEN'.", file=sys.stderr)
        elif action == "revoke-tokens":
            count = auth.revoke_tokens(engine, args.name, args.label, clock())
            print(f"{count} token(s) revoked", file=sys.stderr)
        return 0
    except auth.AuthError as exc:
        print(f"abuse-desk: error: {exc}", file=sys.stderr)
        return 2

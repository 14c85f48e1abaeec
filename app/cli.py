"""The ``abuse-desk`` command: ``--help`` and ``COMMAND --help`` say the rest."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import (
    ArgumentError,
    DatabaseError,
    IntegrityError,
    InterfaceError,
    OperationalError,
)

from ..core import __version__
from ..core.clock import Clock, fixed_clock, instant_arg, system_clock
from ..core.config import Config, ConfigError, load_config

if TYPE_CHECKING:
    from ..classifier.runtime import ClassifierRuntime
    from .wiring import Desk

EPILOG = """Configuration: config.toml in the current directory, or --config PATH, or
$ABUSE_DESK_CONFIG; any key can be overridden with ABUSE_DESK_<SECTION>__<KEY>
(e.g. ABUSE_DESK_DATABASE__URL=postgresql+psycopg://desk@db/abuse)."""


# Commands that run until stopped: they read the clock, a fixed --now makes no sense for them.
LONG_RUNNING = frozenset({"serve", "smtp", "worker", "scheduler", "web"})


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of 1 or more, not {text!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: a subcommand that is not given --config must not reset the one given before it
    # (`abuse-desk --config X messages list`) to None.
    common.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS,
                        help="configuration file (default: $ABUSE_DESK_CONFIG or ./config.toml)")
    common.add_argument("--now", metavar="ISO", type=instant_arg, default=argparse.SUPPRESS,
                        help="run a one-shot command as if it were this instant, e.g. "
                             "2026-12-03T15:00:00Z (backfills, tests; default: the clock)")

    p = argparse.ArgumentParser(
        prog="abuse-desk", parents=[common], epilog=EPILOG,
        description="An ISP's abuse@ desk: SMTP intake, parsing, classification, mitigation.")
    p.add_argument("--version", action="version", version=f"abuse-desk {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, help_: str, description: str | None = None) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[common], help=help_, epilog=EPILOG,
                              description=description or help_)

    add("serve", "run the whole desk in one process: SMTP, workers, scheduler, web",
        "Run the whole desk in one process: the SMTP listener (smtp.host:smtp.port), "
        "dramatiq workers and the scheduler in-process, and the web page (web.host:web.port). "
        "Upgrades an embedded SQLite database itself. Ctrl-C stops it cleanly.")
    smtp = add("smtp", "run an SMTP listener only (needs a redis:// or amqp:// broker)",
               "Run the SMTP listener (smtp.host:smtp.port) only: every message is committed "
               "to the database before its 250, then its id goes to the broker (one round "
               "trip per group commit).")
    smtp.add_argument("--processes", metavar="N", type=_positive, default=1,
                      help="run N listener processes on the same host:port (Linux, "
                           "SO_REUSEPORT: the kernel spreads connections over them), each with "
                           "its own store writer and broker dispatcher, so that a host's every "
                           "core takes mail; this process supervises them: one that dies is "
                           "logged and started again, SIGTERM or Ctrl-C stops all cleanly "
                           "(default: 1, no supervisor)")
    smtp.add_argument("--listener-child", metavar="I", type=int, default=None,
                      help=argparse.SUPPRESS)  # one of --processes N (app/listeners.py)
    add("worker", "run dramatiq workers only (needs a redis:// or amqp:// broker)",
        "Run pipeline.worker_threads dramatiq worker threads against broker.url. Start as many "
        "of these processes, on as many hosts, as the load needs.")
    add("scheduler", "run the scheduler only: the sweeper and due timeline steps",
        "Re-send messages left unprocessed (pipeline.sweep_after_s) and hand due timeline "
        "steps and notices to the workers. Several may run at once.")
    add("web", "run the web desk only: review queue, cases, dashboard, API, /metrics")

    db = add("db", "database schema: upgrade, current")
    db_sub = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    db_sub.add_parser("upgrade", parents=[common], help="bring the schema to the latest version",
                      description="Apply the Alembic migrations up to the newest.")
    db_sub.add_parser("current", parents=[common], help="print the schema version",
                      description="Print the schema version of the database and of the code.")

    imp = add("import", "store .eml files, mbox files and Maildir folders, then process them",
              "Store each message of each PATH (.eml, mbox, Maildir, or folders of these) like "
              "SMTP mail and queue it; the same bytes are stored once (a re-run is safe). Files "
              "that are not mail (no mbox 'From ' line or header block) are skipped and counted.")
    imp.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    imp.add_argument("--quiet", action="store_true", help="no progress bar")

    parse = add("parse", "parse mail files and print their reports, storing nothing",
                "Run the parsers on each FILE (a raw message, e.g. .eml) and print what the desk "
                "would make of it: disposition, format and reports. Nothing is stored. "
                "Category, type and customer come from the classifier over the configured "
                "database's customers and model; without a database (or one not at the code's "
                "schema) they stay empty, and nothing is created or upgraded.")
    parse.add_argument("files", nargs="+", type=Path, metavar="FILE")
    parse.add_argument("--json", action="store_true",
                       help="one JSON object per file, one per line")

    customers = add("customers", "customers and their resources: import, resolve, list",
                    "Customers and their resources (CIDRs, IPs, CGNAT port ranges, domains, "
                    "addresses), each with an optional validity window.")
    from .commands.customers import add_customer_commands

    add_customer_commands(customers.add_subparsers(dest="customers_command", metavar="ACTION",
                                                   required=True), common)

    review = add("review", "the review queue: what the machine could not decide",
                 "Reports that need a person, with their reasons, and a specialist's decision.")
    review_sub = review.add_subparsers(dest="review_command", metavar="ACTION", required=True)
    rl = review_sub.add_parser("list", parents=[common], help="reports waiting for review",
                               description="Reports that need a person, oldest first.")
    rl.add_argument("--json", action="store_true", help="a JSON array")
    rl.add_argument("--limit", type=_count, metavar="N", help="at most N reports")
    rl.add_argument("--message", type=int, metavar="MESSAGE_ID",
                    help="every row of this message (a feed's rows are grouped otherwise)")
    rd = review_sub.add_parser(
        "decide", parents=[common], help="decide a report: its type, its customer, or not abuse",
        description="Record a specialist's decision on a report. The report is classified "
                    "again with the decision fixed, and the decision teaches the text model.")
    rd.add_argument("report_id", type=int, metavar="REPORT_ID")
    rd.add_argument("--type", metavar="TYPE",
                    help="one of our types (spam, virus-spam, spamvertising, malware, hacking, "
                         "port-scan, ddos, open-service, copyright, harassment, phishing, "
                         "fraud, illegal)")
    rd.add_argument("--not-abuse", action="store_true", help="the report is not abuse")
    rd.add_argument("--customer", metavar="CUSTOMER_ID", help="the customer's id (as imported)")
    rd.add_argument("--not-ours", action="store_true",
                    help="the report is about no customer of ours: closed without a case")
    rd.add_argument("--all-rows", action="store_true",
                    help="the same decision on every other row of the report's message waiting "
                         "for review for the same customer (a feed's table): one case, one notice")
    rd.add_argument("--by", required=True, metavar="NAME", help="who decides: an enabled account")

    from .commands.cases import add_workflow_commands

    add_workflow_commands(add, common)

    from .commands.users import add_user_commands

    add_user_commands(add, common)

    msgs = add("messages", "look at stored messages")
    msgs_sub = msgs.add_subparsers(dest="messages_command", metavar="ACTION", required=True)
    ls = msgs_sub.add_parser("list", parents=[common], help="list stored messages, oldest first",
                             description="List stored messages with their state and envelope.")
    ls.add_argument("--json", action="store_true", help="a JSON array, one object per message")
    ls.add_argument("--limit", type=_count, metavar="N",
                    help="at most N messages (default: all)")
    ls.add_argument("--state", choices=["received", "processed", "review"],
                    help="only messages in this state")
    return p


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number, 0 or more, got {text!r}")
    return value


def _safe_url(url: str) -> str:
    """*url* without its password, even when it does not parse."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        scheme, sep, rest = url.partition("://")
        userinfo, at, host = rest.rpartition("@")
        if not (sep and at and ":" in userinfo):
            return url
        return f"{scheme}://{userinfo.partition(':')[0]}:***@{host}"


def _check_database_url(url: str) -> str | None:
    """What is wrong with *url* (which passed the config check on its scheme), or None."""
    try:
        make_url(url).get_dialect()
    except (ArgumentError, ValueError) as exc:
        return f"database.url {_safe_url(url)} is not a usable database URL: {exc}"
    return None


def fail(message: str, code: int = 2) -> int:
    print(f"abuse-desk: error: {message}", file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None, clock: Clock | None = None) -> int:
    """Run the command in *argv*. *clock* is the source of "now" (default: ``--now`` when
    given, else the system clock)."""
    # Everything the desk makes (its database, the Maildir of notices, exports) is its owner's
    # alone: reports carry personal data, the database the key that signs self-service links.
    os.umask(0o077)
    args = _parser().parse_args(argv)
    now = getattr(args, "now", None)
    if now is not None and args.command in LONG_RUNNING:
        return fail(f"--now is for one-shot commands; `{args.command}` runs on the clock")
    if clock is None:
        clock = system_clock if now is None else fixed_clock(now)
    try:
        config = load_config(getattr(args, "config", None))
    except ConfigError as exc:
        return fail(str(exc))
    problem = _check_database_url(config.database.url)
    if problem:
        return fail(problem)
    from ..core.logs import setup_logging

    setup_logging(config.log.level, config.log.format)
    try:
        code = _dispatch(args, config, clock)
        if args.command not in LONG_RUNNING:
            sys.stdout.flush()  # a reader that went away shows here, not at the interpreter's exit
        return code
    except BrokenPipeError:
        if args.command in LONG_RUNNING:
            raise
        return closed_pipe()
    except (OperationalError, InterfaceError, DatabaseError) as exc:
        # DatabaseError: e.g. SQLite's "file is not a database"; the others: cannot connect.
        if isinstance(exc, IntegrityError):  # a bug, not the configuration: keep the traceback
            raise
        why = " ".join(str(exc.orig or exc).split())
        why += "" if why.endswith((".", "?", "!")) else "."
        return fail(f"cannot use the database at {_safe_url(config.database.url)}: {why} "
                    "Check database.url and that the database server is up.", 1)


# The exit status of a command whose reader closed the pipe (`abuse-desk cases list | head`):
# 128 + SIGPIPE, what the shell shows for any program a pipe's reader left (`yes | head`).
CLOSED_PIPE_STATUS = 141


def closed_pipe() -> int:
    """The reader of standard output went away: stop quietly, no traceback. Standard output is
    pointed at /dev/null, so that what is still buffered cannot fail again at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, sys.stdout.fileno())
        finally:
            os.close(devnull)
    except (OSError, ValueError):  # no file descriptor behind sys.stdout (tests): nothing to do
        pass
    return CLOSED_PIPE_STATUS


def _dispatch(args: argparse.Namespace, config: Config, clock: Clock) -> int:
    from ..core.db import FileModeError, SchemaOutOfDate
    from . import runner

    try:
        if args.command == "serve":
            runner.run(config, runner.PARTS, clock)
        elif args.command == "smtp" and args.listener_child is not None:
            # One of `smtp --processes N`: the port is shared; only the first serves /metrics.
            runner.run(config, ("smtp",), clock, reuse_port=True,
                       metrics=args.listener_child == 0)
        elif args.command == "smtp" and args.processes > 1:
            from .listeners import config_path_of, run_listeners

            return run_listeners(config, args.processes,
                                 config_path_of(getattr(args, "config", None)))
        elif args.command in runner.PARTS:
            runner.run(config, (args.command,), clock)
        elif args.command == "db":
            return _db(args, config)
        elif args.command == "import":
            return _import(args, config, clock)
        elif args.command == "messages":
            return _messages_list(args, config)
        elif args.command == "parse":
            return _parse(args, config, clock)
        elif args.command == "customers":
            from .commands.customers import run_customers

            with _engine(config) as engine:
                return run_customers(args, config, engine, clock)
        elif args.command == "review":
            return _review(args, config, clock)
        elif args.command in ("cases", "fees", "timeline"):
            from .commands.cases import run_workflow

            with _desk(config, clock) as desk:
                return run_workflow(args, desk)
        elif args.command == "users":
            from .commands.users import run_users

            with _engine(config) as engine:
                return run_users(args, config, engine, clock)
    except (runner.UsageError, SchemaOutOfDate, FileModeError) as exc:
        return fail(str(exc))
    except OSError as exc:
        if exc.errno in (98, 48):  # EADDRINUSE on Linux, macOS
            return fail(f"{exc.strerror}: another process listens on a port in the config "
                        "(smtp.port, web.port); stop it or choose other ports.")
        if exc.filename is not None:  # e.g. the folder of a SQLite database cannot be made
            return fail(f"{exc.filename}: {exc.strerror or exc}", 1)
        raise
    return 0


@contextlib.contextmanager
def _engine(config: Config) -> Iterator[Engine]:
    """The database of *config*, its schema checked (the embedded one upgraded), for one
    command."""
    from .wiring import open_engine

    engine = open_engine(config)
    try:
        yield engine
    finally:
        engine.dispose()


@contextlib.contextmanager
def _desk(config: Config, clock: Clock, *, sends: bool = False) -> Iterator[Desk]:
    """The whole desk for one command; *sends*: work is handed to the broker at once (else the
    scheduler sends what becomes due)."""
    from .wiring import open_desk

    desk = open_desk(config, clock, sends=sends)
    try:
        yield desk
    finally:
        desk.close()


def _db(args: argparse.Namespace, config: Config) -> int:
    from ..core import db

    engine = db.make_engine(config.database)
    if args.db_command == "upgrade":
        db.upgrade(engine)
        print(f"database {_safe_url(config.database.url)} is at {db.current_revision(engine)}")
    else:
        print(f"database: {db.current_revision(engine) or 'empty'}; code: {db.head_revision()}")
    return 0


def _import(args: argparse.Namespace, config: Config, clock: Clock) -> int:
    from ..core.broker import in_batches, is_in_process, make_broker, many_sender
    from ..ingest.importer import import_paths
    from ..ingest.store import Dispatcher, GroupCommitWriter
    from .wiring import open_engine

    missing = [str(p) for p in args.paths if not p.exists()]
    if missing:
        return fail(f"no such file or folder: {', '.join(missing)}")
    engine = open_engine(config)
    in_process = is_in_process(config.broker.url)
    broker = dispatcher = None
    if not in_process:  # the workers take what is stored at once
        broker = make_broker(config.broker.url)
        send = many_sender(broker)
        batch = config.pipeline.batch_max
        dispatcher = Dispatcher(send_many=lambda ids: send(
            "process_messages", in_batches(ids, batch))).start()
    writer = GroupCommitWriter(engine, dispatcher.dispatch if dispatcher else None).start()
    try:
        summary = import_paths(engine, writer, args.paths, enqueued=not in_process,
                               clock=clock, progress=not args.quiet and sys.stderr.isatty())
    finally:
        writer.stop()
        if dispatcher is not None:
            dispatcher.stop()
        if broker is not None:
            broker.close()
        engine.dispose()
    print(summary.text())
    if in_process and summary.stored:
        print("The running `abuse-desk serve` processes them within pipeline.sweep_interval_s "
              "(or at its next start).")
    return 1 if summary.failed else 0


def parse_json(file: str, result: Any, decisions: list[Any] | None = None) -> dict[str, Any]:
    """The `abuse-desk parse --json` object of one file (its keys are fixed by the parsers
    issue), with the classifier's *decisions* where there are some."""
    from ..core.fields import iso_z

    reports = []
    for n, r in enumerate(result.reports):
        d = decisions[n] if decisions else None
        reasons = [*result.review_reasons, *(d.review_reasons if d else r.review_reasons)]
        reports.append({
            "category": d.category if d else None, "type": d.type if d else None,
            "source_ip": r.source_ip, "source_port": r.source_port,
            "occurred_at": iso_z(r.occurred_at), "urls": r.urls, "domains": r.domains,
            "customer_id": d.external_id if d else None,
            "needs_review": bool(reasons),
            "review_reasons": list(dict.fromkeys(reasons)),
        })
    return {
        "file": file,
        "disposition": result.disposition.value,
        "format": result.format,
        "reports": reports,
        "errors": [*(result.review_reasons if not result.reports else []),
                   *(e.strip().splitlines()[-1] for e in result.errors)],
    }


def _parse(args: argparse.Namespace, config: Config, clock: Clock) -> int:
    from ..core.fields import iso_z
    from ..parsers.registry import PluginError
    from ..workflow.examine import build_examination

    try:  # what the workers run: the built-in parsers and the configured plugins
        examination = build_examination(config, _parse_classifier(config, clock),
                                        authenticate=False)
    except PluginError as exc:
        return fail(str(exc))
    status = 0
    for path in args.files:
        try:
            raw = path.read_bytes()
        except OSError as exc:
            status = 1
            doc: dict[str, Any] = {"file": str(path), "disposition": None, "format": None,
                                   "reports": [], "errors": [f"cannot read: {exc.strerror}"]}
            print(json.dumps(doc) if args.json else f"{path}: cannot read: {exc.strerror}")
            continue
        outcome = examination.examine(raw, clock())
        result, decisions = outcome.result, outcome.decisions or None
        if result is None:  # not even its headers could be read
            doc = {"file": str(path), "disposition": None, "format": None, "reports": [],
                   "errors": [outcome.reason or "unreadable"]}
            print(json.dumps(doc) if args.json else f"{path}: needs review: {outcome.reason}")
            continue
        if args.json:
            print(json.dumps(parse_json(str(path), result, decisions)), flush=True)
            continue
        count = len(result.reports)
        print(f"{path}: {result.disposition.value}, format {result.format}, "
              f"{count} report{'s' if count != 1 else ''}")
        for reason in result.review_reasons:
            print(f"  needs review: {reason}")
        if outcome.reason and result.reports:  # the classifier failed on this content
            print(f"  needs review: {outcome.reason.splitlines()[0]}")
        for n, r in enumerate(result.reports[:50], 1):
            where = r.source_ip or "-"
            if r.source_port:
                where += f" port {r.source_port}"
            d = decisions[n - 1] if decisions else None
            what = f"{d.category}/{d.type}" if d and d.type else (r.type_hint or r.format)
            print(f"  {n}. {what}  source {where}  at {iso_z(r.occurred_at) or 'unknown'}"
                  + (f"  customer {d.external_id}" if d and d.external_id else ""))
            for url in r.urls[:5]:
                print(f"     url {url}")
            for reason in (d.review_reasons if d else r.review_reasons):
                print(f"     needs review: {reason}")
        if count > 50:
            print(f"  ... and {count - 50} more")
    return status


def _parse_classifier(config: Config, clock: Clock) -> ClassifierRuntime | None:
    """The classifier over the configured database (its customers and learnt model), or None
    when there is no database to read: then `parse` still parses."""
    from ..classifier.runtime import ClassifierRuntime
    from ..core.db import current_revision, head_revision, is_sqlite, make_engine

    url = make_url(config.database.url)
    if is_sqlite(config.database.url) and not (url.database and Path(url.database).is_file()):
        return None  # no embedded database yet: nothing to classify against, create nothing
    try:  # only a database at the code's schema, and not upgraded for this
        engine = make_engine(config.database)
        if current_revision(engine) != head_revision():
            return None
    except Exception:
        return None
    return ClassifierRuntime(config, engine, clock)


def _review(args: argparse.Namespace, config: Config, clock: Clock) -> int:
    with _desk(config, clock) as desk:
        return _review_on(args, desk)


def _review_on(args: argparse.Namespace, desk: Desk) -> int:
    from ..casework import review
    from ..classifier.categorize import NOT_ABUSE

    if args.review_command == "list":
        items = desk.review.queue()
        if args.message is not None:
            items = review.filter_queue(items, review.QueueFilter(message=args.message),
                                        desk.clock())
        items = items[:args.limit] if args.limit is not None else items
        if args.json:
            print(json.dumps(items, indent=None))
        else:
            print(f"{len(items)} report(s) waiting for review")
            for line in review.queue_lines(items, every_row=args.message is not None):
                print(line)
        return 0
    if args.not_abuse and args.type:
        return fail("--type and --not-abuse exclude each other")
    if args.not_ours and (args.not_abuse or args.customer):
        return fail("--not-ours excludes --not-abuse and --customer")
    decided_type = NOT_ABUSE if args.not_abuse else args.type
    from ..casework.actions import account_actor
    from ..workflow.cases import CaseError

    try:  # a decision is made by someone the desk knows: --by names an enabled account
        who = account_actor(desk.engine, args.by)
    except CaseError as exc:
        return fail(str(exc))
    try:
        outcome = desk.review.decide(review.ReviewDecision(
            report_id=args.report_id, decided_by=who.name, type=decided_type,
            customer=args.customer, all_rows=args.all_rows, not_ours=args.not_ours))
    except review.ReviewError as exc:
        return fail(str(exc))
    if args.not_ours:
        print(f"report {args.report_id}: about no customer of ours; closed without a case")
        return 0
    print(f"report {args.report_id}: {outcome.category or 'not abuse'}/{outcome.type or '-'}, "
          f"customer {outcome.external_id or 'none'}"
          + (f"; still needs review: {'; '.join(outcome.review_reasons)}"
             if outcome.review_reasons else "; decided"))
    return 0


def message_json(m: Any) -> dict[str, Any]:
    from ..core.db import as_utc

    received = as_utc(m.received_at)
    return {
        "id": m.id, "state": m.state, "disposition": m.disposition, "format": m.format,
        "sha256": m.sha256, "size": m.size,
        "received_at": received.isoformat() if received else None,
        "envelope": {
            "origin": m.origin, "mail_from": m.mail_from, "rcpt_tos": m.rcpt_tos,
            "peer_ip": m.peer_ip, "peer_port": m.peer_port, "helo": m.helo, "tls": m.tls,
            "received_by": m.received_by,
        },
        "headers": {"message_id": m.header_message_id, "from": m.header_from,
                    "subject": m.header_subject, "date": m.header_date},
        "error": m.error,
    }


def _messages_list(args: argparse.Namespace, config: Config) -> int:
    from ..core.db import current_revision, is_sqlite, make_engine
    from ..core.models import Message

    url = config.database.url
    if is_sqlite(url):
        path = make_url(url).database
        if path and path != ":memory:" and not Path(path).is_file():
            return fail(f"no SQLite database at {path}: check database.url", 1)
    engine = make_engine(config.database)
    if current_revision(engine) is None:
        engine.dispose()
        return fail(f"the database at {_safe_url(url)} has no schema yet: run "
                    "`abuse-desk db upgrade` first (or check database.url)")
    stmt = select(Message).order_by(Message.id)  # raw is deferred: never loaded here
    if args.state:
        stmt = stmt.where(Message.state == args.state)
    if args.limit is not None:
        stmt = stmt.limit(args.limit)
    from sqlalchemy.orm import Session

    out = sys.stdout
    with Session(engine) as session:
        rows = session.scalars(stmt.execution_options(yield_per=500))
        if args.json:
            n = 0
            out.write("[")
            for n, m in enumerate(rows, 1):
                out.write(("," if n > 1 else "") + "\n" + json.dumps(message_json(m)))
            out.write("\n]\n" if n else "]\n")
        else:
            out.write(f"{'ID':>8}  {'STATE':<9}  {'RECEIVED (UTC)':<19}  {'SIZE':>9}  "
                      f"{'FROM (envelope)':<32}  SUBJECT\n")
            for m in rows:
                doc = message_json(m)
                out.write(f"{m.id:>8}  {m.state:<9}  {doc['received_at'][:19]:<19}  "
                          f"{m.size:>9}  {(m.mail_from or '<>')[:32]:<32}  "
                          f"{(m.header_subject or '')[:60]}\n")
    engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

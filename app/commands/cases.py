"""The ``abuse-desk cases``, ``fees`` and ``timeline`` commands.

``app/cli.py`` adds them with :func:`add_workflow_commands` and runs them with
:func:`run_workflow`.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import UTC, datetime
from typing import Any

from ...casework import actions as case_actions
from ...core.clock import instant_arg
from ...core.fields import iso_z
from ...core.models import CaseState
from ...workflow import cases
from ..wiring import Desk


def _month(text: str) -> tuple[datetime, datetime]:
    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a month as YYYY-MM (e.g. 2026-11)")
    year, month = int(text[:4]), int(text[5:])
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=UTC)
    return start, end


BY_HELP = ("who acts: an enabled desk account, whose role it acts with (`abuse-desk users "
           "list`); other names are refused")


def add_workflow_commands(add: Any, common: argparse.ArgumentParser) -> None:
    """*add(name, help, description)* makes a top-level command (see app/cli.py)."""
    states = [s.value for s in CaseState]
    c = add("cases", "cases: list, show, resolve, escalate, approve, extend, waive-fee",
            "A customer's related conduct is one case: its claims, state, deadline, notices, "
            "fees and audit trail. Cases are named by reference (C-2026-000123) or number.")
    sub = c.add_subparsers(dest="cases_command", metavar="ACTION", required=True)

    def action(name: str, help_: str, description: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=help_, description=description)
        p.add_argument("case", metavar="CASE", help="reference (C-2026-000123) or number")
        return p

    ls = sub.add_parser("list", parents=[common], help="cases, newest first",
                        description="Cases, newest first, with their state, deadline, number of "
                                    "reports and assessed fees.")
    ls.add_argument("--state", choices=states, help="only cases in this state")
    ls.add_argument("--customer", metavar="CUSTOMER_ID", help="only this customer's cases")
    ls.add_argument("--overdue", action="store_true",
                    help="only unresolved cases whose deadline has passed")
    ls.add_argument("--limit", type=int, metavar="N", help="at most N cases")
    ls.add_argument("--json", action="store_true", help="a JSON array")

    show = action("show", "one case: reports, steps done and planned, notices, replies, fees, "
                  "events", "Everything about one case.")
    show.add_argument("--json", action="store_true", help="one JSON object")

    for name, help_, desc in (
            ("resolve", "mark a case resolved (pending deadline steps are cancelled)",
             "Mark a case resolved: its reminder, deadline and proposed actions are cancelled, "
             "and the customer is told. A restricted service is restored when --by names a "
             "supervisor's account (or workflow.auto_actions covers the case); otherwise the "
             "restore is proposed to a supervisor and the case stays restricted until one "
             "approves it. A related claim within workflow.related_window_days reopens it."),
            ("escalate", "escalate a case now (fees assessed, an action proposed)",
             "Escalate a case before its deadline: a fee per complaint is written to the "
             "ledger, the customer is told, and a restriction (or termination) is proposed. "
             "Also confirms an escalation the deadline made without an authenticated claim.")):
        p = action(name, help_, desc)
        p.add_argument("--by", required=True, metavar="NAME", help=BY_HELP)
        p.add_argument("--reason", required=True, help="why (kept in the audit trail)")

    ap = action("approve", "approve the proposed restriction or termination, or order one",
                "Approve the action proposed at escalation (or name one with --action: "
                "restrict, terminate, restore). It goes to the provisioning hook "
                "(workflow.action_hook_url or action_hook_command) when the timeline runs its "
                "step; with neither configured it is only recorded on the case, and someone "
                "carries it out by hand.")
    ap.add_argument("--action", choices=cases.ACTIONS, help="default: the proposed action")
    ap.add_argument("--by", required=True, metavar="NAME",
                    help=BY_HELP + "; a restore needs a supervisor's account")
    ap.add_argument("--reason", default="", help="why (kept in the audit trail)")

    ex = action("extend", "move a case's deadline", "Move the deadline of an unresolved case; "
                "its reminder and deadline steps are planned again.")
    when = ex.add_mutually_exclusive_group(required=True)
    when.add_argument("--until", type=instant_arg, metavar="ISO", help="the new deadline")
    when.add_argument("--business-days", type=int, metavar="N",
                      help="N business days from now (desk calendar)")
    ex.add_argument("--by", required=True, metavar="NAME", help=BY_HELP)
    ex.add_argument("--reason", required=True, help="why (kept in the audit trail)")

    wv = action("waive-fee", "waive a case's assessed fees (or one with --fee)",
                "Waive the assessed fees of a case (all of them, or one by --fee ID). Waived "
                "fees stay in the ledger, marked waived, with who and why.")
    wv.add_argument("--fee", type=int, metavar="FEE_ID", help="only this fee")
    wv.add_argument("--by", required=True, metavar="NAME", help=BY_HELP)
    wv.add_argument("--reason", required=True, help="why (kept in the ledger)")

    f = add("fees", "the fee ledger: export for billing",
            "Fees are assessed by the desk, never charged: billing takes them from the export.")
    fsub = f.add_subparsers(dest="fees_command", metavar="ACTION", required=True)
    fe = fsub.add_parser("export", parents=[common], help="fees of a month as CSV",
                         description="Print the fees assessed in a month (UTC) as CSV, one row "
                                     "per complaint, for billing.")
    fe.add_argument("--month", required=True, type=_month, metavar="YYYY-MM")
    fe.add_argument("--include-waived", action="store_true",
                    help="also list waived fees (state column says which)")
    fe.add_argument("--output", "-o", metavar="FILE", help="write to FILE instead of stdout")

    t = add("timeline", "run the timeline: every step due at an instant",
            "Timeline steps (notices, reminders, deadlines, actions) normally run from the "
            "scheduler. `timeline run` runs, in this process, every step and notice due at "
            "--now (default: the current time): for tests, backfills and catching up.")
    tsub = t.add_subparsers(dest="timeline_command", metavar="ACTION", required=True)
    tr = tsub.add_parser("run", parents=[common], help="run every step due at --now",
                         description="Run every timeline step and deliver every notice due at "
                                     "--now, until nothing more is due.")
    tr.add_argument("--json", action="store_true", help="print the summary as JSON")


def _fail(message: str, code: int = 2) -> int:
    print(f"abuse-desk: error: {message}", file=sys.stderr)
    return code


def _short(value: Any) -> Any:
    """An ISO time without its fraction of a second, for reading."""
    return re.sub(r"\.\d+Z$", "Z", value) if isinstance(value, str) else value


def _print_case(detail: dict[str, Any]) -> None:
    detail = {k: _short(v) for k, v in detail.items()}
    print(f"{detail['id']}  {detail['customer_id']}  {detail['category']}/{detail['type']}  "
          f"{detail['state']}  ({detail['timeline_class']})")
    print(f"  opened {detail['opened_at']}, deadline {detail['deadline_at'] or '-'}, "
          f"{detail['report_count']} report(s), fees {detail['fee_currency']} "
          f"{detail['fee_total']}"
          + (f", proposed: {detail['proposed_action']}" if detail["proposed_action"] else ""))
    if detail["escalation_note"]:
        print(f"  {detail['escalation_note']}")
    print("  reports:")
    for r in detail["reports"]:
        print(f"    #{r['id']} {r['format']} {r['type']} {r['source_ip'] or '-'} "
              f"received {_short(r['received_at'])} from {r['reporter'] or '-'}"
              + ("" if r["authenticated"] else " (unauthenticated)"))
    print("  timeline:")
    for s in detail["steps"]:
        when = _short(s["done_at"] or s["due_at"])
        extra = f" ({s['error']})" if s["error"] else ""
        print(f"    {when}  {s['kind']:<10} {s['state']}{extra}")
    print("  notices:")
    for n in detail["notices"]:
        print(f"    #{n['id']} {n['kind']:<10} {n['state']:<8} to {n['to']}"
              + (f" ({n['error']})" if n["error"] else ""))
    if detail["replies"]:
        print("  replies:")
        for m in detail["replies"]:
            print(f"    message {m['message_id']} {m['kind']} {m['received_at']} "
                  f"from {m['from']}: {m['subject']}")
    if detail["fees"]:
        print("  fees:")
        for f in detail["fees"]:
            print(f"    #{f['id']} report {f['report_id']} {f['currency']} {f['amount']} "
                  f"{f['state']}" + (f" by {f['waived_by']}: {f['waive_reason']}"
                                     if f["waived_by"] else "")
                  + (f" ({f['reason']})" if f["reason"] else ""))
    print("  events:")
    for e in detail["events"]:
        print(f"    {_short(e['at'])}  {e['actor_kind']}:{e['actor']}  {e['action']}")


def run_workflow(args: argparse.Namespace, desk: Desk) -> int:
    """Run the ``cases``, ``fees`` or ``timeline`` command in *args* on *desk* (opened by the
    CLI, without sending work: the scheduler sends what becomes due)."""
    if args.command == "timeline":
        summary = desk.workflow.run_due()
        if args.json:
            print(json.dumps({"now": iso_z(desk.clock()), "steps": summary.steps,
                              "notices": summary.notices}))
        else:
            steps = ", ".join(f"{n} {k}" for k, n in sorted(summary.steps.items())) or "none"
            notes = ", ".join(f"{n} {k}" for k, n in sorted(summary.notices.items())) or "none"
            print(f"at {iso_z(desk.clock())}: steps {steps}; notices {notes}")
        return 0
    if args.command == "fees":
        start, end = args.month
        if args.output:
            with open(args.output, "w", encoding="utf-8", newline="") as out:
                count = desk.cases.export_fees(start, end, out, args.include_waived)
            print(f"{count} fee(s) written to {args.output}", file=sys.stderr)
        else:
            desk.cases.export_fees(start, end, sys.stdout, args.include_waived)
        return 0
    try:
        return _cases(args, desk)
    except cases.CaseError as exc:
        return _fail(str(exc))


def _actor(desk: Desk, name: str) -> cases.Actor:
    """``--by NAME`` acts with the role of the desk's enabled account NAME (``abuse-desk
    users``); any other name is refused (:func:`casework.actions.account_actor`)."""
    return case_actions.account_actor(desk.engine, name)


def _cases(args: argparse.Namespace, desk: Desk) -> int:
    command = args.cases_command
    if command == "list":
        rows = desk.cases.case_rows(args.state, args.customer, args.overdue, args.limit)
        if args.json:
            print(json.dumps(rows))
        else:
            print(f"{len(rows)} case(s)")
            for r in rows:
                print(f"  {r['id']}  {r['customer_id']:<12} {r['type']:<14} {r['state']:<18} "
                      f"deadline {_short(r['deadline_at']) or '-'}  {r['report_count']} report(s)  "
                      f"{r['fee_currency']} {r['fee_total']}")
        return 0
    if command == "show":
        detail = desk.cases.case_detail(args.case)
        if args.json:
            print(json.dumps(detail))
        else:
            _print_case(detail)
        return 0
    who = _actor(desk, args.by)  # CaseError: run_workflow says it and exits 2
    said = case_actions.apply(desk.workflow, args.case, case_actions.Request(
        action=command, reason=args.reason or "",
        until=getattr(args, "until", None), business_days=getattr(args, "business_days", None),
        fee_id=getattr(args, "fee", None), approve=getattr(args, "action", None)), who)
    print(said)
    if desk.send is None and command in ("resolve", "escalate", "approve"):
        print("  (the customer's mail and any action go out at the scheduler's next run)")
    return 0

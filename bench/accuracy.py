"""How much of the mail an abuse desk gets does it handle right without a person?

    .venv/bin/python bench/accuracy.py                      # the labelled corpus in tests/accuracy
    .venv/bin/python bench/accuracy.py --corpus DIR         # another labelled folder
    .venv/bin/python bench/accuracy.py --json out.json      # also the figures as JSON
    .venv/bin/python bench/accuracy.py --misses             # every miss, with why
    make accuracy

A labelled corpus is a folder of sender kinds, one sub-folder each, holding raw messages
(``*.eml``) and a ``labels.toml`` that says what each message is (see ``tests/accuracy/README.md``):
a complaint, with the reports it should give (offender, time, category, type), or a non-report
of a named kind (a DMARC aggregate report, another desk's ticket acknowledgement, a bounce ...).

Each expected offender is given to a customer of its own (an IP as a /32 or /128, a host name
as a domain), as if the reported address were always the provider's, and each message is judged
with only its own offenders as the provider's (an address one message accuses may be another
message's victim): the desk must find them among everything else a message names (the
reporter's own servers, victims, control servers, the range a WHOIS block starts with). Then
every message goes through what a worker does before it writes (``Examination.examine``:
parsers, the reporter's DKIM check, the classifier), DNS answering nothing (as on a host
without a resolver), and is scored:

* offender right: the reports' offenders (source IP, else the host of the first URL, else the
  first domain) are exactly the expected ones;
* time right: each expected time equals the report's incident time (to the second);
* category right / type right: of each expected report, in the report with its offender;
* customer right: each expected report resolves to the offender's customer;
* decided without a person (the headline): the message gives exactly the expected reports, each
  with the right customer and category and no reason for review, so the desk opens or joins the
  right case by itself;
* non-reports ignored: a non-report gives no report (any disposition but ``report``), and an
  ignored one is named as what it is (``result.extra["non_report"]``) unless the label says
  ``other``.

The figures are per sender kind and in total, over messages (a Shadowserver mail with nine rows is
one message).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import sys
import tempfile
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DEFAULT_CORPUS = ROOT / "tests" / "accuracy"
# When the labels give none: a Tuesday afternoon, after every incident time in the corpus.
RECEIVED = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
CATEGORIES = {"spam", "network", "other"}


# ---------------------------------------------------------------- labels

@dataclass(frozen=True)
class Expected:
    """One report a complaint should give."""

    offender: str
    category: str
    type: str
    time: datetime | None = None
    port: int | None = None


@dataclass(frozen=True)
class Sample:
    kind: str
    path: Path
    # "report", or the kind of non-report ("dmarc-aggregate", "ticket-ack", "bounce", ...)
    expect: str
    reports: tuple[Expected, ...] = ()
    received_at: datetime = RECEIVED

    @property
    def is_report(self) -> bool:
        return self.expect == "report"


class LabelError(ValueError):
    pass


def _instant(value: Any, where: str) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise LabelError(f"{where}: {value!r} is not an ISO 8601 time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def normalize_offender(value: str) -> str:
    """An IP in its compressed form, a host name in lower case without a trailing dot."""
    text = value.strip().strip("[]").rstrip(".").lower()
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return text


def load_kind(folder: Path) -> list[Sample]:
    """The samples of one sender kind: ``folder/labels.toml`` and the files it names."""
    labels = folder / "labels.toml"
    try:
        doc = tomllib.loads(labels.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise LabelError(f"{labels}: {exc}") from None
    kind = str(doc.get("kind") or folder.name)
    samples = []
    for n, entry in enumerate(doc.get("message", []), 1):
        where = f"{labels}: message {n}"
        path = folder / str(entry.get("file", ""))
        if not path.is_file():
            raise LabelError(f"{where}: no file {path.name!r}")
        expect = str(entry.get("expect", "report"))
        reports = []
        for r in entry.get("report", []):
            category = str(r.get("category", ""))
            if category not in CATEGORIES:
                raise LabelError(f"{where}: category {category!r} is not one of {CATEGORIES}")
            reports.append(Expected(
                offender=normalize_offender(str(r["offender"])), category=category,
                type=str(r.get("type", "")),
                time=_instant(r["time"], where) if r.get("time") else None,
                port=int(r["port"]) if r.get("port") is not None else None))
        if expect == "report" and not reports:
            raise LabelError(f"{where}: a report must list the reports it gives")
        if expect != "report" and reports:
            raise LabelError(f"{where}: a non-report ({expect}) lists no reports")
        received = _instant(entry["received"], where) if entry.get("received") else RECEIVED
        samples.append(Sample(kind, path, expect, tuple(reports), received))
    unlabelled = sorted(p.name for p in folder.glob("*.eml")
                        if p.name not in {s.path.name for s in samples})
    if unlabelled:
        raise LabelError(f"{labels}: no label for {', '.join(unlabelled)}")
    return samples


def load_corpus(root: Path) -> list[Sample]:
    folders = sorted(p.parent for p in root.rglob("labels.toml"))
    if not folders:
        raise LabelError(f"no labels.toml under {root}")
    return [s for folder in folders for s in load_kind(folder)]


# ---------------------------------------------------------------- the desk

def customers_csv(samples: Iterable[Sample], path: Path) -> dict[str, str]:
    """A customer for every expected offender; returns offender -> customer id."""
    owners: dict[str, str] = {}
    lines = ["customer_id,name,email,resource,valid_from,valid_until"]
    for sample in samples:
        for report in sample.reports:
            if report.offender in owners:
                continue
            customer = f"A-{len(owners) + 1}"
            owners[report.offender] = customer
            lines.append(f"{customer},Customer {len(owners)},noc{len(owners)}@customers.example,"
                         f"{report.offender},,")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return owners


def no_dns(name: bytes, timeout: float = 5.0) -> bytes | None:
    """No resolver: every DKIM key lookup fails, as on a host without DNS."""
    raise OSError("no DNS resolver on this host")


def open_desk_for(samples: Sequence[Sample], folder: Path) -> tuple[Any, dict[str, str]]:
    from abuse_desk.app.wiring import open_desk
    from abuse_desk.classifier.customer_import import import_customers
    from abuse_desk.core.clock import fixed_clock
    from abuse_desk.core.config import build_config
    from abuse_desk.core.db import upgrade

    config = build_config({"database": {"url": f"sqlite:///{folder / 'desk.db'}"},
                           "log": {"level": "ERROR"}}, "accuracy", env={})
    desk = open_desk(config, fixed_clock(RECEIVED), sends=False, upgrade_schema=True)
    upgrade(desk.engine)
    owners = customers_csv(samples, folder / "customers.csv")
    import_customers(desk.engine, folder / "customers.csv", clock=desk.clock)
    desk.examination.classifier.classifier._dns = no_dns
    desk.examination.classifier.index()
    return desk, owners


# ---------------------------------------------------------------- scoring

def offender_of(report: Any) -> str | None:
    """What a report accuses: its source IP, else the host of its first URL, else its first
    domain."""
    if report.source_ip:
        return normalize_offender(report.source_ip)
    for url in report.urls:
        from urllib.parse import urlsplit

        host = urlsplit(url).hostname
        if host:
            return normalize_offender(host)
    if report.domains:
        return normalize_offender(report.domains[0])
    return None


@dataclass
class Score:
    """The outcome for one sample."""

    sample: Sample
    disposition: str = ""
    offender_right: bool = False
    time_right: bool | None = None  # None: no time expected
    category_right: bool = False
    type_right: bool = False
    customer_right: bool = False
    decided: bool = False  # handled right without a person
    in_review: bool = False
    ignored_right: bool = False
    why: list[str] = field(default_factory=list)


def score(sample: Sample, outcome: Any, owners: dict[str, str]) -> Score:
    s = Score(sample)
    result = outcome.result
    s.disposition = result.disposition.value if result is not None else "unreadable"
    if not sample.is_report:
        s.ignored_right = s.disposition != "report"
        if not s.ignored_right:
            s.why.append(f"a {sample.expect} taken as a complaint "
                         f"({result.format if result else '?'})")
        elif s.disposition == "ignored" and sample.expect != "other":
            # The parsers name what they ignored (result.extra["non_report"], the labels'
            # vocabulary): an ignored message must be named as what it is.
            named = result.extra.get("non_report") if result is not None else None
            if named != sample.expect:
                s.ignored_right = False
                s.why.append(f"a {sample.expect} ignored as {named or 'something unnamed'}")
        return s
    if outcome.reason:
        s.in_review = True
        s.why.append(f"message in review: {outcome.reason.splitlines()[0]}")
    reports = list(result.reports) if result is not None else []
    decisions = list(outcome.decisions) or [None] * len(reports)
    found: dict[str, tuple[Any, Any]] = {}
    for report, decision in zip(reports, decisions, strict=False):
        who = offender_of(report)
        if who is not None and who not in found:
            found[who] = (report, decision)
    wanted = {e.offender for e in sample.reports}
    s.offender_right = set(found) == wanted
    if not s.offender_right:
        missing, extra = sorted(wanted - set(found)), sorted(set(found) - wanted)
        s.why.append("offender: " + "; ".join(
            part for part in (f"missed {', '.join(missing)}" if missing else "",
                              f"took {', '.join(extra[:5])}" if extra else "") if part))
    times: list[bool] = []
    categories: list[bool] = []
    types: list[bool] = []
    customers: list[bool] = []
    clean: list[bool] = []
    for e in sample.reports:
        report, decision = found.get(e.offender, (None, None))
        if report is None:
            for column in (times, categories, types, customers, clean):
                column.append(False)
            continue
        if e.time is not None:
            ok = report.occurred_at is not None and \
                abs((report.occurred_at - e.time).total_seconds()) < 1
            times.append(ok)
            if not ok:
                s.why.append(f"time of {e.offender}: {report.occurred_at} not {e.time}")
        got_category = decision.category if decision is not None else None
        got_type = decision.type if decision is not None else None
        categories.append(got_category == e.category)
        types.append(got_type == e.type or not e.type)
        if got_category != e.category:
            s.why.append(f"category of {e.offender}: {got_category} not {e.category}")
        elif e.type and got_type != e.type:
            s.why.append(f"type of {e.offender}: {got_type} not {e.type}")
        customer = decision.external_id if decision is not None else None
        customers.append(customer == owners.get(e.offender))
        if customer != owners.get(e.offender):
            s.why.append(f"customer of {e.offender}: {customer} not {owners.get(e.offender)}")
        reasons = list(decision.review_reasons) if decision is not None else []
        if reasons:
            s.in_review = True
            s.why.append(f"review for {e.offender}: {'; '.join(reasons)[:200]}")
        clean.append(not reasons)
    s.time_right = all(times) if times else None
    s.category_right = all(categories)
    s.type_right = all(types)
    s.customer_right = all(customers)
    s.decided = (s.offender_right and s.category_right and s.customer_right and all(clean)
                 and not outcome.reason)
    return s


def own_index(sample: Sample, owners: dict[str, str], ids: dict[str, int]) -> Any:
    """The customer index as this message sees the provider: its own offenders, nothing else."""
    from abuse_desk.classifier.customers import CustomerIndex
    from abuse_desk.classifier.resources import Resource, ResourceRow

    rows = []
    for report in sample.reports:
        external = owners[report.offender]
        r = Resource.parse(report.offender, None, None)
        rows.append(ResourceRow(ids[external], external, r.kind, r.value, r.port_low,
                                r.port_high, r.valid_from, r.valid_until))
    return CustomerIndex.from_rows(rows, customers=[(i, e) for e, i in ids.items()])


def run(samples: Sequence[Sample]) -> list[Score]:
    from abuse_desk.core.models import Customer
    from sqlalchemy import select

    with tempfile.TemporaryDirectory(prefix="abuse-desk-accuracy-") as tmp:
        desk, owners = open_desk_for(samples, Path(tmp))
        with desk.engine.connect() as conn:
            ids = {ext: cid for cid, ext in conn.execute(
                select(Customer.id, Customer.external_id))}
        classifier = desk.examination.classifier.classifier
        scores = []
        try:
            for sample in samples:
                index = own_index(sample, owners, ids)
                classifier._index = lambda index=index: index
                outcome = desk.examination.examine(sample.path.read_bytes(), sample.received_at)
                scores.append(score(sample, outcome, owners))
            return scores
        finally:
            desk.close()


# ---------------------------------------------------------------- figures

def _share(values: Sequence[bool]) -> float | None:
    return round(100 * sum(values) / len(values), 1) if values else None


def figures(scores: Sequence[Score]) -> dict[str, Any]:
    reports = [s for s in scores if s.sample.is_report]
    others = [s for s in scores if not s.sample.is_report]
    timed = [s.time_right for s in reports if s.time_right is not None]
    return {
        "messages": len(scores), "complaints": len(reports), "non_reports": len(others),
        "offender_right": _share([s.offender_right for s in reports]),
        "time_right": _share(timed),
        "category_right": _share([s.category_right for s in reports]),
        "type_right": _share([s.type_right for s in reports]),
        "customer_right": _share([s.customer_right for s in reports]),
        "decided_without_a_person": _share([s.decided for s in reports]),
        "in_review": _share([s.in_review for s in reports]),
        "non_reports_ignored": _share([s.ignored_right for s in others]),
    }


COLUMNS = (("messages", "msgs"), ("offender_right", "offender"), ("time_right", "time"),
           ("category_right", "category"), ("type_right", "type"),
           ("customer_right", "customer"), ("decided_without_a_person", "decided"),
           ("non_reports_ignored", "ignored"))
TARGETS = {"offender_right": 97.0, "category_right": 97.0, "non_reports_ignored": 97.0,
           "decided_without_a_person": 85.0}


def table(scores: Sequence[Score]) -> str:
    kinds: dict[str, list[Score]] = {}
    for s in scores:
        kinds.setdefault(s.sample.kind, []).append(s)
    width = max([len(k) for k in kinds] + [12])
    head = f"{'sender kind':<{width}}  " + "  ".join(f"{label:>8}" for _, label in COLUMNS)
    lines = [head, "-" * len(head)]

    def line(name: str, group: Sequence[Score]) -> str:
        figs = figures(group)
        cells = [f"{figs[key]:>8}" if figs[key] is not None else f"{'-':>8}"
                 for key, _ in COLUMNS]
        return f"{name:<{width}}  " + "  ".join(cells)

    lines += [line(kind, group) for kind, group in sorted(kinds.items())]
    lines += ["-" * len(head), line("all", scores)]
    total = figures(scores)
    lines.append("")
    lines.append("targets: " + ", ".join(
        f"{key.replace('_', ' ')} {total[key]} % (>= {want:g} %: "
        f"{'met' if (total[key] or 0) >= want else 'MISSED'})" for key, want in TARGETS.items()))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, metavar="DIR",
                        help="a labelled corpus (default: tests/accuracy)")
    parser.add_argument("--kind", action="append", metavar="KIND",
                        help="only these sender kinds (repeatable)")
    parser.add_argument("--misses", action="store_true",
                        help="list every message not handled right, with why")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures here")
    args = parser.parse_args(argv)
    try:
        samples = load_corpus(args.corpus)
    except LabelError as exc:
        print(f"accuracy: {exc}", file=sys.stderr)
        return 2
    if args.kind:
        samples = [s for s in samples if s.kind in set(args.kind)]
    print(f"{len(samples)} messages of {len({s.kind for s in samples})} sender kinds from "
          f"{args.corpus}", file=sys.stderr)
    scores = run(samples)
    print(table(scores))
    if args.misses:
        print()
        for s in scores:
            wrong = (not s.ignored_right) if not s.sample.is_report else not s.decided
            if wrong:
                print(f"{s.sample.kind}/{s.sample.path.name} [{s.disposition}]: "
                      f"{' | '.join(s.why) or 'not decided'}")
    if args.json:
        kinds: dict[str, list[Score]] = {}
        for s in scores:
            kinds.setdefault(s.sample.kind, []).append(s)
        args.json.write_text(json.dumps({
            "total": figures(scores),
            "kinds": {k: figures(v) for k, v in sorted(kinds.items())},
            "misses": [{"file": f"{s.sample.kind}/{s.sample.path.name}", "why": s.why}
                       for s in scores if (s.sample.is_report and not s.decided)
                       or (not s.sample.is_report and not s.ignored_right)],
        }, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

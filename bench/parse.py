"""Parse and classify cost per report format, in µs per message, against the floor: a bare
``email.message_from_bytes`` of the same messages, measured in the same loop.

    .venv/bin/python bench/parse.py                 # 7 repeats of about 0.3 s per figure
    .venv/bin/python bench/parse.py --quick         # 3 repeats of about 0.1 s
    .venv/bin/python bench/parse.py --json out.json

The messages are the samples of ``../shared/corpus`` (grouped by the format the registry gives
them: ARF, X-ARF, ACNS, Shadowserver CSV-in-ZIP, free text), the corpus's XARF v4 JSON reports
attached to a mail as ``xarf.json`` (how they arrive), and built bounces, auto-replies and replies
to our notices (guards: no report, so parse+classify is parse alone for them).

For each format, every repeat times three things over the same messages, one after another:

* the floor: ``email.message_from_bytes(raw)`` (compat32, what the parsers' ``Mail`` uses);
* parse: ``desk.examination.parsers.parse(raw, limits)``, the parser registry;
* parse+classify: what a worker does before it writes (``Examination.examine``): the top
  headers, the registry, the reporter's DKIM check and the classifier on each report, with a
  customer index of 10,000 customers (about 41,000 resources: IPv4 /24s, IPv6 /64s, domains)
  loaded from SQLite by the classifier's runtime.

The figure is the median over the repeats of (elapsed / messages); the ratio is against the floor
of the same repeats. Targets (issue 20): parse+classify within 3 × the floor for each format
machines send, within 10 × for free text. The corpus rows are summed over all samples ("all N
samples", each sample once); the mix that ``bench/pipeline.py`` sends end to end is measured
too, apart.

DKIM: the samples' signatures are checked against a DNS stub that knows no key (this machine has
no DNS, and no query should leave it), so a signed message costs reading its signature and the
key lookup, but no body hash, no RSA verification and no network round trip.
"""

from __future__ import annotations

import base64
import email
import gc
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    CUSTOMERS,
    base_sections,
    customers_csv,
    median,
    row,
    standard_main,
    target,
)

CORPUS = ROOT.parent / "shared" / "corpus"
FLOOR = "email.message_from_bytes (floor)"
# How the table names a format (any other by its name); "guards" are bounces, auto-replies
# and replies to our notices.
LABELS = {"arf": "ARF", "xarf": "X-ARF", "xarf4": "XARF v4 JSON", "acns": "ACNS (DMCA XML)",
          "shadowserver": "Shadowserver CSV", "text": "free text",
          "guards": "bounce/auto-reply/reply"}


def table_formats() -> tuple[str, ...]:
    """The rows of the table: every complaint format the parsers declare (one with a type
    vocabulary), those machines send first, then "guards"."""
    from abuse_desk.parsers.registry import known_formats

    complaints = [f for f in known_formats().values() if f.vocabulary]
    ordered = sorted(complaints, key=lambda f: (not f.machine, f.name))
    return (*(f.name for f in ordered), "guards")


TEXT_TARGET = 10.0  # free text: parse+classify within this many floors
MACHINE_TARGET = 3.0  # a format machines send


def target_ratio(name: str) -> float | None:
    """The bound on a row's parse+classify ratio to the floor, or None (no target)."""
    from abuse_desk.parsers.registry import known_formats

    if name == "text":
        return TEXT_TARGET
    found = known_formats().get(name)
    return MACHINE_TARGET if found is not None and found.machine else None


# ---------------------------------------------------------------- customers

# ---------------------------------------------------------------- messages

def xarf4_mail(data: bytes, n: int) -> bytes:
    """An XARF v4 JSON report as it arrives: attached to a short mail as xarf.json."""
    encoded = base64.encodebytes(data).decode().replace("\n", "\r\n")
    return ("From: Reports <reports@sensor.example>\r\nTo: abuse@integra-isp.example\r\n"
            f"Subject: XARF report {n}\r\nDate: Fri, 08 Mar 2024 14:25:00 +0000\r\n"
            f"Message-ID: <xarf4-{n}@sensor.example>\r\nMIME-Version: 1.0\r\n"
            "Content-Type: multipart/mixed; boundary=\"xarf-1\"\r\n\r\n"
            "--xarf-1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            "An XARF v4 report is attached.\r\n\r\n"
            "--xarf-1\r\nContent-Type: application/json; name=\"xarf.json\"\r\n"
            "Content-Disposition: attachment; filename=\"xarf.json\"\r\n"
            f"Content-Transfer-Encoding: base64\r\n\r\n{encoded}\r\n--xarf-1--\r\n").encode()


def guard_mails(hostname: str = "abuse-desk.localhost") -> list[bytes]:
    """A bounce (DSN) of one of our notices, an auto-reply, a reply to a notice."""
    ours = f"<notice.42.1700000000@{hostname}>"
    bounce = (
        "From: Mail Delivery System <MAILER-DAEMON@mx.customer.example>\r\n"
        "To: abuse@integra-isp.example\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        "Date: Tue, 24 Nov 2026 14:00:00 +0000\r\nMessage-ID: <dsn.1@mx.customer.example>\r\n"
        "Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n"
        "Content-Type: multipart/report; report-type=delivery-status; boundary=\"d\"\r\n\r\n"
        "--d\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        "--d\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.customer.example\r\n\r\n"
        "Final-Recipient: rfc822; noc@customer.example\r\nAction: failed\r\n"
        "Status: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 no such user\r\n"
        "--d\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"From: abuse@integra-isp.example\r\nTo: noc@customer.example\r\n"
        f"Subject: [Abuse Case C-2026-000042] Notice\r\nMessage-ID: {ours}\r\n"
        "--d--\r\n").encode()
    autoreply = (
        b"From: Noc <noc@customer.example>\r\nTo: abuse@integra-isp.example\r\n"
        b"Subject: Out of office: [Abuse Case C-2026-000042] Notice\r\n"
        b"Date: Tue, 24 Nov 2026 14:00:00 +0000\r\nMessage-ID: <ooo.1@customer.example>\r\n"
        b"Auto-Submitted: auto-replied\r\n\r\nI am away until Monday.\r\n")
    reply = (
        "From: Noc <noc@customer.example>\r\nTo: abuse@integra-isp.example\r\n"
        "Subject: Re: [Abuse Case C-2026-000042] Notice\r\n"
        "Date: Tue, 24 Nov 2026 14:00:00 +0000\r\nMessage-ID: <re.1@customer.example>\r\n"
        f"In-Reply-To: {ours}\r\nReferences: {ours}\r\n\r\n"
        "We have removed the compromised site.\r\n\r\n> Dear customer,\r\n").encode()
    return [bounce, autoreply, reply]


def samples(hostname: str = "abuse-desk.localhost") -> dict[str, list[bytes]]:
    """The messages of each format (see the module's docstring)."""
    from abuse_desk.parsers.registry import default_registry

    if not CORPUS.is_dir():
        raise SystemExit(f"the shared corpus is not at {CORPUS}: this benchmark needs it")
    registry = default_registry(hostname)
    groups: dict[str, list[bytes]] = {name: [] for name in table_formats()}
    for path in sorted(CORPUS.rglob("*.eml")):
        raw = path.read_bytes()
        result = registry.parse(raw)
        name = "guards" if result.disposition.value != "report" else result.format
        if name in groups:
            groups[name].append(raw)
    for n, path in enumerate(sorted((CORPUS / "xarf-v4").glob("*.json"))):
        groups["xarf4"].append(xarf4_mail(path.read_bytes(), n))
    groups["guards"] += guard_mails(hostname)
    return {name: messages for name, messages in groups.items() if messages}


# ---------------------------------------------------------------- the desk for classifying

def no_dns(name: bytes, timeout: float = 5.0) -> bytes | None:
    """The DKIM key lookup: nobody publishes one here (and no query leaves the machine)."""
    return None


def classifying_desk(folder: Path, customers: int = CUSTOMERS) -> Any:
    """A desk on a SQLite file in *folder* with *customers* imported, its classifier's index
    and text model loaded (as a worker has them), and DKIM keys looked up in :func:`no_dns`."""
    from abuse_desk.app.wiring import open_desk
    from abuse_desk.classifier.customer_import import import_customers
    from abuse_desk.core.config import build_config
    from abuse_desk.core.db import upgrade

    config = build_config(base_sections(folder), "bench", env={})
    desk = open_desk(config, sends=False, upgrade_schema=True)
    upgrade(desk.engine)
    import_customers(desk.engine, customers_csv(folder / "customers.csv", customers),
                     clock=desk.clock)
    desk.examination.classifier.classifier._dns = no_dns  # a DNS stub: see the docstring
    desk.examination.classifier.index()
    return desk


# ---------------------------------------------------------------- timing

def _batch(fn: Callable[[bytes], object], messages: Sequence[bytes], rounds: int) -> float:
    """Seconds per message of *rounds* passes of *fn* over *messages*."""
    gc.collect()
    started = time.perf_counter()
    for _ in range(rounds):
        for raw in messages:
            fn(raw)
    return (time.perf_counter() - started) / (rounds * len(messages))


def measure(messages: Sequence[bytes], fns: Mapping[str, Callable[[bytes], object]],
            repeats: int, batch_s: float) -> dict[str, list[float]]:
    """Per repeat, each of *fns* in turn over *messages* (enough rounds that the slowest takes
    about *batch_s*); returns the seconds per message of each, per repeat."""
    for fn in fns.values():  # warm up: lazily loaded schemas, caches, the index
        _batch(fn, messages, 1)
    slowest = max(_batch(fn, messages, 1) for fn in fns.values())
    rounds = max(1, round(batch_s / (slowest * len(messages))))
    figures: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            figures[name].append(_batch(fn, messages, rounds))
    return figures


def run(quick: bool = False) -> dict[str, Any]:
    from abuse_desk.parsers.base import Disposition
    repeats, batch_s = (3, 0.1) if quick else (7, 0.3)
    rows: list[dict[str, Any]] = []
    targets: list[dict[str, Any]] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-parse-") as tmp:
        started = time.perf_counter()
        desk = classifying_desk(Path(tmp))
        setup_s = time.perf_counter() - started
        groups = samples(desk.config.smtp.hostname)
        registry, limits = desk.examination.parsers, desk.config.parsers

        def floor(raw: bytes) -> object:
            return email.message_from_bytes(raw)

        def parse(raw: bytes) -> object:
            return registry.parse(raw, limits)

        def parse_classify(raw: bytes) -> object:
            return desk.examination.examine(raw, desk.clock())

        fns = {"floor": floor, "parse": parse, "classify": parse_classify}
        mix: dict[str, list[float]] = {name: [] for name in fns}
        total_messages = 0
        for name, messages in groups.items():
            reports = sum(len(registry.parse(raw, limits).reports) for raw in messages)
            review = sum(1 for raw in messages
                         if (o := desk.examination.examine(raw, desk.clock())).result is not None
                         and o.result.disposition is Disposition.REPORT
                         and (o.reason or any(d.needs_review for d in o.decisions)))
            size = sum(len(m) for m in messages) / len(messages)
            figures = measure(messages, fns, repeats, batch_s)
            ref = median(figures["floor"]) * 1e6
            label = (f"{LABELS.get(name, name)} ({len(messages)} msgs, "
                     f"{reports / len(messages):.1f} reports/msg, {size / 1024:.1f} KiB)")
            rows.append(row(f"parse {label}", median(figures["parse"]) * 1e6, "µs/msg",
                            FLOOR, ref))
            rows.append(row(f"parse+classify {label}", median(figures["classify"]) * 1e6,
                            "µs/msg", FLOOR, ref))
            bound = target_ratio(name)
            if bound is not None:
                ratio = median(figures["classify"]) * 1e6 / ref
                targets.append(target(f"parse+classify {LABELS.get(name, name)}",
                                      f"<= {bound:g} x the floor", f"{ratio:.1f} x",
                                      ratio <= bound))
            if review:
                notes.append(f"{LABELS.get(name, name)}: {review} of {len(messages)} messages need "
                             "review after classifying (sanitised samples: addresses no "
                             "customer holds, trusted reporters whose DKIM cannot verify here)")
            for key in fns:  # the mix weighs each sample once
                mix[key].append(median(figures[key]) * len(messages))
            total_messages += len(messages)
        from bench.pipeline import mixed_reports

        e2e = [raw for _, raw in mixed_reports(200)]
        figures = measure(e2e, fns, repeats, batch_s)
        ref = median(figures["floor"]) * 1e6
        label = "the mix of bench/pipeline.py (200 msgs: ARF, X-ARF, ACNS, text, Shadowserver)"
        rows.append(row(f"parse {label}", median(figures["parse"]) * 1e6, "µs/msg", FLOOR, ref))
        e2e_classify = median(figures["classify"]) * 1e6
        rows.append(row(f"parse+classify {label}", e2e_classify, "µs/msg", FLOOR, ref))
        floor_mix = sum(mix["floor"]) / total_messages * 1e6
        parse_mix = sum(mix["parse"]) / total_messages * 1e6
        classify_mix = sum(mix["classify"]) / total_messages * 1e6
        rows.append(row(f"parse, all {total_messages} samples", parse_mix, "µs/msg", FLOOR,
                        floor_mix))
        rows.append(row(f"parse+classify, all {total_messages} samples", classify_mix,
                        "µs/msg", FLOOR, floor_mix))
        index = desk.examination.classifier.index().stats()
        notes.append(f"customer index: {index.get('customers', CUSTOMERS):,} customers, "
                     f"{index.get('resources', 0):,} resources (set up and loaded from SQLite "
                     f"in {setup_s:.1f} s, not timed)")
        notes.append(f"one core at these parse+classify costs: at most {1e6 / classify_mix:,.0f} "
                     f"corpus messages/s, {1e6 / e2e_classify:,.0f}/s of the pipeline mix, "
                     "before any database write")
        notes.append(f"median of {repeats} repeats of about {batch_s:g} s each; floor, parse "
                     "and parse+classify timed one after another within each repeat")
        desk.close()
    return {"name": "parse", "rows": rows, "targets": targets, "notes": notes}


def main(argv: list[str] | None = None) -> int:
    return standard_main(__doc__ or "", run, argv)


if __name__ == "__main__":
    sys.exit(main())

"""`abuse-desk import`: .eml, mbox and Maildir, stored and enqueued like mail from SMTP.

Each message goes through the same :class:`~ingest.store.GroupCommitWriter` as SMTP mail. Bytes
already stored (same sha256) are skipped, so an interrupted import can simply be run again.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import mailbox
import os
import re
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine, select
from tqdm import tqdm

from abuse_desk import metrics
from abuse_desk.models import Message
from ingest.store import Envelope, GroupCommitWriter
from parsers.headers import header_block

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 256
_ADDR = re.compile(rb"^(Return-Path|Delivered-To|X-Original-To):[ \t]*<?([^>\r\n]*)>?", re.I | re.M)


@dataclass
class Source:
    """One message to import: where it is and how to read it."""

    label: str
    read: Callable[[], bytes]


@dataclass
class ImportSummary:
    stored: int = 0
    duplicates: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)

    def text(self) -> str:
        line = (f"{self.stored} stored, {self.duplicates} already stored (same bytes), "
                f"{len(self.failed)} failed")
        return "\n".join([line, *(f"  failed: {where}: {why}" for where, why in self.failed)])


def is_maildir(path: Path) -> bool:
    return path.is_dir() and all((path / sub).is_dir() for sub in ("cur", "new"))


def is_mbox(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(5) == b"From "


def _maildir_sources(path: Path) -> Iterator[Source]:
    box = mailbox.Maildir(str(path), factory=None, create=False)
    for key in sorted(box.iterkeys()):
        yield Source(f"{path}:{key}", functools.partial(box.get_bytes, key))


def _mbox_sources(path: Path) -> Iterator[Source]:
    box = mailbox.mbox(str(path), factory=None, create=False)
    for n, key in enumerate(box.iterkeys(), 1):
        yield Source(f"{path}#{n}", functools.partial(box.get_bytes, key))


def collect(paths: list[Path]) -> tuple[list[Source], list[tuple[str, str]]]:
    """Every message under *paths*, and the paths that could not be read."""
    sources: list[Source] = []
    problems: list[tuple[str, str]] = []
    for path in paths:
        try:
            if is_maildir(path):
                sources.extend(_maildir_sources(path))
            elif path.is_dir():
                for root, dirs, files in os.walk(path):
                    dirs.sort()
                    here = Path(root)
                    if is_maildir(here):
                        sources.extend(_maildir_sources(here))
                        dirs.clear()
                        continue
                    inner, bad = collect([here / f for f in sorted(files)])
                    sources.extend(inner)
                    problems.extend(bad)
            elif is_mbox(path):
                sources.extend(_mbox_sources(path))
            else:
                sources.append(Source(str(path), path.read_bytes))
        except OSError as exc:
            problems.append((str(path), exc.strerror or str(exc)))
    return sources, problems


def envelope_for(raw: bytes, label: str, enqueued: bool) -> Envelope:
    """The envelope an imported message had, as far as its delivery headers tell."""
    found: dict[str, str] = {}
    for name, value in _ADDR.findall(header_block(raw)):
        found.setdefault(name.decode().lower(), value.decode("utf-8", "replace").strip())
    rcpt = found.get("delivered-to") or found.get("x-original-to")
    return Envelope(mail_from=found.get("return-path"), rcpt_tos=[rcpt] if rcpt else [],
                    origin="import", received_by=label[:1000], enqueued=enqueued)


def import_paths(engine: Engine, writer: GroupCommitWriter, paths: list[Path], *,
                 enqueued: bool, progress: bool = True) -> ImportSummary:
    summary = ImportSummary()
    sources, summary.failed = collect(paths)
    in_flight: list[tuple[str, Future[int]]] = []

    def settle(keep: int) -> None:
        while len(in_flight) > keep:
            label, fut = in_flight.pop(0)
            try:
                summary.ids.append(fut.result())
                summary.stored += 1
                metrics.IMPORTED.inc()
            except Exception as exc:
                summary.failed.append((label, f"not stored: {exc.__class__.__name__}: {exc}"))

    seen: set[str] = set()
    with tqdm(total=len(sources), unit="msg", desc="importing", disable=not progress) as bar:
        for source in sources:
            bar.update(1)
            try:
                raw = source.read()
            except (OSError, KeyError) as exc:
                summary.failed.append((source.label, f"unreadable: {exc}"))
                continue
            digest = hashlib.sha256(raw).hexdigest()
            if digest in seen:
                summary.duplicates += 1
                continue
            seen.add(digest)
            with engine.connect() as conn:
                if conn.execute(select(Message.id).where(Message.sha256 == digest)
                                .limit(1)).first():
                    summary.duplicates += 1
                    continue
            in_flight.append((source.label, writer.submit(raw, envelope_for(
                raw, source.label, enqueued))))
            settle(MAX_IN_FLIGHT)
        settle(0)
    return summary

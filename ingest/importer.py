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
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine, select
from tqdm import tqdm

from abuse_desk import metrics
from abuse_desk.clock import Clock
from abuse_desk.models import Message
from ingest.store import Envelope, GroupCommitWriter
from parsers.headers import header_block

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 256
MAX_IN_FLIGHT_BYTES = 64 * 1024 * 1024  # handed to the writer, not yet committed
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


def _why(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return f"{exc.__class__.__name__}: {exc}"


def _maildir_sources(path: Path) -> list[Source]:
    box = mailbox.Maildir(str(path), factory=None, create=False)
    return [Source(f"{path}:{key}", functools.partial(box.get_bytes, key))
            for key in sorted(box.iterkeys())]


class _MboxReader:
    """The messages of one mbox file, which is open only while they are being read.

    Keeping every mbox of a folder open from collecting to the end of the import would run out
    of file descriptors on a folder of a few thousand mbox files.
    """

    def __init__(self, path: Path, count: int) -> None:
        self._path = path
        self._left = count
        self._box: mailbox.mbox | None = None

    def get_bytes(self, key: str) -> bytes:
        try:
            if self._box is None:
                self._box = mailbox.mbox(str(self._path), factory=None, create=False)
            return self._box.get_bytes(key)
        finally:
            self._left -= 1
            if self._left <= 0:
                self.close()

    def close(self) -> None:
        if self._box is not None:
            box, self._box = self._box, None
            box.close()


def _mbox_sources(path: Path) -> list[Source]:
    box = mailbox.mbox(str(path), factory=None, create=False)
    try:
        keys = list(box.iterkeys())
    finally:
        box.close()
    reader = _MboxReader(path, len(keys))
    return [Source(f"{path}#{n}", functools.partial(reader.get_bytes, key))
            for n, key in enumerate(keys, 1)]


def _collect_one(path: Path, sources: list[Source], problems: list[tuple[str, str]]) -> None:
    try:
        if is_maildir(path):
            sources.extend(_maildir_sources(path))
        elif path.is_dir():
            _collect_folder(path, sources, problems)
        elif is_mbox(path):
            sources.extend(_mbox_sources(path))
        else:
            sources.append(Source(str(path), path.read_bytes))
    except (OSError, mailbox.Error) as exc:
        problems.append((str(path), _why(exc)))


def _collect_folder(path: Path, sources: list[Source], problems: list[tuple[str, str]]) -> None:
    def unreadable(exc: OSError) -> None:  # os.walk would otherwise skip the folder silently
        problems.append((str(exc.filename or path), _why(exc)))

    for root, dirs, files in os.walk(path, onerror=unreadable):
        dirs.sort()
        here = Path(root)
        if here != path and is_maildir(here):
            dirs.clear()  # its cur/, new/ and tmp/ are read as a Maildir, not as loose files
            _collect_one(here, sources, problems)
            continue
        for name in sorted(files):
            _collect_one(here / name, sources, problems)


def collect(paths: list[Path]) -> tuple[list[Source], list[tuple[str, str]]]:
    """Every message under *paths*, and the paths that could not be read."""
    sources: list[Source] = []
    problems: list[tuple[str, str]] = []
    for path in paths:
        _collect_one(path, sources, problems)
    return sources, problems


def envelope_for(raw: bytes, label: str, enqueued: bool, received_at: datetime) -> Envelope:
    """The envelope an imported message had, as far as its delivery headers tell."""
    found: dict[str, str] = {}
    for name, value in _ADDR.findall(header_block(raw)):
        found.setdefault(name.decode().lower(), value.decode("utf-8", "replace").strip())
    rcpt = found.get("delivered-to") or found.get("x-original-to")
    return Envelope(mail_from=found.get("return-path"), rcpt_tos=[rcpt] if rcpt else [],
                    origin="import", received_by=label[:1000], enqueued=enqueued,
                    received_at=received_at)


def import_paths(engine: Engine, writer: GroupCommitWriter, paths: list[Path], *,
                 enqueued: bool, clock: Clock, progress: bool = True) -> ImportSummary:
    """Store every message under *paths* through *writer*, dated by *clock*."""
    summary = ImportSummary()
    sources, summary.failed = collect(paths)
    in_flight: list[tuple[str, int, Future[int]]] = []
    in_flight_bytes = 0

    def settle(keep: int, keep_bytes: int) -> None:
        nonlocal in_flight_bytes
        while in_flight and (len(in_flight) > keep or in_flight_bytes > keep_bytes):
            label, size, fut = in_flight.pop(0)
            in_flight_bytes -= size
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
            except (OSError, KeyError, mailbox.Error) as exc:
                summary.failed.append((source.label, f"unreadable: {_why(exc)}"))
                continue
            if not raw.strip():
                summary.failed.append((source.label, "empty: not a message"))
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
            in_flight.append((source.label, len(raw), writer.submit(raw, envelope_for(
                raw, source.label, enqueued, clock()))))
            in_flight_bytes += len(raw)
            settle(MAX_IN_FLIGHT, MAX_IN_FLIGHT_BYTES)
        settle(0, 0)
    return summary

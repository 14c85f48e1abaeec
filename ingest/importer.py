"""`abuse-desk import`: .eml, mbox and Maildir, stored and enqueued like mail from SMTP.

Each message goes through the same :class:`~ingest.store.GroupCommitWriter` as SMTP mail. Bytes
already stored (same sha256) are skipped, so an interrupted import can simply be run again.

What is mail (:func:`not_mail`): every message in a Maildir's ``new/`` and ``cur/``; a file
that starts with ``From `` is an mbox; any other file (.eml, extension-less, whatever its name)
must start with an RFC 5322 header block: header fields (and their folded lines) up to the
first blank line, among them From, Sender, Date, Subject, Received, Message-ID or Return-Path.
Everything else is skipped and counted by reason, never stored: a README, notes, a PDF, an
Outlook .msg (a binary format, not RFC 5322 mail), a FIFO; and hidden folders (``.git``) that
are not Maildirs are not entered. An empty file is a failure, as before.
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

from ..core import metrics
from ..core.clock import Clock
from ..core.headers import header_block
from ..core.models import Message
from .store import Envelope, GroupCommitWriter

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 256
SNIFF_BYTES = 64 * 1024  # read of a loose file to decide whether it is mail
# A file is mail when its header block has one of these fields (lower case).
MAIL_FIELDS = frozenset({b"from", b"sender", b"date", b"subject", b"received", b"message-id",
                         b"return-path"})
_OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # Outlook .msg (and other Office files)
NOT_MAIL = "files that are not mail (no message header block at their start)"
OUTLOOK = "Outlook .msg or other Office files (not RFC 5322 mail: save them as .eml)"
NOT_REGULAR = "entries that are not regular files (FIFOs, sockets, devices)"
HIDDEN = "hidden folders that are not Maildirs"
SHOWN_SKIPPED = 5  # names listed per reason
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
    # why -> what was skipped for it (not mail: never read as a message)
    skipped: dict[str, list[str]] = field(default_factory=dict)

    def text(self) -> str:
        line = (f"{self.stored} stored, {self.duplicates} already stored (same bytes), "
                f"{len(self.failed)} failed")
        count = sum(len(paths) for paths in self.skipped.values())
        if count:
            line += f", {count} skipped"
        skipped = []
        for why, paths in self.skipped.items():
            shown = ", ".join(paths[:SHOWN_SKIPPED])
            more = f" and {len(paths) - SHOWN_SKIPPED} more" if len(paths) > SHOWN_SKIPPED else ""
            skipped.append(f"  skipped {len(paths)} {why}: {shown}{more}")
        return "\n".join([line, *skipped,
                          *(f"  failed: {where}: {why}" for where, why in self.failed)])


def is_maildir(path: Path) -> bool:
    return path.is_dir() and all((path / sub).is_dir() for sub in ("cur", "new"))


def is_mbox(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(5) == b"From "


def not_mail(head: bytes, whole: bool) -> str | None:
    """Why a file starting with *head* is not a message (a reason of the summary), or None when
    it is one: its first line is a header field, every line up to the first blank line is a
    field or a folded continuation, and one of them is in ``MAIL_FIELDS``. *whole*: *head* is
    the whole file (else its last, cut line is not judged)."""
    if head.startswith(_OLE2):
        return OUTLOOK
    end = head.find(b"\n\n")
    end_crlf = head.find(b"\r\n\r\n")
    if end_crlf != -1 and (end == -1 or end_crlf < end):
        end = end_crlf
    block = head if end == -1 else head[:end]
    lines = block.split(b"\n")
    if end == -1 and (not whole or not lines[-1].strip()):
        # Cut at SNIFF_BYTES, the last line may be a part of one; or the file ends with the
        # header block's last line end (a message without a body).
        lines = lines[:-1]
    known = False
    for n, line in enumerate(lines):
        line = line.removesuffix(b"\r")
        if line[:1] in (b" ", b"\t") and n > 0:
            continue  # a folded continuation
        name, colon, _value = line.partition(b":")
        name = name.rstrip(b" \t")  # obsolete syntax allows blanks before the colon
        if not colon or not name or not all(33 <= c <= 126 for c in name):
            return NOT_MAIL
        known = known or name.lower() in MAIL_FIELDS
    return None if known else NOT_MAIL


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


def _collect_one(path: Path, sources: list[Source], problems: list[tuple[str, str]],
                 skipped: dict[str, list[str]]) -> None:
    try:
        if is_maildir(path):
            sources.extend(_maildir_sources(path))
        elif path.is_dir():
            _collect_folder(path, sources, problems, skipped)
        elif not path.exists():
            path.stat()  # the OSError that says why (no such file, not a directory)
        elif not path.is_file():  # a FIFO would block the import forever
            skipped.setdefault(NOT_REGULAR, []).append(str(path))
        else:
            with path.open("rb") as fh:
                head = fh.read(SNIFF_BYTES + 1)
            if head.startswith(b"From "):
                sources.extend(_mbox_sources(path))
            elif not head.strip():
                sources.append(Source(str(path), path.read_bytes))  # empty: fails, as before
            elif why := not_mail(head[:SNIFF_BYTES], whole=len(head) <= SNIFF_BYTES):
                skipped.setdefault(why, []).append(str(path))
            else:
                sources.append(Source(str(path), path.read_bytes))
    except (OSError, mailbox.Error) as exc:
        problems.append((str(path), _why(exc)))


def _collect_folder(path: Path, sources: list[Source], problems: list[tuple[str, str]],
                    skipped: dict[str, list[str]]) -> None:
    def unreadable(exc: OSError) -> None:  # os.walk would otherwise skip the folder silently
        problems.append((str(exc.filename or path), _why(exc)))

    for root, dirs, files in os.walk(path, onerror=unreadable):
        dirs.sort()
        here = Path(root)
        if here != path and is_maildir(here):
            dirs.clear()  # its cur/, new/ and tmp/ are read as a Maildir, not as loose files
            _collect_one(here, sources, problems, skipped)
            continue
        for name in [d for d in dirs if d.startswith(".") and not is_maildir(here / d)]:
            dirs.remove(name)  # .git, .cache: not mail, and not worth a line per file
            skipped.setdefault(HIDDEN, []).append(str(here / name))
        for name in sorted(files):
            _collect_one(here / name, sources, problems, skipped)


def collect(paths: list[Path]) -> tuple[list[Source], list[tuple[str, str]],
                                        dict[str, list[str]]]:
    """Every message under *paths*, the paths that could not be read, and what was skipped as
    not mail (by reason)."""
    sources: list[Source] = []
    problems: list[tuple[str, str]] = []
    skipped: dict[str, list[str]] = {}
    for path in paths:
        _collect_one(path, sources, problems, skipped)
    return sources, problems, skipped


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
    sources, summary.failed, summary.skipped = collect(paths)
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

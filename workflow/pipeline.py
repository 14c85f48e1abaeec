"""What the ``process_message`` actor does with one stored message.

Idempotent: the work is computed outside any transaction, then written in one transaction that
starts by moving the message from ``received`` to its outcome. A second delivery of the same id
finds the message no longer ``received`` and does nothing; two concurrent deliveries are
serialized by that first UPDATE (a row lock on PostgreSQL, the write lock on SQLite) and only one
sees a row to change. A crash before the commit leaves the message ``received`` for the sweeper.

The parsers (``parsers/``) turn the message into a disposition and reports, stored in the same
transaction. Failures split in two: a failure on the *content* (a parser raising, input past a
limit, nothing understood) moves the message to ``review`` with its reason and traceback, for a
person; a failure of the *system* (database unreachable) raises, so dramatiq retries and the
sweeper re-sends after that.

Examining (parse, DKIM, classify: :func:`_examine`) runs in an examiner process
(``workflow/examiner.py``) within the message's time and memory budget; a message past its
budget goes to review with the reason, in its first attempt. Each delivery that examines the
message first records an attempt (``messages.attempts``, with ``attempted_at``, in a small
transaction of its own): a delivery that finds more than ``pipeline.max_attempts`` earlier
attempts that never came back (their examiner or worker died each time) puts the message in
review with "processing did not finish in N attempts" instead of examining it again. A
delivery that arrives while another attempt began less than ``attempt_lease_s`` ago (a
duplicate, not a retry) examines without counting, so duplicates never send a message to
review; an attempt that ends for a reason of ours (the database, an examiner that could not
start) is given back.

A report whose reporter claims to be a trusted one but whose DKIM could not be checked (the DNS
did not answer: ``classifier.trust.COULD_NOT_CHECK``) is not written: the message stays
``received`` with its ``enqueued_at`` moved so that the sweeper sends it again after a backoff
(``pipeline.dkim_retry_base_s`` doubling up to ``dkim_retry_max_s``), at most
``pipeline.dkim_retries`` times (each a ``dkim-retry`` event on the message; a retry is not an
attempt that died, so it is given back); then its reports go to review with "DKIM could not be
checked (DNS ...)". Every person whose complaint is written is acknowledged
(``workflow.acks.create_ack``), with its case's reference or, in review or not ours, the
message's.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from ..classifier.classify import Decision
from ..classifier.trust import COULD_NOT_CHECK
from ..core import metrics
from ..core.clock import Clock
from ..core.config import MAX_BATCH, Config, ParserLimits
from ..core.db import as_utc, write_transaction
from ..core.headers import first_address
from ..core.logs import log_context
from ..core.models import DuplicateKey, Event, Message, MessageState, Report
from ..core.policy import Evidence
from ..parsers.base import Disposition, ParseResult
from ..parsers.formats.guards import case_reference
from . import cases, replies
from .acks import automated_reason, create_ack
from .examine import Examination, Outcome
from .examiner import Examiner, ExaminerDied, ExaminerStopped, ExaminerUnavailable, InlineExaminer
from .timeline import Workflow

log = logging.getLogger(__name__)


def report_rows(message_id: int, result: ParseResult, decisions: list[Decision],
                now: datetime) -> list[dict[str, Any]]:
    """The rows of the ``reports`` table for *result* and the classifier's *decisions*; the
    message-level review reasons are repeated on each report so none is lost."""
    rows = []
    for seq, (report, decision) in enumerate(zip(result.reports, decisions, strict=True)):
        reasons = [*result.review_reasons, *decision.review_reasons]
        rows.append({
            "message_id": message_id, "seq": seq, "format": report.format,
            "type_hint": report.type_hint, "source_ip": report.source_ip,
            "source_port": report.source_port, "occurred_at": report.occurred_at,
            "occurred_raw": report.occurred_raw,
            "fields": {
                "urls": report.urls, "domains": report.domains,
                "reporter_address": report.reporter_address,
                "reporter_org": report.reporter_org, "evidence": report.evidence,
                "incidents": report.incidents, "inferred": report.inferred,
                "warnings": report.warnings, "extra": _jsonable(report.extra),
            },
            "review_reason": "; ".join(dict.fromkeys(reasons)) or None,
            "created_at": now,
            "category": decision.category, "type": decision.type,
            "confidence": decision.confidence, "customer_id": decision.customer_id,
            "decision": _jsonable(decision.evidence), "fingerprint": decision.fingerprint,
            "trusted": decision.trusted,
        })
    return rows


class Duplicates:
    """The repeats of earlier reports (same fingerprint, same reporter Message-ID, same ACNS
    case) among the reports a write records: the keys they may repeat are read once, for the
    whole write (one message, or a batch), and the keys of the reports that are not repeats are
    recorded in one statement at its end (:meth:`flush`). Reports of the same write are seen by
    those after them, as if each had been written alone."""

    def __init__(self, decisions: Iterable[Decision], now: datetime,
                 window: timedelta) -> None:
        self._now = now
        self._window = window
        self._keys: list[str] | None = list(dict.fromkeys(
            k for d in decisions for k in d.duplicate_keys))
        self._first: dict[str, tuple[datetime, int]] = {}  # key -> (created_at, report)
        self._pending: list[dict[str, Any]] = []

    def _read(self, conn: Any) -> None:
        """The earlier reports' keys, read at the first merge: after the write's first UPDATE,
        so that on SQLite the transaction holds the write lock before it reads (a reader that
        then writes may find the database locked)."""
        keys, self._keys = self._keys, None
        if not keys:
            return
        for key, report_id, created_at in conn.execute(
                select(DuplicateKey.key, DuplicateKey.report_id, DuplicateKey.created_at)
                .where(DuplicateKey.key.in_(keys),
                       DuplicateKey.created_at >= self._now - self._window)):
            at = as_utc(created_at) or self._now
            if key not in self._first or (at, report_id) < self._first[key]:
                self._first[key] = (at, int(report_id))

    def merge(self, conn: Any, report_ids: list[int],
              decisions: list[Decision]) -> dict[int, int]:
        """Point each report of *report_ids* that repeats an earlier one at the first, and
        count it there; note the keys of the others. Returns {duplicate: the first report}."""
        if self._keys is not None:
            self._read(conn)
        merged: dict[int, int] = {}
        for report_id, decision in zip(report_ids, decisions, strict=True):
            if not decision.duplicate_keys:
                continue
            hits = [self._first[k] for k in decision.duplicate_keys
                    if k in self._first and self._first[k][1] != report_id]
            if hits:
                first = min(hits)[1]
                conn.execute(update(Report).where(Report.id == report_id).values(
                    duplicate_of=first, review_reason=None))
                conn.execute(update(Report).where(Report.id == first).values(
                    duplicates=Report.duplicates + 1))
                merged[report_id] = first
                continue
            for key in dict.fromkeys(k[:255] for k in decision.duplicate_keys):
                self._pending.append({"key": key, "report_id": report_id,
                                      "created_at": self._now})
                self._first.setdefault(key, (self._now, report_id))
        return merged

    def flush(self, conn: Any) -> None:
        """Record the keys of the reports that were not repeats (one INSERT ... ON CONFLICT)."""
        if self._pending:
            conn.execute(_key_upsert(conn.dialect.name), self._pending)
            self._pending = []


@functools.lru_cache(maxsize=4)
def _key_upsert(dialect_name: str) -> Any:
    """INSERT ... ON CONFLICT (key) DO UPDATE of one duplicate key, built once (building the
    statement anew for every key cost more than running it); executed with one parameter set
    per key."""
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    stmt = dialect.insert(DuplicateKey.__table__)
    return stmt.on_conflict_do_update(
        index_elements=["key"],
        set_={"report_id": stmt.excluded.report_id, "created_at": stmt.excluded.created_at})


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


# ---- the sender, and mail about our own mails (workflow/replies.py) ---------------------------

def _with_sender(rows: list[dict[str, Any]], auth: dict[str, Any] | None,
                 hint: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Report rows with the sender's authentication (and a case tag's hint) in their
    ``decision``: what a rule reading one report (escalation) needs to know of its sender."""
    for row in rows:
        if auth is not None:
            row["decision"]["sender_authentication"] = auth
            if auth.get("authenticated") and not row["decision"].get("authenticated"):
                # One notion of "authenticated" for the escalation rule (workflow.cases): the
                # classifier's (a trusted reporter, aligned DKIM) or the sender's (our MTA's
                # Authentication-Results, aligned DKIM or SPF).
                row["decision"]["authenticated"] = True
                row["decision"]["authentication"] = Evidence(
                    f"auth:{auth.get('how') or 'sender'}", 1.0,
                    f"{auth.get('how')} for {auth.get('domain')} "
                    f"({auth.get('source') or 'checked by the desk'})").to_json()
        if hint is not None:
            row["decision"]["case_reference_hint"] = hint
    return rows


def batch_time_limit_s(limits: ParserLimits) -> float:
    """The time a batch of :data:`MAX_BATCH` messages may take, each using its whole budget
    (the actor's time limit: a safety net, never the way a batch ends)."""
    return MAX_BATCH * (limits.time_budget_s + 10.0) + 60.0


def attempt_lease_s(limits: ParserLimits) -> float:
    """How long an attempt may still be running: a delivery within this of the last attempt's
    start is taken for a duplicate of it, one after it for a retry after a crash."""
    return 2 * limits.time_budget_s + 10.0


@dataclass
class _Claim:
    raw: bytes
    received_at: datetime
    attempts: int
    counted: bool  # False: another attempt holds the lease; this one examines uncounted
    at: datetime
    # the envelope as our listener saw it
    mail_from: str | None = None
    rcpt_tos: list[str] = field(default_factory=list)
    peer_ip: str | None = None
    helo: str | None = None

    @property
    def sender(self) -> dict[str, Any]:
        return {"mail_from": self.mail_from, "peer_ip": self.peer_ip, "helo": self.helo}


_ENVELOPE = (Message.mail_from, Message.rcpt_tos, Message.peer_ip, Message.helo)


def _envelope(row: Any) -> tuple[Any, ...]:
    return row.mail_from, list(row.rcpt_tos or []), row.peer_ip, row.helo


# ---- a reporter's DKIM that could not be checked: examined again later ----------------------

DKIM_RETRY = "dkim-retry"  # the event of each retry (on the message): they are counted


def unchecked_trust(outcome: Outcome) -> str | None:
    """The review reason of a message held only for want of a DNS answer: a claimed trusted
    reporter whose DKIM could not be checked (``classifier.trust.COULD_NOT_CHECK``), or None."""
    if outcome.state is not MessageState.PROCESSED:
        return None
    for decision in outcome.decisions:
        for fact in decision.evidence.get("trust") or []:
            if isinstance(fact, Mapping) and fact.get("name") == COULD_NOT_CHECK:
                return next((r for r in decision.review_reasons
                             if "could not be checked" in r), "DKIM could not be checked")
    return None


def dkim_retry_delay(retry: int, base_s: float, max_s: float) -> float:
    """Seconds before the *retry*-th retry (1, 2, ...): *base_s* doubling, up to *max_s*."""
    return float(min(base_s * 2.0 ** min(max(retry - 1, 0), 30), max_s))


def _a_complaint(outcome: Outcome) -> bool:
    """Whether a message in review is a complaint (the parsers took it for one): its sender
    is acknowledged like any other reporter's."""
    return outcome.values.get("disposition") == Disposition.REPORT.value


@dataclass(frozen=True)
class Due:
    """What a step of processing made due at once: *cases* with a step or notice to run now
    (``Workflow.kick``), and acknowledgements without a case (*notices*) to deliver."""

    cases: frozenset[int] = frozenset()
    notices: tuple[int, ...] = ()

    def __or__(self, other: Due) -> Due:
        return Due(self.cases | other.cases, self.notices + other.notices)


@dataclass
class _Written:
    """What the write of one message carries from step to step: the case reference its sender
    quoted (*hint*) and the ``detail`` of the message's event, which each step adds to."""

    hint: dict[str, Any] | None
    detail: dict[str, Any]
    # Why the sender is a machine (no acknowledgement is due), read from the message in hand.
    automated: str | None = None


class Pipeline:
    """What the ``process_message`` actor does with one stored message (:meth:`process`).
    *examiner*: where messages are examined (a worker's examiner processes); None: inline,
    in the calling thread, with *examination*. Work the message made due goes to the broker
    through *workflow* (``workflow.send``)."""

    def __init__(self, config: Config, engine: Engine, clock: Clock,
                 examination: Examination, workflow: Workflow,
                 examiner: Examiner | None = None) -> None:
        self.config = config
        self.engine = engine
        self.clock = clock
        self.examination = examination
        self.workflow = workflow
        self.examiner = examiner

    def _check_sender(self, claim: _Claim, outcome: Outcome) -> dict[str, Any] | None:
        """Outside any transaction, in the worker: with the sender's authentication the
        examination found, a message sent to a notice's reply address is the customer's reply; a
        case tag in its Subject, proven by an authenticated customer address, makes it the
        customer's reply too; otherwise it stays what the parsers made of it, and the tag is
        returned as a hint for specialists."""
        result = outcome.result
        if result is None or result.disposition not in (Disposition.REPORT, Disposition.REPLY):
            return None
        auth = outcome.values.get("sender_authentication")
        tokens = replies.envelope_reply_tokens(claim.rcpt_tos)
        if tokens and result.disposition is Disposition.REPORT:  # sent to a notice's Reply-To
            with self.engine.connect() as conn:
                known = replies.known_reply_token(conn, tokens)
            if known:
                outcome.state, outcome.reason, outcome.decisions = MessageState.PROCESSED, None, []
                outcome.result = ParseResult(
                    disposition=Disposition.REPLY, format="reply", parser="reply",
                    extra={"case_reference": case_reference(outcome.values.get("header_subject")),
                           "reply_tokens": tokens})
                outcome.values.update(disposition=Disposition.REPLY.value, format="reply")
                return None
        subject = outcome.values.get("header_subject")
        if case_reference(subject) is None:
            return None
        with self.engine.connect() as conn:
            tag = replies.case_tag(conn, subject, auth, self.clock())
        if tag is None:
            return None
        if result.disposition is Disposition.REPLY:  # the fallback when no mail of ours matches
            if tag.case_id is not None:
                result.extra["contact_case"] = tag.case_id
            return None
        if tag.case_id is None and tag.exists:
            if outcome.state is MessageState.REVIEW and outcome.reason:
                outcome.reason += (f"\n(the Subject names case {tag.reference}; not threaded: "
                                   f"{tag.why_not})")
            return tag.hint()
        # The customer, writing with the case tag: its answer, not a complaint against itself. A
        # tag naming no case at all: a reply that matches nothing, for a person (attach_reply).
        outcome.state, outcome.reason, outcome.decisions = MessageState.PROCESSED, None, []
        outcome.result = ParseResult(disposition=Disposition.REPLY, format="reply", parser="reply",
                                     extra={"case_reference": tag.reference,
                                            "contact_case": tag.case_id})
        outcome.values.update(disposition=Disposition.REPLY.value, format="reply")
        return None

    def _claim_attempt(self, message_id: int, now: datetime) -> _Claim | str:
        """Record an attempt on a ``received`` message; or why there is nothing to do."""
        return self._claim_attempts([message_id], now)[message_id]

    def _claim_attempts(self, message_ids: Sequence[int],
                        now: datetime) -> dict[int, _Claim | str]:
        """Record an attempt on each ``received`` message of *message_ids*, in one transaction
        (one statement, and one more for those another attempt holds); per id its claim, or
        why there is nothing to do."""
        cutoff = now - timedelta(seconds=attempt_lease_s(self.config.parsers))
        claims: dict[int, _Claim | str] = {}
        with self.engine.begin() as conn:
            for row in conn.execute(
                    update(Message)
                    .where(Message.id.in_(list(message_ids)),
                           Message.state == MessageState.RECEIVED,
                           or_(Message.attempted_at.is_(None), Message.attempted_at <= cutoff))
                    .values(attempts=Message.attempts + 1, attempted_at=now)
                    .returning(Message.id, Message.raw, Message.received_at, Message.attempts,
                               *_ENVELOPE)):
                claims[row.id] = _Claim(row.raw, as_utc(row.received_at) or now, row.attempts,
                                        True, now, *_envelope(row))
            rest = [i for i in message_ids if i not in claims]
            if rest:
                for held in conn.execute(
                        select(Message.id, Message.state, Message.raw, Message.received_at,
                               Message.attempts, *_ENVELOPE).where(Message.id.in_(rest))):
                    if held.state != MessageState.RECEIVED:
                        claims[held.id] = f"already {held.state}: nothing to do"
                    else:
                        claims[held.id] = _Claim(held.raw, as_utc(held.received_at) or now,
                                                 held.attempts, False, now, *_envelope(held))
        for message_id in message_ids:
            claims.setdefault(message_id, "no such message: nothing to process")
        return claims

    def _end_attempt(self, message_id: int, claim: _Claim, *, give_back: bool) -> None:
        """An attempt that ended without an outcome: let the next delivery count as a new attempt
        at once, and, when the failure was ours (*give_back*), not against the message. Best
        effort: the database may be what failed."""
        if not claim.counted:
            return
        values: dict[str, Any] = {"attempted_at": None}
        if give_back:
            values["attempts"] = Message.attempts - 1
        try:
            with self.engine.begin() as conn:
                conn.execute(update(Message).where(
                    Message.id == message_id, Message.state == MessageState.RECEIVED,
                    Message.attempted_at == claim.at).values(**values))
        except SQLAlchemyError as exc:
            log.warning("could not end the attempt: %s: %s", exc.__class__.__name__, exc)

    def _examine_claimed(self, message_id: int,
                         claimed: _Claim | str | None = None) -> tuple[_Claim, Outcome] | str:
        """Take an examiner, record the attempt (unless *claimed* is the attempt already
        recorded), examine (or give up on a message whose earlier attempts never came back);
        or why there is nothing to do."""
        examiner = self.examiner or InlineExaminer(self.examination)
        max_attempts = self.config.pipeline.max_attempts
        with examiner.reserve() as slot:
            now = self.clock()
            claim = self._claim_attempt(message_id, now) if claimed is None else claimed
            if isinstance(claim, str):
                return claim
            if claim.counted and claim.attempts > max_attempts:
                log.warning("%d attempts did not finish: to review", claim.attempts - 1)
                return claim, Outcome(MessageState.REVIEW, {}, (
                    f"processing did not finish in {claim.attempts - 1} attempts: the examiner or "
                    "its worker died each time (pipeline.max_attempts)"))
            try:
                return claim, slot.examine(claim.raw, claim.received_at, now, message_id,
                                           claim.sender)
            except ExaminerStopped:
                self._end_attempt(message_id, claim, give_back=False)  # it counts: see stop
                raise
            except ExaminerUnavailable:
                self._end_attempt(message_id, claim, give_back=True)
                raise
            except ExaminerDied as exc:
                log.warning("attempt %d did not finish: %s", claim.attempts, exc)
                self._end_attempt(message_id, claim, give_back=False)
                raise
            except BaseException:  # the actor's time limit, a bug: the attempt is not the message's
                self._end_attempt(message_id, claim, give_back=True)
                raise

    def _retry_unchecked_trust(self, message_id: int, claim: _Claim,
                               outcome: Outcome) -> str | None:
        """A message whose reporter's DKIM could not be checked is left ``received`` and examined
        again later (the sweeper sends it when its ``enqueued_at`` comes: now + the backoff), at
        most ``pipeline.dkim_retries`` times; the retry is not an attempt that died, so it is given
        back. Returns the outcome word ("retry", "skipped"), or None to write the outcome now
        (nothing to retry, or the retries are spent: review with the reason)."""
        reason = unchecked_trust(outcome)
        if reason is None:
            return None
        cfg = self.config.pipeline
        with self.engine.connect() as conn:
            done = int(conn.execute(select(func.count()).select_from(Event).where(
                Event.subject_type == "message", Event.subject_id == message_id,
                Event.action == DKIM_RETRY)).scalar_one())
        if done >= cfg.dkim_retries:
            for decision in outcome.decisions:
                decision.review_reasons = [
                    f"{r} (tried {done + 1} times)" if r == reason and done else r
                    for r in decision.review_reasons]
            return None
        if not claim.counted:
            return "skipped"  # a duplicate of the attempt that holds the lease: that one retries
        now = self.clock()
        delay = dkim_retry_delay(done + 1, cfg.dkim_retry_base_s, cfg.dkim_retry_max_s)
        with self.engine.begin() as conn:
            moved = conn.execute(update(Message).where(
                Message.id == message_id, Message.state == MessageState.RECEIVED,
                Message.attempted_at == claim.at).values(
                attempted_at=None, attempts=Message.attempts - 1,
                enqueued_at=now + timedelta(seconds=delay - cfg.sweep_after_s))).rowcount
            if moved != 1:
                return "skipped"
            conn.execute(insert(Event).values(
                at=now, actor_kind="system", actor="pipeline", subject_type="message",
                subject_id=message_id, action=DKIM_RETRY,
                detail={"retry": done + 1, "of": cfg.dkim_retries, "delay_s": delay,
                        "reason": reason[:500]}))
        log.info("reporter's DKIM could not be checked: retry %d of %d in %.0f s", done + 1,
                 cfg.dkim_retries, delay)
        metrics.PROCESSED.labels("retry").inc()
        return "retry"

    def process(self, message_id: int) -> str:
        """Process one message; returns the outcome ("processed", "review", "skipped", "retry").

        The steps, each named below: *load* and *examine* (:meth:`_examine_claimed`: the
        attempt recorded, the message examined outside any transaction), then in one
        transaction *record* (the message's outcome and its reports), *attach* (the reports to
        their cases), *acknowledge* (the person who complained), or *thread* a reply or bounce
        into its case; after the commit, *schedule* what those steps made due at once."""
        with log_context(message_id=message_id):
            examined = self._examine_claimed(message_id)
            if isinstance(examined, str):
                log.info("%s", examined)
                return "skipped"
            claim, outcome = examined
            try:
                retried = self._retry_unchecked_trust(message_id, claim, outcome)
                if retried is not None:
                    return retried
                return self._write(message_id, claim, outcome)
            except BaseException:
                self._end_attempt(message_id, claim, give_back=True)  # ours, not the message's
                raise

    def process_many(self, message_ids: Sequence[int]) -> list[str]:
        """Process several stored messages (a group commit's); returns their outcomes in order.

        Their attempts are recorded in one transaction, each is examined as :meth:`process`
        does, then their outcomes are written in ONE transaction (one commit and its fsync per
        batch, not per message). When that transaction fails, each message is written again
        alone, so one message that cannot be written never takes the others with it: the
        others are written, and the error of the first that failed is raised after them, so the
        broker retries the batch, in which every message already written is skipped (it is no
        longer ``received``): only that message is tried again. Redelivery stays idempotent
        for the same reason.

        The write is set-wise: the messages still ``received`` are locked in one SELECT ... FOR
        UPDATE (in id order; on SQLite the transaction holds the write lock from its start) and
        moved to their outcomes in one executemany, and all the batch's reports are one INSERT
        (on PostgreSQL; SQLite's driver returns the ids of a multi-row INSERT row by row).

        At most :data:`MAX_BATCH` messages are claimed and written together; a longer list is
        taken in batches of that many, one after the other."""
        outcomes: dict[int, str] = {}
        unique = list(dict.fromkeys(message_ids))  # the same id twice: once
        for start in range(0, len(unique), MAX_BATCH):
            outcomes.update(self._process_batch(unique[start:start + MAX_BATCH]))
        return [outcomes[message_id] for message_id in message_ids]

    def _process_batch(self, unique: list[int]) -> dict[int, str]:
        outcomes: dict[int, str] = {}
        examined: list[tuple[int, _Claim, Outcome]] = []
        claims = self._claim_attempts(unique, self.clock())
        try:
            for n, message_id in enumerate(unique):
                self._keep_claims(claims, unique[n:])
                with log_context(message_id=message_id):
                    found = self._examine_claimed(message_id, claims[message_id])
                    if isinstance(found, str):
                        log.info("%s", found)
                        outcomes[message_id] = "skipped"
                        continue
                    claim, outcome = found
                    examined.append((message_id, claim, outcome))
                    retried = self._retry_unchecked_trust(message_id, claim, outcome)
                    if retried is not None:
                        examined.pop()
                        outcomes[message_id] = retried
            outcomes.update(self._write_many(examined))
        except BaseException:
            for message_id, held in claims.items():  # ours, not the messages'
                if isinstance(held, _Claim) and message_id not in outcomes:
                    self._end_attempt(message_id, held, give_back=True)
            raise
        return outcomes

    def _keep_claims(self, claims: dict[int, _Claim | str], waiting: list[int]) -> None:
        """Renew the attempts of the messages of a batch still *waiting* to be examined once
        a quarter of the attempt's lease has gone (slow messages before them), so that a
        delivery of one of them meanwhile still sees an attempt running, not one that died.
        One that another attempt took over meanwhile goes on uncounted, as a duplicate."""
        held = [(i, c) for i in waiting if isinstance(c := claims[i], _Claim) and c.counted]
        if not held:
            return
        now = self.clock()
        since = min(claim.at for _, claim in held)
        if (now - since).total_seconds() < attempt_lease_s(self.config.parsers) / 4:
            return
        renewed: set[int] = set()
        with self.engine.begin() as conn:
            for at in {claim.at for _, claim in held}:
                renewed.update(conn.execute(
                    update(Message).where(
                        Message.id.in_([i for i, c in held if c.at == at]),
                        Message.state == MessageState.RECEIVED, Message.attempted_at == at)
                    .values(attempted_at=now).returning(Message.id)).scalars())
        for message_id, claim in held:
            if message_id in renewed:
                claim.at = now
            else:
                claim.counted = False

    def _write_many(self, examined: list[tuple[int, _Claim, Outcome]]) -> dict[int, str]:
        """Write the outcomes of *examined* in one transaction (see :meth:`process_many`)."""
        if len(examined) == 1:
            message_id, claim, outcome = examined[0]
            with log_context(message_id=message_id):
                return {message_id: self._write(message_id, claim, outcome)}
        prepared = []
        for message_id, claim, outcome in examined:
            with log_context(message_id=message_id):
                prepared.append((message_id, claim, outcome, self._prepare(claim, outcome)))
        now = self.clock()
        written: list[tuple[int, Outcome, MessageState | None, Due]] = []
        try:
            with write_transaction(self.engine) as conn:
                locked = self._lock_customers(conn, [o for _, _, o, _ in prepared])
                recorded = self._record_many(conn, [(i, o) for i, _, o, _ in prepared], now)
                reports = self._insert_reports(conn, [
                    (message_id, outcome, notes) for message_id, _, outcome, notes in prepared
                    if message_id in recorded], now)
                repeats = self._duplicates([outcome for _, _, outcome, _ in prepared], now)
                for message_id, claim, outcome, notes in prepared:
                    with log_context(message_id=message_id):
                        state, due = self._write_in(
                            conn, message_id, claim, outcome, notes, now, repeats, locked,
                            recorded=message_id in recorded, rows=reports.get(message_id, []))
                    written.append((message_id, outcome, state, due))
                repeats.flush(conn)
                self._record_events(conn, [
                    (message_id, state, notes) for (message_id, _, _, notes), (_, _, state, _)
                    in zip(prepared, written, strict=True)], now)
        except Exception as exc:  # the database, or one message's write: each alone
            log.warning("writing %d messages together failed (%s: %s): each alone",
                        len(examined), exc.__class__.__name__, exc)
            return self._write_each(examined)
        # What the batch made due goes to the broker at once: one claim of the due steps and
        # notices of all its cases, not one per message.
        self._schedule(functools.reduce(Due.__or__, (due for *_, due in written), Due()))
        outcomes: dict[int, str] = {}
        for message_id, outcome, state, _ in written:
            with log_context(message_id=message_id):
                outcomes[message_id] = self._finish(outcome, state)
        return outcomes

    def _write_each(self, examined: list[tuple[int, _Claim, Outcome]]) -> dict[int, str]:
        """Each outcome in its own transaction; the first error is raised after the others are
        written (the message it belongs to has its attempt given back)."""
        outcomes: dict[int, str] = {}
        first: BaseException | None = None
        for message_id, claim, outcome in examined:
            with log_context(message_id=message_id):
                try:
                    outcomes[message_id] = self._write(message_id, claim, outcome)
                except Exception as exc:
                    log.warning("could not write: %s: %s", exc.__class__.__name__, exc)
                    self._end_attempt(message_id, claim, give_back=True)
                    outcomes[message_id] = "failed"
                    first = first or exc
        if first is not None:
            raise first
        return outcomes

    def _write(self, message_id: int, claim: _Claim, outcome: Outcome) -> str:
        """Write *outcome*, with the message's reports, cases and events, in one transaction;
        then schedule what became due."""
        notes = self._prepare(claim, outcome)
        now = self.clock()
        with self.engine.begin() as conn:
            locked = self._lock_customers(conn, [outcome])
            recorded = self._record(conn, message_id, outcome, now)
            reports = self._insert_reports(conn, [(message_id, outcome, notes)] if recorded
                                           else [], now)
            repeats = self._duplicates([outcome], now)
            state, due = self._write_in(conn, message_id, claim, outcome, notes, now, repeats,
                                        locked, recorded=recorded,
                                        rows=reports.get(message_id, []))
            repeats.flush(conn)
            self._record_events(conn, [(message_id, state, notes)], now)
        self._schedule(due)
        return self._finish(outcome, state)

    def _lock_customers(self, conn: Connection, outcomes: list[Outcome]) -> frozenset[int]:
        """Lock the customers the reports of *outcomes* are about, first in the write and in
        one order (``cases.lock_customers``). First: two copies of one report (a sender that
        retried after a lost 250) in two writes at once are then serialized before either looks
        for the other's duplicate keys, so the second sees the first's and is its duplicate,
        not a second claim; and every write takes customers before messages, so none waits on
        another in a circle."""
        return cases.lock_customers(conn, (
            d.customer_id for outcome in outcomes if outcome.state is MessageState.PROCESSED
            for d in outcome.decisions if d.customer_id is not None))

    def _duplicates(self, outcomes: list[Outcome], now: datetime) -> Duplicates:
        """The duplicate keys the reports of *outcomes* may repeat (see :class:`Duplicates`)."""
        return Duplicates([d for o in outcomes if o.result is not None and o.result.reports
                           for d in o.decisions], now,
                          timedelta(days=self.config.classifier.duplicate_window_days))

    def _record_events(self, conn: Connection,
                       written: list[tuple[int, MessageState | None, _Written]],
                       now: datetime) -> None:
        """*record*: each written message's event (its outcome and how it came about), in one
        INSERT."""
        rows = [{"at": now, "actor_kind": "system", "actor": "pipeline",
                 "subject_type": "message", "subject_id": message_id, "action": state.value,
                 "detail": notes.detail} for message_id, state, notes in written if state]
        if rows:
            conn.execute(insert(Event), rows)

    def _write_in(self, conn: Connection, message_id: int, claim: _Claim, outcome: Outcome,
                  written: _Written, now: datetime, repeats: Duplicates,
                  locked: frozenset[int], *, recorded: bool,
                  rows: list[dict[str, Any]]) -> tuple[MessageState | None, Due]:
        """The writing steps of one message in *conn*'s transaction after it was *recorded*
        (moved to its outcome: False when another delivery wrote it first) with its report
        *rows* (inserted; its event is the caller's too: :meth:`_record_events`): its state
        (None when another delivery wrote it) and what became due."""
        if not recorded:
            return None, Due()
        state, result = outcome.state, outcome.result
        due = Due()
        if state is MessageState.PROCESSED and result is not None and result.reports:
            reports = self._merge_repeats(conn, rows, outcome, written, repeats)
            attached = self._attach(conn, reports, now, written, locked)
            due |= Due(attached.due)
            due |= self._acknowledge(conn, message_id, attached.first_case, now, written)
        elif state is MessageState.REVIEW and _a_complaint(outcome):
            due |= self._acknowledge(conn, message_id, None, now, written)
        elif state is MessageState.PROCESSED and result is not None and (
                result.disposition is Disposition.REPLY or result.format == "bounce"):
            state = self._thread(conn, message_id, claim, outcome, now, written)
        return state, due

    def _finish(self, outcome: Outcome, state: MessageState | None) -> str:
        """After the commit (and *schedule*): count and log the outcome."""
        if state is None:
            log.info("processed by another delivery meanwhile")
            return "skipped"
        result = outcome.result
        metrics.PROCESSED.labels(state.value).inc()
        log.info("%s", state.value, extra={"fields": {
            "subject": outcome.values.get("header_subject"),
            "format": outcome.values.get("format"),
            "reports": len(result.reports) if result else 0}})
        return state.value

    def _prepare(self, claim: _Claim, outcome: Outcome) -> _Written:
        """What the write needs that is read outside its transaction: the case reference the
        sender quoted, the event's detail and, for a complaint a person must read, the sender's
        authentication (whether it can be acknowledged; the DKIM and SPF checks may ask the
        DNS)."""
        hint = self._check_sender(claim, outcome)
        result = outcome.result
        if outcome.reason:
            detail: dict[str, Any] = {"reason": outcome.reason}
        elif result is not None:
            detail = {"disposition": result.disposition.value, "format": result.format,
                      "parser": result.parser, "reports": len(result.reports),
                      **({"reply": _jsonable(result.extra)} if result.extra else {})}
        else:
            detail = {}
        if hint is not None:
            detail["case_reference_hint"] = hint
        authenticator = self.examination.authenticator
        if outcome.state is MessageState.REVIEW and _a_complaint(outcome) \
                and "sender_authentication" not in outcome.values and authenticator is not None:
            outcome.values["sender_authentication"] = authenticator.check(
                claim.raw, **claim.sender).to_json()
        automated = automated_reason(claim.raw, claim.mail_from, outcome.values.get("format")) \
            if _a_complaint(outcome) else None  # (only a complaint is acknowledged)
        return _Written(hint, detail, automated)

    def _record(self, conn: Connection, message_id: int, outcome: Outcome,
                now: datetime) -> bool:
        """*record*: move the message from ``received`` to its outcome; False when another
        delivery did first (this one then does nothing)."""
        claimed = conn.execute(
            update(Message)
            .where(Message.id == message_id, Message.state == MessageState.RECEIVED)
            .values(state=outcome.state.value, processed_at=now, error=outcome.reason,
                    **outcome.values))
        return bool(claimed.rowcount == 1)

    def _record_many(self, conn: Connection, outcomes: list[tuple[int, Outcome]],
                     now: datetime) -> set[int]:
        """*record* for a batch: the messages still ``received`` are locked (in id order), then
        each moves to its outcome, all in one executemany per set of columns; returns the ids
        it moved (another delivery wrote the others first)."""
        if len(outcomes) == 1:
            message_id, outcome = outcomes[0]
            return {message_id} if self._record(conn, message_id, outcome, now) else set()
        still = set(conn.execute(
            select(Message.id).where(Message.id.in_([i for i, _ in outcomes]),
                                     Message.state == MessageState.RECEIVED)
            .order_by(Message.id).with_for_update()).scalars())
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for message_id, outcome in outcomes:
            if message_id in still:
                values = {"state": outcome.state.value, "processed_at": now,
                          "error": outcome.reason, **outcome.values}
                groups.setdefault(tuple(values), []).append({"b_id": message_id, **values})
        for params in groups.values():
            conn.execute(update(Message).where(Message.id == bindparam("b_id"),
                                               Message.state == MessageState.RECEIVED),
                         params)
        return still

    def _insert_reports(self, conn: Connection, messages: list[tuple[int, Outcome, _Written]],
                        now: datetime) -> dict[int, list[dict[str, Any]]]:
        """*record*: the reports of *messages* (those processed with reports), in ONE INSERT;
        returns each message's rows in order, with their ids (the rows are not read back)."""
        by_message: dict[int, list[dict[str, Any]]] = {}
        for message_id, outcome, written in messages:
            result = outcome.result
            if outcome.state is MessageState.PROCESSED and result is not None and result.reports:
                by_message[message_id] = _with_sender(
                    report_rows(message_id, result, outcome.decisions, now),
                    outcome.values.get("sender_authentication"), written.hint)
        rows = [row for message_rows in by_message.values() for row in message_rows]
        if rows:
            ids = conn.execute(insert(Report).returning(Report.id, sort_by_parameter_order=True),
                               rows).scalars()
            for row, report_id in zip(rows, ids, strict=True):
                row["id"] = report_id
        return by_message

    def _merge_repeats(self, conn: Connection, rows: list[dict[str, Any]], outcome: Outcome,
                       written: _Written, repeats: Duplicates) -> list[SimpleNamespace]:
        """*record*: the repeats of earlier reports among one message's inserted *rows* merged
        (see :class:`Duplicates`); returns its reports in order, as written."""
        ids = [row["id"] for row in rows]
        duplicates = repeats.merge(conn, ids, outcome.decisions)
        written.detail["duplicates"] = len(duplicates)
        reports = []
        for row in rows:
            first = duplicates.get(row["id"])
            reports.append(SimpleNamespace(**{
                **row, "case_id": None, "duplicate_of": first,
                **({"review_reason": None} if first is not None else {})}))
        return reports

    def _attach(self, conn: Connection, reports: list[SimpleNamespace], now: datetime,
                written: _Written, locked: frozenset[int]) -> cases.Attached:
        """*attach*: each report that can be a claim joins (or opens) its customer's case."""
        attached = cases.attach_reports(conn, self.config.workflow, self.workflow.calendar,
                                        reports, now, locked=locked)
        if attached.joined:
            written.detail["cases"] = sorted(set(attached.joined.values()))
        return attached

    def _acknowledge(self, conn: Connection, message_id: int, case_id: int | None,
                     now: datetime, written: _Written) -> Due:
        """*acknowledge*: a person is acknowledged whatever became of the complaint, with the
        case's reference, or the message's when it went to review or is not ours. Returns what
        that made due: the case (its timeline delivers the acknowledgement), or the notice
        itself when there is no case."""
        if written.automated:  # a machine's report: never acknowledged (acks.ack_refusal)
            return Due()
        ack = create_ack(conn, self.workflow.writer, message_id, case_id, now)
        if not ack:
            return Due()
        written.detail["acknowledged"] = True
        if case_id is not None:
            return Due(frozenset((case_id,)))
        return Due(notices=(ack,))

    def _thread(self, conn: Connection, message_id: int, claim: _Claim, outcome: Outcome,
                now: datetime, written: _Written) -> MessageState:
        """*thread*: a customer's reply or a bounce of our mail joins its case's history (or
        goes to review with the reason); returns the message's state."""
        result = outcome.result
        assert result is not None
        if result.format == "bounce":
            threaded = replies.attach_bounce(conn, message_id, result, now,
                                             mail_from=claim.mail_from, rcpt_tos=claim.rcpt_tos)
        else:
            sender = first_address(outcome.values.get("header_from")) or "unknown"
            threaded = replies.attach_reply(conn, message_id, sender, result, now,
                                            rcpt_tos=claim.rcpt_tos)
        detail = written.detail
        if threaded.note:
            detail["threaded"] = threaded.note
            if threaded.case_id is None:  # a DSN that proves nothing: counted here
                log.info("%s", threaded.note)
        if threaded.case_id is not None:
            detail["case"] = threaded.case_id
        elif threaded.review is not None:
            conn.execute(update(Message).where(Message.id == message_id).values(
                state=MessageState.REVIEW.value, error=threaded.review))
            detail["reason"] = threaded.review
            return MessageState.REVIEW
        return outcome.state

    def _schedule(self, due: Due) -> None:
        """*schedule*: hand what became due to the broker now, instead of at the scheduler's
        next tick: only the cases this message gave work due at once (a claim on an open case,
        or a reply, makes nothing due, and asking costs two transactions), and the
        acknowledgements without a case (delivery claims a notice, so it is sent once either
        way)."""
        self.workflow.kick(due.cases)
        send = self.workflow.send
        for notice_id in due.notices:
            if send is None:
                return
            try:
                send("deliver_notice", notice_id)
            except Exception as exc:  # the scheduler sends it at its next tick
                log.warning("could not hand acknowledgement %d to the broker now (%s: %s)",
                            notice_id, exc.__class__.__name__, exc)

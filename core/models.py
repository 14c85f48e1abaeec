"""The shared data model (SQLAlchemy 2.x); the Alembic migrations in ``migrations/`` follow it.

A message (raw bytes + envelope, exactly as received) yields reports; a report names a customer and
joins a case; a case runs a timeline of steps with ``due_at`` that the scheduler moves on; notices
go to customers; every decision is an event; escalation writes to the fee ledger. Users are the
specialists and supervisors of the web desk.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, deferred, mapped_column

# BIGINT on PostgreSQL, INTEGER (the rowid alias, so it autoincrements) on SQLite.
Id = BigInteger().with_variant(Integer(), "sqlite")

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: DateTime(timezone=True), dict[str, Any]: JSON}


class MessageState(enum.StrEnum):
    RECEIVED = "received"  # stored durably, not yet processed: the sweeper re-sends these
    PROCESSED = "processed"  # the pipeline has run on it
    REVIEW = "review"  # processing failed on the content: a person looks at it, with the reason


class Message(Base):
    """One mail as it arrived: the raw bytes (never rewritten), the envelope and its state."""

    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    state: Mapped[str] = mapped_column(String(16), default=MessageState.RECEIVED)
    origin: Mapped[str] = mapped_column(String(16))  # "smtp" or "import"
    raw: Mapped[bytes] = deferred(mapped_column(LargeBinary, nullable=False))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(Integer)
    mail_from: Mapped[str | None] = mapped_column(Text)
    rcpt_tos: Mapped[list[str]] = mapped_column(JSON, default=list)
    peer_ip: Mapped[str | None] = mapped_column(String(64))
    peer_port: Mapped[int | None] = mapped_column(Integer)
    helo: Mapped[str | None] = mapped_column(Text)
    tls: Mapped[bool] = mapped_column(Boolean, default=False)
    received_at: Mapped[datetime] = mapped_column(index=True)
    received_by: Mapped[str | None] = mapped_column(Text)  # listener host name, or import path
    enqueued_at: Mapped[datetime | None]
    processed_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    disposition: Mapped[str | None] = mapped_column(String(16))  # report, ignored, reply
    format: Mapped[str | None] = mapped_column(String(32))  # arf, xarf, acns, ... (parsers)
    header_message_id: Mapped[str | None] = mapped_column(Text)
    header_from: Mapped[str | None] = mapped_column(Text)
    header_subject: Mapped[str | None] = mapped_column(Text)
    header_date: Mapped[str | None] = mapped_column(Text)
    # A reply to one of our notices, or a bounce of one, is attached to its case.
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    # Whether its From is authenticated (classifier/authentication.py): the pipeline writes it,
    # acknowledgements and threading read it. None: never checked (no acknowledgement).
    sender_authentication: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Examinations begun (workflow/pipeline.py): one that never came back (its process died)
    # counts; past pipeline.max_attempts the message goes to review instead of another one.
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    attempted_at: Mapped[datetime | None]  # when the last counted attempt began

    __table_args__ = (Index("ix_messages_state_enqueued", "state", "enqueued_at"),)


class Report(Base):
    """One complaint found in a message (a message can carry many)."""

    __tablename__ = "reports"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), index=True)
    seq: Mapped[int] = mapped_column(Integer)  # position within the message
    format: Mapped[str] = mapped_column(String(32))
    type_hint: Mapped[str | None] = mapped_column(Text)
    category: Mapped[str | None] = mapped_column(String(16))
    type: Mapped[str | None] = mapped_column(String(32))
    source_ip: Mapped[str | None] = mapped_column(String(64), index=True)
    source_port: Mapped[int | None] = mapped_column(Integer)
    occurred_at: Mapped[datetime | None]
    occurred_raw: Mapped[str | None] = mapped_column(Text)
    fields: Mapped[dict[str, Any]] = mapped_column(default=dict)  # urls, domains, reporter, ...
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    confidence: Mapped[float | None]
    decision: Mapped[dict[str, Any]] = mapped_column(default=dict)  # named evidence per decision
    review_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    fingerprint: Mapped[str | None] = mapped_column(String(64), index=True)
    duplicate_of: Mapped[int | None] = mapped_column(ForeignKey("reports.id"), index=True)
    duplicates: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # copies merged
    trusted: Mapped[bool | None] = mapped_column(Boolean)  # reporter verified as trusted
    reviewed_by: Mapped[str | None] = mapped_column(Text)  # the specialist who decided
    reviewed_at: Mapped[datetime | None]

    __table_args__ = (UniqueConstraint("message_id", "seq"),)


class DuplicateKey(Base):
    """How a later copy of a report finds the first: a fingerprint, a reporter's Message-ID, an
    ACNS case id (see classifier/duplicates.py)."""

    __tablename__ = "duplicate_keys"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("reports.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(index=True)


class TrainingExample(Base):
    """A specialist's decision on a report's text: what the text model learns from."""

    __tablename__ = "training_examples"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    report_id: Mapped[int | None] = mapped_column(ForeignKey("reports.id"), index=True)
    text: Mapped[str] = mapped_column(Text)
    type: Mapped[str] = mapped_column(String(32))  # one of our types, or "not-abuse"
    decided_by: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]


class ModelState(Base):
    """A persisted model (the text classifier), with how many examples it has learnt."""

    __tablename__ = "model_state"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    data: Mapped[str] = mapped_column(Text)
    examples: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime]


class Customer(Base):
    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    external_id: Mapped[str] = mapped_column(String(128), unique=True)
    name: Mapped[str] = mapped_column(Text)
    email: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    time_zone: Mapped[str | None] = mapped_column(String(64))  # for deadlines; desk's if None


class CustomerResource(Base):
    """A CIDR, an IP with a port range (CGNAT), a domain or an address, with a validity window."""

    __tablename__ = "customer_resources"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # cidr, ip-ports, domain, email
    value: Mapped[str] = mapped_column(Text, index=True)
    port_low: Mapped[int | None] = mapped_column(Integer)
    port_high: Mapped[int | None] = mapped_column(Integer)
    valid_from: Mapped[datetime | None]
    valid_until: Mapped[datetime | None]


class CaseState(enum.StrEnum):
    OPEN = "open"  # opened, first notice not yet sent
    NOTIFIED = "notified"
    CUSTOMER_RESPONDED = "customer-responded"
    RESOLVED = "resolved"  # a related claim within the window reopens it
    ESCALATED = "escalated"  # deadline passed or repeated claims: fees assessed, action proposed
    RESTRICTED = "restricted"
    TERMINATED = "terminated"
    CLOSED = "closed"


class Case(Base):
    """A customer's related conduct: the claims (reports) against it and their one timeline."""

    __tablename__ = "cases"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    reference: Mapped[str] = mapped_column(String(32), unique=True)  # C-2026-000123
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    category: Mapped[str] = mapped_column(String(16))
    type: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(24), index=True)
    timeline_class: Mapped[str] = mapped_column(String(16))  # standard or prompt
    claims: Mapped[int] = mapped_column(Integer, default=0)
    opened_at: Mapped[datetime]
    deadline_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]
    last_claim_at: Mapped[datetime | None]
    escalated_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    proposed_action: Mapped[str | None] = mapped_column(String(16))  # restrict or terminate


class TimelineStep(Base):
    """A step of a case's timeline; the scheduler enqueues it once ``due_at`` has passed."""

    __tablename__ = "timeline_steps"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))  # notice, reminder, deadline, ...
    due_at: Mapped[datetime]
    state: Mapped[str] = mapped_column(String(16), default="pending")
    lease_until: Mapped[datetime | None]
    done_at: Mapped[datetime | None]
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_timeline_steps_state_due", "state", "due_at"),)


class Notice(Base):
    """A mail we send: to a customer (one per timeline step, however often the step is
    delivered) or an acknowledgement to a reporter (one per message)."""

    __tablename__ = "notices"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    # None: an acknowledgement of a complaint that opened no case (in review, not ours).
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    step_id: Mapped[int | None] = mapped_column(ForeignKey("timeline_steps.id"), unique=True)
    # The reporter's message an acknowledgement answers (one per message).
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"), unique=True)
    kind: Mapped[str] = mapped_column(String(16), default="notice", server_default="notice")
    header_message_id: Mapped[str] = mapped_column(String(255), unique=True)
    to_addr: Mapped[str] = mapped_column(Text)
    subject: Mapped[str] = mapped_column(Text)
    body_text: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str | None] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    sent_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    raw: Mapped[bytes | None] = deferred(mapped_column(LargeBinary))  # exactly what is sent
    created_at: Mapped[datetime | None]
    next_attempt_at: Mapped[datetime | None]
    lease_until: Mapped[datetime | None]
    receipt: Mapped[str | None] = mapped_column(Text)  # the transport's answer
    bounced_at: Mapped[datetime | None]
    # Unguessable, one pair per mail (workflow/tokens.py): a reply naming reply_token (in the
    # Message-ID it answers, or the Reply-To address it was sent to) comes from whoever received
    # this mail; a DSN with a null sender naming bounce_token (the VERP envelope sender) is a
    # bounce of this mail. None for mails written before tokens existed.
    reply_token: Mapped[str | None] = mapped_column(String(32), unique=True)
    bounce_token: Mapped[str | None] = mapped_column(String(32), unique=True)

    __table_args__ = (Index("ix_notices_state_next", "state", "next_attempt_at"),)


class Event(Base):
    """The audit trail: who (system, specialist, customer) did what to which object, and why."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    actor_kind: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(Text)
    subject_type: Mapped[str] = mapped_column(String(16))
    subject_id: Mapped[int] = mapped_column(BigInteger)
    action: Mapped[str] = mapped_column(String(48))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)

    __table_args__ = (Index("ix_events_subject", "subject_type", "subject_id"),)


class FeeEntry(Base):
    """The fee ledger: assessed here, exported for billing, never charged by the desk."""

    __tablename__ = "fees"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    report_id: Mapped[int | None] = mapped_column(ForeignKey("reports.id"), unique=True)
    amount_cents: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    assessed_at: Mapped[datetime]
    state: Mapped[str] = mapped_column(String(16), default="assessed")
    waived_by: Mapped[str | None] = mapped_column(Text)
    waive_reason: Mapped[str | None] = mapped_column(Text)
    # Why it was charged: which failure to cooperate (deadline passed unanswered, recurrence
    # after "fixed", a specialist's escalation), with the dates.
    reason: Mapped[str | None] = mapped_column(Text)


class Setting(Base):
    """Values the desk makes once and all its processes share (the signing key)."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))  # specialist or supervisor
    password_hash: Mapped[str] = mapped_column(Text)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]
    # Raised by each supervisor unlock (`abuse-desk users unlock`): a web process forgets the
    # failed logins it counted for the account before the number it last saw.
    login_unlocks: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class WebSession(Base):
    """A signed-in browser. The cookie carries a random token; only its SHA-256 is stored, so a
    copy of the database signs nobody in. Logout deletes the row."""

    __tablename__ = "web_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256(token), hex
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)
    flash: Mapped[str | None] = mapped_column(Text)  # one message for the next page
    peer: Mapped[str | None] = mapped_column(String(64))


class ApiToken(Base):
    """A bearer token for the JSON API, acting as its user (and with its role)."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256(token), hex
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    expires_at: Mapped[datetime]  # web.api_token_days after it was made, unless chosen

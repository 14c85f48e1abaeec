"""Examining one message: what it says (parse), who sent it (the sender's authentication),
whether its reporter is who it claims (DKIM), and what each report is about and whose it is
(classify). Pure: it reads the message and the classifier's data, and writes nothing.

The one examination the pipeline (in an examiner process or inline), ``abuse-desk parse``,
the review queue's re-runs and the benchmarks all use.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from ..classifier.authentication import SenderAuthenticator
from ..classifier.classify import Decision, MessageFacts
from ..classifier.runtime import ClassifierRuntime
from ..core.config import Config, ParserLimits
from ..core.headers import first_address, read_top_headers
from ..core.models import MessageState
from ..parsers.base import Disposition, ParseResult
from ..parsers.registry import Registry, configured_registry

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    state: MessageState
    values: dict[str, Any] = field(default_factory=dict)  # columns of the message
    reason: str | None = None  # why it needs a person
    result: ParseResult | None = None
    decisions: list[Decision] = field(default_factory=list)


Progress = Callable[..., None]


def _no_progress(stage: str, headers: dict[str, Any] | None = None) -> None:
    pass


@dataclass(frozen=True)
class Examination:
    """What examining a message takes: the parsers, the classifier (its customer index,
    model and trust policy), the sender's authentication, the parsers' limits.

    ``abuse-desk parse`` examines without the sender's authentication (a file has no envelope:
    *authenticator* None), and without a database to classify against it parses only
    (*classifier* None: the outcome has no decisions)."""

    parsers: Registry
    classifier: ClassifierRuntime | None
    authenticator: SenderAuthenticator | None
    limits: ParserLimits

    def examine(self, raw: bytes, received_at: datetime, progress: Progress = _no_progress,
                sender: Mapping[str, Any] | None = None) -> Outcome:
        """The pure part: what the message (received at *received_at*) says. Never raises on
        content. *progress* is told each stage as it starts (an examiner names it when the
        budget runs out), and the header values once read. *sender*: the envelope as our
        listener saw it (``mail_from``, ``peer_ip``, ``helo``), for the sender's authentication
        of a complaint or a reply (``values["sender_authentication"]``)."""
        progress("reading headers")
        try:
            headers = read_top_headers(raw)
        except Exception as exc:  # a parser bug or hostile input: a person looks at it
            log.warning("header reading failed: %s: %s", exc.__class__.__name__, exc)
            return Outcome(MessageState.REVIEW,
                           reason=f"headers unreadable: {exc.__class__.__name__}: {exc}")
        values: dict[str, Any] = {
            "header_message_id": headers.message_id,
            "header_from": headers.from_,
            "header_subject": headers.subject,
            "header_date": headers.date,
        }
        progress("parsing", values)
        result = self.parsers.parse(raw, self.limits)
        values["disposition"] = result.disposition.value
        values["format"] = result.format
        if result.review_reasons and not result.reports:
            reason = "; ".join(result.review_reasons)
            if result.errors:
                reason += "\n" + "\n".join(result.errors)  # the traceback of a parser bug
            return Outcome(MessageState.REVIEW, values, reason, result)
        if self.authenticator is not None and (
                result.reports or result.disposition is Disposition.REPLY):
            progress("sender authentication")
            values["sender_authentication"] = self.authenticator.check(
                raw, **{k: (sender or {}).get(k) for k in ("mail_from", "peer_ip", "helo")}
            ).to_json()
        if not result.reports or self.classifier is None:
            return Outcome(MessageState.PROCESSED, values, None, result)
        facts = MessageFacts(raw=raw, from_address=first_address(headers.from_),
                             message_id=headers.message_id, received_at=received_at,
                             subject=headers.subject or "")
        classifier = self.classifier.classifier
        try:
            progress("DKIM verification")
            trust = classifier.assess_reporter(facts)
            progress("classifying")
            result.reports = classifier.offenders(result.reports, received_at)
            decisions = [classifier.classify(report, facts, trust) for report in result.reports]
        except SQLAlchemyError:
            raise  # the system, not the content: dramatiq retries
        except Exception as exc:  # a classifier bug on this content: a person looks at it
            log.warning("classifier failed: %s: %s", exc.__class__.__name__, exc, exc_info=True)
            return Outcome(MessageState.REVIEW, values,
                           f"classifier failed: {exc.__class__.__name__}: {exc}\n"
                           + traceback.format_exc(limit=20), result)
        return Outcome(MessageState.PROCESSED, values, None, result, decisions)


def build_examination(config: Config, classifier: ClassifierRuntime | None, *,
                      authenticate: bool = True) -> Examination:
    """The examination *config* describes: the built-in parsers and the configured plugins
    (:class:`parsers.registry.PluginError` for one that does not load), *classifier* (None:
    parse only), the sender's authentication unless not *authenticate*."""
    cfg = config.classifier
    return Examination(
        parsers=configured_registry(config.smtp.hostname, config.parsers.plugins),
        classifier=classifier,
        authenticator=SenderAuthenticator(cfg.authserv_id, spf_timeout_s=cfg.spf_timeout_s)
        if authenticate else None,
        limits=config.parsers)

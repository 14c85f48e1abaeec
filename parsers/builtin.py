"""The built-in parsers, in the order the registry tries them within each stage."""

from __future__ import annotations

from parsers.base import Parser
from parsers.guards import AutoReplyParser, BounceParser, ReplyParser


def builtin_parsers(message_id_domain: str = "abuse-desk.localhost") -> list[Parser]:
    return [
        ReplyParser(message_id_domain),
        BounceParser(),
        AutoReplyParser(),
    ]

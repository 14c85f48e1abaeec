"""The built-in parsers, in the order the registry tries them within each stage."""

from __future__ import annotations

from .acns import AcnsParser
from .arf import ArfParser
from .base import Parser
from .cert import CertParser
from .dmarc import DmarcParser
from .dmca import DmcaParser
from .guards import AutoReplyParser, BounceParser, ReplyParser
from .nonreports import NonReportParser
from .shadowserver import ShadowserverParser
from .spamcop import SpamcopParser
from .text import TextParser
from .xarf import XarfParser
from .xarf_json import XarfJsonParser


def builtin_parsers(message_id_domain: str = "abuse-desk.localhost") -> list[Parser]:
    return [
        # guards: decided before any format
        ReplyParser(message_id_domain),
        BounceParser(message_id_domain),
        # DMARC and TLS reports (a failure report is ARF, but no complaint)
        DmarcParser(),
        # acknowledgements, other desks' answers, surveys, newsletters ... by what they say
        NonReportParser(message_id_domain),
        AutoReplyParser(),
        # structural: XARF JSON first (it also rides inside ARF with Feedback-Type xarf),
        # SpamCop before ARF (its ARF is SpamCop's), X-ARF before ARF (some wrap report.txt in
        # multipart/report; report-type=feedback-report)
        XarfJsonParser(),
        SpamcopParser(),
        XarfParser(),
        ArfParser(),
        AcnsParser(),
        ShadowserverParser(),
        # sender-specific: CERT/scanner/blocklist tables, then copyright notices
        CertParser(),
        DmcaParser(),
        # fallback
        TextParser(),
    ]

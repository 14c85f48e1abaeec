"""A new report format is one file: a module that declares its format (name, machine-sent or
not, its type vocabulary, the reporters known to send it) and gives its parser. Registered,
everything that reads format facts knows it: the registry tries it, the classifier's tables map
its type hints, the acknowledgement rule knows machines send it, the trusted reporters list
names its senders. (README, "Adding a format".)"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from abuse_desk.classifier import taxonomy
from abuse_desk.parsers import registry
from abuse_desk.parsers.base import Disposition, Format
from abuse_desk.parsers.registry import (
    FormatClash,
    configured_registry,
    known_formats,
    machine_sent,
)

ACME_MODULE = '''
"""Acme sensor reports: a header names the kind, the body the source address."""

from abuse_desk.core.mail import Mail
from abuse_desk.parsers.base import Disposition, Format, ParsedReport, ParseResult, Stage

ACME = Format("acme", machine=True,
              vocabulary={"ssh-scan": ("port-scan", 0.95), "spam-run": ("spam", 0.9)},
              trusted_senders=(("Acme Sensors", ("reports@sensors.acme.example",)),))


class AcmeParser:
    name = "acme"
    stage = Stage.STRUCTURAL
    formats = (ACME,)
    order = 5  # before every built-in structural format

    def matches(self, mail: Mail) -> bool:
        return mail.header("X-Acme-Kind") is not None

    def parse(self, mail: Mail) -> ParseResult:
        kind = (mail.header("X-Acme-Kind") or "").strip()
        source = mail.body_text().strip().split()[-1]
        report = ParsedReport(format="acme", type_hint=f"acme:{kind}", source_ip=source)
        return ParseResult(disposition=Disposition.REPORT, format="acme", reports=[report])


def parsers(message_id_domain: str) -> list[AcmeParser]:
    return [AcmeParser()]


def parser() -> AcmeParser:
    return AcmeParser()
'''

REPORT = (b"From: Acme Sensors <reports@sensors.acme.example>\r\nTo: abuse@isp.example\r\n"
          b"Subject: sensor report\r\nX-Acme-Kind: ssh-scan\r\n\r\n"
          b"Seen scanning from 198.51.100.77\r\n")


@pytest.fixture
def acme(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The module ``acme_format`` on the path; the catalog as it was once the test is over."""
    (tmp_path / "acme_format.py").write_text(textwrap.dedent(ACME_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_CATALOG", dict(registry._CATALOG))
    monkeypatch.setattr(registry, "_version", registry._version)
    yield "acme_format:parser"


def test_a_format_from_its_own_module_is_known_everywhere(acme: str) -> None:
    assert "acme" not in known_formats()
    parsers = configured_registry("isp.example", [acme])
    # the registry tries it, in its place within its stage
    assert parsers.names().index("acme") < parsers.names().index("xarf-json")
    result = parsers.parse(REPORT)
    assert (result.disposition, result.format) == (Disposition.REPORT, "acme")
    assert result.reports[0].source_ip == "198.51.100.77"
    # its facts reach the tables that read formats
    assert known_formats()["acme"].machine and machine_sent("acme")
    hit = taxonomy.lookup("acme:ssh-scan")
    assert hit is not None and (hit.type, hit.decisive) == ("port-scan", True)
    assert hit.evidence.name == "table:acme:ssh-scan"
    assert taxonomy.lookup("acme:spam_run") is not None  # compared as every table is
    assert taxonomy.lookup("acme:unknown-kind") is None


def test_the_trusted_senders_a_format_names_are_default_reporters() -> None:
    from abuse_desk.classifier.trust import DEFAULT_TRUSTED_REPORTERS

    named = {(r.name, r.senders) for r in DEFAULT_TRUSTED_REPORTERS}
    declared = {(name, senders) for fmt in known_formats().values()
                for name, senders in fmt.trusted_senders}
    assert named == declared
    assert ("SpamCop", ("*.spamcop.net",)) in named


def test_two_declarations_of_one_format_name_clash(acme: str) -> None:
    registry.declare_formats([known_formats()["arf"]])  # the same one again: no change
    with pytest.raises(FormatClash):
        registry.declare_formats([Format("arf", machine=False)])


def test_every_built_in_format_file_declares_what_its_parsers_emit() -> None:
    """Each file in parsers/formats/ gives parsers, and each parser names its formats."""
    modules = registry.format_modules()
    assert modules, "no format files found"
    for module in modules:
        made = module.parsers("isp.example")
        assert made, f"{module.__name__} gives no parser"
        for parser in made:
            assert parser.formats, f"{parser.name} declares no format"
            assert all(isinstance(f, Format) for f in parser.formats)

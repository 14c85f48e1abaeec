"""Every table that names report formats names formats the parsers declare
(``parsers.registry.known_formats``): a table keyed by a parser's name instead of its format
(XARF v4's parser is ``xarf-json``, its format ``xarf4``) silently never matches, as the
acknowledgement rule once did for XARF v4 senders. The tables are built from the formats'
own declarations now; the one kept by hand (the core's ``PERSON_FORMATS``) is checked here."""

from __future__ import annotations

from abuse_desk.classifier import taxonomy
from abuse_desk.core.config import PERSON_FORMATS
from abuse_desk.parsers.registry import known_formats

FORMATS = set(known_formats())
MACHINE_FORMATS = {name for name, fmt in known_formats().items() if fmt.machine}

TABLES = {
    "abuse_desk.classifier.taxonomy.TABLES": set(taxonomy.TABLES),
    "abuse_desk.classifier.taxonomy.PATTERNS": set(taxonomy.PATTERNS),
    "abuse_desk.classifier.taxonomy.HINT_ONLY_VOCABULARIES": set(taxonomy.HINT_ONLY_VOCABULARIES),
    "machine formats": MACHINE_FORMATS,
    "abuse_desk.core.config.PERSON_FORMATS": set(PERSON_FORMATS),
}


def test_every_format_table_names_known_formats() -> None:
    unknown = {name: sorted(names - set(FORMATS)) for name, names in TABLES.items()
               if names - set(FORMATS)}
    assert unknown == {}, f"not formats the parsers declare: {unknown}"


def test_a_format_that_gives_reports_has_a_vocabulary_for_its_type() -> None:
    # Formats that give complaints are categorised by a table, a pattern list, or as free text.
    taxonomy = "abuse_desk.classifier.taxonomy"
    vocabularies = TABLES[f"{taxonomy}.TABLES"] | TABLES[f"{taxonomy}.PATTERNS"] \
        | TABLES[f"{taxonomy}.HINT_ONLY_VOCABULARIES"]
    complaints = {"arf", "xarf", "xarf4", "acns", "dmca", "spamcop", "shadowserver", "cert", "text"}
    assert complaints <= set(FORMATS)
    assert complaints - vocabularies == set()


def test_machine_and_person_formats_do_not_overlap() -> None:
    assert MACHINE_FORMATS.isdisjoint(PERSON_FORMATS)


def test_the_person_formats_are_the_complaint_formats_no_machine_sends() -> None:
    complaints = {name for name, fmt in known_formats().items() if fmt.vocabulary}
    assert set(PERSON_FORMATS) == complaints - MACHINE_FORMATS


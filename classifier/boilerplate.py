"""What a complaint's text says that is not evidence, taken out before its category is scored.

A mail carries words that name abuse without complaining about it: the sender's footer
("Copyright © 2026 Example GmbH. All rights reserved.", a confidentiality disclaimer, an
unsubscribe line, "Sent from my phone"), a signature after the ``-- `` delimiter, a service's
banner a scanner copied into its report ("Copyright (c) 1998 ... telnet", "unauthorized access
is prohibited"), the wording of a forwarded-message block ("---------- Forwarded message",
"-----Original Message-----", its From/Sent/To lines) and a quoted earlier mail ("On ... wrote:"
and its "> " lines). Left in, a spam listing becomes a copyright case, an open-telnet report an
intrusion. :func:`strip` returns the text without them:

* a signature: everything after a ``-- `` line, when that is the last 25 lines or fewer (after
  a bare ``--``, only when 6 lines or fewer follow: bilingual notices separate their
  languages with it);
* a disclaimer: from the sentence that says the mail is confidential, or what to do with it if
  received in error, to the end of its paragraph (a block between blank lines of at most
  ``MAX_DISCLAIMER_LINES`` lines; in a longer one, that sentence only);
* footer and banner lines: a copyright notice (``©``, ``(c) 2026``, ``Copyright 2026``), "all
  rights reserved" in several languages, unsubscribe and "manage your preferences" lines,
  "sent from my ...", privacy-statement and company-register lines;
* the wording of a forwarded block (its marker line and its From/Sent/To/Cc/Date lines; its
  Subject stays: it may be the complaint's);
* a quoted reply: an attribution line ("On ... wrote:", "Am ... schrieb ...:", "Le ... a
  écrit :", "El ... escribió:") and the "> " lines, unless what is left unquoted is too short to
  be the complaint; "> " lines with no attribution are a forwarded complaint: kept, unquoted;
* phrases that name abuse words without complaining ("scanned for viruses", "anti-spam",
  "not spam", "threat intelligence").

Line by line with short, anchored patterns without nested quantifiers, on at most
``MAX_TEXT_CHARS``: linear in a bounded input.
"""

from __future__ import annotations

import re

MAX_TEXT_CHARS = 20_000
MAX_SIGNATURE_LINES = 25
MAX_BARE_SIGNATURE_LINES = 6
MAX_DISCLAIMER_LINES = 12
MIN_OWN_WORDS = 12  # fewer unquoted words than this: the quote is the complaint

_SIGNATURE_DELIMITER = re.compile(r"-- ?")

_DISCLAIMER = re.compile(
    r"\b(?:this|the)\s(?:e-?mail|message|communication|transmission)\s(?:and\s(?:any|all|its)\s"
    r"(?:attachments?|files?)\s(?:transmitted\swith\sit\s)?)?(?:is|are|may\sbe|contains?|"
    r"is\sintended)\s(?:strictly\s)?(?:confidential|privileged|intended|for\sthe\s(?:sole|"
    r"exclusive))|"
    r"\bif\syou\s(?:have\s)?received\s(?:this|it)\s(?:e-?mail\s|message\s|communication\s|"
    r"transmission\s)?(?:in\serror|by\smistake)|\bif\syou\sare\snot\sthe\sintended\srecipient|"
    r"\b(?:is|are)\s(?:intended|meant)\s(?:only\s|solely\s)?for\sthe\s(?:addressee|named|"
    r"intended|recipient)|"
    r"\breceived\s(?:this|the)\s(?:e-?mail|message)\s(?:in\serror|by\smistake)|"
    r"\bdiese\s(?:e-?mail|nachricht)\s(?:enth[äa]lt|ist)\s(?:vertrauliche|vertraulich)|"
    r"\bwenn\ssie\snicht\sder\s(?:richtige|beabsichtigte)|irrt[üu]mlich\serhalten|"
    r"\bce\s(?:message|courriel|mail)\s(?:et\s(?:ses|toutes\sses)\spi[èe]ces\sjointes\s)?"
    r"(?:est|sont)\s(?:strictement\s)?confidentiel|"
    r"\beste\s(?:mensaje|correo)\s(?:y\ssus\sanexos\s)?(?:es|son|contiene)\s(?:informaci[óo]n\s)?"
    r"confidencial|"
    r"\bdit\s(?:e-?mail|bericht)\s(?:is|kan)\s(?:vertrouwelijk|uitsluitend)",
    re.I)

# A whole line that is a footer or banner (searched; the line is dropped).
_FOOTER_LINE = re.compile(
    r"©|\(c\)\s?(?:\d{4}|copyright)|\bcopyright\s(?:\(c\)\s)?(?:\d{4}|by\s)|"
    r"\ball\srights\sreserved\b|\balle\srechte\svorbehalten\b|\btous\sdroits\sr[ée]serv[ée]s\b|"
    r"\btodos\slos\sderechos\sreservados\b|\balle\srechten\svoorbehouden\b|"
    r"\btutti\si\sdiritti\sriservati\b|"
    r"\bto\sunsubscribe\b|\bclick\shere\sto\sunsubscribe\b|\bunsubscribe\sfrom\s(?:this|our|these)\b|"
    r"\bmanage\s(?:your\s)?(?:subscription|e-?mail\spreferences|preferences)\b|"
    r"\bif\syou\s(?:no\slonger|do\snot)\swish\sto\sreceive\b|\bto\sstop\sreceiving\b|"
    r"\bnewsletter\s(?:abbestellen|abmelden)\b|\bse\sd[ée]sabonner\b|\bdarse\sde\sbaja\b|"
    r"^\s*sent\sfrom\smy\s|^\s*(?:envoy[ée]\sde\smon|von\smeinem\s\w+\sgesendet|"
    r"enviado\sdesde\smi)\b|"
    r"\bprivacy\s(?:statement|policy|notice)\b|\bdatenschutz(?:erkl[äa]rung|hinweis)\b|"
    r"\b(?:amtsgericht|handelsregister|registergericht|registered\soffice|registered\sin\s"
    r"england|company\sregistration|gesch[äa]ftsf[üu]hr(?:er|ung))\b|"
    r"\bthink\sbefore\syou\sprint\b|"
    # service banners a scanner copied: a login warning is no intrusion
    r"\bunauthori[sz]ed\s(?:access|use)\s(?:to\sthis\s(?:system|device|computer)\s)?"
    r"(?:is\s)?(?:strictly\s)?(?:prohibited|forbidden)\b|"
    r"\b(?:banner|server\sheader|ssh\sversion|http\sserver)\s?[:=]",
    re.I)

_FORWARD_MARKER = re.compile(
    r"^[ \t>]*(?:-{2,}\s?(?:forwarded\smessage|original\smessage|weitergeleitete\snachricht|"
    r"urspr[üu]ngliche\snachricht|message\stransf[ée]r[ée]|message\sd'origine|"
    r"mensaje\s(?:reenviado|original)|doorgestuurd\sbericht|oorspronkelijk\sbericht)\s?-{2,}|"
    r"begin\sforwarded\smessage:|d[ée]but\sdu\smessage\sr[ée]exp[ée]di[ée]\s?:)", re.I)
_FORWARD_HEADER = re.compile(
    r"^[ \t>*]*(?:from|sent|to|cc|date|von|gesendet|an|datum|de|envoy[ée]|[àa]|para|enviado|"
    r"fecha|van|verzonden|aan)\s?\*?:", re.I)

_ATTRIBUTION = re.compile(
    r"^[ \t]*(?:on\s.{1,200}\swrote:|am\s.{1,200}\sschrieb.{0,100}:|le\s.{1,200}\sa\s[ée]crit\s?:|"
    r"el\s.{1,200}\sescribi[óo]:|op\s.{1,200}\sschreef.{0,100}:)[ \t]*$", re.I)
_QUOTED = re.compile(r"^[ \t]*>")
_UNQUOTE = re.compile(r"^[ \t]*(?:>[ \t]?)+")

# Phrases that mention abuse words without complaining about abuse: blanked in place.
_PHRASES = re.compile(
    r"scanned\s(?:for\sviruses|by)|virus[- ]?(?:free|scanned|checked)|anti-?virus|anti-?spam|"
    r"spam\s(?:folder|filter)\w{0,10}|not\sspam|threat\sintelligence|threat\sfeed|"
    # the reporter's own scanning is how it found the host, not what the host did
    r"(?:our|daily|weekly|regular|routine|internet-wide)\s(?:daily\s|weekly\s|regular\s)?"
    r"scan(?:s|ning)?\b|scans?\sthe\sinternet|scanning\sproject|according\sto\sour\sscans?",
    re.I)
_WORD = re.compile(r"\w+")
_SENTENCE = re.compile(r"(?<=[.!?])[ \t]+")
MAX_DISCLAIMER_CHARS = 1200


def _paragraphs(lines: list[str]) -> list[list[str]]:
    blocks: list[list[str]] = [[]]
    for line in lines:
        if line.strip():
            blocks[-1].append(line)
        elif blocks[-1]:
            blocks.append([])
    return [b for b in blocks if b]


def _cut_signature(lines: list[str]) -> list[str]:
    """Without the signature: after "-- " (RFC 3676), or after a bare "--" when only a few
    lines follow it (a bare "--" before a long block separates two languages of a notice)."""
    for i in range(len(lines) - 1, max(-1, len(lines) - MAX_SIGNATURE_LINES - 2), -1):
        line = lines[i].rstrip("\r")
        if _SIGNATURE_DELIMITER.fullmatch(line):
            after = sum(1 for rest in lines[i + 1:] if rest.strip())
            if line == "-- " or after <= MAX_BARE_SIGNATURE_LINES:
                return lines[:i]
    return lines


def _drop_quotes(lines: list[str]) -> list[str]:
    """A reply (an attribution line) without what it quotes; a forward's quoted complaint
    (no attribution: "> " is how it was forwarded) is evidence and stays, unquoted."""
    replying = any(_ATTRIBUTION.match(line) for line in lines)
    own = [line for line in lines if not _QUOTED.match(line) and not _ATTRIBUTION.match(line)]
    if replying and sum(len(_WORD.findall(line)) for line in own) >= MIN_OWN_WORDS:
        return own
    return [_UNQUOTE.sub("", line) for line in lines if not _ATTRIBUTION.match(line)]


def strip(text: str) -> str:
    """*text* (bounded to ``MAX_TEXT_CHARS``) without what is not evidence (module docstring)."""
    lines = text[:MAX_TEXT_CHARS].replace("\r\n", "\n").replace("\r", "\n").split("\n")
    lines = _drop_quotes(_cut_signature(lines))
    kept: list[str] = []
    for block in _paragraphs(lines):
        if kept and kept[-1]:
            kept.append("")
        short = len(block) <= MAX_DISCLAIMER_LINES and sum(map(len, block)) <= MAX_DISCLAIMER_CHARS
        for line in block:
            if _FORWARD_MARKER.match(line) or _FORWARD_HEADER.match(line):
                continue
            if short and _DISCLAIMER.search(line):
                # a disclaimer runs to the end of its paragraph: keep what came before it
                before = _before_disclaimer(line)
                if before:
                    kept.append(before)
                break
            kept.append(_without_footers(line))
    return _PHRASES.sub(" ", "\n".join(kept).strip())


def _before_disclaimer(line: str) -> str:
    sentences = _SENTENCE.split(line)
    first = next(i for i, s in enumerate(sentences) if _DISCLAIMER.search(s)) \
        if any(_DISCLAIMER.search(s) for s in sentences) else len(sentences)
    return _without_footers(" ".join(sentences[:first]))


def _without_footers(line: str) -> str:
    """*line* without its footer and banner sentences (the whole line for a short one; a
    long line, e.g. a paragraph an HTML part made one line, loses only those sentences)."""
    if not _FOOTER_LINE.search(line) and not _DISCLAIMER.search(line):
        return line
    return " ".join(s for s in _SENTENCE.split(line)
                    if not _FOOTER_LINE.search(s) and not _DISCLAIMER.search(s))

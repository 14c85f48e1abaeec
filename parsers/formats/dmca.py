"""Free-text copyright (DMCA) notices, and which 17 U.S.C. 512(c)(3)(A) elements they carry.

A notice that reaches this parser has no ACNS XML (``parsers/acns.py`` reads those first). It
is a letter: who complains, on whose behalf, about which work, where the copy is (a URL, or an
IP address and a time for P2P, a torrent info-hash or magnet link), and the statements the law
asks for. The six elements, found the many ways agents write them (English, and the usual
Spanish, French, German, Dutch, Portuguese and Italian wording)::

    (i)   signature            "/s/ Name", "Signed:", "Firma electrónica:", a typed name under a
                               closing ("Sincerely,", "Atentamente", "Mit freundlichen Grüßen")
                               or as the letter's last lines with a title; a PGP signature
    (ii)  work                 "Title: ...", "1. Identification of the copyrighted work: ...",
                               "Werk:", "Obra:", a quoted title after "the film/photograph/
                               course ...", "owner of the copyrights in ...", "our proprietary
                               source code", "the works listed below/in the attached"
    (iii) infringing material  a reported URL (it is the material's location), or an IP
                               address with the file, hash, magnet or "infringing" named
    (iv)  contact              an e-mail address, a telephone number or a postal address in the
                               letter, or the address it came from (From/Reply-To) to answer
    (v)   good faith           "good faith belief", "state in good faith", "de buena fe", ...
    (vi)  accuracy + perjury   "accurate"/"exacta"/..., and "under penalty of perjury"/"bajo
                               pena de perjurio"/... that the sender may act for the owner

A notice missing any of them is still a report: the missing ones are a warning and
``extra["dmca_incomplete"]`` for the copyright specialist, who decides whether it is
"substantially" compliant (512(c)(3)(B)) while the case runs when the location is ours; a notice
with no location at all, or a counter-notice, goes to review. A table of peers or servers (one
address a line, with its port and time) gives one report per address, each with its own port,
time and URLs (``split_rows``). Rightscorp-style letters with no
XML ("infringed upon by a computer at IP Address X on 2014-05-01 12:00:00.0 GMT") are read here.
URLs of the sender's own site (web reply forms, key servers) are kept apart from the reported
ones, so they never lead to a customer.
"""

from __future__ import annotations

import bisect
import copy
import re
from datetime import UTC, datetime
from email.utils import getaddresses
from itertools import islice, pairwise
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ...core.fields import (
    clean_ip,
    domains_of,
    excerpt,
    find_ips,
    find_urls,
    host_of,
    parse_time,
    refang,
    unique,
)
from ...core.headers import parse_address
from ...core.mail import Mail
from ..base import Disposition, Format, ParsedReport, Parser, ParseResult, Stage

MAX_TEXT_CHARS = 512 * 1024  # real notices are under 20 KiB
MAX_MATCH_CHARS = 64 * 1024  # how much of the body `matches` reads
MAX_IPS = 50
MAX_URLS = 200

ELEMENTS = ("signature", "work", "infringing_material", "contact", "good_faith",
            "accuracy_perjury")
ELEMENT_NAMES = {
    "signature": "signature",
    "work": "identification of the copyrighted work",
    "infringing_material": "identification and location of the infringing material",
    "contact": "contact information",
    "good_faith": "good-faith statement",
    "accuracy_perjury": "accuracy statement and authority under penalty of perjury",
}

# -- recognising a notice -------------------------------------------------------------------

_MARKER = re.compile(
    r"\bDMCA\b|digital\s+millennium\s+copyright\s+act|copyright\s+infring|"
    r"\bunlicen[cs]ed\s+use\b|\bretransmisi[óo]n\s+ilegal|\bantipirater[ií]a\b|"
    r"\banti-?piracy\b|\billegal\s+(?:re)?stream|\burheberrechtsverletzung|"
    r"\bviolation\s+(?:de\s+)?(?:nos\s+|des\s+)?droits\s+d'auteur|"
    r"\binfracci[óo]n\s+de\s+(?:los\s+)?derechos\s+de\s+autor|"
    r"\billegale?\s+(?:live-?)?(?:weiterverbreitung|[üu]bertragung)|\bdiritti\s+audiovisivi|"
    r"\btrasmissione\s+illecita|\bantipirateria\b|\bunauthori[sz]ed\s+(?:iptv\s+)?restreams?|"
    r"\b17\s*U\.?\s?S\.?\s?C\b|\b512\s*\(\s*[cdg]\s*\)|"
    r"notice\s+of\s+(?:claimed\s+|alleged\s+|copyright\s+)?infring|"
    r"notice\s+of\s+unauthori[sz]ed\s+use|infringed\s+upon\s+by\s+a\s+computer", re.I)
_LEGAL = re.compile(
    r"good[\s-]+faith|penalty\s+of\s+perjury|copyright(?:ed)?\s+(?:owner|holder|work|material|"
    r"content)|take\s*-?down|infringing\s+(?:material|content|file|copy|copies|activity)|"
    r"infringed\s+upon\s+by\s+a\s+computer|without\s+(?:a\s+)?licen[cs]e|"
    r"sin\s+autorizaci[óo]n|ohne\s+(?:lizenz|genehmigung|erlaubnis)|sans\s+autorisation|"
    r"titular\s+de\s+los\s+derechos|rights?\s*holder|exclusive\s+(?:rights|licen[cs]ee)|"
    r"retirada|remove\s+the\s+(?:image|content|material|photograph)", re.I)
_COUNTER = re.compile(r"counter[\s-]*notic|counter[\s-]*notification|512\s*\(\s*g\s*\)", re.I)

# -- PGP clear-signed text ------------------------------------------------------------------

_PGP_HEAD = re.compile(r"^-----BEGIN PGP SIGNED MESSAGE-----[ \t]*\r?\n(?:[A-Za-z-]+:[^\n]*\n)*",
                       re.M)
_PGP_SIG = re.compile(r"^-----BEGIN PGP SIGNATURE-----.*?(?:^-----END PGP SIGNATURE-----[ \t]*$|"
                      r"\Z)", re.M | re.S)
_DASH_ESCAPE = re.compile(r"^(?:- )+(?=-)", re.M)


def undo_dash_escaping(text: str) -> str:
    """Undo PGP dash-escaping (RFC 4880 7.1): "- -----x" -> "-----x", also when escaped twice."""
    return _DASH_ESCAPE.sub("", text)


def clear_signed_text(text: str) -> tuple[str, bool]:
    """*text* with the PGP clear-signing armour removed and dash-escaping undone, and whether
    it was clear-signed. The signature is not verified: we have no key to check it against."""
    signed = False
    if "-----BEGIN PGP SIGNED MESSAGE-----" in text:
        signed = True
        text = _PGP_HEAD.sub("", text, count=5)
        text = _PGP_SIG.sub("", text, count=5)
    return undo_dash_escaping(text), signed


# -- the six elements -----------------------------------------------------------------------

_SLASH_S = re.compile(r"(?:^|\s)/s/[ \t]*[A-Za-z]", re.M)
_SIGNED_LINE = re.compile(
    r"^[ \t>]*(?:signed|signature|electronic\s+signature|e-signature|digitally\s+signed|"
    r"signed\s+electronically|firma(?:\s+electr[óo]nica)?|firmado(?:\s+por)?|unterschrift|"
    r"elektronische\s+signatur|sign[ée](?:\s+[ée]lectroniquement)?|signature\s+[ée]lectronique|"
    r"handtekening|assinatura(?:\s+eletr[ôo]nica)?)(?:\s+by)?[ \t]*[:\-][ \t]*\S",
    re.I | re.M)
_SIGNED_PHRASE = re.compile(r"\b(?:electronically\s+signed|signed\s+electronically|"
                            r"this\s+(?:notice|letter)\s+(?:is|has\s+been)\s+signed)\b", re.I)
# "regards" alone is found on its own line (not from a blank line above it: from every blank
# line of a long run, "\s*regards" scanned the whole run, quadratically).
_CLOSING = re.compile(
    r"^[ \t>]*+(?:sincerely(?:\s+yours)?|(?:(?:best|kind|warm|with\s+best)\s*|[^\S\n]*+)regards|"
    r"respectfully(?:\s+(?:yours|submitted))?|yours\s+(?:truly|faithfully|sincerely)|"
    r"cordially|thank\s+you|thanks|best(?:\s+wishes)?|atentamente|saludos(?:\s+cordiales)?|"
    r"cordialement|bien\s+[àa]\s+vous|salutations\s+distingu[ée]es|"
    r"mit\s+freundlichen\s+gr[üu](?:ß|ss)en|freundliche\s+gr[üu](?:ß|ss)e|hochachtungsvoll|"
    r"met\s+vriendelijke\s+groet(?:en)?|atenciosamente|cordiali\s+saluti|distinti\s+saluti)"
    r"[ \t]{0,20}(?:[,.!][ \t]{0,20})?\r?$",
    re.I | re.M)
_NAME_LINE = re.compile(r"^[ \t>]*[A-Z][\w.'’,&() -]{1,59}$")
# A typed name as the letter's own end: "Jana Kühn" over "General Counsel, Example GmbH".
_PERSON = re.compile(r"^[ \t]*(?:(?:Dr|Mr|Mrs|Ms|Mag|Mgr|Prof)\.?[ \t]+)?"
                     r"[A-Z][a-z\u00e0-\u017f'’-]+(?:[ \t]+[A-Z]\.)?"
                     r"(?:[ \t]+(?:(?:van|von|de|del|da|di|la|le)[ \t]+)?"
                     r"[A-Z][a-z\u00e0-\u017f'’-]+){1,3}[ \t]*$")
_TITLE = re.compile(r"counsel|attorney|lawyer|abogad|avocat|anwalt|anw[äa]ltin|advocaat|advogad|"
                    r"avvocat|agent|manager|specialist|officer|director|head|legal|paralegal|"
                    r"enforcement|analyst|partner|representative|gerente|responsable|"
                    r"rechtsabteilung|justiziar", re.I)
_WORK = re.compile(
    r"^[ \t>*-]*(?:\(?(?:\d{1,2}|[ivx]{1,4}|[a-f])[.)][ \t]{0,10})?"
    r"(?:identification\s+of\s+(?:the\s+)?)?"
    r"(?:title|infringed\s+(?:work|title|content)|copyright(?:ed)?\s+(?:work|title|"
    r"material|content)s?|original\s+(?:work|content|title)|works?\s+infringed|"
    r"name\s+of\s+(?:the\s+)?work|protected\s+(?:work|content)|rights?\s+holder'?s?\s+work|"
    r"work|artist|album|movie|film|song|track|book|series|program(?:me)?|event|match|channel|"
    r"broadcast|photo(?:graph)?|software|game|course|werk|titel|obra|t[íi]tulo|[œo]euvre|titre|"
    r"evento|partido|sendung|veranstaltung|spiel|opera|titolo)"
    r"(?:\s*\(s\))?[ \t]{0,20}(?:name[ \t]{0,20})?[:=][ \t]*\S", re.I | re.M)
_WORK_PHRASE = re.compile(
    r"\bthe\s+title\s+in\s+question\s+is\b|\bcopyrighted\s+works?\s+(?:is|are|entitled|titled|"
    r"named|known\s+as|described|identified|listed)\b|\bworks?\s+(?:entitled|titled)\b|"
    r"\bcopyright\s+(?:in|of|to)\s+(?:the\s+)?(?:work|film|movie|song|album|book|title)\b|"
    r"\b(?:owner|holder|proprietor)s?\s+of\s+(?:the\s+)?(?:exclusive\s+)?(?:copyrights?|rights)\s+"
    r"(?:in|to|of)\b|"
    r"\bworks?\s+(?:listed|identified|described|set\s+out)\s+(?:below|above|in\s+the\s+"
    r"(?:attached|enclosed|following))|"
    r"\bour\s+(?:client's\s+)?(?:proprietary|copyrighted|original|protected)\s+(?:[\w-]+\s+){0,3}?"
    r"(?:source\s+code|software|firmware|photographs?|images?|pictures?|content|articles?|"
    r"books?|films?|music|videos?|broadcasts?|works?)\b|"
    r"\b(?:own|hold)s?\s+the\s+(?:exclusive\s+)?(?:copyrights?|rights)\s+(?:in|to|of)\b|"
    r"\bour\s+(?:client's\s+)?(?:photographs?|images?|pictures?|films?|software|books?|music|"
    r"videos?|articles?|source\s+code|fonts?|illustrations?|recordings?|songs?)\s+"
    r"(?:is|are|was|were|has|have)\b|"
    r"\btitular\s+de\s+los\s+derechos\s+(?:\w+\s+)?(?:de|sobre)\b|"
    r"\b(?:inhaber|inhaberin)\s+der\s+(?:\w+\s+)?rechte\s+an\b|"
    r"\btitulaire\s+des\s+droits\s+(?:\w+\s+)?(?:sur|de)\b",
    re.I)
# A quoted title after a word for a work: the "Atlas CPA Review" course, photograph "Lago".
_QUOTED_TITLE = re.compile(r"[\"“«„]([^\"”»“\n]{2,120})[\"”»“]")
_WORK_NOUN = re.compile(
    r"\b(?:film|movie|song|album|track|book|novel|e-?book|series|episode|season|show|"
    r"telenovela|programme|program|broadcast|course|video|photo(?:graph)?|image|picture|game|"
    r"software|app|font|article|paper|artwork|illustration|match|event|channel|"
    r"pel[íi]cula|canci[óo]n|libro|serie|fotograf[íi]a|obra|partido|foto|bild|werk|lied|"
    r"roman|spielfilm|chanson|livre|[œo]euvre|s[ée]rie|photo|canal|filme|livro|m[úu]sica|"
    r"fotografie|fotografien|lichtbild|lichtbildwerke?|lichtbilder|aufnahme|fotograaf|"
    r"foto's)s?\b",
    re.I)
_MATERIAL = re.compile(
    r"infring|unauthori[sz]ed|pirat|file\s?name|torrent|\bhash\b|magnet:|btih|"
    r"without\s+(?:a\s+)?(?:licen[cs]e|permission|authori[sz]ation)|sin\s+autorizaci|"
    r"ohne\s+(?:lizenz|genehmigung|erlaubnis)|sans\s+autorisation|zonder\s+toestemming|"
    r"sem\s+autoriza|senza\s+autorizzazione|retransmi|stream", re.I)
MAX_QUOTES = 50
_EMAIL = re.compile(r"\b[\w.+-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63})+\b")
_PHONE = re.compile(
    r"\b(?:phone|tel(?:ephone)?|fax|mobile|call)\b[^:\n\d]{0,15}[:.]?[ \t]{0,5}\+?[\d(]"
    r"[\d \t().-]{6,20}\d|\(?\b\d{3}\)?[ .-]\d{3}[ .-]\d{4}\b|"
    r"\+\d{1,3}[ .-]?\(?\d{1,4}\)?(?:[ .-]?\d{2,4}){2,4}\b",
    re.I)
_POSTAL = re.compile(
    r"^[ \t>]*(?i:(?:mailing|postal|street)\s+)?(?i:address)[ \t]*:[ \t]*\S|"
    r"\b(?i:P\.?\s?O\.?\s+Box)\s+\d|"
    r"\b\d{1,6}\s+(?:[A-Z][\w.'-]*\s+){1,4}(?i:street|st\.|avenue|ave\.?|boulevard|blvd\.?|road|"
    r"rd\.|drive|dr\.|lane|ln\.|way|place|plaza|square|suite|parkway|pkwy)\b", re.M)
# "good faith ... belie(f/ve)", or "belie(f/ve)... in good faith": the latter was the pattern
# ``beli\w*[\s\S]{0,20}?in\s+good\s+faith``, quadratic on a long word full of "beli" (every
# one scanned to the end of the word); see has_good_faith.
_GOOD_FAITH = re.compile(r"good[\s-]+faith[\s\S]{0,60}?\bbeli", re.I)
_BELI = re.compile(r"beli", re.I)
_WORD_REST = re.compile(r"\w*+")
_IN_GOOD_FAITH = re.compile(r"in\s++good\s++faith", re.I)
_GOOD_FAITH_OTHER = re.compile(
    r"\b(?:state|declare|assert|affirm|confirm|believe)s?\s+(?:\w+\s+){0,3}?in\s+good\s+faith\b|"
    r"\bin\s+good\s+faith\s+that\b|\bde\s+buena\s+fe\b|\bde\s+bonne\s+foi\b|"
    r"\bin\s+gutem\s+glauben\b|\bnach\s+treu\s+und\s+glauben\b|\bte\s+goeder\s+trouw\b|"
    r"\bde\s+boa[\s-]f[ée]\b|\bin\s+buona\s+fede\b", re.I)
_ACCURACY = re.compile(
    r"\baccura(?:te|cy)\b|\btrue\s+and\s+(?:correct|accurate|complete)\b|\bexact[ao]s?\b|"
    r"\bveraz\b|\bexacte?s?\b|\bpr[ée]cises?\b|\bzutreffend\b|\brichtig\b|\bkorrekt\b|"
    r"\bjuist\b|\bcorrect[ao]?s?\b|\bprecis[ao]s?\b|\bver[ií]dic[ao]s?\b", re.I)
_PERJURY = re.compile(
    r"penalty\s+of\s+perjury|pena\s+de\s+perjurio|peine\s+de\s+parjure|"
    r"pena\s+de\s+perj[úu]rio|pena\s+di\s+spergiuro|eidesstattlich|an\s+eides\s+statt|"
    r"straffe\s+van\s+meineed", re.I)
_AUTHORITY = re.compile(
    r"authori[sz]|on\s+behalf\s+of|\bowner\b|\bagent\b|exclusive\s+right|autoriza|"
    r"en\s+nombre\s+de|titular|autoris[ée]|au\s+nom\s+de|bevollm[äa]chtigt|im\s+auftrag|"
    r"berechtigt|namens|gemachtigd|em\s+nome\s+d|per\s+conto\s+d", re.I)
_INFOHASH = re.compile(r"\b(?:btih:|info[ _-]?hash[ \t]{0,5}[:=]?[ \t]{0,5})([0-9a-fA-F]{40}|"
                       r"[A-Z2-7]{32})\b", re.I)


def _has_signature(text: str, pgp_signed: bool) -> bool:
    if _SLASH_S.search(text) or _SIGNED_LINE.search(text) or _SIGNED_PHRASE.search(text):
        return True
    for m in _CLOSING.finditer(text):
        following = [line for line in text[m.end():m.end() + 400].splitlines() if line.strip()]
        if (following and _NAME_LINE.match(following[0].rstrip())
                and len(following[0].split()) <= 6 and not _CLOSING.match(following[0])):
            return True
    return pgp_signed or _typed_name_at_the_end(text)


def _typed_name_at_the_end(text: str) -> bool:
    """A person's name among the letter's last lines, followed by a title or role line."""
    last = [line.strip() for line in text[-1500:].splitlines() if line.strip()][-8:]
    return any(_PERSON.match(line[:80]) and _TITLE.search(following[:120])
               for line, following in pairwise(last))


def has_good_faith(text: str) -> bool:
    """Whether ``good[\\s-]+faith[\\s\\S]{0,60}?\\bbeli|beli\\w*[\\s\\S]{0,20}?in\\s+good\\s+faith``
    (re.I) is found in *text*, in linear time. After "beli", ``\\w*`` may end anywhere in its
    word and 0-20 characters may follow: "in good faith" must start from 4 characters after
    "beli" to 20 past the end of its word. A later "beli" of the same word reaches no further
    than the first, so only the first of each word is tried."""
    if _GOOD_FAITH.search(text):
        return True
    starts = [m.start() for m in _IN_GOOD_FAITH.finditer(text)]
    if not starts:
        return False
    word_end = -1
    for beli in _BELI.finditer(text):
        if beli.start() < word_end:
            continue  # in the word of the "beli" just tried
        rest = _WORD_REST.match(text, beli.end())
        word_end = rest.end() if rest else beli.end()
        i = bisect.bisect_left(starts, beli.end())
        if i < len(starts) and starts[i] <= word_end + 20:
            return True
    return False


def _names_a_work(text: str) -> bool:
    if _WORK.search(text) or _WORK_PHRASE.search(text):
        return True
    for n, m in enumerate(_QUOTED_TITLE.finditer(text)):
        if n >= MAX_QUOTES:
            break
        around = text[max(0, m.start() - 80):m.start()] + " " + text[m.end():m.end() + 40]
        if _WORK_NOUN.search(around):
            return True
    return False


def good_faith_statement(text: str) -> bool:
    """A good-faith statement: "good faith belief" (``has_good_faith``), or "good faith" said
    of the complaint in other words or languages ("we state in good faith", "de buena fe")."""
    return has_good_faith(text) or bool(_GOOD_FAITH_OTHER.search(text))


def dmca_elements(text: str, *, located: bool, pgp_signed: bool = False,
                  url_located: bool = False, reply_address: bool = False) -> dict[str, bool]:
    """Which of the six 512(c)(3)(A) elements *text* carries. *located*: the infringing
    material has a location (a reported URL, an IP address, a torrent hash); *url_located*:
    a reported URL, which is the material's own identification; *reply_address*: the notice
    came from an address one can answer (contact information by itself)."""
    text = text[:MAX_TEXT_CHARS]
    return {
        "signature": _has_signature(text, pgp_signed),
        "work": _names_a_work(text),
        "infringing_material": located and (url_located or bool(_MATERIAL.search(text))),
        "contact": bool(reply_address or _EMAIL.search(text) or _PHONE.search(text)
                        or _POSTAL.search(text)),
        "good_faith": good_faith_statement(text),
        "accuracy_perjury": bool(_ACCURACY.search(text) and _PERJURY.search(text)
                                 and _AUTHORITY.search(text)),
    }


def missing_elements(elements: dict[str, bool]) -> list[str]:
    return [ELEMENT_NAMES[key] for key in ELEMENTS if not elements.get(key)]


# -- where and when -------------------------------------------------------------------------

_IP_PHRASE = re.compile(
    r"\bIP(?:v[46])?(?:[ \t_-]{0,5}address(?:es)?)?\b[ \t]{0,20}(?:(?:[:=]|\bis\b|\bwas\b|\bof\b)"
    r"[ \t]{0,20})?\(?"
    r"(?P<v>[0-9A-Fa-f:.\[\]]{3,60})", re.I)
_PORT = re.compile(r"\bport(?:[ \t]{1,5}(?:id|number|no\.?))?[ \t]{0,20}(?:[:=#][ \t]{0,20})?"
                   r"(?P<p>\d{1,5})\b", re.I)
_RIGHTSCORP = re.compile(
    r"infringed\s+upon\s+by\s+a\s+computer\s+at\s+IP\s+Address\s+(?P<ip>[0-9A-Fa-f:.\[\]]{3,60}?)"
    r"[.,]?\s+on\s+(?P<time>\d{4}-\d{1,2}-\d{1,2}[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?"
    r"(?:[ \t]*(?:GMT|UTC|Z|[+-]\d{2}:?\d{2}))?)", re.I)
_TIME_LINE = re.compile(
    r"^[ \t>*-]{0,20}(?P<label>[^\W\d_](?:[^\W\d_]|[ '/&()-]){0,60}?)[ \t]{0,20}[:=][ \t]{0,20}"
    r"(?P<value>[^\n]{6,90})$",
    re.M)
_TIME_LABEL = re.compile(r"infring|incident|observ|detect|time\s?stamp|\btime\b|date\s*(?:/|and|&)"
                         r"\s*time|detecci|detec[çc][ãa]o|fecha\s+y\s+hora|d[ée]tect|constat|"
                         r"festgestellt|erkannt|zeitpunkt|tijdstip|rilevat|seen", re.I)
_NOT_OCCURRENCE = re.compile(r"notice|sent|report|release|publi|regist|expir|birth|creat", re.I)
_EASTERN = re.compile(r"\b(?:north\s+american\s+)?eastern(?:\s+(?:standard|daylight))?\s+time\b",
                      re.I)
_ALL_TIMES = re.compile(r"\b(?:all\s+)?times?\s+(?:are|is|shown|listed|given|stated)\b[^.\n]{0,40}?"
                        r"\b(?P<zone>UTC|GMT|(?:north\s+american\s+)?eastern)", re.I)
_OWNER = re.compile(r"\bon\s+behalf\s+of\s+(?:our\s+client\s+)?(?:the\s+)?"
                    r"(?P<owner>[A-Z0-9][^,;:\n()]{1,80})")
_SENTENCE_END = re.compile(r"(?<!\bBros)(?<!\bInc)(?<!\bLtd)(?<!\bCo)(?<!\bCorp)(?<!\bPty)"
                           r"(?<!\b[A-Z])\.(?:\s|$)")
_WORK_VALUE = re.compile(r"^[ \t>*-]{0,20}(?:title|infringed\s+work|copyrighted\s+work|work)"
                         r"[ \t]{0,20}:[ \t]{0,20}(?P<v>[^\n]{1,200})$", re.I | re.M)

# Sites every notice links to that are no one's infringing copy.
_NOISE_HOSTS = ("pgp.mit.edu", "keys.openpgp.org", "keyserver.ubuntu.com", "copyright.gov",
                "law.cornell.edu", "w3.org", "acns.net", "lumendatabase.org",
                "chillingeffects.org", "uscode.house.gov")


def _suffix_match(host: str, domains: list[str]) -> bool:
    return any(host == d or host.endswith("." + d) for d in domains)


def sender_domains(mail: Mail) -> list[str]:
    """The sender's own domains (From, Reply-To, Sender), with their parent for subdomains."""
    values = [mail.header(name) or "" for name in ("From", "Reply-To", "Sender")]
    found: list[str] = []
    for _, address in getaddresses(values):
        if "@" not in address:
            continue
        domain = address.rsplit("@", 1)[1].strip().strip(">").lower().rstrip(".")
        found.append(domain)
        parent = domain.split(".")[1:]
        # mail.rights.example -> rights.example too, but never a public suffix like co.uk
        if len(parent) >= 3 or (len(parent) == 2 and not (len(parent[1]) == 2
                                                           and len(parent[0]) <= 3)):
            found.append(".".join(parent))
    return unique(found)


def split_urls(urls: list[str], own: list[str]) -> tuple[list[str], list[str]]:
    """(reported URLs, the sender's own and reference links)."""
    reported: list[str] = []
    other: list[str] = []
    for url in urls:
        host = host_of(url) or ""
        if _suffix_match(host, own) or _suffix_match(host, list(_NOISE_HOSTS)):
            other.append(url)
        else:
            reported.append(url)
    return reported, other


def _time_value(value: str, text: str) -> tuple[datetime | None, bool, str | None]:
    """(UTC time, zone stated, a warning) for a time string from a notice."""
    when, stated = parse_time(value)
    if when is None or stated:
        return when, stated, None
    zone = "eastern" if _EASTERN.search(value) else None
    if zone is None:
        m = _ALL_TIMES.search(text)
        zone = m.group("zone").lower() if m else None
    if zone in ("utc", "gmt"):
        return when, True, None
    if zone and "eastern" in zone:
        try:
            local = when.replace(tzinfo=ZoneInfo("America/New_York"))
        except ZoneInfoNotFoundError:
            return when, False, None
        return (local.astimezone(UTC), True,
                "time in 'Eastern Time' taken as America/New_York (EST/EDT by date)")
    return when, False, None


def locate(report: ParsedReport, text: str, mail: Mail) -> None:
    """URLs, domains, IP, port and time of a notice's *text* into *report*."""
    own = sender_domains(mail)
    # a URL in a CSV row ends at its comma ("http://x/a.m3u8,192.0.2.1,8000")
    urls = unique(u.split(",", 1)[0] if "," in u and "/" not in u.split(",", 1)[1] else u
                  for u in find_urls(text, limit=MAX_URLS))
    reported, other = split_urls(urls, own)
    report.urls = reported
    report.domains = domains_of(reported)
    if other:
        report.extra["other_urls"] = other[:20]

    fanged = refang(text)
    rightscorp = _RIGHTSCORP.search(fanged)
    labelled: list[str] = []
    if rightscorp:
        labelled.append(clean_ip(rightscorp.group("ip").rstrip(".")) or "")
    for n, m in enumerate(_IP_PHRASE.finditer(fanged)):
        if n >= MAX_IPS:
            break
        labelled.append(clean_ip(m.group("v").rstrip(".,;)")) or "")
    labelled = unique(labelled)
    every = find_ips(fanged, limit=MAX_IPS)
    report.extra["ips"] = unique([*labelled, *every])[:MAX_IPS]
    if labelled:
        report.source_ip = labelled[0]
        if len(labelled) > 1:
            report.warnings.append("the notice names several IP addresses ("
                                   + ", ".join(labelled[:5]) + "): the first taken")
    elif every:
        report.source_ip = every[0]
        report.inferred.append("source_ip")
        if len(every) > 1:
            report.warnings.append("the notice names several IP addresses ("
                                   + ", ".join(every[:5]) + "): the first taken")

    port = _PORT.search(fanged)
    if port and int(port.group("p")) <= 65535:
        report.source_port = int(port.group("p"))

    raw: str | None = rightscorp.group("time") if rightscorp else None
    if raw is None:
        for m in _TIME_LINE.finditer(fanged):
            label = m.group("label")
            if _TIME_LABEL.search(label) and not _NOT_OCCURRENCE.search(label):
                candidate = m.group("value").strip()
                if parse_time(candidate)[0] is not None or _NUMERIC_TIME.match(candidate):
                    raw = candidate
                    break
    if raw is not None:
        when, stated, warning = _row_time(raw, fanged)
        if when is not None:
            report.occurred_at, report.occurred_raw = when, raw
            if warning:
                report.warnings.append(warning)
            if not stated:
                report.inferred.append("occurred_at")
                report.warnings.append("time without zone, taken as UTC")


_NO_REPLY = re.compile(r"^(?:no-?reply|do-?not-?reply|noreply|mailer-daemon|postmaster)@", re.I)


def _reply_address(mail: Mail) -> str | None:
    """The address a notice can be answered at (Reply-To, else From), unless a no-reply one."""
    for name in ("Reply-To", "From"):
        _, address = parse_address(mail.header(name) or "")
        if "@" in address and not _NO_REPLY.match(address):
            return address
    return None


def reporter(report: ParsedReport, mail: Mail) -> None:
    name, address = parse_address(mail.from_)
    if "@" in address:
        report.reporter_address = address
    name = name.strip().strip('"').strip()
    if name and "@" not in name:
        report.reporter_org = name
    elif "@" in address:
        report.reporter_org = address.rsplit("@", 1)[1].lower()
        report.inferred.append("reporter_org")


# -- a table of peers or servers --------------------------------------------------------------

MAX_ROWS = 200
_ROW_TIME = re.compile(
    r"\b\d{4}-\d{2}-\d{2}[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?"
    r"(?:[ \t]?(?:UTC|GMT|Z|[+-]\d{2}:?\d{2}|E[SD]?T|C[ES]S?T|MES?Z))?\b|"
    r"\b\d{1,2}[/.]\d{1,2}[/.]\d{4},?[ \t]+\d{1,2}:\d{2}(?::\d{2})?(?:[ \t]?[AaPp][Mm])?"
    r"(?:[ \t]?(?:UTC|GMT|E[SD]?T|C[ES]S?T|MES?Z|[+-]\d{2}:?\d{2}))?\b")
_NUMERIC_TIME = re.compile(
    r"(?P<a>\d{1,2})(?P<sep>[/.])(?P<b>\d{1,2})[/.](?P<y>\d{4}),?[ \t]+(?P<h>\d{1,2}):(?P<mi>\d{2})"
    r"(?::(?P<s>\d{2}))?(?:[ \t]?(?P<ampm>[AaPp][Mm]))?(?:[ \t]?(?P<zone>\S+))?$")
_ZONES = {"utc": "UTC", "gmt": "UTC", "z": "UTC", "et": "America/New_York",
          "est": "America/New_York", "edt": "America/New_York", "cet": "Europe/Berlin",
          "cest": "Europe/Berlin", "mez": "Europe/Berlin", "mesz": "Europe/Berlin"}
_PORT_AFTER_IP = re.compile(
    r"(?::(?P<colon>\d{1,5})\b|[ \t|,;]{1,20}(?P<column>\d{1,5})(?=[ \t|,;]))")


def table_rows(text: str) -> list[tuple[str, int | None, str | None, list[str]]]:
    """The rows of a table of peers or servers (one line, one address): (IP, its port, the
    row's time as written, the row's URLs). Lines naming several addresses are no row."""
    rows: list[tuple[str, int | None, str | None, list[str]]] = []
    for line in refang(text).splitlines():
        if len(rows) >= MAX_ROWS:
            break
        ips = find_ips(line, limit=3)
        if len(ips) != 1:
            continue
        ip = ips[0]
        port = None
        at = line.find(ip)
        while at >= 0 and port is None:
            m = _PORT_AFTER_IP.match(line, at + len(ip))
            value = m and (m.group("colon") or m.group("column"))
            if value and 0 < int(value) <= 65535:
                port = int(value)
            at = line.find(ip, at + len(ip))
        when = _ROW_TIME.search(line)
        rows.append((ip, port, when.group(0) if when else None, find_urls(line, limit=5)))
    return rows


def _row_time(raw: str, text: str) -> tuple[datetime | None, bool, str | None]:
    """A row's time: ISO forms as ``parse_time`` reads them; "11/22/2026 11:41 PM ET" (month
    first, unless the first number cannot be a month) and "22.11.2026 14:05:11 MEZ" here."""
    m = _NUMERIC_TIME.match(raw.strip())
    if m is None:
        return _time_value(raw, text)
    a, b = int(m.group("a")), int(m.group("b"))
    month, day = (b, a) if m.group("sep") == "." or a > 12 else (a, b)
    hour = int(m.group("h")) % 12 + (12 if (m.group("ampm") or "").lower() == "pm" else 0) \
        if m.group("ampm") else int(m.group("h"))
    try:
        local = datetime(int(m.group("y")), month, day, hour, int(m.group("mi")),
                         int(m.group("s") or 0))
    except ValueError:
        return None, False, None
    zone = _ZONES.get((m.group("zone") or "").lower())
    if zone is None:
        stated = m.group("zone") is None and bool(_ALL_TIMES.search(text))
        return local.replace(tzinfo=UTC), stated, None
    try:
        when = local.replace(tzinfo=ZoneInfo(zone)).astimezone(UTC)
    except ZoneInfoNotFoundError:
        return local.replace(tzinfo=UTC), False, None
    return when, True, None


def split_rows(report: ParsedReport, text: str) -> list[ParsedReport]:
    """One report per row of a table of at least two addresses, each with its own port, time
    and URLs; *report* alone otherwise (its port and time from its row when it had none)."""
    rows = [r for r in table_rows(text) if r[2] is not None]
    if len({ip for ip, *_ in rows}) < 2:
        for ip, port, raw, _ in rows:
            if ip == report.source_ip:
                _apply_row(report, port, raw, text)
                break
        return [report]
    reports: list[ParsedReport] = []
    seen: set[str] = set()
    for ip, port, raw, urls in rows:
        if ip in seen:
            continue
        seen.add(ip)
        row = copy.deepcopy(report)
        row.source_ip, row.source_port, row.occurred_at, row.occurred_raw = ip, None, None, None
        row.inferred = [i for i in row.inferred if i not in ("source_ip", "occurred_at")]
        row.warnings = [w for w in row.warnings if not w.startswith(
            ("the notice names several IP", "time without zone"))]
        reported = [u for u in report.urls if u in urls or host_of(u) == ip]
        row.urls, row.domains = reported, domains_of(reported)
        _apply_row(row, port, raw, text)
        reports.append(row)
    return reports


def _apply_row(report: ParsedReport, port: int | None, raw: str | None, text: str) -> None:
    if port is not None and report.source_port is None:
        report.source_port = port
    if raw is None or report.occurred_at is not None:
        return
    when, stated, warning = _row_time(raw, text)
    if when is None:
        return
    report.occurred_at, report.occurred_raw = when, raw
    if warning:
        report.warnings.append(warning)
    if not stated:
        report.inferred.append("occurred_at")
        report.warnings.append("time without zone, taken as UTC")


# -- the parser -----------------------------------------------------------------------------


_ATTACHED_TEXT = (".txt", ".csv", ".tsv")
_ATTACHED_TYPES = ("text/plain", "text/csv", "text/tab-separated-values")


def notice_text(mail: Mail) -> tuple[str, bool]:
    """The notice's human text, bounded, PGP armour removed; and whether it was clear-signed.
    A letter attached as text and a CSV of detections are part of the notice: appended."""
    text = mail.body_text(limit=MAX_TEXT_CHARS)
    for part in mail.parts:
        if len(text) >= MAX_TEXT_CHARS:
            break
        if part.filename and (part.content_type in _ATTACHED_TYPES
                              or part.name.endswith(_ATTACHED_TEXT)):
            text += "\n\n" + part.text()[:MAX_TEXT_CHARS - len(text)]
    text = text[:MAX_TEXT_CHARS].replace("\r\n", "\n").replace("\r", "\n")
    return clear_signed_text(text)


def reads_as_notice(subject: str, body: str) -> bool:
    """A copyright notice: named so in the subject, or named and worded so in the body, or
    making the two statements only a 512(c)(3) notice makes (good faith, penalty of perjury)."""
    if _MARKER.search(subject):
        return True
    if _MARKER.search(body) and _LEGAL.search(body):
        return True
    return bool(_PERJURY.search(body) and good_faith_statement(body))


# -- the format, as the registry and the classifier know it ------------------------------

DMCA_VOCABULARY: dict[str, tuple[str, float]] = {
    "notice": ("copyright", 0.95),
}
DMCA_PATTERNS: tuple[tuple[str, str, float], ...] = ((r".", "copyright", 0.9),)
DMCA = Format("dmca", machine=False, vocabulary=DMCA_VOCABULARY, patterns=DMCA_PATTERNS)


class DmcaParser:
    """Free-text copyright notices: one report, with the 512(c)(3)(A) elements checked."""

    name = "dmca"
    stage = Stage.SENDER
    formats = (DMCA,)
    order = 20

    def matches(self, mail: Mail) -> bool:
        body = mail.body_text(limit=MAX_MATCH_CHARS)
        return reads_as_notice(mail.subject, body)

    def parse(self, mail: Mail) -> ParseResult:
        text, pgp_signed = notice_text(mail)
        mail.deadline.check()
        report = ParsedReport(format="dmca", type_hint="dmca:notice")
        locate(report, text, mail)
        mail.deadline.check()
        reporter(report, mail)
        report.evidence = excerpt(text, ParsedReport.MAX_EVIDENCE) or None

        hashes = unique([m.group(1).lower()
                         for m in islice(_INFOHASH.finditer(text), MAX_IPS)])
        if hashes:
            report.extra["infohashes"] = hashes
        elements = dmca_elements(
            text, located=bool(report.source_ip or report.urls or hashes),
            pgp_signed=pgp_signed, url_located=bool(report.urls),
            reply_address=bool(_reply_address(mail)))
        report.extra["dmca_elements"] = elements
        report.extra["pgp_signed"] = pgp_signed
        owner = _OWNER.search(text)
        if owner:
            name = _SENTENCE_END.split(owner.group("owner"), maxsplit=1)[0]
            report.extra["on_behalf_of"] = name.strip().rstrip(".")
        work = _WORK_VALUE.search(text)
        if work:
            report.extra["work"] = work.group("v").strip()
        report.extra["style"] = "rightscorp" if _RIGHTSCORP.search(refang(text)) else "letter"

        missing = missing_elements(elements)
        if missing:
            # incomplete, not parked: the case opens when the location is ours, and the
            # copyright specialist sees what is missing
            warning = "DMCA notice incomplete, missing: " + ", ".join(missing)
            if elements["work"] and elements["infringing_material"] and elements["contact"]:
                warning += (" (work, material and contact are there: 512(c)(3)(B)(ii) asks us "
                            "to try to reach the complainant)")
            report.warnings.append(warning)
            report.extra["dmca_incomplete"] = [k for k in ELEMENTS if not elements.get(k)]
        if _COUNTER.search(mail.subject):
            report.review_reasons.append("reads as a DMCA counter-notice (512(g)), "
                                         "not a complaint")
        if not report.source_ip and not report.urls:
            report.review_reasons.append("the notice names no IP address or URL")
        return ParseResult(Disposition.REPORT, "dmca", split_rows(report, text))


def parsers(message_id_domain: str) -> list[Parser]:
    """This file's parsers, for the registry (*message_id_domain*: our notices' Message-IDs)."""
    return [DmcaParser()]

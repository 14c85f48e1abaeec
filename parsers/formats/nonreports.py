"""Mail at abuse@ that is no complaint, recognised by what it says, with the reason.

A guard, tried after the reply, bounce and DMARC guards and before any report format. Each kind
is named in ``result.extra["non_report"]``:

* ``ticket-ack``: another abuse desk's, registrar's or helpline's automatic acknowledgement or
  ticket update ("your report has been received", "ticket #123 has been closed");
* ``reply-to-reporter``: another provider's abuse desk answering a complaint (ours, or one of
  our reporter's): "thank you for your report", "the IP address you reported", "resolved";
  and any mail that quotes or attaches a complaint our own desk sent (``abuse@``, ``noc@``,
  ``security@`` ... at the domain of our host name), as a desk telling its customer "abuse
  originating from an IP you are using" with us in copy does;
* ``survey``: "how did we do", "how satisfied were you", a net-promoter scale;
* ``newsletter``: list or bulk mail (``List-Unsubscribe``, ``List-Id``, ``Precedence: bulk``)
  that reads like a newsletter or an announcement, and sales mail that asks for a demo;
* ``challenge``: a challenge-response system asking us to confirm we are human;
* ``bounce``: a delivery failure in words (the DSN structure is the bounce guard's);
* ``out-of-office``: a vacation or absence notice;
* ``other``: a blocklist's delisting notice, a feedback-loop enrolment confirmation.

Headers alone decide nothing: ``Auto-Submitted: auto-replied`` is on real CERT notices too. The
words must say what the mail is, in its own text (quoted replies and the complaint a desk quotes
back are left out), and a message that carries a complaint's evidence is never taken for one of
these: an attached ARF, X-ARF, XARF, CSV or JSON, a forwarded message, or a line that names an
address with a time (an incident table, a log line). Precision over recall: a real complaint
taken for an acknowledgement would be silently ignored.
"""

from __future__ import annotations

import re
import weakref

from ...core.fields import find_ips, find_urls, refang
from ...core.headers import parse_address
from ...core.mail import Mail, _strip_html
from ..base import Disposition, Format, Parser, ParseResult, Stage

TICKET_ACK = "ticket-ack"
REPLY_TO_REPORTER = "reply-to-reporter"
SURVEY = "survey"
NEWSLETTER = "newsletter"
CHALLENGE = "challenge"
BOUNCE = "bounce"
OUT_OF_OFFICE = "out-of-office"
OTHER = "other"
KINDS = (TICKET_ACK, REPLY_TO_REPORTER, SURVEY, NEWSLETTER, CHALLENGE, BOUNCE, OUT_OF_OFFICE,
         OTHER)

MAX_TEXT = 20_000  # characters of a message's own text read

# -- what the mail is not: evidence of a complaint --------------------------------------------

_EVIDENCE_TYPES = {"message/feedback-report", "message/rfc822", "message/global",
                   "text/rfc822-headers", "message/rfc822-headers", "text/csv",
                   "application/csv", "application/json", "application/xarf+json",
                   "application/zip", "application/x-zip-compressed", "application/gzip"}
_EVIDENCE_NAMES = re.compile(r"\.(?:csv|json|zip|gz|eml|xml|txt|log|pcap)$", re.I)
_FORWARD = re.compile(
    r"^\s{0,8}(?:-{2,20}\s{0,3}(?:forwarded message|original message follows|"
    r"weitergeleitete nachricht|message transf[ée]r[ée]|mensaje reenviado)|"
    r"begin forwarded message:)", re.I | re.M)
_FORWARD_SUBJECT = re.compile(r"^\s{0,5}(?:fwd?|wg|tr|rv|vs|doorst)\s{0,3}:", re.I)
# A time on a line: 2026-11-23 09:14, 23.11.2026 10:12, Nov 23 09:14:02, 09:14:02 UTC
_TIME = re.compile(
    r"\b\d{4}-\d{2}-\d{2}[ T]\d{1,2}:\d{2}|\b\d{1,2}[./]\d{1,2}[./]\d{2,4},? \d{1,2}:\d{2}|"
    r"\b[A-Z][a-z]{2} {1,2}\d{1,2} \d{2}:\d{2}:\d{2}|\b\d{1,2}:\d{2}:\d{2}\b", re.M)

_PASTED_HEADER = re.compile(r"^\s{0,8}(?:received: from|x-originating-ip:|authentication-results:)",
                            re.I | re.M)
_ACCUSES = re.compile(
    r"\b(?:(?:in|on|from|of) your (?:network|customer'?s?|server|range|address space|"
    r"infrastructure|as\b)|hosted (?:by|with|on) you|your (?:customer|client|subscriber)s?\b|"
    r"please (?:remove|investigate|take (?:appropriate )?action|stop|suspend|take (?:it|them) "
    r"down|look into|check)|"
    r"(?:in|aus) ihrem netz|ihr(?:e|en)? kund(?:e|en|in)|bitte (?:entfernen|pr[üu]fen|"
    r"unterbinden|sperren)|votre r[ée]seau|votre client|su red|su cliente)", re.I)

# -- the message's own text --------------------------------------------------------------------

# Where a reply's quote begins: everything after is the other side's mail.
_QUOTE_START = re.compile(
    r"^\s{0,8}(?:-{3,20}\s{0,3}(?:original message|urspr[üu]ngliche nachricht|"
    r"message d'origine|mensaje original)\s{0,3}-{0,20}\s*$|"
    r"on .{1,200} wrote:\s*$|am .{1,200} schrieb .{0,200}:\s*$|"
    r"le .{1,200} a [ée]crit\s?:\s*$|el .{1,200} escribi[óo]:\s*$|"
    r"op .{1,200} schreef .{0,200}:\s*$)", re.I | re.M)
# A separator line, after which a ticket system or a mail server puts what it answers or returns.
_SEPARATOR = re.compile(r"^\s{0,8}(?:-{20,200}\s*$|_{20,200}\s*$|"
                        r"-{2,5} ?below this line is a copy of the message)", re.I | re.M)


def own_text(mail: Mail, separators: bool = True) -> str:
    """The text the sender wrote: its text parts (not those of attached messages), without
    quoted lines and without what follows a reply's quote header (and, with *separators*, a
    separator line), bounded."""
    texts: list[str] = []
    html: list[str] = []
    inside: int | None = None  # depth of an attached message being skipped
    for part in mail.parts:
        if inside is not None and part.depth > inside:
            continue
        inside = None
        if part.content_type in ("message/rfc822", "message/global"):
            inside = part.depth
            continue
        if part.filename:
            continue
        if part.content_type == "text/plain":
            texts.append(part.text()[:MAX_TEXT])
        elif part.content_type == "text/html":
            html.append(_strip_html(part.text()[:MAX_TEXT * 4]))
    if not texts and not html and not mail.msg.is_multipart():
        texts = [mail.body_text(MAX_TEXT)]
    text = "\n".join(texts or html)[:MAX_TEXT]
    lines = [line for line in text.splitlines() if not line.lstrip().startswith(">")]
    text = "\n".join(lines)
    cut = _QUOTE_START.search(text)
    text = text[:cut.start()] if cut else text
    cut = _SEPARATOR.search(text) if separators else None
    return text[:cut.start()] if cut else text


def has_evidence(mail: Mail, text: str) -> str | None:
    """Why *mail* carries a complaint's evidence, or None: an attached report or message, a
    forwarded message, or a line of its own text naming an address with a time."""
    for part in mail.parts:
        if part.content_type in _EVIDENCE_TYPES:
            return f"a {part.content_type} part"
        if part.filename and _EVIDENCE_NAMES.search(part.filename):
            return f"an attachment {part.filename[:80]}"
    if _FORWARD_SUBJECT.search(mail.subject) or _FORWARD.search(text):
        return "a forwarded message"
    if _PASTED_HEADER.search(text):
        return "pasted headers"
    for line in text.splitlines():
        if len(line) < 2000 and _TIME.search(line) and find_ips(line, 3):
            return "an address with a time"
    return None


def asks_for_action(text: str) -> bool:
    """Whether *text* accuses something of being ours and asks us to act: what a complaint
    does and a newsletter, a survey or a notice does not."""
    return bool(_ACCUSES.search(text))


# -- the kinds, in words -----------------------------------------------------------------------

_AUTO_HEADER_VALUES = ("auto-replied", "auto-generated", "auto-notified")
_NOREPLY = re.compile(r"^(?:no-?reply|do-?not-?reply|donotreply|mailer-daemon|postmaster|"
                      r"auto-?reply|notifications?)(?:[+-][^@]{0,64})?@", re.I)
_AUTOMATIC = re.compile(
    r"\b(?:automatically generated|automated (?:response|reply|message)|"
    r"this is an automat(?:ed|ic) (?:message|response|reply|notification)|"
    r"do not reply to this (?:message|e-?mail)|please do not reply|no need to reply|"
    r"automatisch (?:erstellt|erzeugt|generiert)|automatische (?:nachricht|antwort)|"
    r"bitte antworten sie nicht|mensaje (?:generado )?autom[áa]tico|no responda|"
    r"message automatique|ne pas r[ée]pondre)", re.I)

_OOO_SUBJECT = re.compile(
    r"^\s{0,5}(?:auto(?:matic)?[ -]?(?:reply|response|antwort)|out of (?:the )?office|"
    r"abwesenheitsnotiz|abwesend|r[ée]ponse automatique|risposta automatica|"
    r"respuesta autom[aá]tica|automatisch(?:e)? antwort|i am (?:currently )?(?:out|away)|"
    r"on vacation|vacation reply|afwezig|fuera de la oficina|abwesenheit|absence|"
    r"automatisch antwoord|fuori sede|resposta autom[áa]tica|ausente)", re.I)
_OOO_TEXT = re.compile(
    r"\b(?:out of (?:the )?office|i am (?:currently )?(?:away|on (?:annual )?leave|on holiday|"
    r"travel+ing|out of (?:the )?(?:office|town|country))|"
    r"i'm (?:currently )?(?:away|on leave|travel+ing|out of (?:the )?(?:office|town|country))|"
    r"(?:limited|no) access to (?:my )?e-?mail|limited connectivity|replies will be delayed|"
    r"nicht im b[üu]ro|au[ßs]er haus|abwesend|in urlaub|absent du bureau|je suis absent|"
    r"fuera de la oficina|estoy ausente|afwezig|niet op kantoor)", re.I)
_BOUNCE_SUBJECT = re.compile(
    r"^\s{0,5}(?:undeliver(?:ed|able)|delivery (?:status notification|failure|has failed)|"
    r"returned mail|mail delivery (?:failed|system)|failure notice|non[- ]?delivery|"
    r"unzustellbar|nicht zustellbar|mensaje no entregado|no entregado|non remis|"
    r"[ée]chec de (?:la )?remise|onbestelbaar)", re.I)
_BOUNCE_TEXT = re.compile(
    r"\b(?:could not be delivered|couldn't be delivered|was not delivered|"
    r"wasn't able to deliver|unable to deliver|delivery (?:to the following )?"
    r"(?:recipients? )?(?:has )?failed|permanent error|mailbox (?:is )?(?:full|unavailable)|"
    r"user unknown|no such user|konnte nicht zugestellt werden|nicht zugestellt|"
    r"no pudo ser entregado|no se pudo entregar|n'a pas pu [êe]tre (?:remis|d[ée]livr[ée])|"
    r"kon niet worden afgeleverd)", re.I)

_ACK_SUBJECT = re.compile(
    r"(?:(?:we have|we've) received your (?:report|complaint|e-?mail|message|request)|"
    r"your (?:abuse )?(?:report|complaint|message|request|ticket)\b.{0,40}?\b(?:has been|was|is)"
    r" (?:received|logged|registered|opened|created|closed|resolved|updated)|"
    r"(?:ticket|case|request)\b.{0,40}?(?:has been|was) (?:opened|created|closed|resolved|"
    r"updated|received)|\bticket received\b|status (?:has been )?(?:updated|changed)|\bautoreply:|"
    r"eingangsbest[äa]tigung|ist eingegangen|confirmation of receipt|acuse de recibo|"
    r"accus[ée] de r[ée]ception|ha sido registrad[ao]|a [ée]t[ée] enregistr[ée]e?|"
    r"ontvangstbevestiging)", re.I)
_ACK_TEXT = re.compile(
    r"\b(?:(?:we have|we've) (?:successfully )?received your (?:abuse )?(?:report|complaint|"
    r"e-?mail|message|request|notification)|confirming that we have received|"
    r"your (?:abuse )?(?:report|complaint|message|request|ticket|notification)\b.{0,60}?"
    r"\b(?:has been|was|is now|is) (?:received|registered|logged|assigned|created|opened|"
    r"closed|recorded|forwarded|being reviewed)|"
    r"(?:status of your ticket|your ticket) .{0,40}?(?:changed|updated|assigned)|"
    r"creation of a (?:trouble )?ticket|thank you for (?:submitting|contacting)|"
    r"this case is now closed|has been registered under|registered under (?:reference|number)|"
    r"ihre (?:meldung|nachricht|anfrage|beschwerde) (?:wurde|ist) .{0,80}?"
    r"(?:erfasst|eingegangen|registriert|angelegt)|vielen dank f[üu]r ihre (?:meldung|nachricht)|"
    r"hemos recibido su|ha sido registrad[ao]|nous avons bien re[çc]u|"
    r"wij hebben uw melding ontvangen|recebemos (?:a )?sua|"
    r"abbiamo ricevuto la (?:sua|vostra))", re.I)
_TICKET = re.compile(
    r"(?:ticket|case|caso|request|reference|aktenzeichen|ticketnummer|vorgang|dossier|"
    r"referentie)\s{0,3}(?:id|number|nr\.?|no\.?|nummer|n[°º])?\s{0,3}(?:of\s)?[#:]?\s{0,3}"
    r"\[?[A-Z0-9][A-Z0-9._-]{2,40}|#\s{0,2}\d{3,}", re.I)
_REPLY_TEXT = re.compile(
    r"\b(?:thank(?:s| you) for (?:your|the) (?:abuse )?(?:report|notification|complaint|"
    r"notice)|regarding your (?:abuse )?(?:report|complaint)|"
    r"thank(?:s| you) for (?:letting us know|bringing this to our attention|informing us)|"
    r"(?:has|have) been (?:disconnected|isolated|suspended) (?:from|until|pending)|"
    r"(?:we|i) (?:have )?(?:received|reviewed) your (?:abuse )?(?:report|complaint)|"
    r"(?:the )?ip(?: address)? you reported|you reported\b|"
    r"the issue has been (?:resolved|fixed)|(?:we are|we're) closing this ticket|"
    r"consider (?:the|this) (?:case|issue|matter|incident) (?:as )?(?:resolved|closed)|"
    r"(?:we|i) have taken (?:the )?(?:appropriate |necessary )?action|"
    r"our customer has (?:replied|responded|been (?:notified|informed|contacted))|"
    r"notified the customer|cannot (?:yet )?match (?:it|this) to a customer|"
    r"danke f[üu]r (?:den|ihren) hinweis|vielen dank f[üu]r (?:den|ihren) hinweis|"
    r"der vorgang ist .{0,30}erledigt|kunde wurde informiert|"
    r"votre signalement|l'incident comme clos|"
    r"bedankt voor uw melding|geen deel (?:\(meer\) )?uit van ons netwerk|"
    r"gracias por su (?:aviso|notificaci[óo]n|reporte))", re.I)
_REPLY_SUBJECT = re.compile(r"^\s{0,5}(?:re|aw|antw|sv|vs|r|rif)\s{0,3}:|\b(?:resolved|closed|"
                            r"action taken|erledigt|r[ée]solu|cerrado)\b", re.I)

_SURVEY = re.compile(
    r"\b(?:how did we do|how satisfied (?:were|are) you|rate (?:your|our) (?:experience|"
    r"service|support)|tell us about your (?:recent )?(?:\w+ ){0,3}experience|"
    r"(?:customer )?satisfaction survey|take (?:a|our|this) (?:short |quick )?survey|"
    r"the survey takes|how likely (?:is it|are you) (?:that you )?(?:would )?recommend|"
    r"ihre meinung ist uns wichtig|kurze umfrage|die umfrage dauert|"
    r"wie wahrscheinlich ist es, dass sie|weiterempfehlen|"
    r"enqu[êe]te de satisfaction|encuesta de satisfacci[óo]n|how would you rate|"
    r"we'd love (?:to hear )?your feedback|share your feedback (?:on|about) (?:your|our))",
    re.I)
_CHALLENGE = re.compile(
    r"\b(?:confirm (?:that )?you are (?:a )?human|prove (?:that )?you are (?:a )?human|"
    r"challenge[- ]response|to get your (?:message|e-?mail) delivered|"
    r"your (?:message|e-?mail) (?:is|has been|will be) (?:held|quarantined|kept) "
    r"(?:until|pending)|vorl[äa]ufig zur[üu]ckgehalten|"
    r"dass sie kein (?:automatisiertes system|roboter|bot) sind|"
    r"confirmez que vous [êe]tes (?:un )?humain|confirme que eres humano|"
    r"(?:is|are) (?:waiting|awaiting|pending) (?:for )?(?:your |the recipient's )?"
    r"(?:approval|verification)|verify your (?:e-?mail )?address (?:so|to) (?:that )?"
    r"(?:your|the) (?:message|e-?mail))", re.I)
_NEWSLETTER = re.compile(
    r"\b(?:newsletter|unsubscribe|view (?:it )?in (?:your )?browser|webinar|"
    r"mailing list|call for (?:presentations|papers|participation)|you (?:receive|are receiving)"
    r" this (?:newsletter|e-?mail|message) because|abmelden|abbestellen|"
    r"se d[ée]sabonner|se d[ée]sinscrire|darse de baja)", re.I)
_SALES = re.compile(
    r"\b(?:(?:quick|short|free) (?:demo|call|chat)|book a demo|schedule a (?:demo|call)|"
    r"free trial|\d{2} minutes next week|account executive|if you're not the right person)",
    re.I)
_UNSUBSCRIBE = re.compile(r"\bunsubscribe\b|\bopt[- ]out\b|\babmelden\b", re.I)
_OTHER = re.compile(
    r"\b(?:(?:has been|was) (?:removed|delisted) from (?:the |our )?\S{1,60}|"
    r"(?:enrol+ment|registration|subscription) (?:request )?(?:has been |was )?"
    r"(?:approved|confirmed|accepted)|thank you for enrol+ing)", re.I)


# A person's question to us that accuses no one: is a mail really ours, how do we get off a
# blocklist, is there news on the report they made.
_QUESTION = re.compile(
    r"\b(?:is (?:this|that|the) (?:e-?mail|mail|message) (?:really |genuinely |actually )?"
    r"(?:from you|genuine|legit(?:imate)?|real)|"
    r"ist (?:diese|die|das) (?:e-?mail|mail|nachricht) (?:echt|wirklich|tats[äa]chlich)|"
    r"(?:ce|cet) (?:e-?mail|mail|courriel|message) vient(?:-il)? (?:vraiment )?de vous|"
    r"(?:este|el) correo es (?:realmente )?(?:de ustedes|leg[íi]timo)|"
    r"how (?:do (?:i|we)|can (?:i|we)|to) get (?:it |us |our (?:ip|address) )?(?:removed|"
    r"delisted|unblocked|off the (?:list|blacklist|blocklist))|"
    r"wie (?:kommen wir|komme ich) (?:da |von der liste )?wieder (?:runter|raus))", re.I)
_FOLLOW_UP = re.compile(
    r"\b(?:any (?:news|updates?)|is there (?:any )?(?:news|an update|anything new)|"
    r"gibt es (?:schon )?(?:neuigkeiten|etwas neues)|des nouvelles|alguna novedad|"
    r"hay novedades)\b", re.I)

# A request to act, as a complaint ends: a reporter answering a desk's answer with more abuse
# is a complaint again.
_PLEASE_ACT = re.compile(
    r"\b(?:please (?:remove|investigate|take (?:appropriate )?action|stop|suspend|block|"
    r"take (?:it|them|this) (?:down|offline)|look into)|"
    r"(?:still|again) (?:ongoing|active|online|happening|continu(?:es|ing))|"
    r"(?:continues|persists|keeps (?:coming|happening))\b|"
    r"(?:i am|i'm|we are|we're) still (?:getting|receiving|seeing)|"
    r"bitte (?:entfernen|pr[üu]fen|unterbinden|sperren)|merci d'intervenir|"
    r"por favor (?:retire|detenga|investigue))", re.I)

_DELISTED_SUBJECT = re.compile(r"\b(?:removed|delisted) from\b", re.I)
_LISTED = re.compile(r"\b(?:newly|been|now|is|are|was|were) listed\b|\blisted (?:on|in)\b",
                     re.I)


def _auto_headers(mail: Mail) -> bool:
    auto = (mail.header("Auto-Submitted") or "").lower()
    if auto.startswith(_AUTO_HEADER_VALUES):
        return True
    if mail.header("X-Autoreply") or mail.header("X-Autorespond"):
        return True
    return (mail.header("Precedence") or "").lower() in ("auto_reply", "bulk", "junk")


def _list_headers(mail: Mail) -> bool:
    return bool(mail.header("List-Unsubscribe") or mail.header("List-Id")) or (
        mail.header("Precedence") or "").lower() in ("bulk", "list")


def _sender(mail: Mail) -> str:
    return parse_address(mail.from_)[1].lower()


def _null_sender(mail: Mail) -> bool:
    return (mail.header("Return-Path") or "").strip() == "<>"


# Our case tag, as parsers.guards.CASE_TAG reads it (guards imports this module).
_CASE_TAG = re.compile(r"\[(?:Abuse Case )?C-\d{4}-\d{6,}\]", re.I)
_FROM_LINE = re.compile(r"^[>\s]{0,10}(?:\*\*)?(?:from|von|de|van)(?:\*\*)?:[^\r\n]{0,300}",
                        re.I | re.M)
_ADDRESS = re.compile(r"[\w.+-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63}){1,8}")
_DESK_LOCAL = re.compile(r"^(?:abuse|noc|security|cert|csirt|soc)\b", re.I)


def _ours(address: str, own_domain: str) -> bool:
    """Whether *address* is an abuse desk's of ours: abuse@, noc@, security@ ... at our domain
    (the domain of our host name, or a parent of it)."""
    local, _, domain = address.lower().rpartition("@")
    if not _DESK_LOCAL.match(local) or domain.count(".") < 1:
        return False
    return own_domain == domain or own_domain.endswith("." + domain)


def quotes_our_complaint(mail: Mail, own_domain: str | None) -> bool:
    """Whether *mail* (not from us) quotes or attaches a mail our abuse desk sent: another
    desk telling us about our own complaint to it, or answering it."""
    if not own_domain or own_domain.endswith(".localhost") or "." not in own_domain:
        return False
    sender = _sender(mail)
    if "@" in sender and _ours(sender, own_domain):
        return False
    for part in mail.parts:
        if part.content_type in ("message/rfc822", "message/global", "text/rfc822-headers"):
            quoted = parse_address(mail.header("From", part.message) or "")[1] \
                if part.content_type != "text/rfc822-headers" else ""
            if quoted and _ours(quoted, own_domain):
                return True
        if part.content_type in ("text/plain", "text/rfc822-headers") or (
                part.content_type == "text/html" and not part.filename):
            for line in _FROM_LINE.finditer(part.text()[:MAX_TEXT * 5]):
                if any(_ours(a, own_domain) for a in _ADDRESS.findall(line.group(0))[:3]):
                    return True
    return False


def classify(mail: Mail, own_domain: str | None = None) -> tuple[str, str] | None:
    """``(kind, why)`` for a message that is no complaint, or None. *own_domain*: our host
    name (its domain or a parent of it is ours), to tell our own complaints quoted back."""
    subject = mail.subject[:500]
    text = own_text(mail)
    # Our case tag in the Subject: perhaps the customer answering a notice, which the workflow
    # threads (an answer "thank you for your report, fixed" must reach its case).
    tagged = bool(_CASE_TAG.search(subject))
    if not tagged and quotes_our_complaint(mail, own_domain) and not _PLEASE_ACT.search(text):
        return REPLY_TO_REPORTER, "another desk's answer about a complaint of ours (quoted)"
    evidence = has_evidence(mail, text)
    if evidence is not None:
        return None
    sender = _sender(mail)
    automatic = _auto_headers(mail) or bool(_NOREPLY.search(sender)) or \
        bool(_AUTOMATIC.search(text))
    words = f"{subject}\n{text}"
    if (_NOREPLY.search(sender) or _null_sender(mail)) and (_BOUNCE_SUBJECT.search(subject) or (
            _BOUNCE_TEXT.search(text) and not asks_for_action(text))):
        return BOUNCE, "a delivery failure"
    # What follows a separator is what a ticket system answers or a server returns; for the
    # kinds below, which answer nothing, it is theirs: a complaint there makes a complaint.
    full = own_text(mail, separators=False)
    if full != text and (has_evidence(mail, full) is not None or asks_for_action(full)):
        return _answering(mail, subject, text, words, automatic, tagged)
    if _CHALLENGE.search(words):
        return CHALLENGE, "a challenge-response system asks to confirm the sender"
    if _SURVEY.search(words):
        return SURVEY, "a satisfaction survey"
    if (_OOO_SUBJECT.search(subject) or (
            len(text) < 1500 and _OOO_TEXT.search(text) and (automatic or len(text) < 600)
            and not asks_for_action(text) and not find_ips(refang(text), 1))) \
            and (not _ACK_TEXT.search(text)
                 # "thank you for your message; I am out of the office until ...": an
                 # absence notice thanks too, but names no ticket
                 or (_OOO_TEXT.search(text) and not _TICKET.search(words))):
        return OUT_OF_OFFICE, "an absence notice"
    found = _answering(mail, subject, text, words, automatic, tagged)
    if found is not None:
        return found
    notice = _OTHER.search(subject) or _DELISTED_SUBJECT.search(subject) or (
        _OTHER.search(text) and len(text) < 1500 and not find_urls(refang(text), 1))
    if notice and not _LISTED.search(words) and not asks_for_action(text) \
            and not _PLEASE_ACT.search(text):
        return OTHER, "a notice about a delisting or an enrolment, no complaint"
    if not asks_for_action(text) and (_QUESTION.search(words) or (
            _FOLLOW_UP.search(text) and len(text) < 800 and not find_ips(refang(text), 1)
            and (mail.header("In-Reply-To") or mail.header("References")))):
        return OTHER, "a person's question, accusing no one"
    if asks_for_action(text) or find_ips(refang(text), 1):
        return None
    if _list_headers(mail) and (_NEWSLETTER.search(words) or _UNSUBSCRIBE.search(text)):
        return NEWSLETTER, "list or bulk mail"
    if _SALES.search(text) and _UNSUBSCRIBE.search(text):
        return NEWSLETTER, "sales mail"
    return None


def _answering(mail: Mail, subject: str, text: str, words: str, automatic: bool,
               tagged: bool) -> tuple[str, str] | None:
    """Another desk's acknowledgement of, or answer to, a complaint (which it may quote)."""
    # The text says our report was received; a subject alone ("Ticket #1 created: ...") only
    # when the text accuses nothing (an upstream's ticket may carry a complaint against us).
    acked = (_ACK_TEXT.search(text) and (automatic or _TICKET.search(words))) or (
        _ACK_SUBJECT.search(subject) and not asks_for_action(text)
        and not find_ips(refang(text), 1))
    if acked and not tagged and (automatic or not _REPLY_TEXT.search(text)):
        return TICKET_ACK, "another desk's acknowledgement or ticket update"
    if _REPLY_TEXT.search(text) and not tagged and not _PLEASE_ACT.search(text) and (
            _REPLY_SUBJECT.search(subject) or _TICKET.search(words)
            or mail.header("In-Reply-To") or mail.header("References")):
        return REPLY_TO_REPORTER, "another desk's answer to a complaint"
    return None


_FORMATS = {OUT_OF_OFFICE: "autoreply", TICKET_ACK: "autoreply", BOUNCE: "bounce"}


# -- the format, as the registry and the classifier know it ------------------------------

NONREPORT = Format("nonreport", machine=False)  # other desks' answers, surveys, ...
BOUNCE_FORMAT = Format("bounce", machine=True)  # a delivery status notification
AUTOREPLY_FORMAT = Format("autoreply", machine=True)  # out of office, ticket acknowledgements


class NonReportParser:
    """Acknowledgements, other desks' answers, surveys, newsletters, challenges, bounces in
    words and absence notices: ignored, with their kind and why."""

    name = "nonreport"
    stage = Stage.GUARD
    formats = (NONREPORT, AUTOREPLY_FORMAT, BOUNCE_FORMAT)
    order = 40

    def __init__(self, message_id_domain: str | None = None) -> None:
        self._own_domain = (message_id_domain or "").lower().strip(".") or None
        # What matches() found, for parse(): the message is read once.
        self._found: weakref.WeakKeyDictionary[Mail, tuple[str, str]] = \
            weakref.WeakKeyDictionary()

    def matches(self, mail: Mail) -> bool:
        found = classify(mail, self._own_domain)
        if found is not None:
            self._found[mail] = found
        return found is not None

    def parse(self, mail: Mail) -> ParseResult:
        found = self._found.pop(mail, None) or classify(mail, self._own_domain)
        kind, why = found if found is not None else (OTHER, "")
        return ParseResult(disposition=Disposition.IGNORED, format=_FORMATS.get(kind, "nonreport"),
                           extra={"non_report": kind, "why": why})


__all__ = ["KINDS", "NonReportParser", "classify", "has_evidence", "own_text"]


def parsers(message_id_domain: str) -> list[Parser]:
    """This file's parsers, for the registry (*message_id_domain*: our notices' Message-IDs)."""
    return [NonReportParser(message_id_domain)]

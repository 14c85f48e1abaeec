"""Rules for free text: each a name, a type, a weight and the phrases that fire it.

A rule that fires gives one piece of evidence for its type, named after the rule
(``rule:phishing-words``), whose weight grows with the number of *distinct* phrases it found:
``1 - (1 - weight) ** k`` for k distinct phrases, k capped at ``MAX_DISTINCT``. Repeating one
phrase a hundred times is one phrase, and so are one-word phrases that begin with the same
``STEM_CHARS`` letters: "fraud", "fraudulent" and "fraude" are one word in three forms.

The phrases are plain alternations of words (no nested quantifiers), searched in at most
``MAX_TEXT_CHARS`` of text after its boilerplate is taken out (``classifier.boilerplate``: footers,
signatures, disclaimers, banners, quoted replies, "scanned for viruses"), so
the cost is linear in a bounded input. German, French, Spanish and Dutch words are included
where they are cheap and unambiguous.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from typing import Any

from ..core.policy import TYPES, Evidence
from . import boilerplate

MAX_TEXT_CHARS = 20_000
MAX_DISTINCT = 3  # distinct phrases counted per rule
STEM_CHARS = 5  # phrases that begin alike are one word in several forms or languages
MAX_DETAIL_TERMS = 5

# "can be abused for DDoS amplification", "estão sendo abusados em ataques de negação de
# serviço": why an open service matters, not an attack seen. The clause (to the end of its
# sentence, at most 80 characters) becomes one token the open-service rule reads, so its
# attack words are not counted as a DDoS.
ABUSE_POTENTIAL = "abuse-potential"

_ABUSE_POTENTIAL = re.compile(
    r"(?:(?:can|could|may|might)\s(?:also\s)?be\s(?:ab)?used|(?:is|are|being)\s"
    r"(?:actively\s|currently\s)?(?:ab)?used|(?:pode|podem|podr[íi]an?|puede|pueden)\s(?:ser\s)?"
    r"(?:abusad|usad|utilizad)[oa]s?|(?:est[ãa]o|est[áa]n)\s(?:sendo\s|siendo\s)?"
    r"(?:ativamente\s|activamente\s)?(?:abusad|usad|utilizad)[oa]s?|"
    r"(?:peut|peuvent|sont)\s(?:[êe]tre\s)?(?:activement\s)?(?:utilis|abus)[ée]e?s?)"
    r"\s(?:for|in|as|to|em|en|para|pour|dans|zu|f[üu]r)\s[^.;\n]{0,60}?"
    r"(?:ddos|dos\b|amplif|reflec|denial|nega[çc]|denegaci|angriff|attaque|ataque|attack)"
    r"[^.;\n]{0,40}|"
    # German puts what it is abused for first: "werden für DDoS-Angriffe missbraucht"
    r"(?:kann|k[öo]nnen|werden)\s(?:aktiv\s)?(?:f[üu]r|zu|bei)\s[^.;\n]{0,30}?"
    r"(?:ddos|dos\b|amplif|reflec|denial|nega[çc]|denegaci|angriff|attaque|ataque|attack)"
    r"[^.;\n]{0,30}?\smissbraucht",
    re.IGNORECASE)


# (name, type, weight, phrases). A phrase is a regex fragment; \b is added around each.
_RULES: list[tuple[str, str, float, tuple[str, ...]]] = [
    ("rule:phishing-words", "phishing", 0.6, (
        r"phish\w*", r"credentials?", r"credential harvest\w*", r"login page", r"log-?in form",
        r"sign-?in page", r"login portal", r"fake (?:bank|login|log-in|sign-?in|paypal|apple|"
        r"microsoft|office ?365)\w*",
        r"spoofed (?:site|page|website|bank)", r"verify your account",
        r"account (?:has been )?suspended", r"cloned (?:site|website|page|login)",
        r"look-?alike (?:domain|site|website|page)s?",
        r"(?:confirm|enter|update)[\"'”]? (?:their |your |the )?(?:card|bank|banking|account|"
        r"payment|login) (?:data|details|information|credentials)",
        r"(?:harvest\w*|steal\w*) (?:credentials|passwords|card data|login data)",
        # de / fr / es / pt / it / nl / pl / lt / fi
        r"gef[äa]lschte (?:webseite|seite|bank\w*|anmeldeseite|login-?seite)", r"zugangsdaten",
        r"hame[çc]onnage", r"fausse page", r"identifiants", r"suplantaci[óo]n de identidad",
        r"sitio falso", r"credenciais", r"credenciales", r"p[áa]gina falsa", r"site falso",
        r"roubo de (?:dados|credenciais|senhas)", r"atualiza[çc][ãa]o cadastral",
        r"furto di credenziali", r"pagina (?:falsa|contraffatta)",
        r"nep-?(?:website|pagina|bank)", r"inloggegevens", r"valse (?:website|inlogpagina)",
        r"wy[łl]udz\w*", r"sukčiav\w*", r"sukciav\w*", r"tietojenkalastelu\w*",
        # ru: phishing, "card data", "your card is blocked", "confirm your data/account"
        r"фишинг\w*", r"данные (?:банковской )?карты", r"карта заблокирована",
        r"подтвердите (?:данные|личность|аккаунт|учетную запись)",
    )),
    # impersonating a brand is phishing's way and brand fraud's too: weak on its own
    ("rule:impersonation", "phishing", 0.3, (
        r"impersonat\w+", r"brand impersonation", r"pretend\w* to be (?:our|the|a) bank",
    )),
    ("rule:brute-force", "hacking", 0.6, (
        r"brute[- ]?forc\w*", r"failed password", r"authentication failures?",
        r"invalid user", r"login attempts?", r"failed logins?", r"fail login", r"login failures?",
        r"login failed", r"auth(?:entication)? failed", r"dictionary attacks?",
        r"password[- ]guessing", r"wp-login(?:\.php)?",
        r"credential stuffing", r"fail2ban", r"xmlrpc(?:\.php)?",
        r"anmeldeversuche?", r"fehlgeschlagene anmeldung\w*", r"fehler bei der anmeldung",
        r"anmeldung fehlgeschlagen", r"force brute",
        r"tentatives? de connexion", r"fuerza bruta", r"intentos de (?:acceso|inicio de sesi[óo]n)",
        r"for[çc]a bruta", r"inlogpogingen", r"mislukte aanmelding\w*",
    )),
    ("rule:login-service", "hacking", 0.3, (  # a login service named: weak on its own
        r"sshd?", r"rdp", r"remote desktop",
    )),
    ("rule:intrusion", "hacking", 0.55, (
        r"intrusion", r"exploit(?:ation)? attempts?", r"attempt(?:ed|s)? to exploit",
        r"tried to exploit", r"exploiting", r"sql injection", r"sqli", r"hacked", r"hacking",
        r"defac(?:ed|ement)", r"unauthori[sz]ed access", r"remote code execution attempts?",
        r"path traversal", r"command injection",
        r"einbruch\w*", r"piratage", r"intrusi[óo]n", r"inbraak\w*",
    )),
    ("rule:port-scan", "port-scan", 0.6, (
        r"port ?scan\w*", r"scann(?:ing|ed)", r"scans?", r"prob(?:ing|es|ed)",
        r"(?:scan\w*|prob\w*|look\w*|search\w*) for open (?:ports?|services?)",
        r"nmap", r"masscan", r"zmap",
        r"gescannt", r"balayage de ports", r"escaneo de puertos", r"poortscan\w*",
        r"varredura\w*", r"skenavim\w*", r"skenuot\w*", r"skanowani\w*", r"scansion\w*",
    )),
    ("rule:ddos", "ddos", 0.65, (
        r"ddos", r"dos attack", r"denial[- ]of[- ]service", r"amplification attacks?",
        r"reflection attacks?", r"(?:syn|udp|http|icmp|ack) flood\w*", r"flooding",
        r"(?:used|abused) as (?:a )?reflectors?", r"(?:get|post)-?flood\w*",
        r"participat\w* in (?:a |the |this )?(?:ddos|dos|attack)\w*", r"deelgenomen",
        r"target of (?:a|an|the) (?:\w+ )?(?:ddos|dos|amplification|flood|reflection)\w*",
        r"d[ée]ni de service", r"denegaci[óo]n de servicio", r"overbelastingsaanval",
        r"dienstverweigerung", r"nega[çc][ãa]o de servi[çc]o",
    )),
    ("rule:malware", "malware", 0.6, (
        r"malware", r"botnet\w*", r"c&c", r"c2", r"command[- ]and[- ]control", r"infected",
        r"infection", r"trojan\w*", r"virus(?:es)?", r"ransomware", r"worm", r"sinkhole\w*",
        r"backdoor", r"web ?shells?", r"exploit kit", r"cryptominer\w*", r"coin ?miner\w*",
        r"cryptocurrency miner", r"cryptojack\w*", r"(?:been|is|are|was|were) compromised",
        r"compromised (?:server|host|system|device|machine|website|site|router)s?",
        r"malicious (?:software|code|file|payload|script|javascript|download)",
        r"drive-by download", r"serv(?:es|ing) malware", r"malware distribution",
        r"schadsoftware", r"infiziert", r"logiciel malveillant", r"infect[ée]e?",
        r"software malicioso", r"infectado", r"besmet", r"kwaadaardige software",
        r"kenkėjiš\w*", r"złośliw\w*",
    )),
    ("rule:virus-spam", "virus-spam", 0.65, (
        r"(?:infected|malicious|virus) attachments?",
        r"attachments? (?:was |is )?(?:infected|contain\w* (?:a )?(?:virus|malware|trojan))",
        r"(?:virus|malware|trojan)[- ](?:laden |infected )?(?:e-?mails?|mails?|messages?)",
        r"e-?mails? (?:with|containing|carrying) (?:a |an )?(?:virus|malware|trojan)",
        r"malicious (?:e-?mails?|mails?|messages?)", r"message malveillant",
        r"pi[èe]ces? jointes? malveillantes?", r"(?:b[öo]sartige|sch[äa]dliche)[nrs]? anh[äa]ng\w*",
        r"(?:archivo )?adjunto malicioso", r"kwaadaardige bijlage\w*",
    )),
    # A word with "torrent" in it, read once: "\w*torrent\w*" backtracked quadratically.
    ("rule:copyright", "copyright", 0.65, (
        # "trademark infringement" is a brand's complaint, not a copyright one
        r"dmca", r"(?<!trademark )(?<!trade mark )infring\w*", r"copyright\w*",
        r"(?=\w*torrent)\w++", r"pira(?:cy|ted)",
        r"intellectual property", r"17 u\.?s\.?c", r"rights ?holders?",
        r"unauthori[sz]ed (?:distribution|copies|copy|sharing|stream\w*|retransmission)",
        r"peer-to-peer", r"p2p", r"illegal stream\w*", r"live stream\w* without",
        r"broadcast(?:ing)? rights", r"exclusive (?:rights|licen[cs]ee)",
        r"urheberrecht\w*", r"droits? d'auteur", r"derechos de autor", r"auteursrecht\w*",
        r"direitos autorais", r"diritto d'autore",
        # piracy and broadcasting rights: sports and TV rights holders' notices
        r"anti-?pira\w*", r"antipira\w*", r"piraterie", r"pirater[ií]a", r"pirataria",
        r"weiterverbreit\w*", r"lizenznehmer\w*", r"exklusive (?:lizenz|rechte|[üu]bertragungs)\w*",
        r"(?:illegale?|unerlaubte?) (?:live-?)?(?:[üu]bertragung|weiterverbreitung|streams?)\w*",
        r"derechos (?:audiovisuales|de emisi[óo]n|de retransmisi[óo]n)",
        r"retransmi\w* (?:ilegal\w*|sin autorizaci[óo]n|illicite\w*|without)",
        r"droits (?:audiovisuels|de diffusion|de retransmission)", r"diffusion illicite",
        r"diritti (?:audiovisivi|televisivi|di trasmissione)", r"trasmess\w* illecitamente",
        r"trasmissione illecita", r"direitos de transmiss[ãa]o",
        r"content protection", r"protecci[óo]n de contenidos", r"contentschutz",
        r"unlicen[cs]ed (?:use|copy|copies|stream\w*)", r"without (?:a )?licen[cs]e",
    )),
    ("rule:harassment", "harassment", 0.6, (
        r"harass\w*", r"threaten\w*", r"threats? (?:to|against|by|via)", r"death threats?",
        r"stalk\w*", r"bully\w*", r"cyberbully\w*", r"intimidat\w*", r"doxx\w*",
        r"(?:will|would|going to) (?:be killed|kill)", r"hate (?:mail|speech|messages?)",
        r"revenge porn", r"non-?consensual", r"intimate (?:images|photos|pictures)",
        r"abusive (?:messages|e-?mails|comments|posts)", r"defamat\w*", r"slander\w*",
        r"bel[äa]stigung", r"drohung\w*", r"bedroh\w*", r"beleidig\w*", r"verleumd\w*",
        r"harc[èe]lement", r"menaces?", r"acoso", r"amenazas?", r"bedreiging\w*",
        r"ass[ée]dio", r"amea[çc]a\w*",
    )),
    ("rule:fraud", "fraud", 0.6, (
        r"scam\w*", r"frauds?", r"fraude", r"advance[- ]fee",
        r"(?:fake|bogus) (?:virus|security) (?:warnings?|alerts?)",
        r"(?:call|ring) (?:the|a) (?:fake |bogus )?(?:support|hotline|phone number)",
        r"(?:claim|say|tell|pretend|warn)\w* (?:that )?(?:the |your |their |a |his |her |my )?"
        r"(?:visitor's |user's )?(?:computer|pc|device|phone|system) (?:is|was|has been) "
        r"(?:infected|hacked|locked)",
        r"fake (?:shop|store|webshop|invoice|support|hotline|tech support|giveaway|investment|"
        r"exchange|trading)", r"never (?:delivered|received|shipped)", r"money mule\w*",
        r"swindl\w*", r"giveaway", r"gift cards?", r"guaranteed returns?", r"double your", r"ponzi",
        r"pyramid scheme", r"investment (?:scheme|platform)", r"support (?:number|hotline)",
        r"betrug\w*", r"betr[üu]ger\w*", r"fake-?shop", r"anlagebetrug", r"arnaque\w*",
        r"escroquerie\w*", r"estafa\w*", r"golpe", r"oplichting", r"oplichter\w*",
        r"nepwinkel\w*", r"truffa\w*",
    )),
    # "fraudulent website" is said of phishing pages as much as of fake shops
    ("rule:fraudulent", "fraud", 0.3, (
        r"fraudul\w*", r"fraudol\w*", r"betr[üu]gerisch\w*", r"frauduleu\w*",
    )),
    # a trademark named: a brand's complaint, or only a notice's boilerplate
    ("rule:trademark", "fraud", 0.3, (
        r"trade ?marks?", r"registered trade ?marks?", r"marke(?:n|nzeichen)?", r"marques?",
        r"marcas? registradas?",
    )),
    ("rule:counterfeit", "fraud", 0.65, (
        r"counterfeit\w*", r"fake (?:goods|products|merchandise|brand\w*)",
        r"trade ?mark (?:infringement|violation|misuse|abuse)",
        r"unauthori[sz]ed (?:use of (?:our|the|its|their) (?:client's )?"
        r"(?:brand|trade ?mark|logo)s?|sellers?|resellers?)",
        r"f[äa]lschung\w*", r"gef[äa]lschte (?:ware|waren|produkte|markenware|artikel)",
        r"marken(?:recht|rechte|verletzung|piraterie)\w*", r"contrefa[çc]on\w*", r"contrefait\w*",
        r"falsificaci[óo]n\w*", r"falsificad[oa]s?", r"namaak\w*", r"contraffa\w*",
    )),
    ("rule:illegal", "illegal", 0.7, (
        r"csam", r"csem", r"child (?:sexual )?abuse (?:material|imagery|images|content)",
        r"child exploitation", r"iwf", r"internet watch foundation", r"ncmec",
    )),
    ("rule:spam", "spam", 0.5, (
        r"spam\w*", r"unsolicited", r"newsletters?", r"unsubscribe\w*", r"u[bc]e",
        r"junk ?(?:e-?)?mails?", r"bulk (?:e-?)?mails?", r"never (?:signed up|subscribed|opted in)",
        r"did not (?:sign up|subscribe|opt in)", r"opt-?out",
        r"(?:block|black|deny) ?list\w*", r"dnsbl", r"rbl", r"spam ?traps?",
        r"(?:address|e-?mail) harvest\w*", r"harvesting (?:ips|e-?mail|addresses)",
        r"engaged in harvesting", r"(?:address|e-?mail) harvesters?",
        # a scam sent by mail is spam from where it was sent
        r"(?:scam|fake invoice|lottery|419|advance[- ]fee) (?:e-?mails?|mails?|messages?)",
        r"unerw[üu]nscht\w*", r"werbemails?", r"abbestellen", r"courriels? non sollicit[ée]s?",
        r"pourriels?", r"d[ée]sabonner", r"correo no deseado", r"no solicitad[oa]s?",
        r"darse de baja", r"ongevraagde", r"afmelden",
    )),
    ("rule:spamvertising", "spamvertising", 0.7, (
        r"spamvertis\w*", r"spamvertiz\w*",
        r"(?:advertised|promoted) (?:in|by|via|through) (?:spam|junk|unsolicited)\w*",
        r"(?:site|website|url|domain) advertised",
    )),
    ("rule:open-service", "open-service", 0.6, (
        r"open (?:dns )?resolvers?", r"open recursive", r"recursive (?:queries|lookups)",
        r"recursive dns servers?", r"open relay", r"open proxy",
        r"open (?:telnet|ssh|ftp|smb|rdp|vnc|snmp|memcached|redis|mongodb|elasticsearch|ldap|"
        r"ntp|ssdp|portmap|mdns|netbios|tftp|chargen|cwmp|ipp|mqtt|amqp|docker|kubernetes) "
        r"(?:services?|servers?|ports?|instances?|interfaces?)",
        r"publicly (?:accessible|reachable|exposed)", r"answer(?:s|ing)? queries from any",
        r"exposed (?:service|database|port|instance)s?", r"without authentication",
        r"accessible from (?:the )?internet", r"reachable from (?:the )?internet",
        r"offener? resolver", r"r[ée]solveur ouvert",
        r"(?:aus dem|[üu]ber das) internet erreichbar", r"ohne authentifizierung",
        r"accessibles? depuis (?:l')?internet", r"accesibles? desde internet",
        r"recursivos? abertos?", r"dns recursivo aberto", r"resolvedor(?:es)? abertos?",
        r"bereikbaar (?:vanaf|via) (?:het )?internet",
        # what an open service may be abused for is the notice's reason (see _ABUSE_POTENTIAL)
        ABUSE_POTENTIAL, r"amplification (?:factor|potential|vector)s?",
        r"offene[nrs]? (?:[\w]+-)?(?:dienste?|server|ports?)",
        r"(?:answer|respond)\w* (?:to )?(?:\w+ ){0,2}(?:requests|queries) from (?:the )?internet",
        r"beantworte\w* (?:[\w()/-]+ ){0,3}aus dem internet",
        r"respond(?:s|ed|ing)? (?:on|to) (?:udp|tcp|our)",
    )),
    ("rule:vulnerable", "open-service", 0.6, (
        r"vulnerab\w*", r"verwundbar\w*", r"schwachstellen?", r"kwetsba\w*", r"vuln[ée]rab\w*",
        r"vulnerabilidad\w*", r"vulner[áa]ve\w*", r"pažeidžiam\w*", r"podatn\w*",
        r"cve-\d{4}-\d{4,7}", r"end[- ]of[- ](?:life|support)",
        r"(?:outdated|obsolete|unsupported|unpatched|out-of-date) (?:version|software|firmware|"
        r"systems?|servers?|devices?)",
        r"nicht mehr unterst[üu]tzt\w*", r"veraltet\w*", r"obsol[èe]tes?",
        r"plus prise en charge", r"security (?:updates?|patch(?:es)?)", r"sicherheitsupdates?",
    )),
]


@dataclass(frozen=True)
class Rule:
    name: str
    type: str
    weight: float
    pattern: re.Pattern[str]  # the phrases as one alternation

    def evidence(self, text: str) -> Evidence | None:
        """This rule's evidence in *text* (already bounded and cleaned), or None."""
        terms: list[str] = []
        stems: set[str] = set()
        for m in self.pattern.finditer(text):
            term = " ".join(m.group(0).lower().split())
            # "fraud", "fraude", "frauds": one word; a phrase of several words is itself
            stem = term if " " in term else term[:STEM_CHARS]
            if stem not in stems:
                stems.add(stem)
                terms.append(term)
                if len(terms) >= MAX_DISTINCT:
                    break
        if not terms:
            return None
        weight = round(1 - (1 - self.weight) ** len(terms), 3)
        return Evidence(self.name, weight, "matched: " + ", ".join(terms[:MAX_DETAIL_TERMS]))


# The regex parser of the standard library (``re._parser``; no stub types it): it tells with
# which characters a rule's phrases can begin.
_sre: Any = importlib.import_module("re._parser")


def _first_chars(items: Any) -> set[int] | None:
    """The characters (code points) a match of the parsed regex *items* can begin with, or None
    when that is not known here (a class like ``\\w``, something optional first)."""
    for op, av in items:
        if op in (_sre.ASSERT, _sre.ASSERT_NOT, _sre.AT):  # zero-width: look further
            continue
        if op is _sre.LITERAL:
            return {av}
        if op is _sre.IN:
            chars: set[int] = set()
            for kind, value in av:
                if kind is _sre.LITERAL:
                    chars.add(value)
                elif kind is _sre.RANGE:
                    chars.update(range(value[0], value[1] + 1))
                else:
                    return None
            return chars
        if op is _sre.SUBPATTERN:
            return _first_chars(av[3])
        if op is _sre.BRANCH:
            union: set[int] = set()
            for alternative in av[1]:
                found = _first_chars(alternative)
                if found is None:
                    return None
                union |= found
            return union
        if op in (_sre.MAX_REPEAT, _sre.MIN_REPEAT, _sre.POSSESSIVE_REPEAT) and av[0] >= 1:
            return _first_chars(av[2])
        return None
    return None  # it can match the empty string


def _first_char_guard(phrases: tuple[str, ...]) -> str:
    """A lookahead for the characters the phrases begin with, or "" when one may begin with
    anything. Under IGNORECASE a class matches a character exactly when a literal of one of
    its members would, so the rule finds the same matches; Python's regex engine tries every
    alternative of a case-insensitive alternation at every word start, and the lookahead
    turns most of them away with one test (twice as fast on free text)."""
    chars: set[int] = set()
    for phrase in phrases:
        found = _first_chars(_sre.parse(phrase, re.IGNORECASE))
        if found is None:
            return ""
        chars |= found
    return "(?=[" + "".join(re.escape(chr(c)) for c in sorted(chars)) + "])"


def _build(rules: list[tuple[str, str, float, tuple[str, ...]]]) -> tuple[Rule, ...]:
    names: set[str] = set()
    built = []
    for name, type_, weight, phrases in rules:
        if type_ not in TYPES:
            raise ValueError(f"rules: {name} emits {type_!r}, not one of the policy's types")
        if not 0.0 < weight < 1.0 or name in names or not phrases:
            raise ValueError(f"rules: {name}: a duplicate name, no phrases or a bad weight")
        names.add(name)
        joined = "|".join(f"(?:{p})" for p in phrases)
        guard = _first_char_guard(phrases)
        built.append(Rule(name, type_, weight,
                          re.compile(rf"(?<!\w){guard}(?:{joined})(?!\w)", re.IGNORECASE)))
    return tuple(built)


RULES = _build(_RULES)


def clean(text: str) -> str:
    """*text* bounded to ``MAX_TEXT_CHARS`` without its boilerplate (``classifier.boilerplate``)."""
    return boilerplate.strip(text[:MAX_TEXT_CHARS])


def score_text(text: str, *, cleaned: bool = False) -> dict[str, list[Evidence]]:
    """type -> the evidence of every rule that fired for it (types with none left out).
    *cleaned*: the caller has already taken the boilerplate out (``clean``)."""
    cleaned_text = text[:MAX_TEXT_CHARS] if cleaned else clean(text)
    # a phrase wrapped across lines is still the phrase: every run of blanks is one space
    cleaned_text = _ABUSE_POTENTIAL.sub(f" {ABUSE_POTENTIAL} ", " ".join(cleaned_text.split()))
    found: dict[str, list[Evidence]] = {}
    for rule in RULES:
        evidence = rule.evidence(cleaned_text)
        if evidence is not None:
            found.setdefault(rule.type, []).append(evidence)
    return found

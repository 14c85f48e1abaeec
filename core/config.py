"""The desk's configuration: one typed, validated object, loaded once and passed in.

Sources, later ones winning:

1. the defaults written below (``config.toml`` at the project root repeats them, commented);
2. one TOML file: ``--config PATH``, else ``$ABUSE_DESK_CONFIG``, else ``./config.toml`` if present;
3. environment variables ``ABUSE_DESK_<SECTION>__<KEY>`` (``ABUSE_DESK_DATABASE__URL=...``).
   Their values are read as TOML values when they parse as one (``25``, ``true``,
   ``["abuse"]``) and as plain strings otherwise.

An unknown section or key, or a value of the wrong type, raises :class:`ConfigError` naming the
key and where it came from.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENV_PREFIX = "ABUSE_DESK_"
ENV_CONFIG = "ABUSE_DESK_CONFIG"
# The test suite's own variables (ABUSE_DESK_TEST_POSTGRES, ABUSE_DESK_TEST_SOAK, ...): not
# configuration, so a desk started from a shell that has them set does not refuse them.
ENV_TEST_PREFIX = "ABUSE_DESK_TEST_"


class ConfigError(Exception):
    """A configuration file or variable that cannot be used; the message says which key."""


@dataclass(frozen=True)
class DatabaseConfig:
    url: str = "sqlite:///var/abuse-desk.db"
    connect_timeout_s: float = 5.0
    busy_timeout_s: float = 5.0


@dataclass(frozen=True)
class BrokerConfig:
    url: str = "memory://"


@dataclass(frozen=True)
class SmtpConfig:
    host: str = "127.0.0.1"
    port: int = 2525
    hostname: str = "abuse-desk.localhost"
    mailboxes: list[str] = field(default_factory=lambda: ["abuse", "postmaster"])
    domains: list[str] = field(default_factory=lambda: ["localhost", "integra-isp.example"])
    max_message_size: int = 25 * 1024 * 1024
    max_line_length: int = 64 * 1024
    idle_timeout_s: float = 300.0
    max_session_s: float = 1800.0
    max_commands: int = 1000
    max_connections: int = 1000
    max_connections_per_ip: int = 20
    max_recipients: int = 100
    max_bytes_in_flight: int = 256 * 1024 * 1024
    max_messages_per_ip_per_minute: int = 600
    rate_limit_max_peers: int = 10000
    store_timeout_s: float = 30.0
    commit_batch_max: int = 128
    tls_cert: str = ""
    tls_key: str = ""
    require_tls: bool = False
    recipient_delimiter: str = "+"


@dataclass(frozen=True)
class WebConfig:
    host: str = "127.0.0.1"
    port: int = 8025
    session_hours: float = 12.0
    session_max_hours: float = 24.0
    cookie_secure: bool = False
    login_attempts: int = 5
    login_attempts_per_address: int = 20
    login_attempts_per_account: int = 50
    login_window_minutes: float = 15.0
    api_token_days: int = 90
    page_size: int = 50


# The most messages a worker claims, examines and writes together (workflow/pipeline.py): a
# batch's messages wait for those examined before them, each up to its time budget.
MAX_BATCH = 50


@dataclass(frozen=True)
class PipelineConfig:
    # Messages a worker examines one by one and writes in one transaction: the listener's
    # dispatcher and the sweeper send them in batches of this many (1 to MAX_BATCH).
    batch_max: int = 20
    sweep_after_s: float = 60.0
    sweep_interval_s: float = 10.0
    worker_threads: int = 4
    max_retries: int = 5
    examiners: int = 2
    max_attempts: int = 3
    stop_grace_s: float = 5.0
    # A claimed trusted reporter whose DKIM could not be checked (the DNS did not answer) is
    # examined again this many times, dkim_retry_base_s apart doubling up to dkim_retry_max_s,
    # before it goes to review with "DKIM could not be checked (DNS ...)".
    dkim_retries: int = 3
    dkim_retry_base_s: float = 120.0
    dkim_retry_max_s: float = 1800.0


@dataclass(frozen=True)
class ParserLimits:
    max_mime_depth: int = 20
    max_parts: int = 1000
    max_decoded_bytes: int = 64 * 1024 * 1024
    max_zip_uncompressed_bytes: int = 100 * 1024 * 1024
    max_zip_ratio: int = 200
    max_csv_rows: int = 100_000
    max_reports: int = 10_000
    time_budget_s: float = 30.0
    max_memory_mb: int = 1024
    dkim_max_header_bytes: int = 256 * 1024
    dkim_max_signatures: int = 3
    dkim_dns_timeout_s: float = 2.0
    dkim_dns_budget_s: float = 5.0
    plugins: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class TrustedReporter:
    name: str
    senders: list[str] = field(default_factory=list)  # addresses or domains, "*.example" ok
    require_dkim: bool = True


@dataclass(frozen=True)
class ClassifierConfig:
    confidence_threshold: float = 0.6
    trusted_reporters: list[TrustedReporter] = field(default_factory=list)
    use_default_trusted_reporters: bool = True
    resolver_hook_url: str = ""
    resolver_hook_command: list[str] = field(default_factory=list)
    resolver_hook_timeout_s: float = 5.0
    resolver_hook_negative_ttl_s: float = 300.0
    duplicate_window_days: int = 30
    index_refresh_s: float = 5.0
    authserv_id: str = ""
    spf_timeout_s: float = 5.0
    # The provider's own address space beyond the customer index (CIDRs): an address a report
    # names inside it counts as ours when the offender is chosen (classifier/offenders.py).
    own_networks: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class WorkflowConfig:
    time_zone: str = "America/New_York"
    holiday_country: str = "US"
    holiday_subdivision: str = ""
    closure_dates: list[str] = field(default_factory=list)
    business_days: int = 5
    prompt_hours: float = 24.0
    prompt_types: list[str] = field(
        default_factory=lambda: ["copyright", "phishing", "illegal"])
    reminder_before_hours: float = 24.0
    prompt_reminder_before_hours: float = 6.0
    related_window_days: int = 30
    repeat_claims: int = 3
    repeat_window_days: int = 30
    repeat_copyright_claims: int = 2
    occasion_grace_hours: float = 4.0
    update_delay_minutes: float = 60.0
    fee_amount_cents: int = 10_000
    fee_currency: str = "USD"
    auto_actions: list[str] = field(default_factory=list)
    action_hook_url: str = ""
    action_hook_command: list[str] = field(default_factory=list)
    action_hook_timeout_s: float = 10.0
    customer_can_resolve: bool = True
    step_lease_s: float = 300.0


@dataclass(frozen=True)
class NotifyConfig:
    transport: str = "maildir"
    maildir: str = "var/outbox"
    from_address: str = "abuse@integra-isp.example"
    from_name: str = "Integra ISP Abuse Desk"
    organization: str = "Integra ISP"
    smarthost_host: str = ""
    smarthost_port: int = 587
    smarthost_starttls: bool = True
    smarthost_username: str = ""
    smarthost_password: str = ""
    smarthost_timeout_s: float = 30.0
    max_attempts: int = 10
    retry_base_s: float = 60.0
    retry_max_s: float = 3600.0
    public_url: str = "http://127.0.0.1:8025"
    token_days: int = 30
    secret_key: str = ""
    copyright_guide_url: str = "https://integra-isp.example/abuse/copyright-complaints"
    templates_dir: str = ""
    acknowledge: bool = True
    ack_limit_per_sender: int = 1
    ack_limit_window_hours: float = 1.0
    show_reporter_for: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class LogConfig:
    level: str = "INFO"
    format: str = "text"


@dataclass(frozen=True)
class MetricsConfig:
    port: int = 0
    host: str = "127.0.0.1"
    allow: list[str] = field(default_factory=lambda: ["127.0.0.1/32", "::1/128"])
    token: str = ""


@dataclass(frozen=True)
class Config:
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    broker: BrokerConfig = field(default_factory=BrokerConfig)
    smtp: SmtpConfig = field(default_factory=SmtpConfig)
    web: WebConfig = field(default_factory=WebConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    parsers: ParserLimits = field(default_factory=ParserLimits)
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    workflow: WorkflowConfig = field(default_factory=WorkflowConfig)
    notify: NotifyConfig = field(default_factory=NotifyConfig)
    log: LogConfig = field(default_factory=LogConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    source: str = "defaults"


def _is_time_zone(name: str) -> bool:
    import zoneinfo

    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _is_network(text: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return True


def _is_country(code: str) -> bool:
    if not code:
        return True
    import holidays

    return code in holidays.list_supported_countries()


def _is_date(text: str) -> bool:
    import datetime

    try:
        datetime.date.fromisoformat(text)
    except ValueError:
        return False
    return len(text) == 10


# Report formats people write (their reporters' personal data is redacted for customers).
PERSON_FORMATS = ("dmca", "text")


def _is_plugin(name: str) -> bool:
    module, sep, attr = name.partition(":")
    return bool(sep) and all(part.isidentifier() for part in (*module.split("."), attr))


def _types() -> set[str]:
    from .policy import TYPES

    return set(TYPES)


# Checks beyond the type: (section, key) -> (test, what a good value looks like).
_CHECKS: dict[tuple[str, str], tuple[typing.Callable[[Any], bool], str]] = {
    ("database", "url"): (
        lambda v: v.startswith(("sqlite://", "postgresql")),
        "a sqlite:///PATH or postgresql+psycopg://... URL",
    ),
    ("broker", "url"): (
        lambda v: v == "memory://" or v.startswith(("redis://", "rediss://", "amqp://", "amqps://")),
        "memory://, redis://HOST:PORT/DB or amqp://USER:PASS@HOST:PORT/VHOST",
    ),
    ("smtp", "port"): (lambda v: 0 <= v <= 65535, "a TCP port, 0-65535"),
    ("web", "port"): (lambda v: 0 <= v <= 65535, "a TCP port, 0-65535"),
    ("metrics", "port"): (lambda v: 0 <= v <= 65535, "a TCP port, 0-65535 (0: off)"),
    ("metrics", "allow"): (lambda v: all(_is_network(n) for n in v),
                           "a list of addresses or networks, e.g. [\"10.0.0.0/8\", \"::1\"]"),
    ("metrics", "token"): (lambda v: v == "" or len(v) >= 16,
                           "empty (no token) or at least 16 characters"),
    ("web", "session_hours"): (lambda v: v > 0, "a positive number of hours"),
    ("web", "session_max_hours"): (lambda v: v > 0, "a positive number of hours"),
    ("web", "login_attempts"): (lambda v: v > 0, "a positive number"),
    ("web", "login_attempts_per_address"): (lambda v: v > 0, "a positive number"),
    ("web", "login_attempts_per_account"): (lambda v: v >= 0, "zero (off) or more"),
    ("web", "login_window_minutes"): (lambda v: v > 0, "a positive number of minutes"),
    ("web", "api_token_days"): (lambda v: 0 < v <= 3650, "a number of days from 1 to 3650"),
    ("smtp", "mailboxes"): (lambda v: len(v) > 0 and all("@" not in m for m in v),
                            "a non-empty list of local parts without '@'"),
    ("smtp", "domains"): (lambda v: len(v) > 0, "a non-empty list of domains"),
    ("smtp", "max_message_size"): (lambda v: v > 0, "a positive number of bytes"),
    ("smtp", "max_line_length"): (lambda v: v >= 1000, "at least 1000 bytes (RFC 5321)"),
    ("smtp", "max_connections"): (lambda v: v > 0, "a positive number"),
    ("smtp", "max_connections_per_ip"): (lambda v: v > 0, "a positive number"),
    ("smtp", "max_messages_per_ip_per_minute"): (lambda v: v >= 0, "zero (off) or more"),
    ("smtp", "rate_limit_max_peers"): (lambda v: v > 0, "a positive number"),
    ("smtp", "commit_batch_max"): (lambda v: v > 0, "a positive number"),
    ("smtp", "store_timeout_s"): (lambda v: v > 0, "a positive number of seconds"),
    ("smtp", "idle_timeout_s"): (lambda v: v > 0, "a positive number of seconds"),
    ("smtp", "max_session_s"): (lambda v: v > 0, "a positive number of seconds"),
    ("smtp", "max_commands"): (lambda v: v >= 10, "10 or more"),
    ("smtp", "max_recipients"): (lambda v: v > 0, "a positive number (RFC 5321 says 100)"),
    ("smtp", "max_bytes_in_flight"): (lambda v: v > 0, "a positive number of bytes"),
    ("smtp", "recipient_delimiter"): (lambda v: v in ("", "+", "-", "=", "_", "."),
                                      'one of "+", "-", "=", "_", "." or "" (none)'),
    ("pipeline", "worker_threads"): (lambda v: v > 0, "a positive number"),
    ("pipeline", "batch_max"): (lambda v: 1 <= v <= MAX_BATCH, f"1 to {MAX_BATCH}"),
    ("pipeline", "max_retries"): (lambda v: v >= 0, "zero or more"),
    ("pipeline", "sweep_interval_s"): (lambda v: v > 0, "a positive number of seconds"),
    ("pipeline", "sweep_after_s"): (lambda v: v >= 0, "zero or more seconds"),
    ("pipeline", "examiners"): (lambda v: v >= 0, "zero (examine in the worker's threads) or "
                                "more processes"),
    ("pipeline", "max_attempts"): (lambda v: v > 0, "a positive number"),
    ("pipeline", "stop_grace_s"): (lambda v: v >= 0, "zero or more seconds"),
    ("pipeline", "dkim_retries"): (lambda v: 0 <= v <= 20, "0 to 20"),
    ("pipeline", "dkim_retry_base_s"): (lambda v: v > 0, "a positive number of seconds"),
    ("pipeline", "dkim_retry_max_s"): (lambda v: v > 0, "a positive number of seconds"),
    **{("parsers", key): (lambda v: v > 0, "a positive number") for key in (
        "max_mime_depth", "max_parts", "max_decoded_bytes", "max_zip_uncompressed_bytes",
        "max_zip_ratio", "max_csv_rows", "max_reports", "time_budget_s",
        "dkim_max_header_bytes", "dkim_max_signatures", "dkim_dns_timeout_s",
        "dkim_dns_budget_s")},
    ("parsers", "max_memory_mb"): (lambda v: v >= 0, "zero (no limit) or more MiB"),
    ("parsers", "plugins"): (lambda v: all(_is_plugin(x) for x in v),
                             "a list of \"package.module:factory\" names"),
    ("classifier", "confidence_threshold"): (lambda v: 0 <= v <= 1, "a number from 0 to 1"),
    ("classifier", "resolver_hook_timeout_s"): (lambda v: v > 0, "a positive number of seconds"),
    ("classifier", "duplicate_window_days"): (lambda v: v > 0, "a positive number of days"),
    ("classifier", "authserv_id"): (lambda v: not any(c.isspace() or c in ";()\"" for c in v),
                                    "an authserv-id such as mx.example.net (no spaces), or \"\""),
    ("classifier", "spf_timeout_s"): (lambda v: v >= 0, "zero (no SPF check) or more seconds"),
    ("classifier", "own_networks"): (lambda v: all(_is_network(n) for n in v),
                                     "a list of CIDR networks such as \"192.0.2.0/24\""),
    ("workflow", "time_zone"): (_is_time_zone, "an IANA time zone such as Europe/Berlin"),
    ("workflow", "holiday_country"): (_is_country, "a country code the holidays package knows "
                                      "(US, DE, GB, ...) or \"\" for none"),
    ("workflow", "closure_dates"): (lambda v: all(_is_date(d) for d in v),
                                    "a list of dates as \"YYYY-MM-DD\""),
    ("workflow", "business_days"): (lambda v: v > 0, "a positive number of days"),
    ("workflow", "prompt_hours"): (lambda v: v > 0, "a positive number of hours"),
    ("workflow", "prompt_types"): (lambda v: all(t in _types() for t in v),
                                   "a list of our types (core/policy.py)"),
    ("workflow", "reminder_before_hours"): (lambda v: v >= 0, "zero or more hours"),
    ("workflow", "prompt_reminder_before_hours"): (lambda v: v >= 0, "zero or more hours"),
    ("workflow", "related_window_days"): (lambda v: v > 0, "a positive number of days"),
    ("workflow", "repeat_claims"): (lambda v: v >= 2, "2 or more claims"),
    ("workflow", "repeat_copyright_claims"): (lambda v: v >= 2, "2 or more claims"),
    ("workflow", "repeat_window_days"): (lambda v: v > 0, "a positive number of days"),
    ("workflow", "occasion_grace_hours"): (lambda v: v >= 0, "zero or more hours"),
    ("workflow", "fee_amount_cents"): (lambda v: v >= 0, "zero or more cents"),
    ("workflow", "fee_currency"): (lambda v: len(v) == 3 and v.isalpha() and v.isupper(),
                                   "an ISO 4217 code such as USD"),
    ("workflow", "auto_actions"): (
        lambda v: all(t in _types() or t in ("standard", "prompt", "all") for t in v),
        "a list of types, \"standard\", \"prompt\" or \"all\""),
    ("workflow", "action_hook_timeout_s"): (lambda v: v > 0, "a positive number of seconds"),
    ("workflow", "step_lease_s"): (lambda v: v > 0, "a positive number of seconds"),
    ("notify", "transport"): (lambda v: v in ("maildir", "smtp"), "maildir or smtp"),
    ("notify", "from_address"): (lambda v: "@" in v and not any(c in v for c in "\r\n<> "),
                                 "a plain address such as abuse@example.net"),
    ("notify", "smarthost_port"): (lambda v: 0 < v <= 65535, "a TCP port, 1-65535"),
    ("notify", "max_attempts"): (lambda v: v > 0, "a positive number"),
    ("notify", "retry_base_s"): (lambda v: v > 0, "a positive number of seconds"),
    ("notify", "retry_max_s"): (lambda v: v > 0, "a positive number of seconds"),
    ("notify", "public_url"): (lambda v: v.startswith(("http://", "https://")),
                               "an http:// or https:// URL"),
    ("notify", "token_days"): (lambda v: v > 0, "a positive number of days"),
    ("notify", "ack_limit_per_sender"): (lambda v: v >= 0, "zero or more"),
    ("notify", "ack_limit_window_hours"): (lambda v: v > 0, "a positive number of hours"),
    ("notify", "show_reporter_for"): (
        lambda v: all(t in _types() or t in PERSON_FORMATS for t in v),
        "a list of our types (e.g. \"copyright\") or the formats \"dmca\", \"text\""),
    ("log", "level"): (lambda v: v.upper() in {"DEBUG", "INFO", "WARNING", "ERROR"},
                       "DEBUG, INFO, WARNING or ERROR"),
    ("log", "format"): (lambda v: v in {"text", "json"}, "text or json"),
}


# Keys whose values never appear in an error message (they may hold passwords).
SECRETS = {("notify", "smarthost_password"), ("notify", "secret_key"), ("database", "url"),
           ("metrics", "token")}


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Return *value* as *annotation* or raise ConfigError saying what was expected."""
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if annotation is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if annotation is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    origin = typing.get_origin(annotation)
    if origin is list:
        (item_type,) = typing.get_args(annotation)
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return [_coerce(v, item_type, f"{where}[{i}]") for i, v in enumerate(value)]
    if dataclasses.is_dataclass(annotation) and isinstance(annotation, type):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a table, got {value!r}")
        hints = typing.get_type_hints(annotation)
        unknown = sorted(set(value) - set(hints))
        if unknown:
            raise ConfigError(f"{where}: unknown key {unknown[0]!r}; known: "
                              f"{', '.join(sorted(hints))}")
        return annotation(**{k: _coerce(v, hints[k], f"{where}.{k}") for k, v in value.items()})
    raise ConfigError(f"{where}: unsupported type {annotation}")  # pragma: no cover


def _env_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _section_classes() -> dict[str, type]:
    hints = typing.get_type_hints(Config)
    return {f.name: hints[f.name] for f in dataclasses.fields(Config) if f.name != "source"}


def build_config(data: Mapping[str, Any], source: str = "defaults",
                 env: Mapping[str, str] | None = None) -> Config:
    """Validate *data* (a parsed TOML document) plus env overrides into a :class:`Config`."""
    sections = _section_classes()
    merged: dict[str, dict[str, tuple[Any, str]]] = {name: {} for name in sections}
    for section, table in data.items():
        if section not in sections:
            raise ConfigError(
                f"{source}: unknown section [{section}]; known: {', '.join(sorted(sections))}")
        if not isinstance(table, Mapping):
            raise ConfigError(f"{source}: [{section}] must be a table")
        for key, value in table.items():
            merged[section][key] = (value, f"{source}: {section}.{key}")
    for name, raw in sorted((env if env is not None else os.environ).items()):
        if not name.startswith(ENV_PREFIX) or name == ENV_CONFIG or \
                name.startswith(ENV_TEST_PREFIX):
            continue
        section, sep, key = name[len(ENV_PREFIX):].lower().partition("__")
        if not sep or section not in sections:
            raise ConfigError(
                f"environment variable {name}: expected ABUSE_DESK_<SECTION>__<KEY> with a "
                f"section among {', '.join(sorted(sections))}")
        parsed = _env_value(raw)
        # A string key takes the variable as written unless it is a quoted TOML string: a
        # password of digits is not a number.
        if typing.get_type_hints(sections[section]).get(key) is str and \
                not isinstance(parsed, str):
            parsed = raw
        merged[section][key] = (parsed, f"environment variable {name}")

    built: dict[str, Any] = {}
    for section, cls in sections.items():
        hints = typing.get_type_hints(cls)
        values: dict[str, Any] = {}
        for key, (value, where) in merged[section].items():
            if key not in hints:
                raise ConfigError(
                    f"{where}: unknown key; [{section}] knows {', '.join(sorted(hints))}")
            secret = (section, key) in SECRETS
            try:
                coerced = _coerce(value, hints[key], where)
            except ConfigError:
                if not secret:
                    raise
                raise ConfigError(f"{where}: expected a string, got a "
                                  f"{type(value).__name__} (its value is not shown: a secret)"
                                  ) from None
            check = _CHECKS.get((section, key))
            if check is not None and not check[0](coerced):
                shown = "the value given" if secret else repr(coerced)
                raise ConfigError(f"{where}: {shown} is not {check[1]}")
            values[key] = coerced
        built[section] = cls(**values)
    _check_subdivision(built["workflow"], source)
    _check_smtp(built["smtp"], source)
    return Config(**built, source=source)


def _check_smtp(smtp: SmtpConfig, source: str) -> None:
    if smtp.max_bytes_in_flight < smtp.max_message_size:
        raise ConfigError(
            f"{source}: smtp.max_bytes_in_flight ({smtp.max_bytes_in_flight}) is less than "
            f"smtp.max_message_size ({smtp.max_message_size}): a message of the largest size "
            "could never be received")


def _check_subdivision(workflow: WorkflowConfig, source: str) -> None:
    sub = workflow.holiday_subdivision
    if not sub:
        return
    import holidays

    known = holidays.list_supported_countries().get(workflow.holiday_country, [])
    if sub not in known:
        raise ConfigError(
            f"{source}: workflow.holiday_subdivision {sub!r} is not a subdivision of "
            f"{workflow.holiday_country or 'no country'}; known: {', '.join(known) or 'none'}")


def load_config(path: str | os.PathLike[str] | None = None,
                env: Mapping[str, str] | None = None) -> Config:
    """Load the configuration once, at start-up; see the module docstring for the order."""
    environ = os.environ if env is None else env
    chosen = path or environ.get(ENV_CONFIG)
    if chosen:
        file = Path(chosen)
        if not file.exists() or file.is_dir():  # /dev/null is fine: all defaults
            raise ConfigError(f"{file}: no such configuration file")
    else:
        file = Path("config.toml")
        if not file.is_file():
            return build_config({}, "defaults", environ)
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: not valid TOML: {exc}") from exc
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read: {exc.strerror}") from exc
    return build_config(data, str(file), environ)


def with_overrides(config: Config, **sections: Mapping[str, Any]) -> Config:
    """A copy of *config* with some keys replaced (used by command-line flags and tests)."""
    changes = {}
    for name, values in sections.items():
        changes[name] = dataclasses.replace(getattr(config, name), **values)
    return dataclasses.replace(config, **changes)

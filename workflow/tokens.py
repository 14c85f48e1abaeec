"""The desk's tokens: the secret key, the signed self-service links it makes for customers
(``/self-service/<token>``, ``web/selfservice.py``), and the two tokens every mail gets.

Every mail gets two tokens of its own (:func:`new_token`, 130 random bits, stored on its row):
the **reply token** is the random part of its Message-ID and, for mails to customers, of its
Reply-To (``abuse+r-TOKEN@``): a reply that names it (In-Reply-To/References, or sent to that
address) comes from someone who received that mail, and threads into its case (as the
customer's answer for a customer mail, as a reporter's follow-up for an acknowledgement). The
**bounce token** is in the envelope sender (VERP, ``abuse+b-TOKEN@``): a DSN with a null sender
that names it is a bounce of that mail. The case reference (``C-2026-000123``, sequential) is
for people to read; nothing threads or authorizes on it alone.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from base64 import b32encode, urlsafe_b64decode, urlsafe_b64encode
from datetime import datetime

from sqlalchemy import Engine, select
from sqlalchemy.dialects import postgresql, sqlite

from ..core.config import Config
from ..core.db import write_transaction
from ..core.models import Setting

# ---- the desk's secret and self-service tokens -------------------------------------------------

def secret_key(engine: Engine, config: Config) -> bytes:
    """``notify.secret_key``, else the key kept in the database (made once, shared by all the
    desk's processes)."""
    if config.notify.secret_key:
        return config.notify.secret_key.encode()
    # Read, then maybe insert: on SQLite the write lock is taken first, or a process that
    # committed in between (a listener in a burst) made a starting worker exit with "database
    # is locked".
    with write_transaction(engine) as conn:
        value = conn.execute(select(Setting.value).where(Setting.key == "secret_key")).scalar()
        if value is None:
            dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
            conn.execute(dialect.insert(Setting.__table__)
                         .values(key="secret_key", value=secrets.token_urlsafe(32))
                         .on_conflict_do_nothing(index_elements=["key"]))
            value = conn.execute(select(Setting.value).where(
                Setting.key == "secret_key")).scalar_one()
    return str(value).encode()


def _b64(data: bytes) -> str:
    return urlsafe_b64encode(data).rstrip(b"=").decode()


def make_token(secret: bytes, case_id: int, expires: datetime) -> str:
    """A self-service token for one case, valid until *expires*: ``CASE.EXPIRY.MAC``."""
    body = f"{case_id}.{int(expires.timestamp())}"
    mac = hmac.new(secret, b"self-service:" + body.encode(), hashlib.sha256).digest()
    return f"{body}.{_b64(mac[:18])}"


class TokenError(ValueError):
    """A self-service link that is not ours, altered, or expired."""


def read_token(secret: bytes, token: str, now: datetime) -> int:
    """The case id a token grants, or TokenError."""
    parts = token.split(".")
    if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
        raise TokenError("this link is not valid")
    body = f"{parts[0]}.{parts[1]}"
    mac = hmac.new(secret, b"self-service:" + body.encode(), hashlib.sha256).digest()
    try:
        given = urlsafe_b64decode(parts[2] + "=" * (-len(parts[2]) % 4))
    except ValueError as exc:
        raise TokenError("this link is not valid") from exc
    if not hmac.compare_digest(given, mac[:18]):
        raise TokenError("this link is not valid")
    if int(parts[1]) < now.timestamp():
        raise TokenError("this link has expired: reply to the notice mail instead, keeping "
                         "the case reference in the subject")
    return int(parts[0])


# ---- the tokens of our mails ----------------------------------------------------------------

def new_token() -> str:
    """130 random bits in 26 characters of lower-case base32: fit for a local part (and safe
    from the MTAs that lower-case one)."""
    return b32encode(secrets.token_bytes(17)).decode("ascii").lower()[:26]


def tagged_address(address: str, delimiter: str, tag: str) -> str:
    """``abuse@example.net`` with *tag*: ``abuse+TAG@example.net`` (*delimiter* "+")."""
    local, _, domain = address.rpartition("@")
    return f"{local}{delimiter}{tag}@{domain}"


def envelope_sender(config: Config, bounce_token: str | None) -> str:
    """The MAIL FROM of a mail: its VERP address ``abuse+b-TOKEN@`` (bounces come back to it),
    or ``notify.from_address`` without a token or with ``smtp.recipient_delimiter`` empty."""
    delimiter = config.smtp.recipient_delimiter
    if not bounce_token or not delimiter:
        return config.notify.from_address
    return tagged_address(config.notify.from_address, delimiter, f"b-{bounce_token}")


def reply_address(config: Config, reply_token: str) -> str | None:
    """The Reply-To of a mail to a customer, ``abuse+r-TOKEN@``; None without a delimiter."""
    delimiter = config.smtp.recipient_delimiter
    if not delimiter:
        return None
    return tagged_address(config.notify.from_address, delimiter, f"r-{reply_token}")

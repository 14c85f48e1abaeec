"""Who may use the web desk: accounts, passwords, sessions, API tokens, login throttling.

- Accounts are made on the command line (``abuse-desk users add NAME --role ROLE``); passwords
  are stored as argon2id hashes (argon2-cffi), re-hashed on login when the parameters change.
- A session is a random token in an HttpOnly, SameSite=Strict cookie; the database keeps only
  its SHA-256, a CSRF token and an expiry that slides with use (``web.session_hours``). Login
  always makes a new session (no fixation); logout deletes it.
- API tokens are random bearer tokens, stored as SHA-256, acting as their user with its role.
- Failed logins are counted per account and per address; past ``web.login_attempts`` in
  ``web.login_window_minutes`` login is refused until the window passes.

Roles: ``specialist`` works the review queue and cases; ``supervisor`` can do all of that and
also approves restrictions, terminations and fee waivers.
"""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Engine

from abuse_desk.db import as_utc, write_transaction
from abuse_desk.models import ApiToken, User, WebSession

ROLES = ("specialist", "supervisor")
RANK = {"specialist": 1, "supervisor": 2}
NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789._-")
MIN_PASSWORD = 10
MAX_PASSWORD = 1024

_hasher = PasswordHasher()
# Verified against when the account does not exist, so both answers take as long.
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))


class AuthError(ValueError):
    """A request about accounts that cannot be done; the message says what to do instead."""


@dataclass(frozen=True)
class WebUser:
    id: int
    name: str
    role: str

    def can(self, role: str) -> bool:
        return RANK.get(self.role, 0) >= RANK[role]


@dataclass(frozen=True)
class SessionInfo:
    id: str  # the stored hash, not the cookie's token
    user: WebUser
    csrf: str
    flash: str | None


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def check_name(name: str) -> str:
    name = name.strip().lower()
    if not name or len(name) > 64 or not set(name) <= NAME_CHARS:
        raise AuthError("a user name is 1 to 64 of a-z, 0-9, '.', '_' and '-'")
    return name


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AuthError(f"a password needs at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise AuthError(f"a password has at most {MAX_PASSWORD} characters")


# ---- accounts ------------------------------------------------------------------------------

def add_user(engine: Engine, name: str, role: str, password: str, now: datetime) -> WebUser:
    name = check_name(name)
    if role not in ROLES:
        raise AuthError(f"role must be one of: {', '.join(ROLES)}")
    check_password(password)
    with write_transaction(engine) as conn:
        if conn.execute(select(User.id).where(User.name == name)).first() is not None:
            raise AuthError(f"user {name!r} exists: use `abuse-desk users passwd {name}` "
                            "or `users role` to change it")
        user_id = conn.execute(insert(User).values(
            name=name, role=role, password_hash=_hasher.hash(password), disabled=False,
            created_at=now)).inserted_primary_key[0]  # type: ignore[index]
    return WebUser(int(user_id), name, role)


def set_password(engine: Engine, name: str, password: str) -> None:
    check_password(password)
    with write_transaction(engine) as conn:
        user_id = _user_id(conn, name)
        conn.execute(update(User).where(User.id == user_id).values(
            password_hash=_hasher.hash(password)))
        conn.execute(delete(WebSession).where(WebSession.user_id == user_id))


def set_role(engine: Engine, name: str, role: str) -> None:
    if role not in ROLES:
        raise AuthError(f"role must be one of: {', '.join(ROLES)}")
    with write_transaction(engine) as conn:
        conn.execute(update(User).where(User.id == _user_id(conn, name)).values(role=role))


def set_disabled(engine: Engine, name: str, disabled: bool, now: datetime) -> None:
    with write_transaction(engine) as conn:
        user_id = _user_id(conn, name)
        conn.execute(update(User).where(User.id == user_id).values(disabled=disabled))
        if disabled:
            conn.execute(delete(WebSession).where(WebSession.user_id == user_id))
            conn.execute(update(ApiToken).where(ApiToken.user_id == user_id,
                                                ApiToken.revoked_at.is_(None))
                         .values(revoked_at=now))


def list_users(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [{"name": u.name, "role": u.role, "disabled": u.disabled,
                 "created_at": as_utc(u.created_at)}
                for u in conn.execute(select(User).order_by(User.name))]


def _user_id(conn: Any, name: str) -> int:
    user_id = conn.execute(select(User.id).where(User.name == check_name(name))).scalar()
    if user_id is None:
        raise AuthError(f"no user {name!r}: `abuse-desk users list` shows who exists")
    return int(user_id)


def authenticate(engine: Engine, name: str, password: str) -> WebUser | None:
    """The user if the password is right and the account enabled; the same time either way."""
    try:
        name = check_name(name)
    except AuthError:
        name = ""
    with engine.connect() as conn:
        row = conn.execute(select(User).where(User.name == name)).first() if name else None
    stored = row.password_hash if row is not None else _DUMMY_HASH
    try:
        _hasher.verify(stored, password[:MAX_PASSWORD])
    except (VerificationError, InvalidHashError):
        return None
    if row is None or row.disabled:
        return None
    if _hasher.check_needs_rehash(stored):
        with write_transaction(engine) as conn:
            conn.execute(update(User).where(User.id == row.id).values(
                password_hash=_hasher.hash(password)))
    return WebUser(row.id, row.name, row.role)


def known_name(engine: Engine, name: str) -> str | None:
    """*name* as an account is called, if that account exists; else None. For logs: what was
    typed as a name is only written down when it names an account (people type their password
    into the name field)."""
    try:
        name = check_name(name)
    except AuthError:
        return None
    with engine.connect() as conn:
        found = conn.execute(select(User.name).where(User.name == name)).scalar()
    return str(found) if found is not None else None


# ---- sessions ------------------------------------------------------------------------------

def start_session(engine: Engine, user: WebUser, now: datetime, hours: float,
                  peer: str | None) -> str:
    """A new session for *user*; returns the cookie's token (stored only as its hash)."""
    token = secrets.token_urlsafe(32)
    with write_transaction(engine) as conn:
        conn.execute(delete(WebSession).where(WebSession.expires_at < now))
        conn.execute(insert(WebSession).values(
            id=_digest(token), user_id=user.id, csrf=secrets.token_urlsafe(32), created_at=now,
            last_seen_at=now, expires_at=now + timedelta(hours=hours), flash=None,
            peer=(peer or "")[:64] or None))
    return token


def load_session(engine: Engine, token: str | None, now: datetime,
                 hours: float) -> SessionInfo | None:
    """The live session the cookie names (its expiry moved on), or None."""
    if not token or len(token) > 100:
        return None
    sid = _digest(token)
    # Read, then write in a transaction of its own: on SQLite a transaction that reads before
    # it writes cannot wait for the write lock (the busy timeout does not apply to a lock
    # upgrade), and a worker committing in between failed the page with "database is locked".
    with engine.connect() as conn:
        session = conn.execute(
            select(WebSession.user_id, WebSession.csrf, WebSession.flash,
                   WebSession.last_seen_at, WebSession.expires_at, User.name, User.role,
                   User.disabled)
            .join(User, User.id == WebSession.user_id).where(WebSession.id == sid)).first()
    if session is None:
        return None
    name, role = session.name, session.role
    if session.disabled or as_utc(session.expires_at) <= now:  # type: ignore[operator]
        with write_transaction(engine) as conn:
            conn.execute(delete(WebSession).where(WebSession.id == sid))
        return None
    values: dict[str, Any] = {"flash": None}
    seen = as_utc(session.last_seen_at)
    if seen is None or (now - seen).total_seconds() > 60:
        values.update(last_seen_at=now, expires_at=now + timedelta(hours=hours))
    if values.keys() != {"flash"} or session.flash is not None:
        with write_transaction(engine) as conn:
            conn.execute(update(WebSession).where(WebSession.id == sid).values(**values))
    return SessionInfo(sid, WebUser(session.user_id, name, role), session.csrf, session.flash)


def set_flash(engine: Engine, session_id: str, message: str) -> None:
    with write_transaction(engine) as conn:
        conn.execute(update(WebSession).where(WebSession.id == session_id).values(
            flash=message[:500]))


def end_session(engine: Engine, session_id: str) -> None:
    with write_transaction(engine) as conn:
        conn.execute(delete(WebSession).where(WebSession.id == session_id))


def csrf_ok(expected: str, given: str | None) -> bool:
    return bool(given) and secrets.compare_digest(expected.encode(), (given or "").encode())


# ---- API tokens ----------------------------------------------------------------------------

def add_token(engine: Engine, user_name: str, token_name: str, now: datetime) -> str:
    """A new API token for *user_name*; the token itself is shown once and never stored."""
    token_name = token_name.strip()[:64] or "api"
    token = "adk_" + secrets.token_urlsafe(32)
    with write_transaction(engine) as conn:
        conn.execute(insert(ApiToken).values(
            user_id=_user_id(conn, user_name), name=token_name, token_hash=_digest(token),
            created_at=now))
    return token


def revoke_tokens(engine: Engine, user_name: str, token_name: str | None, now: datetime) -> int:
    with write_transaction(engine) as conn:
        stmt = update(ApiToken).where(ApiToken.user_id == _user_id(conn, user_name),
                                      ApiToken.revoked_at.is_(None))
        if token_name is not None:
            stmt = stmt.where(ApiToken.name == token_name)
        return conn.execute(stmt.values(revoked_at=now)).rowcount


def token_user(engine: Engine, token: str, now: datetime) -> WebUser | None:
    if not token.startswith("adk_") or len(token) > 100:
        return None
    with write_transaction(engine) as conn:
        row = conn.execute(
            select(ApiToken.id, ApiToken.last_used_at, User.id.label("uid"), User.name,
                   User.role, User.disabled)
            .join(User, User.id == ApiToken.user_id)
            .where(ApiToken.token_hash == _digest(token), ApiToken.revoked_at.is_(None))).first()
        if row is None or row.disabled:
            return None
        used = as_utc(row.last_used_at)
        if used is None or (now - used).total_seconds() > 60:
            conn.execute(update(ApiToken).where(ApiToken.id == row.id).values(last_used_at=now))
    return WebUser(row.uid, row.name, row.role)


# ---- login throttling ----------------------------------------------------------------------

def peer_key(host: str | None) -> str:
    """The throttle's key for a client address: an IPv4 address as it is, an IPv6 address by
    its /64 (one subscriber's network: rotating addresses inside it costs an attacker nothing).
    """
    host = host or ""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return f"peer:{host}"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return f"peer:{ip.ipv4_mapped}"
        return f"peer:{ipaddress.IPv6Network((ip, 64), strict=False)}"
    return f"peer:{ip}"


class LoginThrottle:
    """Failed logins per key (account name, peer address) in a sliding window, in memory:
    each web process counts its own (a restart forgets; a supervisor can also disable an
    account).

    :meth:`attempt` checks and counts in one step, so attempts sent in parallel cannot all pass
    the check before the first of them fails. The table is bounded (``max_keys``): past it, the
    keys that block nobody are forgotten, never a key that blocks (a spray of made-up names
    must not lift the lock on the account under attack).
    """

    max_keys = 100_000

    def __init__(self, attempts: int, window_s: float, clock: Any = time.monotonic) -> None:
        self.attempts = attempts
        self.window_s = window_s
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()
        self._prune_at = self.max_keys

    def _recent(self, key: str, now: float) -> deque[float]:
        seen = self._failures.setdefault(key, deque())
        while seen and seen[0] <= now - self.window_s:
            seen.popleft()
        return seen

    def _blocked(self, keys: tuple[str, ...], now: float) -> bool:
        return any(len(self._recent(k, now)) >= self.attempts for k in keys if k)

    def _count(self, keys: tuple[str, ...], now: float) -> None:
        if len(self._failures) >= self._prune_at:
            for key in list(self._failures):
                if len(self._recent(key, now)) < self.attempts:
                    del self._failures[key]
            # Still full of blocking keys: do not scan again at every attempt.
            self._prune_at = max(self.max_keys, 2 * len(self._failures))
        for key in keys:
            if key:
                self._recent(key, now).append(now)

    def blocked(self, *keys: str) -> bool:
        now = self._clock()
        with self._lock:
            return self._blocked(keys, now)

    def attempt(self, *keys: str) -> bool:
        """False when a key is blocked (nothing counted); else True, the attempt counted as a
        failure until :meth:`succeeded` takes it back."""
        now = self._clock()
        with self._lock:
            if self._blocked(keys, now):
                return False
            self._count(keys, now)
            return True

    def failed(self, *keys: str) -> None:
        now = self._clock()
        with self._lock:
            self._count(keys, now)

    def succeeded(self, name_key: str, *other_keys: str) -> None:
        """A login as *name_key* succeeded: its failures are forgotten, and the attempt
        :meth:`attempt` counted against *other_keys* (the address) is taken back."""
        with self._lock:
            self._failures.pop(name_key, None)
            for key in other_keys:
                seen = self._failures.get(key)
                if seen:
                    seen.pop()

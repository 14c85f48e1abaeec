"""Who may use the web desk: accounts, passwords, sessions, API tokens, login throttling.

- Accounts are made on the command line (``abuse-desk users add NAME --role ROLE``); passwords
  are stored as argon2id hashes (argon2-cffi), re-hashed on login when the parameters change.
- A session is a random token in an HttpOnly, SameSite=Strict cookie; the database keeps only
  its SHA-256, a CSRF token and an expiry that slides with use (``web.session_hours``) but never
  past ``web.session_max_hours`` after the login. Login always makes a new session (no
  fixation); logout deletes it.
- API tokens are random bearer tokens, stored as SHA-256, acting as their user with its role,
  until they expire (``web.api_token_days``), are revoked, their user's password changes or the
  user is disabled.
- Failed logins are counted per account and address pair, per address and per account
  (:class:`LoginThrottle`); wrong passwords sent from elsewhere do not lock the real user out of
  an address they have signed in from, and a supervisor can unlock an account
  (:func:`unlock_logins`).

Roles: ``specialist`` works the review queue and cases; ``supervisor`` can do all of that and
also approves restrictions, terminations and fee waivers.
"""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Engine

from ..core.config import WebConfig
from ..core.db import as_utc, write_transaction
from ..core.models import ApiToken, Event, User, WebSession

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


class NoSuchUser(AuthError):
    """The name given is not an account's."""


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


def set_password(engine: Engine, name: str, password: str, now: datetime) -> int:
    """Set *name*'s password; their sessions end and their API tokens are revoked (a token
    made by whoever knew the old password must not outlive it). Returns the tokens revoked."""
    check_password(password)
    with write_transaction(engine) as conn:
        user_id = _user_id(conn, name)
        conn.execute(update(User).where(User.id == user_id).values(
            password_hash=_hasher.hash(password)))
        conn.execute(delete(WebSession).where(WebSession.user_id == user_id))
        return conn.execute(update(ApiToken).where(ApiToken.user_id == user_id,
                                                   ApiToken.revoked_at.is_(None))
                            .values(revoked_at=now)).rowcount


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
        raise NoSuchUser(f"no user {name!r}: `abuse-desk users list` shows who exists")
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


def login_state(engine: Engine, name: str) -> tuple[str | None, int]:
    """(*name* as the account is called, or None when there is no such account; how many
    times a supervisor has unlocked its logins). For the throttle and the log."""
    try:
        name = check_name(name)
    except AuthError:
        return None, 0
    with engine.connect() as conn:
        row = conn.execute(select(User.name, User.login_unlocks)
                           .where(User.name == name)).first()
    return (str(row.name), int(row.login_unlocks or 0)) if row is not None else (None, 0)


def unlock_logins(engine: Engine, name: str, now: datetime, actor_kind: str,
                  actor: str, reason: str = "") -> None:
    """Let *name* sign in again at once: every web process forgets the failed logins it
    counted for the account (from every address) at its next login attempt. An address that
    is refused for guessing many names stays refused until its window passes. An audit event
    records who unlocked it."""
    with write_transaction(engine) as conn:
        user_id = _user_id(conn, name)
        conn.execute(update(User).where(User.id == user_id).values(
            login_unlocks=User.login_unlocks + 1))
        conn.execute(insert(Event).values(
            at=now, actor_kind=actor_kind, actor=actor, subject_type="user",
            subject_id=user_id, action="logins-unlocked",
            detail={"user": check_name(name), **({"reason": reason} if reason else {})}))


# ---- sessions ------------------------------------------------------------------------------

def start_session(engine: Engine, user: WebUser, now: datetime, hours: float,
                  peer: str | None,
                  max_hours: float = WebConfig.session_max_hours) -> str:
    """A new session for *user*; returns the cookie's token (stored only as its hash)."""
    token = secrets.token_urlsafe(32)
    with write_transaction(engine) as conn:
        conn.execute(delete(WebSession).where(WebSession.expires_at < now))
        conn.execute(insert(WebSession).values(
            id=_digest(token), user_id=user.id, csrf=secrets.token_urlsafe(32), created_at=now,
            last_seen_at=now, expires_at=now + timedelta(hours=min(hours, max_hours)),
            flash=None, peer=(peer or "")[:64] or None))
    return token


def load_session(engine: Engine, token: str | None, now: datetime, hours: float,
                 max_hours: float = WebConfig.session_max_hours) -> SessionInfo | None:
    """The live session the cookie names (its expiry moved on, *hours* from now but never
    past *max_hours* after the login), or None."""
    if not token or len(token) > 100:
        return None
    sid = _digest(token)
    # Read, then write in a transaction of its own: on SQLite a transaction that reads before
    # it writes cannot wait for the write lock (the busy timeout does not apply to a lock
    # upgrade), and a worker committing in between failed the page with "database is locked".
    with engine.connect() as conn:
        session = conn.execute(
            select(WebSession.user_id, WebSession.csrf, WebSession.flash,
                   WebSession.created_at, WebSession.last_seen_at, WebSession.expires_at,
                   User.name, User.role, User.disabled)
            .join(User, User.id == WebSession.user_id).where(WebSession.id == sid)).first()
    if session is None:
        return None
    name, role = session.name, session.role
    # The absolute end: however often the session is used, it ends max_hours after the login
    # (a stolen cookie kept alive by a script, or a desk left signed in, does not live forever).
    end = as_utc(session.created_at) + timedelta(hours=max_hours)  # type: ignore[operator]
    if session.disabled or as_utc(session.expires_at) <= now or end <= now:  # type: ignore[operator]
        with write_transaction(engine) as conn:
            conn.execute(delete(WebSession).where(WebSession.id == sid))
        return None
    values: dict[str, Any] = {"flash": None}
    seen = as_utc(session.last_seen_at)
    if seen is None or (now - seen).total_seconds() > 60:
        values.update(last_seen_at=now, expires_at=min(now + timedelta(hours=hours), end))
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

MAX_TOKEN_DAYS = 3650


@dataclass(frozen=True)
class IssuedToken:
    token: str  # shown once, never stored
    expires_at: datetime


def issue_token(engine: Engine, user_name: str, token_name: str, now: datetime,
                days: float = WebConfig.api_token_days) -> IssuedToken:
    """A new API token for *user_name*, valid *days* from *now*."""
    if not 0 < days <= MAX_TOKEN_DAYS:
        raise AuthError(f"a token is valid for 1 to {MAX_TOKEN_DAYS} days")
    token_name = token_name.strip()[:64] or "api"
    token = "adk_" + secrets.token_urlsafe(32)
    expires = now + timedelta(days=days)
    with write_transaction(engine) as conn:
        user_id = _user_id(conn, user_name)
        if conn.execute(select(User.disabled).where(User.id == user_id)).scalar():
            raise AuthError(f"{check_name(user_name)} is disabled: `abuse-desk users enable` "
                            "first")
        conn.execute(insert(ApiToken).values(
            user_id=user_id, name=token_name, token_hash=_digest(token), created_at=now,
            expires_at=expires))
    return IssuedToken(token, expires)


def add_token(engine: Engine, user_name: str, token_name: str, now: datetime,
              days: float = WebConfig.api_token_days) -> str:
    """A new API token for *user_name*; the token itself is shown once and never stored."""
    return issue_token(engine, user_name, token_name, now, days).token


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
            .where(ApiToken.token_hash == _digest(token), ApiToken.revoked_at.is_(None),
                   ApiToken.expires_at > now)).first()
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


@dataclass(frozen=True)
class LoginKeys:
    """The throttle's keys for a login as *name* from one address."""

    pair: str  # this account from this address (network)
    peer: str  # this address, whatever the name
    account: str  # this account, from anywhere

    @classmethod
    def of(cls, name: str, host: str | None) -> LoginKeys:
        peer = peer_key(host)
        name = name.strip().lower()[:64]
        return cls(pair=f"pair:{name}@{peer[len('peer:'):]}", peer=peer,
                   account=f"account:{name}")


# What refused a login: the account from this address (or, under a spread-out attack, from
# any address it has not signed in from), or the address for every name.
ACCOUNT, ADDRESS = "account", "address"


class LoginThrottle:
    """Failed logins in a sliding window, in memory: each web process counts its own (a restart
    forgets; a supervisor unlocks an account with :func:`unlock_logins`).

    Three counts, each with its limit:

    - per account and address pair (``attempts``): five wrong passwords for ``sam`` from one
      address refuse ``sam`` from that address only, so wrong passwords sent from elsewhere
      cannot lock ``sam`` out;
    - per address (``per_address``), whatever the names: a spray of names from one address
      (an IPv6 /64 is one address);
    - per account (``per_account``, 0: off), from every address: past it, the account is
      refused from addresses it has not signed in from, so a botnet guessing one password from
      thousands of addresses is stopped while its owner, at an address they signed in from
      before, still gets in.

    A failure counted for an account carries the account's unlock number (``users.
    login_unlocks``) at that time; a higher number seen later (a supervisor's unlock, in any
    process) drops it.

    :meth:`attempt` checks and counts in one step, so attempts sent in parallel cannot all pass
    the check before the first of them fails. The tables are bounded (``max_keys``): past it,
    the keys that block nobody are forgotten, never a key that blocks (a spray of made-up names
    must not lift the lock on the account under attack).
    """

    max_keys = 100_000

    def __init__(self, attempts: int, window_s: float, clock: Any = time.monotonic, *,
                 per_address: int | None = None, per_account: int = 0) -> None:
        self.attempts = attempts
        self.per_address = per_address if per_address is not None else attempts
        self.per_account = per_account
        self.window_s = window_s
        self._clock = clock
        # key -> failures as (monotonic time, the account's unlock number then)
        self._failures: dict[str, deque[tuple[float, int]]] = {}
        self._signed_in: OrderedDict[str, None] = OrderedDict()  # pairs that signed in
        self._lock = threading.Lock()
        self._prune_at = self.max_keys

    def _limit(self, key: str) -> float:
        if key.startswith("peer:"):
            return self.per_address
        if key.startswith("account:"):
            return self.per_account or float("inf")
        return self.attempts

    def _recent(self, key: str, now: float, unlocks: int | None = None) -> deque[tuple[float, int]]:
        seen = self._failures.setdefault(key, deque())
        while seen and seen[0][0] <= now - self.window_s:
            seen.popleft()
        if unlocks is not None and any(n < unlocks for _, n in seen):
            kept = deque(f for f in seen if f[1] >= unlocks)
            self._failures[key] = seen = kept
        return seen

    def _over(self, key: str, limit: float, now: float, unlocks: int | None = None) -> bool:
        return bool(key) and len(self._recent(key, now, unlocks)) >= limit

    def _count(self, keys: tuple[str, ...], now: float, unlocks: int = 0) -> None:
        if len(self._failures) >= self._prune_at:
            for key in list(self._failures):
                if len(self._recent(key, now)) < self._limit(key):
                    del self._failures[key]
            # Still full of blocking keys: do not scan again at every attempt.
            self._prune_at = max(self.max_keys, 2 * len(self._failures))
        for key in keys:
            if key:
                self._recent(key, now).append((now, unlocks))

    # ---- logins ----
    def attempt(self, keys: LoginKeys, unlocks: int = 0) -> str | None:
        """None when the login may be tried (the attempt is counted as a failure until
        :meth:`succeeded` takes it back); else what refuses it, :data:`ACCOUNT` or
        :data:`ADDRESS` (nothing counted). *unlocks*: the account's unlock number now."""
        now = self._clock()
        with self._lock:
            if self._over(keys.peer, self.per_address, now):
                return ADDRESS
            if self._over(keys.pair, self.attempts, now, unlocks):
                return ACCOUNT
            if self.per_account and keys.pair not in self._signed_in and \
                    self._over(keys.account, self.per_account, now, unlocks):
                return ACCOUNT
            self._count((keys.pair, keys.peer, keys.account if self.per_account else ""),
                        now, unlocks)
            return None

    def succeeded(self, keys: LoginKeys) -> None:
        """The login succeeded: the pair's failures are forgotten, the attempt counted against
        the address and the account is taken back, and the pair is one the account signed in
        from."""
        with self._lock:
            self._failures.pop(keys.pair, None)
            for key in (keys.peer, keys.account):
                seen = self._failures.get(key)
                if seen:
                    seen.pop()
            self._signed_in[keys.pair] = None
            self._signed_in.move_to_end(keys.pair)
            while len(self._signed_in) > self.max_keys:
                self._signed_in.popitem(last=False)

    # ---- plain keys: "peer:" ones limited by `per_address`, "account:" ones by `per_account`,
    # any other by `attempts` ----
    def blocked(self, *keys: str) -> bool:
        now = self._clock()
        with self._lock:
            return any(self._over(k, self._limit(k), now) for k in keys)

    def failed(self, *keys: str) -> None:
        now = self._clock()
        with self._lock:
            self._count(keys, now)

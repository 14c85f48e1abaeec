"""A stubborn SMTP client for the crash tests, run as its own process.

Sends COUNT messages, each carrying ``X-Test-Token: N``, over reused connections. Like a real MTA
it keeps a message until it got a 250 for it: on a 4xx, a dropped connection or a refused
connect it waits briefly and tries again, until the deadline. Each 250 is appended to OUT as
``N ID`` and flushed at once, so the file says exactly which messages the desk acknowledged.
With ``--arf`` each message is a feedback-loop report (RFC 5965) about an IP of one of the
customers of :data:`ARF_PREFIXES` (see :func:`arf_source_ip`), so it opens or joins a case.

    python -m tests.burst_sender --port 2525 --count 500 --out acked.txt [--arf]
"""

from __future__ import annotations

import argparse
import email.utils
import smtplib
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from abuse_desk.core.clock import system_clock

# One customer per /24 (tests/fault_support.py imports them with these prefixes); token N
# reports an IP of customer N % 4.
ARF_PREFIXES = ("45.137.21", "45.137.22", "45.137.23", "45.137.24")


def body(token: int) -> bytes:
    return (f"From: burst@example.org\r\nTo: abuse@localhost\r\nSubject: burst {token}\r\n"
            f"Message-ID: <burst.{token}@example.org>\r\nX-Test-Token: {token}\r\n\r\n"
            f"report number {token}\r\n" + "padding line\r\n" * 40).encode()


def arf_source_ip(token: int) -> str:
    """The IP that ARF message *token* complains about."""
    prefix = ARF_PREFIXES[token % len(ARF_PREFIXES)]
    return f"{prefix}.{1 + (token // len(ARF_PREFIXES)) % 250}"


def arf_body(token: int, base: datetime) -> bytes:
    """A feedback-loop report about spam from :func:`arf_source_ip`, its Arrival-Date *token*
    seconds before *base*: no two tokens are the same incident, and a resend of one token is
    the same bytes (a copy the desk merges into the first)."""
    ip = arf_source_ip(token)
    arrived = email.utils.format_datetime(base - timedelta(seconds=token))
    return (
        "From: Mailbox FBL <fbl@mailbox.example>\r\nTo: abuse@localhost\r\n"
        f"Subject: FW: Cheap watches {token}\r\nDate: {email.utils.format_datetime(base)}\r\n"
        f"Message-ID: <fbl.burst.{token}@mailbox.example>\r\nX-Test-Token: {token}\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=feedback-report; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain\r\n\r\nThis is an abuse report.\r\n"
        "--b\r\nContent-Type: message/feedback-report\r\n\r\n"
        "Feedback-Type: abuse\r\nUser-Agent: FBL/1.0\r\nVersion: 1\r\n"
        f"Source-IP: {ip}\r\nArrival-Date: {arrived}\r\n"
        "Original-Rcpt-To: <victim.person@mailbox.example>\r\n"
        "--b\r\nContent-Type: message/rfc822\r\n\r\n"
        f"Received: from spammer ([{ip}]) by mx.mailbox.example\r\n"
        f"    for <victim.person@mailbox.example>; {arrived}\r\n"
        "From: offers@bulk.example\r\nTo: victim.person@mailbox.example\r\n"
        f"Subject: Cheap watches {token}\r\nMessage-ID: <spam.{token}@bulk.example>\r\n\r\n"
        "Buy now!\r\n--b--\r\n").encode()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--count", type=int, default=500)
    p.add_argument("--per-connection", type=int, default=20)
    p.add_argument("--deadline-s", type=float, default=180.0)
    p.add_argument("--out", required=True)
    p.add_argument("--arf", action="store_true", help="send feedback-loop reports (arf_body)")
    p.add_argument("--codes", help="append 'N CODE' here for every answer to DATA but a 250")
    args = p.parse_args()
    # incidents an hour before now by the desk processes' own clock (the system's)
    base = system_clock().replace(microsecond=0) - timedelta(hours=1)
    make: Callable[[int], bytes] = (lambda t: arf_body(t, base)) if args.arf else body

    deadline = time.monotonic() + args.deadline_s
    client: smtplib.SMTP | None = None
    sent_on_connection = 0
    with open(args.out, "a", encoding="ascii") as out:
        token = 0
        while token < args.count:
            if time.monotonic() > deadline:
                print(f"deadline passed at token {token}")
                return 1
            try:
                if client is None or sent_on_connection >= args.per_connection:
                    if client is not None:
                        try:
                            client.quit()
                        except smtplib.SMTPException:
                            pass
                    client = smtplib.SMTP(args.host, args.port, timeout=10)
                    client.ehlo("burst.example.org")
                    sent_on_connection = 0
                client.mail("burst@example.org")
                client.rcpt("abuse@localhost")
                code, reply = client.data(make(token))
                sent_on_connection += 1
                if code == 250:
                    out.write(f"{token} {reply.decode().rsplit(' ', 1)[1]}\n")
                    out.flush()
                    token += 1
                else:
                    if args.codes:
                        with open(args.codes, "a", encoding="ascii") as codes:
                            codes.write(f"{token} {code}\n")
                    time.sleep(0.1)
            except (OSError, smtplib.SMTPException):
                client = None
                time.sleep(0.1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

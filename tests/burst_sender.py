"""A stubborn SMTP client for the crash tests, run as its own process.

Sends COUNT messages, each carrying ``X-Test-Token: N``, over reused connections. Like a real MTA
it keeps a message until it got a 250 for it: on a 4xx, a dropped connection or a refused
connect it waits briefly and tries again, until the deadline. Each 250 is appended to OUT as
``N ID`` and flushed at once, so the file says exactly which messages the desk acknowledged.

    python -m tests.burst_sender --port 2525 --count 500 --out acked.txt
"""

from __future__ import annotations

import argparse
import smtplib
import time


def body(token: int) -> bytes:
    return (f"From: burst@example.org\r\nTo: abuse@localhost\r\nSubject: burst {token}\r\n"
            f"Message-ID: <burst.{token}@example.org>\r\nX-Test-Token: {token}\r\n\r\n"
            f"report number {token}\r\n" + "padding line\r\n" * 40).encode()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--count", type=int, default=500)
    p.add_argument("--per-connection", type=int, default=20)
    p.add_argument("--deadline-s", type=float, default=180.0)
    p.add_argument("--out", required=True)
    args = p.parse_args()

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
                code, reply = client.data(body(token))
                sent_on_connection += 1
                if code == 250:
                    out.write(f"{token} {reply.decode().rsplit(' ', 1)[1]}\n")
                    out.flush()
                    token += 1
                else:
                    time.sleep(0.1)
            except (OSError, smtplib.SMTPException):
                client = None
                time.sleep(0.1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

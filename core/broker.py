"""The dramatiq broker named by ``broker.url``; created on demand, never at import time.

:func:`broker_problem` asks a broker whether it answers, without the broker object, so that a
process can wait for it at start (``app/runner.py``) instead of starting workers that log
a connection error every few seconds.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

import dramatiq
import redis
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker

QUEUE = "abuse-desk"

# The one way work is handed to the workers: ``send("process_message", 12)``. Every actor takes
# one id, but ``process_messages``, which takes a list of them (workflow/actors.py names them).
Send = Callable[[str, "int | list[int]"], None]


def is_in_process(url: str) -> bool:
    return url == "memory://"


def make_broker(url: str) -> dramatiq.Broker:
    """memory:// gives the in-process StubBroker (one process: `abuse-desk serve`)."""
    if is_in_process(url):
        return StubBroker()
    if url.startswith(("redis://", "rediss://")):
        client = redis.Redis.from_url(
            url, socket_connect_timeout=5, socket_timeout=30, health_check_interval=30)
        return RedisBroker(client=client)
    if url.startswith(("amqp://", "amqps://")):
        return RabbitmqBroker(url=url, confirm_delivery=True)
    raise ValueError(f"broker.url {url!r}: expected memory://, redis://… or amqp://…")


def sender(broker: dramatiq.Broker) -> Send:
    """What sends work to the desk's actors on *broker*: the message an actor's ``send`` would
    make (the actor is named, not needed here, so the parts that send work are built before the
    actors that do it)."""
    broker.declare_queue(QUEUE)

    def send(actor_name: str, ident: int | list[int]) -> None:
        broker.enqueue(dramatiq.Message(queue_name=QUEUE, actor_name=actor_name, args=(ident,),
                                        kwargs={}, options={}))

    return send


def safe_url(url: str) -> str:
    """*url* as logs may show it: without its password."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        user = parts.username or ""
        host = parts.netloc.rpartition("@")[2]
        return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
    except ValueError:
        return url.split("://", 1)[0] + "://…"


def broker_problem(url: str, timeout_s: float = 5.0) -> str | None:
    """None when the broker at *url* answers (Redis: PING; RabbitMQ: a connection opens), else
    why not, in one line. Nothing is declared or sent."""
    if is_in_process(url):
        return None
    try:
        if url.startswith(("redis://", "rediss://")):
            client = redis.Redis.from_url(url, socket_connect_timeout=timeout_s,
                                          socket_timeout=timeout_s)
            try:
                client.ping()
            finally:
                client.close()
            return None
        import pika

        params = pika.URLParameters(url)
        params.socket_timeout = params.blocked_connection_timeout = timeout_s
        params.connection_attempts = 1
        connection = pika.BlockingConnection(params)
        connection.close()
        return None
    except Exception as exc:  # any failure to answer is "not yet": the caller tries again
        why = " ".join((str(exc) or repr(exc)).split()) or exc.__class__.__name__
        try:
            password = urlsplit(url).password
        except ValueError:
            password = None
        return (why.replace(password, "***") if password else why)[:300]

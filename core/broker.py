"""The dramatiq broker named by ``broker.url``; created on demand, never at import time.

Work goes to the actors one id at a time (:func:`sender`) or many at once (:func:`many_sender`,
the listener's dispatcher: one broker round trip per group commit). A batch to Redis is one
pipeline of dramatiq's own enqueue script; to RabbitMQ, one AMQP transaction (all published,
then one ``tx.commit``: pika's BlockingChannel in confirm mode waits for each publish's confirm
in turn, so a confirm channel cannot take a batch in one round trip); to the in-process broker,
a loop.

:func:`broker_problem` asks a broker whether it answers, without the broker object, so that a
process can wait for it at start (``app/runner.py``) instead of starting workers that log
a connection error every few seconds.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from uuid import uuid4

import dramatiq
import pika
import redis
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.common import current_millis
from dramatiq.errors import ConnectionClosed

QUEUE = "abuse-desk"

# The one way work is handed to the workers: ``send("process_message", 12)``. Every actor takes
# one id, but ``process_messages``, which takes a list of them (workflow/actors.py names them).
Send = Callable[[str, "int | list[int]"], None]
# Many messages to one actor in one broker round trip: ``send_many("process_message", [12,
# 13])``, or ``send_many("process_messages", [[12, 13], [14]])``. It raises when the batch may
# not have reached the broker (the caller leaves all of it to the sweeper; a message that did
# arrive twice is processed once in effect).
SendMany = Callable[[str, Sequence["int | list[int]"]], None]


def in_batches(ids: Sequence[int], size: int) -> list[list[int]]:
    """*ids* in lists of at most *size*: what ``process_messages`` takes, one list a message."""
    return [list(ids[start:start + size]) for start in range(0, len(ids), size)]


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
        broker.enqueue(_message(actor_name, ident))

    return send


def _message(actor_name: str, ident: int | list[int]) -> dramatiq.Message[Any]:
    return dramatiq.Message(queue_name=QUEUE, actor_name=actor_name, args=(ident,), kwargs={},
                            options={})


def many_sender(broker: dramatiq.Broker) -> SendMany:
    """What sends many ids to one actor on *broker* in one round trip (see the module
    docstring); each message is the one :func:`sender` would send, with the broker's
    middleware told of it (``before_enqueue`` for each, ``after_enqueue`` for each once the
    batch is sent)."""
    broker.declare_queue(QUEUE)
    if isinstance(broker, RedisBroker):
        return _redis_many(broker)
    if isinstance(broker, RabbitmqBroker):
        return _rabbitmq_many(broker)
    send = sender(broker)

    def send_each(actor_name: str, ids: Sequence[int | list[int]]) -> None:
        for ident in ids:
            send(actor_name, ident)

    return send_each


def _redis_many(broker: RedisBroker) -> SendMany:
    """One Redis pipeline of what ``RedisBroker.enqueue`` runs for each message: its
    ``dispatch`` script's ``enqueue`` command, a fresh ``redis_message_id`` per message. The
    script is called by its sha (EVALSHA), and loaded once when Redis does not know it (the
    pipeline then ran none of it and is sent again)."""
    script = broker.scripts["dispatch"]

    def send_many(actor_name: str, ids: Sequence[int | list[int]]) -> None:
        if not ids:
            return
        messages = []
        for ident in ids:
            message = _message(actor_name, ident).copy(
                options={"redis_message_id": str(uuid4())})
            broker.emit_before("enqueue", message, None)
            messages.append(message)
        args = [(message.options["redis_message_id"], message.encode()) for message in messages]
        for attempt in (1, 2):
            pipe = broker.client.pipeline(transaction=False)
            for redis_id, body in args:
                pipe.evalsha(script.sha, 1, broker.namespace, "enqueue", current_millis(), QUEUE,
                             broker.broker_id, broker.heartbeat_timeout,
                             broker.dead_message_ttl, broker._should_do_maintenance("enqueue"),
                             broker._max_unpack_size(), redis_id, body)
            try:
                pipe.execute()
                break
            except redis.exceptions.NoScriptError:
                if attempt == 2:
                    raise
                broker.client.script_load(script.script)
        for message in messages:
            broker.emit_after("enqueue", message, None)

    return send_many


def _rabbitmq_many(broker: RabbitmqBroker) -> SendMany:
    """One AMQP transaction on a channel of the broker's connection for this thread: every
    message published as ``RabbitmqBroker.enqueue`` publishes it (persistent, mandatory), then
    one ``tx.commit``, which RabbitMQ answers once the messages are in their durable queue. A
    message the broker returned (its queue is gone) fails the batch, as it fails an enqueue."""
    local = threading.local()

    def channel() -> Any:
        ch = getattr(local, "channel", None)
        if ch is None or not ch.is_open:
            ch = broker.connection.channel()
            local.returned = []
            ch.add_on_return_callback(lambda *returned: local.returned.append(returned))
            ch.tx_select()
            local.channel = ch
        return ch

    def send_many(actor_name: str, ids: Sequence[int | list[int]]) -> None:
        if not ids:
            return
        messages = [_message(actor_name, ident) for ident in ids]
        try:
            broker.declare_queue(QUEUE, ensure=True)
            ch = channel()
            for message in messages:
                broker.emit_before("enqueue", message, None)
                ch.basic_publish(exchange="", routing_key=QUEUE, body=message.encode(),
                                 properties=pika.BasicProperties(
                                     delivery_mode=2,
                                     priority=message.options.get("broker_priority")),
                                 mandatory=True)
            ch.tx_commit()
            broker.connection.process_data_events(time_limit=0)  # returns, if any
            if local.returned:
                local.returned = []
                broker.queues_pending.add(QUEUE)
                raise ConnectionClosed(pika.exceptions.UnroutableError([]))
        except (pika.exceptions.AMQPConnectionError, pika.exceptions.AMQPChannelError) as exc:
            # The next batch opens a new connection and channel.
            local.channel = None
            del broker.connection
            raise ConnectionClosed(exc) from None
        for message in messages:
            broker.emit_after("enqueue", message, None)

    return send_many


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

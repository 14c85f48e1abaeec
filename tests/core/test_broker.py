"""Sending many ids in one round trip (core/broker.py ``many_sender``), read back from the real
Redis and RabbitMQ: every id arrives once, as the message the one-id ``sender`` makes."""

from __future__ import annotations

from typing import Any

import dramatiq
import pika
import pytest
import redis
from abuse_desk.core.broker import QUEUE, make_broker, many_sender, sender
from dramatiq.brokers.stub import StubBroker

IDS = list(range(1, 201))


class Hooks(dramatiq.Middleware):
    """Counts what the broker tells its middleware about enqueued messages."""

    def __init__(self) -> None:
        self.before: list[Any] = []
        self.after: list[Any] = []

    def before_enqueue(self, broker: Any, message: Any, delay: Any) -> None:
        self.before.append(message.args[0])

    def after_enqueue(self, broker: Any, message: Any, delay: Any) -> None:
        self.after.append(message.args[0])


def _redis_ids(url: str) -> list[tuple[str, int]]:
    client = redis.Redis.from_url(url)
    try:
        queued = client.lrange(f"dramatiq:{QUEUE}", 0, -1)
        bodies = client.hgetall(f"dramatiq:{QUEUE}.msgs")
    finally:
        client.close()
    assert len(queued) == len(set(queued)) == len(bodies)
    messages = [dramatiq.Message.decode(bodies[key]) for key in queued]
    assert {m.options["redis_message_id"] for m in messages} == {k.decode() for k in queued}
    return [(m.actor_name, m.args[0]) for m in messages]


def _amqp_ids(url: str) -> list[tuple[str, int]]:
    conn = pika.BlockingConnection(pika.URLParameters(url))
    got = []
    try:
        channel = conn.channel()
        while True:
            method, properties, body = channel.basic_get(QUEUE, auto_ack=True)
            if method is None:
                break
            assert properties.delivery_mode == 2  # persistent, as dramatiq publishes
            message = dramatiq.Message.decode(body)
            got.append((message.actor_name, message.args[0]))
    finally:
        conn.close()
    return got


@pytest.mark.service
def test_a_batch_reaches_redis_once_per_id(redis_url: str) -> None:
    broker = make_broker(redis_url)
    hooks = Hooks()
    broker.add_middleware(hooks)
    try:
        many_sender(broker)("process_message", IDS)
        sender(broker)("process_message", 999)  # the one-id send puts the same shape
    finally:
        broker.close()
    got = _redis_ids(redis_url)
    assert sorted(got) == [("process_message", i) for i in [*IDS, 999]]
    assert hooks.before == hooks.after == [*IDS, 999]


@pytest.mark.service
def test_a_batch_reaches_rabbitmq_once_per_id(amqp_url: str) -> None:
    broker = make_broker(amqp_url)
    hooks = Hooks()
    broker.add_middleware(hooks)
    try:
        send_many = many_sender(broker)
        send_many("process_message", IDS[:100])
        send_many("process_message", IDS[100:])  # the channel is kept for the next batch
        sender(broker)("process_message", 999)
    finally:
        broker.close()
    got = _amqp_ids(amqp_url)
    assert sorted(got) == [("process_message", i) for i in [*IDS, 999]]
    assert hooks.before == hooks.after == [*IDS, 999]


def test_a_batch_to_the_in_process_broker_is_a_loop() -> None:
    broker = StubBroker()
    many_sender(broker)("process_message", [3, 1, 2])
    queued = [dramatiq.Message.decode(body) for body in broker.queues[QUEUE].queue]
    assert [(m.actor_name, m.args[0]) for m in queued] == [("process_message", i)
                                                          for i in (3, 1, 2)]


def test_a_broker_that_does_not_answer_fails_the_batch() -> None:
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    broker = make_broker(f"redis://127.0.0.1:{port}/0")
    try:
        with pytest.raises(redis.exceptions.ConnectionError):
            many_sender(broker)("process_message", IDS)
    finally:
        broker.close()

"""The dramatiq broker named by ``broker.url``; created on demand, never at import time."""

from __future__ import annotations

import dramatiq
import redis
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker

QUEUE = "abuse-desk"


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

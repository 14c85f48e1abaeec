"""The group-commit writer and the dispatcher, on a real SQLite file."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from abuse_desk.core.db import make_engine, upgrade
from abuse_desk.core.models import Message
from abuse_desk.ingest.store import Dispatcher, Envelope, GroupCommitWriter
from sqlalchemy import Engine, event, func, select

from tests.support import NOW, make_config, wait_for


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    engine = make_engine(make_config(tmp_path).database)
    upgrade(engine)
    return engine


def stored(engine: Engine) -> list[bytes]:
    with engine.connect() as conn:
        return list(conn.execute(select(Message.raw).order_by(Message.id)).scalars())


ENV = Envelope(mail_from="r@example.org", rcpt_tos=["abuse@localhost"], received_at=NOW)


def test_waiting_messages_share_one_commit(engine: Engine) -> None:
    committed: list[list[int]] = []
    writer = GroupCommitWriter(engine, committed.append)
    futures = [writer.submit(f"message {n}\r\n".encode(), ENV) for n in range(10)]
    writer.start()  # all ten were waiting: one transaction
    ids = [f.result(10) for f in futures]
    writer.stop()
    assert committed == [ids]
    assert stored(engine) == [f"message {n}\r\n".encode() for n in range(10)]


def test_batch_size_is_capped(engine: Engine) -> None:
    committed: list[list[int]] = []
    writer = GroupCommitWriter(engine, committed.append, batch_max=4)
    futures = [writer.submit(b"x", ENV) for _ in range(10)]
    writer.start()
    for f in futures:
        f.result(10)
    writer.stop()
    assert [len(batch) for batch in committed] == [4, 4, 2]


def refuse_poison(conn: Any, cursor: Any, statement: str, params: Any, context: Any,
                  executemany: bool) -> None:
    """A ``before_cursor_execute`` listener: a statement carrying a message with POISON in it
    fails, as a message the database refuses would."""
    values = params if isinstance(params, list | tuple) else [params]
    flat = [v for row in values for v in (row if isinstance(row, list | tuple) else [row])]
    if any(isinstance(v, bytes | memoryview) and b"POISON" in bytes(v) for v in flat):
        raise RuntimeError("refused by the test")


def test_one_bad_message_does_not_fail_the_others(engine: Engine) -> None:
    event.listen(engine, "before_cursor_execute", refuse_poison)
    writer = GroupCommitWriter(engine)
    good1 = writer.submit(b"good one\r\n", ENV)
    bad = writer.submit(b"POISON\r\n", ENV)
    good2 = writer.submit(b"good two\r\n", ENV)
    writer.start()
    assert isinstance(good1.result(10), int)
    assert isinstance(good2.result(10), int)
    with pytest.raises(Exception, match="refused by the test"):
        bad.result(10)
    writer.stop()
    assert stored(engine) == [b"good one\r\n", b"good two\r\n"]


def test_cancelled_message_is_not_stored(engine: Engine) -> None:
    """A session that gave up (451 after the store timeout) is not stored behind its back."""
    writer = GroupCommitWriter(engine)
    gave_up = writer.submit(b"gave up\r\n", ENV)
    kept = writer.submit(b"kept\r\n", ENV)
    assert gave_up.cancel()
    writer.start()
    kept.result(10)
    writer.stop()
    assert stored(engine) == [b"kept\r\n"]


def test_store_from_a_loop_wakes_it_once_per_group_commit(engine: Engine) -> None:
    """Sessions awaiting store() get their ids from one call in their loop per commit; one
    that gave up before the writer took its message is not stored; a bad one fails alone."""
    event.listen(engine, "before_cursor_execute", refuse_poison)
    committed: list[list[int]] = []
    writer = GroupCommitWriter(engine, committed.append)

    async def sessions() -> tuple[list[int | BaseException], int]:
        loop = asyncio.get_running_loop()
        wakeups = 0
        threadsafe = loop.call_soon_threadsafe

        def counted(*args: Any, **kwargs: Any) -> Any:
            nonlocal wakeups
            wakeups += 1
            return threadsafe(*args, **kwargs)

        loop.call_soon_threadsafe = counted  # type: ignore[method-assign]
        tasks = [asyncio.create_task(writer.store(f"message {n}\r\n".encode(), ENV))
                 for n in range(10)]
        gave_up = asyncio.create_task(writer.store(b"gave up\r\n", ENV))
        await asyncio.sleep(0)  # every store() has queued its message
        gave_up.cancel()
        writer.start()  # all were waiting: one transaction
        results = await asyncio.gather(*tasks, return_exceptions=True)
        with pytest.raises(asyncio.CancelledError):
            await gave_up
        with pytest.raises(RuntimeError, match="refused by the test"):
            await writer.store(b"POISON\r\n", ENV)
        return results, wakeups

    results, wakeups = asyncio.run(sessions())
    writer.stop()
    assert committed == [results]
    assert wakeups == 2  # the commit of ten, the failure of one
    assert stored(engine) == [f"message {n}\r\n".encode() for n in range(10)]


def test_stop_stores_everything_submitted(engine: Engine) -> None:
    writer = GroupCommitWriter(engine).start()
    futures = [writer.submit(f"{n}\r\n".encode(), ENV) for n in range(300)]
    writer.stop()
    assert all(f.done() and not f.exception() for f in futures)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Message)).scalar() == 300
    refused = writer.submit(b"late\r\n", ENV)
    with pytest.raises(RuntimeError, match="stopped"):
        refused.result(1)


def test_dispatcher_backs_off_and_recovers_when_the_broker_fails() -> None:
    attempts: list[int] = []
    sent: list[int] = []
    healthy = threading.Event()

    def send(message_id: int) -> None:
        attempts.append(message_id)
        if not healthy.is_set():
            raise ConnectionError("broker down")
        sent.append(message_id)

    dispatcher = Dispatcher(send, backoff_s=0.5).start()
    dispatcher.dispatch([1, 2, 3])
    time.sleep(0.2)
    # 1 failed; 2 and 3 came within the back-off and were left to the sweeper untried.
    assert attempts == [1]
    healthy.set()
    time.sleep(0.4)
    dispatcher.dispatch([4])
    wait_for(lambda: sent == [4], 5, "the dispatcher to send again")
    dispatcher.stop()
    assert attempts == [1, 4]


def test_dispatcher_queue_is_bounded() -> None:
    from abuse_desk.core import metrics

    gate = threading.Event()
    sent: list[int] = []
    dispatcher = Dispatcher(send_many=lambda ids: (gate.wait(10), sent.extend(ids)),
                            max_pending=5)
    failures = metrics.ENQUEUE_FAILURES._value.get()
    # A stuck broker: past five waiting ids, the excess is left to the sweeper (counted).
    dispatcher.dispatch(list(range(100)))
    dispatcher.dispatch([100, 101])
    assert dispatcher.pending == 5
    assert metrics.ENQUEUE_FAILURES._value.get() - failures == 97
    dispatcher.start()
    gate.set()
    dispatcher.stop()
    assert sent == [0, 1, 2, 3, 4]


def test_one_dispatch_is_never_split_across_sends() -> None:
    """A group commit's ids reach the broker in one call even while the thread is busy
    taking what came before: the thread never sees half of one ``dispatch``."""
    import sys

    calls: list[list[int]] = []
    dispatcher = Dispatcher(send_many=lambda ids: calls.append(list(ids))).start()
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads take turns as often as they can: any split shows
    try:
        for start in range(0, 20_000, 20):
            dispatcher.dispatch(list(range(start, start + 20)))
    finally:
        sys.setswitchinterval(switch)
    dispatcher.stop()
    assert [i for batch in calls for i in batch] == list(range(20_000))
    assert all(len(batch) % 20 == 0 for batch in calls), [len(b) for b in calls]


def test_dispatcher_sends_what_is_waiting_in_one_call() -> None:
    calls: list[list[int]] = []
    dispatcher = Dispatcher(send_many=lambda ids: calls.append(list(ids)), batch_max=500)
    dispatcher.dispatch(list(range(1200)))  # all waiting before the thread starts
    dispatcher.start()
    dispatcher.stop()
    assert [len(batch) for batch in calls] == [500, 500, 200]
    assert [i for batch in calls for i in batch] == list(range(1200))


def test_a_few_ids_wait_briefly_for_more_to_fill_a_workers_batch() -> None:
    calls: list[list[int]] = []
    dispatcher = Dispatcher(send_many=lambda ids: calls.append(list(ids)), fill=20,
                            linger_s=60.0).start()
    for start in range(0, 20, 5):  # four group commits of five, within the linger
        dispatcher.dispatch(list(range(start, start + 5)))
    wait_for(lambda: calls, 10, "the batch of twenty")  # sent once full, not after 60 s
    assert calls == [list(range(20))]
    dispatcher.dispatch([20])
    dispatcher.stop()  # a stop sends what waits at once
    assert calls == [list(range(20)), [20]]


def test_a_lone_id_is_sent_when_the_linger_ends() -> None:
    calls: list[list[int]] = []
    dispatcher = Dispatcher(send_many=lambda ids: calls.append(list(ids)), fill=20,
                            linger_s=0.2).start()
    dispatcher.dispatch([7])
    wait_for(lambda: calls, 5, "the lone id")
    assert calls == [[7]]
    dispatcher.stop()


def test_one_group_commit_makes_one_broker_call(engine: Engine) -> None:
    calls: list[list[int]] = []
    sent = threading.Event()

    def send_many(ids: list[int]) -> None:
        calls.append(list(ids))
        sent.set()

    dispatcher = Dispatcher(send_many=send_many).start()
    writer = GroupCommitWriter(engine, dispatcher.dispatch)
    futures = [writer.submit(f"message {n}\r\n".encode(), ENV) for n in range(20)]
    writer.start()  # all twenty were waiting: one transaction, then one broker call
    ids = [f.result(10) for f in futures]
    assert sent.wait(10)
    writer.stop()
    dispatcher.stop()
    assert calls == [ids]


def test_a_batch_the_broker_fails_stays_received_for_the_sweeper(engine: Engine) -> None:
    """A real broker that does not answer: the whole batch is left to the sweeper (stored,
    ``received``), counted per id, logged once; the dispatcher goes on and sends the next."""
    import socket

    from abuse_desk.core import metrics
    from abuse_desk.core.broker import make_broker, many_sender
    from abuse_desk.core.models import MessageState

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    broker = make_broker(f"redis://127.0.0.1:{port}/0")
    send = many_sender(broker)
    calls: list[list[int]] = []
    healthy = threading.Event()

    def send_many(ids: list[int]) -> None:
        calls.append(list(ids))
        if not healthy.is_set():
            send("process_message", ids)

    failures = metrics.ENQUEUE_FAILURES._value.get()
    dispatcher = Dispatcher(send_many=send_many, backoff_s=0.2).start()
    writer = GroupCommitWriter(engine, dispatcher.dispatch)
    futures = [writer.submit(f"message {n}\r\n".encode(), ENV) for n in range(10)]
    writer.start()
    ids = [f.result(10) for f in futures]
    wait_for(lambda: metrics.ENQUEUE_FAILURES._value.get() - failures == 10, 30,
             "the failed batch to be counted")
    assert calls == [ids]
    with engine.connect() as conn:
        states = conn.execute(select(Message.state).where(Message.id.in_(ids))).scalars().all()
    assert states == [MessageState.RECEIVED.value] * 10
    healthy.set()
    time.sleep(0.3)
    later = writer.submit(b"later\r\n", ENV).result(10)
    wait_for(lambda: calls[-1:] == [[later]], 10, "the next batch to be sent")
    writer.stop()
    dispatcher.stop()
    broker.close()
    assert metrics.ENQUEUE_FAILURES._value.get() - failures == 10

"""Plain-aiokafka pass-through used by run_trial.py (the same job as faust_passthrough.py).

Consumer group, enable_auto_commit=False; loop: getmany() batch -> produce every record ->
await all deliveries -> commit exactly those offsets (last offset + 1 per partition).
A failed commit (group rebalanced meanwhile) is logged and ignored: the new owner re-reads
from the last committed offset, so the cost is duplicates, never loss.

Env: TRIAL_BOOTSTRAP (127.0.0.1:29092), TRIAL_IN, TRIAL_OUT, TRIAL_GROUP, TRIAL_CLIENT_ID
"""

import asyncio
import logging
import os
import signal

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

BOOTSTRAP = os.environ.get("TRIAL_BOOTSTRAP", "127.0.0.1:29092")
IN_TOPIC = os.environ.get("TRIAL_IN", "trial.in")
OUT_TOPIC = os.environ.get("TRIAL_OUT", "trial.out")
GROUP = os.environ.get("TRIAL_GROUP", "trial-aiokafka")

log = logging.getLogger("aiokafka_passthrough")


async def main() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    consumer = AIOKafkaConsumer(
        IN_TOPIC,
        bootstrap_servers=BOOTSTRAP,
        group_id=GROUP,
        client_id=os.environ.get("TRIAL_CLIENT_ID", "aiokafka-trial"),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
        rebalance_timeout_ms=10000,
        max_poll_interval_ms=10000,
    )
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all", linger_ms=5)
    await producer.start()
    await consumer.start()
    log.info("started")
    n_out = n_commit_fail = 0
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=500, max_records=500)
            if not batches:
                continue
            futs = []
            offsets = {}
            for tp, records in batches.items():
                for rec in records:
                    futs.append(await producer.send(OUT_TOPIC, value=rec.value))
                offsets[tp] = records[-1].offset + 1
            await asyncio.gather(*futs)  # every output delivered (acks=all) before commit
            n_out += len(futs)
            try:
                await consumer.commit(offsets)
            except (CommitFailedError, IllegalStateError, KafkaError) as exc:
                n_commit_fail += 1
                log.warning("commit failed (will be re-read by new owner): %r", exc)
    finally:
        log.info("stopping: produced=%d commit_failures=%d", n_out, n_commit_fail)
        await consumer.stop()
        await producer.stop()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(main())

"""Faust (faust-streaming) pass-through used by run_trial.py.

One agent reads TRIAL_IN and sends each message's id (raw bytes) to TRIAL_OUT.
At-least-once (Faust's default processing_guarantee); only these are changed from defaults:
short session/heartbeat/rebalance timeouts (so joins after a kill are quick), producer
linger 5 ms (the default 0 halves throughput), own web port per worker (--web-port on the
command line), own data dir per worker.

Run:  python faust_passthrough.py worker -l info --web-port 6071
Env:  TRIAL_BROKER (kafka://127.0.0.1:29092), TRIAL_IN, TRIAL_OUT, TRIAL_GROUP, TRIAL_DATADIR,
      TRIAL_WEB_ENABLED (1/0, default 1), TRIAL_CLIENT_ID (lets run_trial.py see which worker joined)
"""

import os

import faust

BROKER = os.environ.get("TRIAL_BROKER", "kafka://127.0.0.1:29092")
IN_TOPIC = os.environ.get("TRIAL_IN", "trial.in")
OUT_TOPIC = os.environ.get("TRIAL_OUT", "trial.out")
GROUP = os.environ.get("TRIAL_GROUP", "trial-faust")

app = faust.App(
    GROUP,
    broker=BROKER,
    datadir=os.environ.get("TRIAL_DATADIR", f"/tmp/faust_trial_data/{GROUP}"),
    topic_partitions=8,
    topic_replication_factor=1,
    broker_session_timeout=6.0,
    broker_heartbeat_interval=1.0,
    broker_rebalance_timeout=10.0,
    producer_linger=0.005,
    broker_client_id=os.environ.get("TRIAL_CLIENT_ID", "faust-trial"),
    web_enabled=os.environ.get("TRIAL_WEB_ENABLED", "1") == "1",
)

in_topic = app.topic(IN_TOPIC, value_serializer="raw", key_serializer="raw")
out_topic = app.topic(OUT_TOPIC, value_serializer="raw", key_serializer="raw")


@app.agent(in_topic)
async def passthrough(stream):
    # The idiomatic Faust pattern: await topic.send() enqueues into the producer; Faust
    # flushes the producer before committing the acked offsets.
    async for value in stream:
        await out_topic.send(value=value)


if __name__ == "__main__":
    app.main()

"""The dashboard's aggregation (pure) and its HTTP endpoints (no broker)."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from agents.dashboard import Dashboard
from agents.dashboard_state import DashboardConfig, DashboardState
from agents.worker import parse_roles
from streams.records import Alert, ModelLoad, ModelVote, TaskPlan, WindowStats
from streams.settings import Settings
from streams.topics import Topics
from tests.unit.agents.factories import result

NOW = 1_767_225_600_000


def add_result(state: DashboardState, *args, wall: int = NOW, alloc=None, **kwargs) -> bool:
    r = result(*args, **kwargs)
    for task, models in (alloc or {}).items():
        r.outputs[task].allocation = TaskPlan(task=task, models=models)
    return state.add("results", r.model_dump(mode="json"), wall)


def alert(aid: str, rule: str = "escalation", key: str = "conv-1", ts: int = NOW, **kw) -> dict:
    return Alert(
        id=aid,
        rule=rule,
        dimension="conversation" if rule == "escalation" else "entity",
        key=key,
        severity=kw.get("severity", "critical"),
        message=f"{rule} for {key}",
        evidence=kw.get("evidence", []),
        window_start_ms=ts,
        window_end_ms=ts,
        ts=ts,
    ).model_dump(mode="json")


def load(model: str, worker: str, throughput: float, lag: int = 0, batch: float = 8.0) -> dict:
    return ModelLoad(
        model_id=model,
        worker=worker,
        lag=lag,
        per_item_ms=2.0,
        batch_ms=16.0,
        batch_size=batch,
        throughput=throughput,
        ts=NOW,
    ).model_dump(mode="json")


def test_results_are_newest_first_bounded_and_deduplicated_by_id():
    state = DashboardState(DashboardConfig(results_shown=3))
    for i in range(5):
        assert add_result(state, f"m{i}", NOW + i)
    assert not add_result(state, "m4", NOW + 4)  # redelivered
    snap = state.snapshot(NOW)
    assert [r["id"] for r in snap["results"]] == ["m4", "m3", "m2"]
    assert snap["totals"]["results"] == 5
    row = snap["results"][0]
    assert row["tasks"][0]["task"] == "fin_sentiment"
    assert row["tasks"][0]["label"] == "positive"


def test_result_rows_name_the_models_and_their_votes():
    state = DashboardState()
    r = result("m1", NOW, sentiment="negative")
    r.outputs["fin_sentiment"].models = [
        ModelVote(model_id="vader-fin", weight=0.4, label="negative", score=0.7),
        ModelVote(model_id="tfidf-fin", weight=0.6, error="timeout after 30s"),
    ]
    state.add("results", orjson.loads(orjson.dumps(r.model_dump(mode="json"))), NOW)
    (task,) = state.snapshot(NOW)["results"][0]["tasks"]
    assert [m["model"] for m in task["models"]] == ["vader-fin", "tfidf-fin"]
    assert task["models"][1]["error"] == "timeout after 30s"


def test_entity_sentiment_is_bucketed_by_event_time():
    state = DashboardState(DashboardConfig(bucket_s=10, rolling_s=10))
    add_result(state, "a", NOW + 1_000, sentiment="positive", entities=("TSLA",))
    add_result(state, "b", NOW + 2_000, sentiment="negative", entities=("TSLA",))
    add_result(state, "c", NOW + 3_000, sentiment="negative", entities=("TSLA",))
    add_result(state, "d", NOW + 15_000, sentiment="neutral", entities=("TSLA", "AAPL"))
    add_result(state, "e", NOW + 16_000, sentiment=None, entities=("AAPL",))
    start = NOW // 1000
    assert state.entity_series("TSLA") == [[start, round(-1 / 3, 4), 3], [start + 10, 0.0, 1]]
    assert state.entity_series("AAPL") == [[start + 10, 0.0, 2]]
    assert state.top_entities() == ["TSLA", "AAPL"]


def test_entity_sentiment_is_a_rolling_mean_over_event_time():
    state = DashboardState(DashboardConfig(bucket_s=10, rolling_s=30))
    for i, s in enumerate(["positive", "negative", None, "negative", "negative"]):
        add_result(state, f"m{i}", NOW + i * 10_000, sentiment=s, entities=("BA",))
    start = NOW // 1000
    assert state.entity_series("BA") == [
        [start, 1.0, 1],
        [start + 10, 0.0, 1],
        [start + 20, 0.0, 1],  # no sentiment in this bucket: the window's mean stands
        [start + 30, -1.0, 1],  # the first bucket left the 30 s window
        [start + 40, -1.0, 1],
    ]


def test_a_typed_entity_is_added_to_the_top_ones_case_insensitively():
    state = DashboardState(DashboardConfig(top_entities=1))
    for i in range(3):
        add_result(state, f"t{i}", NOW, entities=("TSLA",))
    add_result(state, "n1", NOW, entities=("Nvidia",))
    snap = state.snapshot(NOW, watch=" nvidia ")
    assert snap["sentiment"]["entities"] == ["TSLA", "Nvidia"]
    assert snap["sentiment"]["watch_found"] == "Nvidia"
    assert set(snap["sentiment"]["series"]) == {"TSLA", "Nvidia"}
    unknown = state.snapshot(NOW, watch="XYZ")["sentiment"]
    assert unknown["entities"] == ["TSLA"] and unknown["watch_found"] is None
    assert unknown["watch"] == "XYZ"


def test_buckets_and_entities_are_bounded():
    state = DashboardState(DashboardConfig(bucket_s=1, buckets_kept=3, entities_kept=2))
    for i in range(6):
        add_result(state, f"m{i}", NOW + i * 1000, entities=("A",))
    assert len(state.entity_series("A")) == 3
    assert state.mentions["A"] == 3  # mentions of dropped buckets are forgotten too
    add_result(state, "b", NOW, entities=("B",))
    add_result(state, "c", NOW, entities=("C",))
    assert set(state.series) == {"B", "C"}
    assert state.top_entities() == ["B", "C"]


def test_allocation_counts_the_models_chosen_in_recent_results():
    state = DashboardState(DashboardConfig(recent_results=3))
    add_result(state, "m1", NOW, alloc={"fin_sentiment": ["a", "b"]})
    add_result(state, "m2", NOW, alloc={"fin_sentiment": ["a"]})
    add_result(state, "m3", NOW, alloc={"fin_sentiment": ["c"]})
    (task,) = state.allocation()
    assert task["task"] == "fin_sentiment" and task["results"] == 3
    assert [(m["model"], m["count"]) for m in task["models"]] == [("a", 2), ("b", 1), ("c", 1)]
    # the oldest result slides out of the window
    add_result(state, "m4", NOW, alloc={"fin_sentiment": ["c"]})
    (task,) = state.allocation()
    assert [(m["model"], m["count"]) for m in task["models"]] == [("c", 2), ("a", 1)]
    assert task["models"][0]["share"] == pytest.approx(2 / 3, abs=1e-3)


def test_open_alerts_carry_their_evidence_and_expire():
    state = DashboardState(DashboardConfig(alert_open_s=60))
    add_result(state, "t1", NOW, source="support-chat", key="conv-1", text="card stolen!!!")
    state.add("alerts", alert("x1", evidence=["t1", "gone"]), NOW)
    assert not state.add("alerts", alert("x1", evidence=["t1"]), NOW)  # duplicate
    state.add("alerts", alert("x2", rule="volume_spike", key="BA", severity="warning"), NOW)
    open_ = state.open_alerts(NOW + 1_000)
    assert [a["id"] for a in open_] == ["x1", "x2"]  # critical first
    assert open_[0]["evidence"][0]["text"] == "card stolen!!!"
    assert open_[0]["evidence"][1] == {"id": "gone", "text": None, "sentiment": None}
    assert open_[0]["evidence_total"] == 2
    assert state.open_alerts(NOW + 61_000) == []


def test_conversations_at_risk_from_negative_turns_and_escalations():
    state = DashboardState(DashboardConfig(risk_turns=3, risk_negative=2))
    for i, s in enumerate(["negative", "neutral", "negative"]):
        add_result(state, f"a{i}", NOW + i, source="support-chat", key="conv-a", sentiment=s)
    for i in range(3):
        add_result(state, f"b{i}", NOW + i, source="support-chat", key="conv-b", sentiment="positive")
    add_result(state, "n1", NOW, source="newswire", key="TSLA", sentiment="negative")
    rows = state.at_risk(NOW)
    assert [(r["key"], r["level"], r["negative"]) for r in rows] == [("conv-a", "at risk", 2)]
    state.add("alerts", alert("e1", key="conv-b"), NOW + 5)
    rows = state.at_risk(NOW + 10)
    assert [(r["key"], r["level"]) for r in rows] == [("conv-b", "escalating"), ("conv-a", "at risk")]
    assert rows[0]["escalation"] == "escalation for conv-b"
    assert [t["id"] for t in rows[0]["turns"]] == ["b0", "b1", "b2"]


def test_models_sum_live_workers_and_mark_gone_ones():
    state = DashboardState(DashboardConfig(stats_stale_s=10), model_tasks={"enc": "intent"})
    state.add("stats", load("enc", "w1", throughput=30, lag=5, batch=10), NOW)
    state.add("stats", load("enc", "w2", throughput=10, lag=1, batch=2), NOW + 500)
    state.add("stats", load("old", "w3", throughput=4), NOW - 60_000)
    rows = {r["model"]: r for r in state.models(NOW + 1_000)}
    enc = rows["enc"]
    assert (enc["task"], enc["workers"], enc["live"]) == ("intent", 2, True)
    assert enc["throughput"] == 40 and enc["lag"] == 6
    assert enc["batch_size"] == pytest.approx((10 * 30 + 2 * 10) / 40, abs=0.01)
    assert rows["old"]["live"] is False and rows["old"]["throughput"] == 4
    assert [p[1] for p in state.throughput["enc"]] == [40.0]  # same second: replaced


def test_feeds_keep_the_latest_closed_tumbling_window_per_source():
    state = DashboardState()

    def window(dim: str, kind: str, start: int, count: int) -> dict:
        return WindowStats(
            dimension=dim,
            key="newswire" if dim == "source" else "TSLA",
            window=kind,
            start_ms=start,
            end_ms=start + 60_000,
            count=count,
            ts=NOW,
        ).model_dump(mode="json")

    assert state.add("windows", window("source", "tumbling", NOW, 5), NOW)
    assert not state.add("windows", window("source", "hopping", NOW, 7), NOW)
    assert not state.add("windows", window("entity", "tumbling", NOW, 7), NOW)
    assert state.add("windows", window("source", "tumbling", NOW + 60_000, 9), NOW)
    assert not state.add("windows", window("source", "tumbling", NOW, 5), NOW)  # older
    assert [(f["source"], f["count"]) for f in state.snapshot(NOW)["feeds"]] == [("newswire", 9)]


def test_garbage_is_counted_not_raised():
    state = DashboardState()
    assert not state.add("results", {"id": 1}, NOW)
    assert not state.add("alerts", None, NOW)
    assert not state.add("stats", {"_raw": "x"}, NOW)
    assert state.invalid == 3 and state.version == 0


def test_snapshot_is_plain_json():
    state = DashboardState()
    add_result(state, "m1", NOW, entities=("TSLA",), alloc={"fin_sentiment": ["a"]})
    add_result(state, "c1", NOW, source="support-chat", key="conv-1", sentiment="negative")
    add_result(state, "c2", NOW, source="support-chat", key="conv-1", sentiment="negative")
    state.add("alerts", alert("x", evidence=["c1", "c2"]), NOW)
    state.add("stats", load("a", "w", 3.0), NOW)
    snap = orjson.loads(orjson.dumps(state.snapshot(NOW, "tsla")))
    assert snap["totals"]["alerts_open"] == 1 and snap["totals"]["at_risk"] == 1
    assert snap["sentiment"]["entities"] == ["TSLA"]


def test_dashboard_is_a_worker_role():
    assert parse_roles("recognize,dashboard").roles == ["recognize", "dashboard"]


# --- HTTP (aiohttp test server, no broker) ----------------------------------------------
@pytest.fixture
async def client():
    stopping = asyncio.Event()
    dash = Dashboard(Settings(), Topics("sf."), stopping, {"enc": "intent"})
    add_result(dash.state, "m1", NOW, text="Tesla <b>plunges</b>", entities=("TSLA",))
    async with TestClient(TestServer(dash.web_app())) as c:
        c.dash = dash
        yield c
        stopping.set()


async def test_page_and_vendored_assets_are_served(client):
    page = await client.get("/")
    assert page.status == 200
    html = await page.text()
    assert "static/vendor/uPlot.iife.min.js" in html and "//cdn" not in html
    for asset in ("app.js", "style.css", "vendor/uPlot.iife.min.js", "vendor/uPlot.min.css"):
        resp = await client.get(f"/static/{asset}")
        assert resp.status == 200, asset
    assert (await client.get("/static/../dashboard.py")).status in (403, 404)


async def test_snapshot_and_health(client):
    snap = await (await client.get("/api/snapshot?watch=tsla")).json()
    assert snap["results"][0]["text"] == "Tesla <b>plunges</b>"
    assert snap["sentiment"]["watch_found"] == "TSLA"
    assert snap["topics"]["results"] == "sf.results"
    health = await client.get("/healthz")
    assert health.status == 503  # the topic readers are not running here
    for event in client.dash.ready.values():
        event.set()
    assert (await client.get("/healthz")).status == 200


async def test_events_stream_a_snapshot_then_the_next_change(client):
    resp = await client.get("/events")
    assert resp.headers["Content-Type"].startswith("text/event-stream")

    async def next_snapshot() -> dict:
        while True:
            line = await resp.content.readline()
            if line.startswith(b"data: "):
                return orjson.loads(line[6:])

    first = await asyncio.wait_for(next_snapshot(), 5)
    assert [r["id"] for r in first["results"]] == ["m1"]
    add_result(client.dash.state, "m2", NOW)
    client.dash.tick.set()
    second = await asyncio.wait_for(next_snapshot(), 5)
    assert [r["id"] for r in second["results"]] == ["m2", "m1"]
    resp.close()


def test_conversation_turns_are_kept_in_turn_order_whatever_the_arrival_order():
    state = DashboardState(DashboardConfig(turns_kept=3))
    for turn in (3, 1, 4, 2):
        r = result(f"t{turn}", NOW, source="support-chat", key="c", sentiment="negative")
        r.meta = {"turn": turn}
        state.add("results", r.model_dump(mode="json"), NOW)
    (conv,) = state.at_risk(NOW)
    assert [t["id"] for t in conv["turns"]] == ["t2", "t3", "t4"]

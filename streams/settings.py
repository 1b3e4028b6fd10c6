"""One settings object for the whole application.

Every setting has an environment variable (``STREAMFUSE_<NAME>``) and a documented default;
``streamfuse settings`` prints the effective values.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Effective configuration; read from ``STREAMFUSE_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="STREAMFUSE_", extra="ignore")

    # --- broker -----------------------------------------------------------------------
    broker: str | None = Field(
        default=None,
        description="Kafka bootstrap servers, e.g. kafka://host:9092; unset = local embedded broker",
    )
    state_dir: Path = Field(
        default=REPO_ROOT / ".state", description="local state: broker data, pid files, logs"
    )
    broker_port: int = Field(default=0, description="local broker port on 127.0.0.1; 0 = free port")
    broker_heap: str = Field(default="768m", description="JVM heap of the local broker")
    broker_start_timeout: float = Field(default=90.0, description="seconds to wait for readiness")
    broker_jit: Literal["quick", "full"] = Field(
        default="quick",
        description="JIT of the local broker's JVM. quick: C1 only, which starts sooner and spends "
        "little CPU compiling (tests, demos). full: the JVM's default, C1 then C2, which compiles "
        "for a minute or two under load and then serves each request with less CPU (what a "
        "production broker runs). `streamfuse bench` and `bench-compare` start theirs with full",
    )
    security_protocol: str = Field(
        default="PLAINTEXT", description="PLAINTEXT | SSL | SASL_PLAINTEXT | SASL_SSL"
    )
    sasl_mechanism: str | None = Field(default=None, description="PLAIN | SCRAM-SHA-256 | ...")
    sasl_username: str | None = None
    sasl_password: str | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None

    # --- topics -----------------------------------------------------------------------
    topic_prefix: str = Field(default="sf.", description="prefix of every topic name")
    partitions: int = Field(default=8, description="partitions per topic, created up front")
    replication: int = Field(default=1, description="replication factor of created topics")

    # --- processing ---------------------------------------------------------------------
    max_text_bytes: int = Field(default=16_384, description="input text size limit (UTF-8 bytes)")
    max_record_bytes: int = Field(
        default=65_536, description="raw input record size limit, checked before parsing"
    )
    batch_max: int = Field(
        default=128,
        description="micro-batch: most records per batch (128 against 64: +15% msg/s at saturation, "
        "bench/results/compare-batch-max-saturation.json)",
    )
    batch_wait_ms: int = Field(
        default=20,
        description="longest poll of fuse and monitor (x5: their deadline and window timers tick at "
        "that pace); a poll returns as soon as any record is buffered, so batches are what arrived",
    )
    idle_poll_ms: int = Field(
        default=250,
        ge=1,
        description="longest poll of model servers and recognize, which have no timers: a record "
        "ends a poll at once, so it adds no latency, and only bounds how often idle loops wake and "
        "how soon a stopping worker notices. The idle infer process used 0.069 and 0.053 cores at "
        "250 against 0.090 and 0.076 at 20 (`streamfuse bench-compare idle_poll_ms=20,250 "
        "--idle-seconds 15 --rate 36 --messages 1100`)",
    )
    default_budget_ms: int = Field(default=2_000, description="latency budget when none is set")
    deadline_grace_ms: int = Field(
        default=3_000, description="fuse waits this long past the budget before a partial result"
    )
    model_timeout_s: float = Field(
        default=30.0, description="a model batch running longer is abandoned (error predictions)"
    )
    coschedule: bool = Field(
        default=True, description="heads on one backbone share one encoder pass (off = naive)"
    )
    share_base: bool = Field(
        default=False,
        description="LoRA models on MiniLM join the backbone's topic and batches: one forward pass "
        "for every model on the base, each with its own weights for its own rows "
        "(models.shared_pass), in as many lanes as model_concurrency. Off by default: at 75 "
        "msg/s p99 was worse in 4 of 5 pairs (2.55 to 6.26 s against 1.35 to 2.91 s) and infer "
        "used more CPU in all 5, though the broker used less in 4 (`streamfuse bench-compare "
        "share_base=false,true --rate 75 --messages 2250`, then true,false with 3 rounds). "
        "Off: each LoRA model has its own topic, server and batches",
    )
    ensemble_max: int = Field(default=3, description="most models in one task's ensemble")
    linger_ms: int = Field(default=5, description="producer linger (0 halves throughput)")
    inline_max_ms: float = Field(
        default=0.25,
        ge=0,
        description="recognize computes models that run no torch and cost at most this many ms "
        "per item (the catalog's batch-32 latency) itself, and publishes their predictions: no "
        "subtask record, model topic or hop for them (agents.inline). 0: every model has a "
        "server. At 45 msg/s, p99 fell in all 4 A/B pairs (median 2.26 s against 3.47 s; "
        "`streamfuse bench-compare inline_max_ms=0,0.25 --rate 45 --messages 1350`, and 0.25,0); "
        "at saturation the throughput was the same (`--messages 6000`)",
    )
    fetch_linger_ms: int = Field(
        default=0,
        ge=0,
        description="the stages' consumers ask the broker to hold each fetch up to this long "
        "while less than 64 KiB is ready (fetch_max_wait_ms with fetch_min_bytes 64 KiB): fewer, "
        "larger fetches and batches at moderate rates, at up to this much latency per hop. "
        "0: a fetch returns as soon as one record is ready (Kafka's fetch_min_bytes 1)",
    )
    commit_interval_ms: int = Field(
        default=200,
        ge=0,
        description="at_least_once: a stage commits the offsets of its published batches at most "
        "this often per consumer, and at once on a rebalance and at shutdown: fewer commit "
        "requests at moderate rates, where batches are small. A crash replays up to this much "
        "more input (fuse drops repeated results by message id). 0: after every batch. "
        "exactly_once commits in each batch's transaction regardless. At 45 msg/s, 200 against "
        "0: the broker's CPU lower in 6 of 7 pairs and p99 in 5 of 7, median p99 0.74 s against "
        "1.05 s (`streamfuse bench-compare commit_interval_ms=0,200 --rate 45 --messages 1350`, "
        "then 200,0, then 0,200 with 3 rounds)",
    )
    session_timeout_ms: int = Field(default=10_000, description="consumer group session timeout")
    heartbeat_interval_ms: int = Field(default=1_000, description="consumer heartbeat interval")
    max_poll_interval_ms: int = Field(default=60_000, description="max time between polls")
    dedupe_capacity: int = Field(default=200_000, description="message ids fuse remembers")
    processing_guarantee: Literal["at_least_once", "exactly_once"] = Field(
        default="at_least_once",
        description="at_least_once: publish, then commit (a crash can repeat outputs, which "
        "fuse drops by message id); exactly_once: every stage publishes its outputs, state "
        "changes and input offsets in one Kafka transaction",
    )
    transaction_timeout_ms: int = Field(
        default=10_000,
        description="exactly_once: the broker aborts a dead worker's open transaction after this "
        "(read_committed readers wait for it); a restarted worker with the same --name aborts it at once",
    )
    restore_slack_ms: int = Field(
        default=60_000,
        description="fuse re-reads its finished ids from sf.results back to this long before the "
        "oldest record it will replay (covers producer clock skew)",
    )
    window_size_s: int = Field(default=60, description="tumbling window size (event time)")
    window_hop_s: int = Field(default=20, description="hopping window advance")
    window_grace_s: int = Field(default=5, description="late events accepted this long")
    source_tasks: dict[str, list[str]] = Field(
        default_factory=lambda: {
            "newswire": ["fin_sentiment", "entities"],
            "analyst-notes": ["fin_sentiment", "entities"],
            "stocktwits": ["fin_sentiment", "entities"],
            "support-chat": ["intent", "sentiment", "kb", "toxicity"],
        },
        description="per-source default tasks (JSON object); other sources use the classifier",
    )
    source_budget_ms: dict[str, int] = Field(
        default_factory=lambda: {"support-chat": 1_500, "newswire": 3_000},
        description="per-source latency budgets in ms (JSON object)",
    )
    priority_budget_ms: dict[str, int] = Field(
        default_factory=lambda: {"high": 500, "normal": 2_000, "low": 10_000},
        description="latency budget by meta.priority (JSON object)",
    )
    uncertain_below: float = Field(
        default=0.5, description="fused confidence under which a label is flagged uncertain"
    )
    assist_handoff_below: float = Field(
        default=0.5,
        description="support assist hands a turn to a person when the fused intent confidence is "
        "below this (chosen on validation data: `streamfuse eval kb-retrieval`)",
    )
    alert_rules: dict[str, int | float] = Field(
        default_factory=dict,
        description="overrides of the alert thresholds (JSON object, fields of agents.alerts.AlertRules)",
    )
    stats_interval_s: float = Field(default=1.0, description="infer workers publish load this often")
    max_model_backlog: int = Field(
        default=250,
        ge=0,
        description="recognize stops reading input while a model has this many subtasks waiting "
        "(0 = no limit): the messages wait in the input topic instead of in fuse's memory. "
        "A few seconds of a model's work keeps it busy; more only adds latency and memory",
    )
    load_forget_half_life_s: float = Field(
        default=2.0,
        description="an idle model's measured slowness halves this often, so the allocator tries "
        "it again (0 = never forget)",
    )
    data_dir: Path = Field(default=REPO_ROOT.parent / "shared" / "data", description="labelled data sets")
    data_path: Path = Field(default=REPO_ROOT / "data", description="bundled demo feeds")
    torch_threads: int | None = Field(
        default=None,
        description="torch intra-op threads per process (unset: torch's default, one per core). "
        "Listed here for `streamfuse settings`; the model library reads the variable itself "
        "(models.encoder.configure_threads), as it does its int8 switches",
    )
    dashboard_host: str = Field(default="127.0.0.1", description="dashboard bind address")
    dashboard_port: int = Field(default=8787, description="dashboard port (the `dashboard` role)")
    dashboard_lookback: int = Field(
        default=50,
        description="records per partition the dashboard replays at start (results, alerts, "
        "windows); 0 = only new records",
    )
    metrics_host: str = Field(
        default="127.0.0.1", description="Prometheus /metrics bind address (0.0.0.0 in containers)"
    )
    metrics_port: int = Field(
        default=0,
        description="Prometheus /metrics port of this worker process; 0 = off. Every worker "
        "process needs its own port (`streamfuse up` gives worker i the port + i)",
    )
    malloc_trim_s: float = Field(
        default=10.0,
        ge=0,
        description="every worker hands freed heap memory back to the OS this often "
        "(glibc malloc_trim; 0 = never): the infer process ended 6,000 messages about 290 MB smaller "
        "(`streamfuse bench-compare malloc_trim_s=0,10 --messages 6000`)",
    )
    model_concurrency: int = Field(
        default=2,
        ge=0,
        description="most model batches computing at once in one infer process (0 = no limit: "
        "each model's batches run in its own thread as they come, and torch's per-thread pools "
        "oversubscribe the cores); on 2 cores, 2 halved p99 at 22 msg/s at the same saturation "
        "throughput (`streamfuse bench-compare model_concurrency=0,1,2`)",
    )
    gate_all_models: bool = Field(
        default=True,
        description="lexicon, rule and linear models take the compute gate too (false: only torch "
        "models do). On 2 cores, true halved p99 at 22 msg/s (1.23 s vs 2.82 s, `streamfuse "
        "bench-compare gate_all_models=true,false --rate 22`); false left far fewer results "
        "partial in a 400 msg/s burst (762 vs 1,695, `streamfuse chaos --overload`), since the "
        "cheap models carry the degraded traffic and behind the gate they queue for MiniLM batches",
    )
    gate_top_up: bool = Field(
        default=True,
        description="a batch that waited for the compute gate takes the records that arrived "
        "meanwhile (up to batch_max) before it computes (false: it computes what it had). At 27 "
        "msg/s on 2 cores it cut the wait in the model topic 534 -> 318 ms and p50 0.73 -> 0.52 s "
        "(medians of 5 runs, bench/results/compare-gate-top-up-load27-*.json)",
    )
    # infer: latency-targeted micro-batches (agents.infer.latency_batch_cap)
    batch_budget_share: float = Field(
        default=0.0,
        description="infer caps a micro-batch so that the model's predicted time for it fits this "
        "share of the smallest latency budget among its messages (1 to batch_max records); 0 = off "
        "(0.25 halved the batch time but raised p99 at 20 msg/s on 2 cores: queueing grew)",
    )
    # int8 dynamic quantisation on CPU (models.encoder; read there from the environment)
    int8_lora: bool = Field(
        default=False,
        description="LoRA MiniLM sentence classifiers run int8 on CPU (about 1.35x faster, same "
        "accuracy, but a text's score then depends slightly on its batch)",
    )
    int8_ner: bool = Field(
        default=False, description="the LoRA MiniLM entity tagger runs int8 on CPU (cost 1 F1 point)"
    )
    int8_encoder: bool = Field(
        default=False,
        description="the shared MiniLM encoder runs int8 on CPU (cost minilm-fin 0.9 accuracy points)",
    )
    # bfloat16 on CPU (models.encoder.bf16_enabled; read there from the environment)
    bf16: bool = Field(
        default=False,
        description="torch models (shared encoder, LoRA models) run in bfloat16 on CPU: fast on CPUs "
        "with AMX-BF16; int8, where switched on, takes precedence",
    )

    @property
    def embedded(self) -> bool:
        """True when no external broker is configured."""
        return not self.broker

    def broker_state_dir(self) -> Path:
        return self.state_dir / "broker"

    def bootstrap_servers(self) -> str:
        """Bootstrap servers as aiokafka wants them (``host:port[,host:port]``)."""
        if self.broker:
            return ",".join(s.removeprefix("kafka://").strip() for s in self.broker.split(",") if s.strip())
        from streams.broker import read_endpoint

        endpoint = read_endpoint(self)
        if endpoint is None:
            raise RuntimeError(
                "no Kafka broker: STREAMFUSE_BROKER is unset and the local broker is not "
                "running. Start it with `streamfuse broker start` or set STREAMFUSE_BROKER."
            )
        return endpoint

    def client_kwargs(self) -> dict[str, object]:
        """Connection settings shared by every aiokafka client (TLS and SASL included)."""
        kwargs: dict[str, object] = {
            "bootstrap_servers": self.bootstrap_servers(),
            "security_protocol": self.security_protocol,
        }
        if self.security_protocol in ("SSL", "SASL_SSL"):
            from aiokafka.helpers import create_ssl_context

            kwargs["ssl_context"] = create_ssl_context(
                cafile=str(self.ssl_cafile) if self.ssl_cafile else None,
                certfile=str(self.ssl_certfile) if self.ssl_certfile else None,
                keyfile=str(self.ssl_keyfile) if self.ssl_keyfile else None,
            )
        if self.security_protocol.startswith("SASL"):
            kwargs["sasl_mechanism"] = self.sasl_mechanism or "PLAIN"
            kwargs["sasl_plain_username"] = self.sasl_username
            kwargs["sasl_plain_password"] = self.sasl_password
        return kwargs


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once from the environment)."""
    return Settings()


def reset_settings() -> None:
    """Forget cached settings (tests change the environment)."""
    get_settings.cache_clear()

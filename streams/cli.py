"""The `streamfuse` command line. The top floor: it imports the agents to start them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import click
import orjson
from rich.console import Console
from rich.live import Live
from rich.table import Table

from streams import broker as local_broker
from streams.settings import Settings, get_settings

console = Console(stderr=False)
err = Console(stderr=True)


@contextlib.contextmanager
def _broker_if_needed(s):
    """Start the local broker for one command when none runs (and stop it after)."""
    started = s.embedded and local_broker.read_pid(s) is None
    if started:
        local_broker.start(s)
    try:
        yield
    finally:
        if started:
            local_broker.stop(s)


def _json_out(obj: object) -> None:
    sys.stdout.write(orjson.dumps(obj, option=orjson.OPT_INDENT_2).decode() + "\n")


def _fail(message: str, code: int = 2) -> None:
    err.print(f"[red]error:[/] {message}")
    sys.exit(code)


def _setup_logging() -> None:
    level = os.environ.get("STREAMFUSE_LOG_LEVEL", "INFO").upper()
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    logging.getLogger("aiokafka").setLevel(logging.WARNING)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """streamfuse: real-time model allocation, execution and fusion over Apache Kafka."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


# --- broker ---------------------------------------------------------------------------
@main.group()
def broker() -> None:
    """The local single-node Apache Kafka broker (KRaft)."""


@broker.command("start")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def broker_start(as_json: bool) -> None:
    """Start the local broker and wait until it is ready."""
    try:
        info = local_broker.start(get_settings())
    except local_broker.BrokerError as exc:
        _fail(str(exc))
    if as_json:
        _json_out(local_broker.info_dict(info))
    else:
        console.print(f"[green]Kafka {info.kafka_version} ready[/] at {info.endpoint} (pid {info.pid})")


@broker.command("stop")
@click.option("--json", "as_json", is_flag=True)
def broker_stop(as_json: bool) -> None:
    """Stop the local broker (SIGTERM, then SIGKILL after 30 s)."""
    stopped = local_broker.stop(get_settings())
    if as_json:
        _json_out({"stopped": stopped})
    else:
        console.print("broker stopped" if stopped else "no local broker was running")


@broker.command("status")
@click.option("--json", "as_json", is_flag=True)
def broker_status(as_json: bool) -> None:
    """Show whether the local broker runs, where, and its version."""
    s = get_settings()
    if s.broker:
        info = {"external": True, "broker": s.broker}
        _json_out(info) if as_json else console.print(f"external broker: {s.broker}")
        return
    info = local_broker.status(s)
    if as_json:
        _json_out(local_broker.info_dict(info))
        return
    table = Table(show_header=False)
    for k, v in local_broker.info_dict(info).items():
        table.add_row(k, str(v))
    console.print(table)
    sys.exit(0 if info.running else 1)


# --- workers ----------------------------------------------------------------------------
@main.command()
@click.option("--roles", required=True, help="recognize,fuse,monitor,dashboard,infer[:model-id,...]")
@click.option("--name", default=None, help="worker name (default host-pid)")
def worker(roles: str, name: str | None) -> None:
    """Run one worker process; start more to scale out."""
    from agents.worker import parse_roles, run_worker

    _setup_logging()
    try:
        spec = parse_roles(roles)
    except ValueError as exc:
        _fail(str(exc))
    try:
        asyncio.run(run_worker(get_settings(), spec, name))
    except RuntimeError as exc:
        _fail(str(exc), 1)
    # Everything the worker owns is committed to Kafka by now. Exit without joining model
    # threads: one stuck in a hung model call would otherwise keep the process alive.
    logging.shutdown()
    sys.stdout.flush()
    os._exit(0)


@main.command()
@click.option("--demo", is_flag=True, help="replay the bundled feeds, show a live view, exit")
@click.option(
    "--layout",
    default=";".join(["recognize", "infer", "fuse", "monitor", "dashboard"]),
    show_default=True,
    help="worker processes, ';'-separated role lists",
)
@click.option("--rate", default=20.0, show_default=True, help="demo messages per second")
@click.option("--timeout", default=180.0, show_default=True, help="demo time limit, seconds")
@click.option(
    "--linger",
    default=10.0,
    show_default=True,
    help="seconds to keep watching for windows and alerts after the last result",
)
def up(demo: bool, layout: str, rate: float, timeout: float, linger: float) -> None:
    """Broker (if needed) + one worker per role; with --demo, replay the sample feeds."""
    from streams.orchestrate import up as run_up

    try:
        code = run_up(
            get_settings(),
            demo=demo,
            layout=[x for x in layout.split(";") if x],
            rate=rate,
            timeout=timeout,
            linger=linger,
            console=console,
        )
    except local_broker.BrokerError as exc:
        _fail(str(exc))
    sys.exit(code)


# --- produce / tail -----------------------------------------------------------------------
@main.command()
@click.argument("file", type=click.Path(allow_dash=True))
@click.option("--rate", type=float, default=None, help="messages per second (default: as fast as possible)")
@click.option("--topic", default=None, help="target topic (default: the input topic)")
def produce(file: str, rate: float | None, topic: str | None) -> None:
    """Publish a JSON Lines file (or - for stdin) to the input topic, one record per line."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from streams.io import produce_lines
    from streams.topics import get_topics

    s = get_settings()
    if file == "-":
        lines = sys.stdin.buffer.read().splitlines()
    else:
        path = Path(file)
        if not path.exists():
            _fail(f"{file}: no such file")
        lines = path.read_bytes().splitlines()
    lines = [ln for ln in lines if ln.strip()]
    target = topic or get_topics(s).input
    with Progress(
        TextColumn("producing"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=len(lines) < 1000,
    ) as progress:
        task = progress.add_task("produce", total=len(lines))
        try:
            sent = asyncio.run(produce_lines(s, target, lines, rate, lambda n: progress.advance(task, n)))
        except RuntimeError as exc:
            _fail(str(exc), 1)
    err.print(f"sent {sent} records to {target}")


@main.command()
@click.argument(
    "target",
    type=click.Choice(["results", "windows", "alerts", "dlq", "plans", "predictions", "stats", "kb", "in"]),
)
@click.option("--json", "as_json", is_flag=True, help="one JSON record per line on stdout")
@click.option("--limit", type=int, default=None, help="stop after N records")
@click.option("--timeout", type=float, default=None, help="stop after S seconds")
@click.option("--idle", type=float, default=None, help="stop after S seconds without a record")
@click.option(
    "--from-beginning/--latest",
    default=True,
    show_default=True,
    help="start at the topic's beginning, or only show new records",
)
def tail(
    target: str,
    as_json: bool,
    limit: int | None,
    timeout: float | None,
    idle: float | None,
    from_beginning: bool,
) -> None:
    """Read an output topic: rich live tables, or --json for machines."""
    from collections import deque

    from streams.io import read_topic
    from streams.topics import get_topics
    from streams.views import TABLES

    s = get_settings()
    topic = get_topics(s).tail_target(target)

    async def run() -> int:
        n = 0
        if as_json:
            async for rec in read_topic(
                s,
                topic,
                limit=limit,
                timeout=timeout,
                idle_timeout=idle,
                from_beginning=from_beginning,
            ):
                sys.stdout.write(orjson.dumps(rec["value"]).decode() + "\n")
                sys.stdout.flush()
                n += 1
            return n
        rows: deque[dict] = deque(maxlen=20)
        render = TABLES.get(target)
        with Live(console=console, refresh_per_second=4) as live:
            async for rec in read_topic(
                s,
                topic,
                limit=limit,
                timeout=timeout,
                idle_timeout=idle,
                from_beginning=from_beginning,
            ):
                n += 1
                if isinstance(rec["value"], dict):
                    rows.appendleft(rec["value"])
                table = render(list(rows)) if render else _generic_table(list(rows))
                live.update(table)
        return n

    try:
        n = asyncio.run(run())
    except (RuntimeError, KeyboardInterrupt) as exc:
        if isinstance(exc, RuntimeError):
            _fail(str(exc), 1)
        return
    if not as_json:
        err.print(f"{n} records from {topic}")


def _generic_table(rows: list[dict]) -> Table:
    table = Table(expand=True)
    table.add_column("record")
    for r in rows:
        table.add_row(orjson.dumps(r).decode()[:300])
    return table


# --- knowledge base --------------------------------------------------------------------
@main.group()
def kb() -> None:
    """The help-centre knowledge base: the compacted topic every kb model follows live."""


@kb.command("publish")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True)
def kb_publish(file: str, as_json: bool) -> None:
    """Publish the articles of a JSON Lines FILE (one {id, title, body, intents, tags} per
    line); an article with a known id replaces it, {"id": ..., "deleted": true} deletes it."""
    from models.kb import BadArticle, parse_record
    from streams import kb as kb_topic

    path = Path(file)
    try:
        records = kb_topic.jsonl_records(path)
        for aid, value in records:
            parse_record(aid, value)  # refuse the whole file rather than publish half of it
    except (ValueError, BadArticle) as exc:
        _fail(str(exc))
    _publish_kb(records, "published", "to", as_json)


@kb.command("delete")
@click.argument("ids", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True)
def kb_delete(ids: tuple[str, ...], as_json: bool) -> None:
    """Delete articles by id (a tombstone per id; compaction then drops the article)."""
    _publish_kb([(aid, None) for aid in ids], "deleted", "from", as_json)


def _publish_kb(records: list[tuple[str, bytes | None]], verb: str, prep: str, as_json: bool) -> None:
    """Send records to the knowledge-base topic and report how many went where."""
    from streams import kb as kb_topic
    from streams.topics import get_topics

    s = get_settings()
    try:
        sent = asyncio.run(kb_topic.publish(s, records))
    except RuntimeError as exc:
        _fail(str(exc), 1)
    topic = get_topics(s).kb
    if as_json:
        _json_out({verb: sent, "topic": topic})
    else:
        err.print(f"{verb} {sent} articles {prep} {topic}")


@kb.command("list")
@click.option("--json", "as_json", is_flag=True, help="the articles as a JSON array")
def kb_list(as_json: bool) -> None:
    """The articles the topic holds now (what every kb model serves; empty = bundled file)."""
    from streams import kb as kb_topic

    try:
        state = asyncio.run(kb_topic.read_state(get_settings()))
    except RuntimeError as exc:
        _fail(str(exc), 1)
    if as_json:
        _json_out(list(state.values()))
        return
    table = Table(title=f"{len(state)} articles")
    for col in ("id", "title", "intents"):
        table.add_column(col)
    for aid, a in sorted(state.items()):
        table.add_row(aid, str(a.get("title", "")), ", ".join(a.get("intents") or []))
    console.print(table)


@kb.command("build")
def kb_build() -> None:
    """Precompute the bundled articles' embeddings (models/artifacts/kb-retrieval), so that
    a starting worker does not spend the encoder's time on them."""
    from models.adapters.kb import build_artifact
    from models.registry import Registry

    spec = Registry.load().get("kb-retrieval")
    path = spec.artifact_path()
    assert path is not None
    n = build_artifact(path)
    err.print(f"embedded {n} articles into {path}")


# --- models -----------------------------------------------------------------------------
@main.command()
@click.option("--json", "as_json", is_flag=True)
@click.option("--markdown", is_flag=True, help="a Markdown table (the README's model table)")
@click.option("--all", "include_test", is_flag=True, help="include test-only models")
def models(as_json: bool, markdown: bool, include_test: bool) -> None:
    """The model registry: task, metrics, latency, cost."""
    from models.registry import Registry

    reg = Registry.load(include_test=include_test or None, include_unserved=True, include_absent=True)
    if as_json:
        _json_out([s.model_dump(mode="json") for s in reg])
        return
    if markdown:
        sys.stdout.write(_models_markdown(reg))
        return
    table = Table(title="model registry")
    for col in (
        "id",
        "task",
        "kind",
        "backbone",
        "test metric",
        "val",
        "ms/item @1",
        "@32",
        "cost",
    ):
        table.add_column(col)
    for s in sorted(reg, key=lambda s: (s.task, s.id)):
        metric = next(
            (
                (k, v)
                for k, v in s.metrics.items()
                if k in ("accuracy", "f1", "entity_f1") and isinstance(v, int | float)
            ),
            None,
        )
        table.add_row(
            s.id,
            s.task,
            _kind(s),
            s.backbone or "-",
            f"{metric[0]} {metric[1]:.3f}" if metric else "-",
            "-" if s.validation_score is None else f"{s.validation_score:.3f}",
            f"{s.latency_ms['1']:.2f}" if "1" in s.latency_ms else "-",
            f"{s.latency_ms['32']:.2f}" if "32" in s.latency_ms else "-",
            f"{s.cost:g}",
        )
    console.print(table)


@main.command()
@click.argument("tasks", nargs=-1)
@click.option(
    "--budget",
    "budgets",
    type=click.IntRange(10, 600_000),
    multiple=True,
    help="latency budget in ms (repeat for several; default: STREAMFUSE_DEFAULT_BUDGET_MS)",
)
@click.option("--json", "as_json", is_flag=True)
def allocate(tasks: tuple[str, ...], budgets: tuple[int, ...], as_json: bool) -> None:
    """What the planner allocates for TASKS (default: every served task) at each budget on an
    idle pipeline: the models, the fusion strategy and the reason."""
    from agents.planning import KNOWN_TASKS, Planner, UnknownTask, check_tasks
    from models.registry import Registry
    from streams.records import InputMessage

    settings = get_settings()
    registry = Registry.load()
    served = [t for t in registry.tasks if t in KNOWN_TASKS]
    try:
        check_tasks(tasks, served)
    except UnknownTask as exc:
        _fail(str(exc))
    planner = Planner(registry, settings, None)
    rows = []
    for budget in budgets or (settings.default_budget_ms,):
        probes = [
            # an English sentence: the planner offers a task only to models that speak its language
            (
                InputMessage(
                    text="The company reported a higher profit.", tasks=[t], meta={"budget_ms": budget}
                ),
                t,
            )
            for t in tasks or served
        ]
        for planned in planner.plan_batch(probes, {}, now_ms=0):
            for tp in planned.plan.tasks:
                rows.append(
                    {"budget_ms": budget}
                    | tp.model_dump(include={"task", "models", "strategy", "degraded", "reason"})
                )
            for miss in planned.plan.unserved:
                rows.append({"budget_ms": budget, "task": miss.task, "models": [], "reason": miss.reason})
    if as_json:
        _json_out(rows)
        return
    table = Table(title="allocation on an idle pipeline (no load)")
    for col in ("budget ms", "task", "models", "strategy", "reason"):
        table.add_column(col, overflow="fold")
    for r in rows:
        strategy = r.get("strategy", "-") + (" (degraded)" if r.get("degraded") else "")
        table.add_row(str(r["budget_ms"]), r["task"], ", ".join(r["models"]) or "-", strategy, r["reason"])
    console.print(table)


def _kind(spec) -> str:
    """The model's kind, and whether the allocator may choose it."""
    if not spec.artifact_present():
        return f"{spec.kind} (full checkpoint, not trained here: `streamfuse train {spec.id}`)"
    notes = (["full checkpoint, local"] if spec.requires_local else []) + (
        [] if spec.serving else ["evaluation only, not served"]
    )
    return f"{spec.kind} ({'; '.join(notes)})" if notes else spec.kind


def _models_markdown(reg) -> str:
    rows = [
        "| model | task | kind | test set | test metric | macro-F1 | val score | ms/item @1 | @32 | @128 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]

    def f(v: object) -> str:
        return f"{v:.3f}" if isinstance(v, int | float) else "-"

    def headline(m: dict) -> str:
        for key, name in (("accuracy", "accuracy"), ("f1", "entity F1"), ("recall_at_3", "Recall@3")):
            if isinstance(m.get(key), int | float):
                text = f"{name} {m[key]:.3f}"
                if "oos_recall" in m:
                    text += f" (in-scope {m['in_scope_accuracy']:.3f}, oos recall {m['oos_recall']:.3f})"
                return text
        return m.get("note", "-")

    for s in sorted(reg, key=lambda s: (s.task, -s.quality)):
        m, lat = s.metrics, s.latency_ms
        rows.append(
            f"| {s.id} | {s.task} | {_kind(s)} | {m.get('test_set', '-')} | {headline(m)} | "
            f"{f(m.get('macro_f1'))} | {f(s.validation_score)} | "
            f"{f(lat.get('1'))} | {f(lat.get('32'))} | {f(lat.get('128'))} |"
        )
    return "\n".join(rows) + "\n"


@main.command()
@click.argument("model", required=False)
@click.option("--all", "all_", is_flag=True, help="train every model")
def train(model: str | None, all_: bool) -> None:
    """Train MODEL (or --all) reproducibly from the shared data sets."""
    from models import train as trainer

    if all_:
        trainer.train_all()
    elif model:
        from models.recipes import RECIPES

        if model not in RECIPES:
            _fail(f"no recipe for {model!r}; known: {', '.join(RECIPES)}")
        trainer.train(model)
    else:
        _fail("name a MODEL or pass --all")


@main.command("augment-study")
@click.argument("models", nargs=-1)
@click.option("--out", default="bench/results/augment-study.json", show_default=True, type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
def augment_study(models: tuple[str, ...], out: str, as_json: bool) -> None:
    """Train each TF-IDF model (or MODELS) with and without augmentation; compare on test."""
    from models import augment_study as st

    unknown = [m for m in models if m not in st.tfidf_models()]
    if unknown:
        _fail(f"not TF-IDF models: {', '.join(unknown)}; choose from {', '.join(st.tfidf_models())}")
    report = st.study(list(models) or None)
    path = st.write_report(report, Path(out))
    if as_json:
        _json_out(report)
    else:
        console.print(st.table(report))
        err.print(f"wrote {path}")


@main.command("eval")
@click.argument("model", required=False)
@click.option("--all", "all_", is_flag=True, help="evaluate every model")
@click.option("--stream", is_flag=True, help="the test splits through the running pipeline")
@click.option(
    "--tasks",
    default="fin_sentiment,sentiment,intent",
    show_default=True,
    help="with --stream: tasks to evaluate",
)
@click.option("--limit", type=int, default=None, help="with --stream: at most N test items per task")
@click.option("--timeout", type=float, default=900.0, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def evaluate(
    model: str | None, all_: bool, stream: bool, tasks: str, limit: int | None, timeout: float, as_json: bool
) -> None:
    """Metrics on held-out test splits and latency per batch size; written to the catalog."""
    if stream:
        from agents.stream_eval import eval_stream, plot

        report = asyncio.run(eval_stream(get_settings(), [t for t in tasks.split(",") if t], limit, timeout))
        folder = get_settings().state_dir / "eval"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "eval-stream.json").write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
        plot(report, folder / "eval-stream.png")
        err.print(f"wrote {folder / 'eval-stream.json'} and eval-stream.png")
        if as_json:
            _json_out(report)
        else:
            console.print(_stream_eval_table(report))
        sys.exit(0 if report["received"] == report["sent"] else 1)
    from models import evaluate as evaluator
    from models.registry import Registry

    registry = Registry.load(include_test=False)
    if all_:
        ids = [s.id for s in registry]
    elif model:
        try:  # an unknown id, or a full checkpoint not trained here: say so, not a traceback
            Registry.load(include_test=True, include_unserved=True).get(model)
        except KeyError as exc:
            _fail(str(exc.args[0]))
        ids = [model]
    else:
        _fail("name a MODEL, pass --all, or --stream")
    # Knowledge-base retrieval is measured with the support assist (agents.kb_eval).
    kb_ids = [m for m in ids if m in registry and registry.get(m).task == "kb"]
    rest = [m for m in ids if m not in kb_ids]
    reports = evaluator.evaluate_all(rest) if rest else {}  # also refreshes the relative costs
    if kb_ids:
        from agents.kb_eval import evaluate_kb, summary_table

        for mid in kb_ids:
            reports[mid] = evaluate_kb(mid)
            if not as_json:
                console.print(summary_table(reports[mid]))
    if as_json:
        _json_out(reports)


def _stream_eval_table(r: dict) -> Table:
    t = Table(title=f"eval --stream: {r['received']}/{r['sent']} results in {r['seconds']} s")
    for col in ("task", "data set", "model", "n", "accuracy", "macro-F1"):
        t.add_column(col)
    for task, rep in r["tasks"].items():
        for m, sc in sorted(rep["models"].items(), key=lambda kv: -kv[1]["accuracy"]):
            t.add_row(task, rep["dataset"], m, str(sc["n"]), f"{sc['accuracy']:.4f}", f"{sc['macro_f1']:.4f}")
        f = rep["fused"]
        if f:
            mark = "beats" if rep["fused_beats_best"] else "does not beat"
            t.add_row(
                task,
                rep["dataset"],
                f"[bold]fused[/] ({mark} {rep['best_single']})",
                str(f["n"]),
                f"[bold]{f['accuracy']:.4f}[/]",
                f"[bold]{f['macro_f1']:.4f}[/]",
            )
    return t


@main.command()
@click.option("--messages", default=20_000, show_default=True, help="saturation run size")
@click.option("--naive-messages", default=2_000, show_default=True)
@click.option("--load-seconds", default=30.0, show_default=True, help="length of each load run")
@click.option("--scale-messages", default=2_400, show_default=True)
@click.option(
    "--scale-hold-ms",
    default=250,
    show_default=True,
    help="the scale-out test model holds each batch of 8 this long",
)
@click.option(
    "--warm-messages",
    default=2_000,
    show_default=True,
    help="unmeasured messages before the saturation run (the broker's JIT warms up)",
)
@click.option("--out", type=click.Path(), default=None, help="folder for JSON, PNG and logs")
@click.option("--json", "as_json", is_flag=True)
def bench(
    messages: int,
    naive_messages: int,
    load_seconds: float,
    scale_messages: int,
    scale_hold_ms: int,
    warm_messages: int,
    out: str | None,
    as_json: bool,
) -> None:
    """Performance harness: ceiling, saturation, naive baseline, load, scale-out, stages."""
    from agents.bench import run_bench

    def start(s: Settings, out_dir: Path) -> Coroutine[Any, Any, dict]:
        return run_bench(
            s,
            messages=messages,
            naive_messages=naive_messages,
            load_seconds=load_seconds,
            scale_messages=scale_messages,
            scale_hold_ms=scale_hold_ms,
            warm_messages=warm_messages,
            out_dir=out_dir,
            console=err,
        )

    _run_report(start, out, as_json, _bench_table)


def _run_report(
    start: Callable[[Settings, Path], Coroutine[Any, Any, dict]],
    out: str | None,
    as_json: bool,
    table: Callable[[dict], Table],
) -> None:
    """Run a benchmark coroutine on the broker (the local one if none is configured), then
    print its report as JSON or as a table. Files go to ``out``, else ``<state>/bench``.

    A local broker started here runs the full JIT (``broker_jit``) unless the environment
    says otherwise: benchmarks measure the steady state, as a production broker runs it."""
    s = get_settings()
    if "broker_jit" not in s.model_fields_set:
        s = s.model_copy(update={"broker_jit": "full"})
    with _broker_if_needed(s):
        report = asyncio.run(start(s, Path(out) if out else s.state_dir / "bench"))
    if as_json:
        _json_out(report)
    else:
        console.print(table(report))


@main.command("bench-compare")
@click.argument("setting")
@click.option("--rate", type=float, default=None, help="msg/s to produce at (default: as fast as it goes)")
@click.option("--messages", default=660, show_default=True, help="messages per run")
@click.option("--rounds", default=2, show_default=True, help="runs per value, alternating")
@click.option(
    "--idle-seconds",
    type=float,
    default=0.0,
    show_default=True,
    help="first measure each pipeline's CPU with no traffic for this long (0 = skip)",
)
@click.option(
    "--warm-messages",
    default=1000,
    show_default=True,
    help="messages through one unmeasured pipeline first, to warm the broker's JIT (0 = skip)",
)
@click.option("--out", type=click.Path(), default=None, help="folder for JSON and logs")
@click.option("--json", "as_json", is_flag=True)
def bench_compare(
    setting: str,
    rate: float | None,
    messages: int,
    rounds: int,
    idle_seconds: float,
    warm_messages: int,
    out: str | None,
    as_json: bool,
) -> None:
    """A/B one setting on the real pipeline: SETTING is NAME=V1,V2 (e.g. model_concurrency=0,1).

    Runs alternate between the values (a fresh pipeline each), with the bench's layout."""
    from agents.bench_compare import parse_setting, run_compare

    try:
        name, values = parse_setting(setting)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="SETTING") from exc

    def start(s: Settings, out_dir: Path) -> Coroutine[Any, Any, dict]:
        return run_compare(
            s,
            setting=name,
            values=values,
            rate=rate,
            messages=messages,
            rounds=rounds,
            out_dir=out_dir,
            console=err,
            idle_s=idle_seconds,
            warm_messages=warm_messages,
        )

    _run_report(start, out, as_json, _compare_table)


def _compare_table(r: dict) -> Table:
    t = Table(
        title=f"{r['setting']}: {r['messages']} messages per run at {r['rate'] or 'full'} msg/s, "
        f"median of {r['rounds']}",
        caption=f"written: {r['file']}",
    )
    idle = any("idle_cores" in m for m in r["summary"].values())
    for col in ("value", "msg/s", "p50 ms", "p95 ms", "p99 ms", "worst RSS growth"):
        t.add_column(col)
    if idle:
        t.add_column("idle cores")
    for v, m in r["summary"].items():
        growth = "-" if m["max_rss_growth"] is None else f"{m['max_rss_growth']:+.1%}"
        lat = [f"{m[p]:.0f}" for p in ("p50", "p95", "p99")]
        extra = [_idle(m.get("idle_cores", {}))] if idle else []
        t.add_row(v, f"{m['throughput']:.1f}", *lat, growth, *extra)
    return t


def _idle(cores: dict[str, float]) -> str:
    """Cores each process used with no traffic (finer: idle figures are small)."""
    return _by_process(cores, 3)


def _by_process(cores: dict[str, float], digits: int) -> str:
    """``infer 1.20 · broker 0.36 · ...``: cores by process, busiest first ("-" for none)."""
    return " · ".join(f"{k} {v:.{digits}f}" for k, v in sorted(cores.items(), key=lambda kv: -kv[1])) or "-"


def _cores(run: dict) -> str:
    """Cores each process used during a bench run."""
    return _by_process(run["cpu_cores"], 2)


def _bench_table(r: dict) -> Table:
    t = Table(title=f"streamfuse bench ({r['machine']['cpus']} CPUs, {r['machine']['device']})")
    for col in ("measure", "value"):
        t.add_column(col)
    sat, naive, ceil = r["saturation"], r["naive"], r["ceiling"]
    rows = [
        (
            "ceiling (models only, in-process)",
            f"{ceil['messages_per_s']} msg/s at batch {ceil['batch_size']}"
            + (f", {ceil['concurrent_batches']} at once" if ceil.get("concurrent_batches", 1) > 1 else ""),
        ),
        (
            "end to end at saturation",
            f"{sat['throughput']} msg/s ({sat['messages']} msgs, {sat['partial']} partial)",
        ),
        ("  latency p50 / p95 / p99", "{p50} / {p95} / {p99} ms".format(**sat["latency_ms"])),
        ("naive baseline (batch 1, no shared encoder)", f"{naive['throughput']} msg/s"),
        *[
            (
                f"latency at {k} of saturation",
                "p50 {p50} / p95 {p95} / p99 {p99} ms".format(**v["latency_ms"]),
            )
            for k, v in r["load"].items()
        ],
        *([("CPU cores by process, idle", _idle(r["idle_cores"]))] if r.get("idle_cores") else []),
        *[
            (f"CPU cores by process, {name}", _cores(run))
            for name, run in [("saturation", sat), *((f"{k} load", v) for k, v in r["load"].items())]
            if run.get("cpu_cores")
        ],
        *[
            (
                f"scale-out, {k} infer worker(s)",
                f"{v['throughput']} msg/s, CPU {v.get('cpu_busy') or 0:.0%} busy",
            )
            for k, v in r["scale_out"].items()
        ],
        *(
            [
                ("saturation, exactly-once", f"{r['exactly_once']['throughput']} msg/s"),
                ("exactly-once / at-least-once", str(r["ratios"]["exactly_once_over_saturation"])),
            ]
            if "exactly_once" in r
            else []
        ),
        ("saturation / ceiling", str(r["ratios"]["saturation_over_ceiling"])),
        ("saturation / naive", str(r["ratios"]["saturation_over_naive"])),
        ("scale-out 4 / 1", str(r["ratios"]["scale_4_over_1"])),
        ("allocation overhead", f"{r['allocation_ms_per_message']} ms/message"),
        ("recogniser alone", f"{ceil['recognizer_messages_per_s']} msg/s"),
        *[(f"stage {k} (median)", f"{v} ms") for k, v in sat["stage_ms"].items()],
        *[(f"RSS {w}", _rss_row(m)) for w, m in r["memory"].items()],
    ]
    for k, v in rows:
        t.add_row(k, v)
    return t


def _rss_row(m: dict[str, Any]) -> str:
    """Worker memory: medians of the warm-up and last tenths (``agents.bench.memory_growth``),
    and the one-sample growth earlier runs reported."""
    row = f"{m['after_warmup_mb']:.0f} -> {m['end_mb']:.0f} MB ({m['growth']:+.1%})"
    if "sample_growth" in m:
        row += f"; one sample to the last: {m['sample_growth']:+.1%}"
    return row


@main.command()
@click.option("--messages", default=10_000, show_default=True)
@click.option("--rate", default=250.0, show_default=True, help="messages per second")
@click.option("--per-role", default=2, show_default=True, help="worker processes per role")
@click.option("--kill-every", default=4.0, show_default=True, help="seconds between SIGKILLs")
@click.option("--no-broker-restart", is_flag=True, help="skip the broker restart")
@click.option("--seed", default=7, show_default=True)
@click.option(
    "--overload", is_flag=True, help="instead: a burst of about 10x the sustainable rate over a steady stream"
)
@click.option(
    "--exactly-once", is_flag=True, help="workers use Kafka transactions; then duplicates must be 0 too"
)
@click.option("--json", "as_json", is_flag=True)
def chaos(
    messages: int,
    rate: float,
    per_role: int,
    kill_every: float,
    no_broker_restart: bool,
    seed: int,
    overload: bool,
    exactly_once: bool,
    as_json: bool,
) -> None:
    """Reliability run: kill workers, restart the broker, count lost/duplicated/dead-lettered."""
    from streams.chaos import run_chaos, run_overload

    if overload:
        s = get_settings()
        with _broker_if_needed(s):
            rep = asyncio.run(run_overload(s))
        _json_out(rep.to_dict()) if as_json else console.print(rep.to_dict())
        sys.exit(0 if rep.lost == 0 else 1)

    s = get_settings()
    with _broker_if_needed(s):
        report = asyncio.run(
            run_chaos(
                s,
                messages=messages,
                rate=rate,
                per_role=per_role,
                kill_every=kill_every,
                broker_restart=not no_broker_restart,
                seed=seed,
                guarantee="exactly_once" if exactly_once else "at_least_once",
            )
        )
    if as_json:
        _json_out(report.to_dict())
    else:
        table = Table(title="chaos run")
        table.add_column("what")
        table.add_column("value", justify="right")
        for k, v in report.to_dict().items():
            if k != "lost_sample":
                table.add_row(k.replace("_", " "), str(v))
        console.print(table)
    sys.exit(0 if report.lost == 0 and (report.duplicated == 0 or not exactly_once) else 1)


@main.command()
@click.option("--out", type=click.Path(), default=None, help="write the schemas to this folder")
def schema(out: str | None) -> None:
    """JSON Schema of every record, for producers and consumers outside Python."""
    from streams.records import RECORD_TYPES

    schemas = {name: model.model_json_schema() for name, model in RECORD_TYPES.items()}
    if out is None:
        _json_out(schemas)
        return
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    for name, sch in schemas.items():
        (folder / f"{name}.schema.json").write_bytes(orjson.dumps(sch, option=orjson.OPT_INDENT_2) + b"\n")
    console.print(f"wrote {len(schemas)} schemas to {folder}")


@main.command("settings")
@click.option("--json", "as_json", is_flag=True)
def show_settings(as_json: bool) -> None:
    """The effective settings and their environment variables."""
    s = get_settings()
    data = s.model_dump(mode="json")
    if as_json:
        _json_out(data)
        return
    table = Table(title="settings")
    for col in ("variable", "value", "meaning"):
        table.add_column(col)
    for name, field in type(s).model_fields.items():
        table.add_row(f"STREAMFUSE_{name.upper()}", str(data[name]), field.description or "")
    console.print(table)


if __name__ == "__main__":
    main()

"""The local single-node Apache Kafka broker (KRaft, no ZooKeeper).

Apache's own jars are resolved by Maven from Maven Central through ``streams/kafka/pom.xml``
(pinned version) and run on the installed Java 17. Data, logs, the pid file and the chosen
ports live under ``<state_dir>/broker``; the ports are kept across restarts so that clients
reconnect to the same address.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from streams.settings import Settings

KAFKA_DIR = Path(__file__).with_name("kafka")
POM = KAFKA_DIR / "pom.xml"
LOG4J = KAFKA_DIR / "log4j2.properties"


class BrokerError(RuntimeError):
    """The local broker could not be started, stopped or found; the message says why."""


@dataclass(slots=True)
class BrokerInfo:
    """What `streamfuse broker status` reports."""

    running: bool
    pid: int | None
    endpoint: str | None
    port: int | None
    controller_port: int | None
    kafka_version: str
    data_dir: str
    log_file: str


def kafka_version() -> str:
    """The pinned Kafka version from the pom."""
    match = re.search(r"<kafka.version>([^<]+)</kafka.version>", POM.read_text())
    assert match, "kafka.version missing from pom.xml"
    return match.group(1)


def _dir(settings: Settings) -> Path:
    return settings.broker_state_dir()


def _pid_file(settings: Settings) -> Path:
    return _dir(settings) / "broker.pid"


def _ports_file(settings: Settings) -> Path:
    return _dir(settings) / "ports.json"


def _log_file(settings: Settings) -> Path:
    return _dir(settings) / "broker.log"


def _require(tool: str, hint: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise BrokerError(f"{tool} was not found on PATH. {hint}")
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still "exists": check its state.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return True


def read_pid(settings: Settings) -> int | None:
    """PID of the running local broker, or None."""
    try:
        pid = int(_pid_file(settings).read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _alive(pid) else None


def _read_ports(settings: Settings) -> dict[str, int] | None:
    try:
        return json.loads(_ports_file(settings).read_text())
    except (OSError, ValueError):
        return None


def read_endpoint(settings: Settings) -> str | None:
    """``127.0.0.1:port`` of the running local broker, or None when it is not running."""
    ports = _read_ports(settings)
    if ports is None or read_pid(settings) is None:
        return None
    return f"127.0.0.1:{ports['port']}"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def classpath(settings: Settings) -> str:
    """Resolve (once) and return the broker's Java classpath through Maven."""
    # Kept beside the pom (git-ignored), not in the state dir: test runs use fresh state
    # dirs and should not re-run Maven.
    cp_file = KAFKA_DIR / f".classpath-{kafka_version()}.txt"
    if cp_file.exists() and cp_file.stat().st_mtime >= POM.stat().st_mtime:
        return cp_file.read_text().strip()
    mvn = _require(
        "mvn",
        "Install Apache Maven (Debian: apt-get install maven), "
        "or point STREAMFUSE_BROKER at an existing Kafka broker.",
    )
    cp_file.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [
            mvn,
            "-q",
            "-B",
            "-f",
            str(POM),
            "dependency:build-classpath",
            f"-Dmdep.outputFile={cp_file}",
        ],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0 or not cp_file.exists():
        raise BrokerError(
            "Maven could not resolve the Kafka jars from Maven Central "
            f"(exit {proc.returncode}):\n{(proc.stdout + proc.stderr)[-2000:]}\n"
            "Check network access to Maven Central or your ~/.m2/settings.xml mirror."
        )
    return cp_file.read_text().strip()


def _server_properties(settings: Settings, port: int, cport: int) -> str:
    data = _dir(settings) / "data"
    return "\n".join(
        [
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{cport}",
            f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            f"log.dirs={data}",
            f"num.partitions={settings.partitions}",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=8",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "transaction.state.log.num.partitions=8",
            # Single-node dev broker: no reason to delay the first rebalance.
            "group.initial.rebalance.delay.ms=0",
            "auto.create.topics.enable=false",
            # Let oversized input reach the pipeline, which dead-letters it with the reason
            # (a broker-side rejection would only be seen by the producer).
            "message.max.bytes=16777216",
            "log.retention.hours=24",
            "log.segment.bytes=67108864",
            "",
        ]
    )


def jvm_options(settings: Settings) -> list[str]:
    """The broker JVM's options: fixed heap, G1, and C1 only when ``broker_jit`` is quick."""
    return [
        f"-Xmx{settings.broker_heap}",
        f"-Xms{settings.broker_heap}",
        "-XX:+UseG1GC",
        *(["-XX:TieredStopAtLevel=1"] if settings.broker_jit == "quick" else []),
        f"-Dlog4j2.configurationFile={LOG4J}",
    ]


def _java() -> str:
    java = _require(
        "java",
        "Install a Java 17+ runtime (Debian: apt-get install openjdk-17-jre-headless), "
        "or point STREAMFUSE_BROKER at an existing Kafka broker.",
    )
    return java


def start(settings: Settings) -> BrokerInfo:
    """Start the local broker (idempotent) and wait until it serves requests."""
    if settings.broker:
        raise BrokerError(
            f"STREAMFUSE_BROKER is set ({settings.broker}); the local broker is only used when it is unset."
        )
    if read_pid(settings) is not None:
        return status(settings)
    java = _java()
    cp = classpath(settings)
    bdir = _dir(settings)
    bdir.mkdir(parents=True, exist_ok=True)
    ports = _read_ports(settings)
    if ports is None or (settings.broker_port and ports["port"] != settings.broker_port):
        ports = {"port": settings.broker_port or free_port(), "controller_port": free_port()}
        _ports_file(settings).write_text(json.dumps(ports))
    for name in ("port", "controller_port"):
        if not _port_free(ports[name]):
            raise BrokerError(
                f"port {ports[name]} on 127.0.0.1 is taken by another process; stop it or set "
                "STREAMFUSE_BROKER_PORT to a free port (and remove "
                f"{_ports_file(settings)})."
            )
    props = bdir / "server.properties"
    props.write_text(_server_properties(settings, ports["port"], ports["controller_port"]))
    if not (bdir / "data" / "meta.properties").exists():
        fmt = subprocess.run(
            [
                java,
                "-cp",
                cp,
                "kafka.tools.StorageTool",
                "format",
                "-t",
                _cluster_id(),
                "-c",
                str(props),
            ],
            capture_output=True,
            text=True,
        )
        if fmt.returncode != 0:
            raise BrokerError(f"formatting the KRaft storage failed:\n{fmt.stdout}{fmt.stderr}")
    _rotate_log(_log_file(settings))
    log_start = _log_file(settings).stat().st_size if _log_file(settings).exists() else 0
    log = open(_log_file(settings), "ab")  # noqa: SIM115 - handed to the child process
    proc = subprocess.Popen(
        [java, *jvm_options(settings), "-cp", cp, "kafka.Kafka", str(props)],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # survives the CLI that started it
    )
    log.close()
    _pid_file(settings).write_text(str(proc.pid))
    _wait_ready(settings, proc, ports["port"], log_start)
    return status(settings)


LOG_ROTATE_BYTES = 16 * 2**20


def _rotate_log(log: Path) -> None:
    """Keep the previous broker's log as ``broker.log.1`` once it is large (each start
    appends to it, so it would grow without end)."""
    if log.exists() and log.stat().st_size > LOG_ROTATE_BYTES:
        log.replace(log.with_name(log.name + ".1"))


def _cluster_id() -> str:
    """A random KRaft cluster id: a UUID in URL-safe base64, never starting with "-".

    The storage tool would read such an id as an option and refuse to format (as Kafka's
    own ``Uuid.randomUuid`` does, draw again)."""
    import base64

    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _wait_ready(settings: Settings, proc: subprocess.Popen[bytes], port: int, log_start: int) -> None:
    """Wait for this broker's "started" line (in the log after ``log_start``: the log keeps
    earlier runs' lines), then for a real metadata round trip."""
    deadline = time.monotonic() + settings.broker_start_timeout
    log = _log_file(settings)
    while time.monotonic() < deadline:
        text = _read_from(log, log_start)
        if proc.poll() is not None:
            _pid_file(settings).unlink(missing_ok=True)
            raise BrokerError(f"the Kafka broker exited with code {proc.returncode}:\n{text[-3000:]}")
        if "Kafka Server started" in text and _metadata_ok(port):
            return
        time.sleep(0.3)
    stop(settings)
    raise BrokerError(
        f"the Kafka broker did not become ready within {settings.broker_start_timeout:.0f}s; see {log}"
    )


def _read_from(log: Path, offset: int) -> str:
    if not log.exists():
        return ""
    with log.open("rb") as f:
        f.seek(offset)
        return f.read().decode(errors="replace")


def _metadata_ok(port: int) -> bool:
    """A real metadata round trip, not only an open socket."""
    import asyncio

    from aiokafka.admin import AIOKafkaAdminClient

    async def probe() -> bool:
        admin = AIOKafkaAdminClient(bootstrap_servers=f"127.0.0.1:{port}", request_timeout_ms=3000)
        try:
            await admin.start()
            await admin.list_topics()
            return True
        except Exception:
            return False
        finally:
            await admin.close()

    return asyncio.run(probe())


def stop(settings: Settings, timeout: float = 30.0) -> bool:
    """Stop the local broker by PID (SIGTERM, then SIGKILL). True if one was running."""
    pid = read_pid(settings)
    if pid is None:
        _pid_file(settings).unlink(missing_ok=True)
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(pid):
        _reap(pid)
        time.sleep(0.2)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.5)
        _reap(pid)
    _pid_file(settings).unlink(missing_ok=True)
    return True


def kill(settings: Settings) -> bool:
    """SIGKILL the local broker (chaos testing). True if one was running."""
    pid = read_pid(settings)
    if pid is None:
        return False
    os.kill(pid, signal.SIGKILL)
    while _alive(pid):
        _reap(pid)
        time.sleep(0.1)
    _pid_file(settings).unlink(missing_ok=True)
    return True


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):  # not our child: nothing to reap
        os.waitpid(pid, os.WNOHANG)


def status(settings: Settings) -> BrokerInfo:
    """The local broker's state."""
    pid = read_pid(settings)
    ports = _read_ports(settings) or {}
    return BrokerInfo(
        running=pid is not None,
        pid=pid,
        endpoint=read_endpoint(settings),
        port=ports.get("port"),
        controller_port=ports.get("controller_port"),
        kafka_version=kafka_version(),
        data_dir=str(_dir(settings) / "data"),
        log_file=str(_log_file(settings)),
    )


def info_dict(info: BrokerInfo) -> dict[str, object]:
    return asdict(info)

"""A local runner that plays the Azure Functions host for a ``FunctionApp``.

For every Event Hubs-triggered function it runs a consumer per partition of the hub the
binding names (binding expressions such as ``%REACTIVE_PARTITION_HUB%`` resolved from the
settings), builds each batch into ``azure.functions.EventHubEvent`` objects with the trigger
metadata the Python worker passes (``SystemPropertiesArray``, ``PartitionContext``, ...),
calls the same user function, then checkpoints in Blob Storage as the Functions host does:
after the call, whether it succeeded or not, every ``checkpoint_every`` batches (host.json's
``batchCheckpointFrequency``; written by a thread of its own, so that the next batch does
not wait for it) and when the consumer stops. Timer-triggered functions run every
``timer_interval`` seconds; HTTP functions are served on 127.0.0.1 by a small bridge that
turns requests into ``azure.functions.HttpRequest`` objects.

``serve(app, partitions, ...)`` runs a whole app this way against Azurite and an Event
Hubs stand-in (or any namespace and account the settings name).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import azure.functions as func
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.eventhub import EventData, EventHubConsumerClient, PartitionContext
from azure.functions.decorators.eventhub import EventHubTrigger
from azure.functions.decorators.http import HttpTrigger
from azure.functions.decorators.timer import TimerTrigger
from azure.functions.timer import TimerRequest
from azure.storage.blob import BlobClient, ContainerClient

from hosts.azure.events import number, trigger_batch
from hosts.azure.functions import DEFAULTS, build_function_app
from hosts.azure.host import AzureHost
from hosts.azure.settings import EVENTHUBS, STORAGE, AzureSettings
from reactive import App

log = logging.getLogger("reactive.azure.local")

LOOPBACK = "127.0.0.1"
CHECKPOINT_EVERY = 16  # batches per checkpoint: host.json's batchCheckpointFrequency
# seconds a consumer of a hub other than the partition hub (the ingress hub) waits per
# socket read: its receive latency, and how often it wakes when idle. The SDK's sync
# receiver hands events over only when a read times out, so the partition hub's
# consumers read with the settings' short timeout (every hop of a message waits for it),
# while requests from outside can wait a little longer for much less idle CPU
SIDE_RECEIVE_TIMEOUT = 0.1


def resolve(expression: str, env: Mapping[str, str]) -> str:
    """A binding expression's value: ``%NAME%`` parts replaced from the settings."""
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in env:
            return env[name]
        if name in DEFAULTS:
            return DEFAULTS[name]
        raise KeyError(f"binding expression %{name}% names no setting")

    return re.sub(r"%([^%]+)%", value, expression)


class BlobCheckpoints:
    """The last sequence number handled per (hub, consumer group, partition)."""

    def __init__(self, container: ContainerClient, prefix: str = "checkpoints/") -> None:
        self.container = container
        self.prefix = prefix
        # one client per checkpoint blob, reused: making one per write builds the SDK's
        # pipeline objects again each time
        self._clients: dict[str, BlobClient] = {}

    def _blob(self, hub: str, group: str, partition: str) -> BlobClient:
        name = f"{self.prefix}{hub}/{group}/{partition}"
        client = self._clients.get(name)
        if client is None:
            client = self._clients[name] = self.container.get_blob_client(name)
        return client

    def get(self, hub: str, group: str, partition: str) -> int | None:
        try:
            data = self._blob(hub, group, partition).download_blob().readall()
        except ResourceNotFoundError:
            return None
        return int(data)

    def put(self, hub: str, group: str, partition: str, sequence_number: int) -> None:
        self._blob(hub, group, partition).upload_blob(
            str(sequence_number).encode(), overwrite=True
        )


@dataclass
class Invocation:
    function: str
    partition: str
    events: int
    first: int
    last: int
    error: str | None = None


@dataclass
class RunnerStats:
    invocations: int = 0
    events: int = 0
    failures: int = 0
    recent: list[Invocation] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, invocation: Invocation) -> None:
        with self.lock:
            self.invocations += 1
            self.events += invocation.events
            self.failures += invocation.error is not None
            self.recent.append(invocation)
            del self.recent[:-200]


class _Consumer:
    """One partition of one hub, feeding one function."""

    def __init__(
        self, runner: LocalFunctionsHost, name: str, call: Callable[[list[func.EventHubEvent]],
        Any], hub: str, partition: str,
    ) -> None:
        self.runner = runner
        self.name = name
        self.call = call
        self.hub = hub
        self.partition = partition
        self.client: EventHubConsumerClient | None = None
        self.batches = 0
        self.unsaved: int | None = None  # the last sequence number handled, not checkpointed
        self._saving = threading.Lock()
        self.thread = threading.Thread(
            target=self._run, name=f"eh-{hub}-{partition}", daemon=True
        )

    def _run(self) -> None:
        settings = self.runner.settings
        group = settings.consumer_group
        while not self.runner.stopping.is_set():
            checkpoint = self.runner.checkpoints.get(self.hub, group, self.partition)
            client = settings.consumer(self.hub, receive_timeout=self.runner.timeout_of(self.hub))
            self.client = client
            kwargs: dict[str, Any] = {}
            if self.runner.owner_level is not None:
                kwargs["owner_level"] = self.runner.owner_level
            try:
                client.receive_batch(
                    self._on_batch, on_error=self._on_error, partition_id=self.partition,
                    starting_position="-1" if checkpoint is None else checkpoint,
                    starting_position_inclusive=False,
                    max_batch_size=self.runner.max_batch_size,
                    max_wait_time=self.runner.max_wait_time,
                    prefetch=self.runner.prefetch, **kwargs,
                )
            except Exception as exc:
                log.warning("consumer %s/%s stopped: %s", self.hub, self.partition, exc)
            finally:
                client.close()
                self._checkpoint()
            if self.runner.stopping.wait(0.5):
                return

    def _checkpoint(self) -> None:
        # under a lock from taking the number to its write: writes land in order, each
        # of a later number than the one before
        with self._saving:
            if self.unsaved is None:
                return
            last, self.unsaved = self.unsaved, None
            try:
                self.runner.checkpoints.put(self.hub, self.runner.settings.consumer_group,
                                            self.partition, last)
            except Exception:
                # a lost checkpoint only means redelivery, which the host skips
                log.exception("checkpoint of %s/%s failed", self.hub, self.partition)

    def _on_error(self, _: PartitionContext | None, error: Exception) -> None:
        log.warning("consumer %s/%s: %s", self.hub, self.partition, error)

    def _on_batch(self, _: PartitionContext, events: list[EventData]) -> None:
        if not events or self.runner.stopping.is_set():
            return
        group = self.runner.settings.consumer_group
        batch = trigger_batch(events, self.hub, group, self.partition)
        invocation = Invocation(
            self.name, self.partition, len(events), number(events[0]), number(events[-1])
        )
        try:
            self.call(batch)
        except Exception as exc:
            invocation.error = f"{type(exc).__name__}: {exc}"
            log.exception("function %s failed on %s/%s", self.name, self.hub, self.partition)
        self.runner.stats.add(invocation)
        # like the Functions host: the batch counts as handled after the call, whatever it
        # did, and is checkpointed with every ``checkpoint_every``-th batch (a checkpoint that
        # lags only means redelivery, which the host skips)
        self.unsaved = invocation.last
        self.batches += 1
        if self.batches % self.runner.checkpoint_every == 0:
            # written by the runner's checkpoint thread, so that the next batch does not
            # wait for the blob write; the stop writes whatever is left
            try:
                self.runner.background.submit(self._checkpoint)
            except RuntimeError:  # the runner stopped meanwhile
                self._checkpoint()


class LocalFunctionsHost:
    """Runs a FunctionApp's Event Hubs, timer and HTTP functions in this process."""

    def __init__(
        self,
        functions: func.FunctionApp,
        settings: AzureSettings,
        *,
        checkpoints: BlobCheckpoints | None = None,
        timer_interval: float | None = None,
        max_batch_size: int = 512,
        max_wait_time: float | None = None,
        prefetch: int = 1024,
        owner_level: int | None = None,
        http_port: int | None = None,
        checkpoint_every: int = CHECKPOINT_EVERY,
        side_receive_timeout: float = SIDE_RECEIVE_TIMEOUT,
    ) -> None:
        if checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be at least 1, got {checkpoint_every}")
        self.functions = functions
        self.settings = settings
        self.env = {**settings.environment(), **os.environ}
        self.checkpoints = checkpoints or BlobCheckpoints(settings.container_client())
        self.timer_interval = timer_interval
        self.max_batch_size = max_batch_size
        self.max_wait_time = max_wait_time
        self.prefetch = prefetch
        self.owner_level = owner_level
        self.http_port = http_port
        self.checkpoint_every = checkpoint_every
        self.side_receive_timeout = side_receive_timeout
        self.stats = RunnerStats()
        self.stopping = threading.Event()
        self.background = ThreadPoolExecutor(1, thread_name_prefix="checkpoints")
        self._consumers: list[_Consumer] = []
        self._threads: list[threading.Thread] = []
        self._http: ThreadingHTTPServer | None = None
        self.url: str | None = None

    def timeout_of(self, hub: str) -> float:
        """The socket read timeout of a consumer of ``hub``."""
        if hub == self.settings.partition_hub:
            return self.settings.receive_timeout
        return max(self.settings.receive_timeout, self.side_receive_timeout)

    def _partitions_of(self, hub: str) -> list[str]:
        producer = self.settings.producer(hub)
        try:
            return list(producer.get_partition_ids())
        finally:
            producer.close()

    def start(self) -> LocalFunctionsHost:
        for function in self.functions.get_functions():
            trigger = function.get_trigger()
            user = function.get_user_function()
            name = function.get_function_name() or user.__name__
            if isinstance(trigger, EventHubTrigger):
                hub = resolve(trigger.event_hub_name, self.env)
                arg = trigger.name
                call = _keyword_caller(user, arg)
                for partition in self._partitions_of(hub):
                    self._consumers.append(_Consumer(self, name, call, hub, partition))
            elif isinstance(trigger, TimerTrigger):
                interval = self.timer_interval or _interval(resolve(trigger.schedule, self.env))
                self._threads.append(threading.Thread(
                    target=self._timer, args=(name, user, trigger.name, interval),
                    name=f"timer-{name}", daemon=True,
                ))
            elif isinstance(trigger, HttpTrigger) and self.http_port is not None:
                self._start_http(user)
        for consumer in self._consumers:
            consumer.thread.start()
        for thread in self._threads:
            thread.start()
        return self

    def _timer(self, name: str, user: Callable[..., Any], arg: str, interval: float) -> None:
        while not self.stopping.is_set():
            try:
                user(**{arg: TimerRequest(past_due=False)})
            except Exception:
                log.exception("timer function %s failed", name)
            if self.stopping.wait(interval):
                return

    def _start_http(self, user: Callable[..., Any]) -> None:
        server = ThreadingHTTPServer((LOOPBACK, self.http_port or 0), _bridge(user))
        self._http = server
        self.url = f"http://{LOOPBACK}:{server.server_address[1]}"
        self._threads.append(
            threading.Thread(target=server.serve_forever, name="http", daemon=True)
        )

    def stop(self) -> None:
        self.stopping.set()
        for consumer in self._consumers:
            if consumer.client is not None:
                consumer.client.close()
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
        for consumer in self._consumers:
            consumer.thread.join(30)
        for thread in self._threads:
            thread.join(30)
        self.background.shutdown(wait=True)


def _keyword_caller(
    user: Callable[..., Any], arg: str
) -> Callable[[list[func.EventHubEvent]], Any]:
    def call(events: list[func.EventHubEvent]) -> Any:
        result = user(**{arg: events})
        if inspect.isawaitable(result):
            return asyncio.run(_awaited(result))
        return result

    return call


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


def _interval(schedule: str) -> float:
    """Seconds between runs of a six-field NCRONTAB schedule of the ``*/N * * * * *``
    kind (other schedules run every 10 seconds locally)."""
    fields = schedule.split()
    if len(fields) == 6 and fields[0].startswith("*/") and all(f == "*" for f in fields[1:]):
        return float(fields[0][2:])
    return 10.0


def _bridge(user: Callable[..., Any]) -> type[BaseHTTPRequestHandler]:
    class Bridge(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _handle(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            request = func.HttpRequest(
                method=self.command, url=f"http://{LOOPBACK}{self.path}",
                headers=dict(self.headers.items()),
                params=dict(parse_qsl(urlsplit(self.path).query)), body=body,
            )
            result = user(req=request, context=None)
            if inspect.isawaitable(result):
                result = asyncio.run(_awaited(result))
            response: func.HttpResponse = result
            payload = response.get_body()
            self.send_response(response.status_code)
            headers = [(str(k), str(v)) for k, v in response.headers.items()]
            for key, value in headers:
                if key.lower() not in ("content-length", "transfer-encoding"):
                    self.send_header(key, value)
            if response.mimetype and "content-type" not in {k.lower() for k, _ in headers}:
                self.send_header("content-type", response.mimetype)
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _handle

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("http: " + format, *args)

    return Bridge


@dataclass
class Served:
    """A running local Azure host: the host object, its runner, its client."""

    host: AzureHost
    runner: LocalFunctionsHost

    def client(self) -> Any:
        return self.host.client()

    def stop(self) -> None:
        self.runner.stop()
        self.host.close()


def serve(
    app: App,
    partitions: int,
    settings: AzureSettings | None = None,
    *,
    timer_interval: float | None = 1.0,
    http_port: int | None = None,
    **runner_options: Any,
) -> Served:
    """Run ``app`` on the Azure host locally: the FunctionApp ``function_app.py`` would
    build, driven by :class:`LocalFunctionsHost`. ``settings`` default to the
    environment's (``REACTIVE_PARTITIONS`` is ``partitions``); ``timer_interval`` None
    runs the timer on its schedule."""
    if settings is None:
        settings = AzureSettings.from_env({**os.environ, "REACTIVE_PARTITIONS": str(partitions)})
    if settings.partitions != partitions:
        raise ValueError(f"settings say {settings.partitions} partitions, not {partitions}")
    host = AzureHost(app, settings)
    functions = build_function_app(app, host=lambda: host)
    runner = LocalFunctionsHost(
        functions, settings, timer_interval=timer_interval, http_port=http_port,
        **runner_options,
    )
    with contextlib.suppress(ResourceExistsError):
        runner.checkpoints.container.create_container()
    runner.start()
    return Served(host, runner)


def wait_until(condition: Callable[[], bool], timeout: float, poll: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(poll)
    return condition()


# -- `reactive serve MODULE:APP --host azure-local` ---------------------------------------------

REPO = Path(__file__).resolve().parents[2]
AZURITE_CANDIDATES = (REPO / "tests" / "services" / "node_modules" / ".bin" / "azurite",)
AZURITE_ACCOUNT = "devstoreaccount1"
# Azurite's published development account key (not a secret)
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/"
    "K1SZFPTOtr/KBHBeksoGMGw=="
)


class LocalServices:
    """Azurite and the Event Hubs stand-in as child processes on 127.0.0.1, for a local run
    whose settings name no storage account or namespace; stopped by pid."""

    def __init__(self, partitions: int) -> None:
        self.partitions = partitions
        self._processes: list[subprocess.Popen[bytes]] = []

    def _azurite_binary(self) -> str:
        explicit = os.environ.get("AZURITE_BIN") or shutil.which("azurite")
        if explicit:
            return explicit
        for candidate in AZURITE_CANDIDATES:
            if candidate.exists():
                return str(candidate)
        raise RuntimeError(
            "Azurite is not installed: run `npm ci --prefix tests/services` (or set "
            "AzureWebJobsStorage to a storage account)"
        )

    def start(self) -> AzureSettings:
        blob, queue, table = (_free_port() for _ in range(3))
        azurite = subprocess.Popen([
            self._azurite_binary(), "--inMemoryPersistence", "--skipApiVersionCheck", "--loose",
            "--disableTelemetry", "--silent", "--blobHost", LOOPBACK, "--blobPort", str(blob),
            "--queueHost", LOOPBACK, "--queuePort", str(queue), "--tableHost", LOOPBACK,
            "--tablePort", str(table),
        ], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._processes.append(azurite)
        standin = subprocess.Popen(
            [sys.executable, "-m", "tests.standins.eventhubs", "--host", LOOPBACK, "--port", "0",
             "--hub", f"partitions:{self.partitions}", "--hub", f"ingress:{self.partitions}"],
            cwd=REPO, stdout=subprocess.PIPE,
        )
        self._processes.append(standin)
        assert standin.stdout is not None
        line = standin.stdout.readline().decode().split()
        if len(line) != 2 or line[0] != "ready":
            self.stop()
            raise RuntimeError("the Event Hubs stand-in did not start")
        if not wait_until(lambda: _listening(blob), 30):
            self.stop()
            raise RuntimeError("Azurite did not start")
        storage = (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};"
            f"AccountKey={AZURITE_KEY};BlobEndpoint=http://{LOOPBACK}:{blob}/{AZURITE_ACCOUNT};"
        )
        eventhubs = (
            f"Endpoint=sb://{LOOPBACK}:{line[1]};SharedAccessKeyName=RootManageSharedAccessKey;"
            "SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true"
        )
        return AzureSettings(
            self.partitions, storage_connection=storage, eventhubs_connection=eventhubs,
            api_key=os.environ.get("REACTIVE_API_KEY") or None,
        )

    def pids(self) -> tuple[int, int]:
        """Azurite's and the stand-in's process ids (for measurements)."""
        azurite, standin = self._processes
        return azurite.pid, standin.pid

    def stop(self) -> None:
        for process in self._processes:
            if process.poll() is None:
                os.kill(process.pid, signal.SIGTERM)
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    os.kill(process.pid, signal.SIGKILL)
                    process.wait()
        self._processes.clear()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        port: int = s.getsockname()[1]
        return port


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return bool(s.connect_ex((LOOPBACK, port)) == 0)


def serve_command(app: App, partitions: int, port: int = 0, api_key: str | None = None) -> int:
    """Run ``app`` on the Azure host locally until interrupted: against the storage account
    and namespace the environment names (``AzureWebJobsStorage``, ``EventHubConnection``),
    or else against Azurite and the Event Hubs stand-in started for the run. The HTTP API
    is served on 127.0.0.1:``port`` through the HTTP function."""
    services: LocalServices | None = None
    if os.environ.get(STORAGE) and os.environ.get(EVENTHUBS):
        settings = AzureSettings.from_env(
            {**os.environ, "REACTIVE_PARTITIONS": str(partitions)}
        )
    else:
        services = LocalServices(partitions)
        settings = services.start()
    if api_key is not None:
        settings = replace(settings, api_key=api_key)
    try:
        served = serve(app, partitions, settings, http_port=port)
        print(f"serving {app.name} on the Azure host ({partitions} partitions) at "
              f"{served.runner.url}/", flush=True)
        print(f"ingress hub: {settings.ingress_hub}; partition hub: {settings.partition_hub}",
              flush=True)
        if services is not None:
            print(f"EventHubConnection={settings.eventhubs_connection}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
        finally:
            served.stop()
    finally:
        if services is not None:
            services.stop()
    return 0

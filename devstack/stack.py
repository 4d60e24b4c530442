"""The local stack: moto server + data plane + seeded secrets + chalice local + event workers.

Used by ``python -m devstack`` (``make run``), and by tests and notebooks that want the same stack
in-process: ``with LocalStack(moto_port=free_port(), run_app=False) as stack: ...``.
Starting it sets ``os.environ`` (AWS endpoint, BATON_* names); stopping restores it.

With a ``local_dir`` (``make run``: ``.baton/``) the running stack writes its URLs to
``stack.json`` there (removed at stop; the ``baton`` CLI reads it), and with ``persist`` it keeps
its tables and queued messages in ``state/`` between runs (devstack.state). Without, it starts
empty and leaves nothing behind, as stacks started by tests do.
"""

from __future__ import annotations

import functools
import importlib
import io
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any

from devstack import workers
from devstack.cfn import ROOT, app_env, deploy_data_plane
from devstack.chalice_local import PARENT_ENV
from devstack.moto_patches import dynamodb_items, dynamodb_writes, serialize_moto_dynamodb
from devstack.state import TABLE_OUTPUTS, State

log = logging.getLogger("devstack")
STAGE = "local"
STACK_FILE = "stack.json"
LOCAL_SWEEP_SECONDS = 5.0  # BATON_DELIVERY_SWEEP_SECONDS unless set
# The URLs examples/landing/ is written with; the stack serves its pages with its own instead.
PAGE_API, PAGE_ORIGIN = b"http://127.0.0.1:8000", b"http://127.0.0.1:8080"
SOURCES = ("typeform", "calendly", "sendgrid", "mailchimp", "hubspot", "segment")
# DEV ONLY key pair, published in this repo so that tests can sign local SendGrid payloads.
_PEM = (Path(__file__).parent / "dev-sendgrid-public.pem").read_text()
DEV_SENDGRID_PUBLIC_KEY = _PEM[_PEM.index("-----BEGIN") :]

# SSM parameter under /baton/local/, the env var that sets it, its development default.
# No default: seeded only when the variable is set (Slack then posts for real).
SECRETS: list[tuple[str, str, str | None]] = [
    ("admin-token", "BATON_ADMIN_TOKEN", "dev-admin-token"),
    ("ingest-token", "BATON_INGEST_TOKEN", "dev-ingest-token"),
    ("slack/signing-secret", "BATON_SLACK_SIGNING_SECRET", "dev-slack-signing-secret"),
    ("lead-page/signing-key", "BATON_LEAD_PAGE_KEY", "dev-lead-page-key"),
    ("slack/bot-token", "SLACK_BOT_TOKEN", None),
    ("slack/webhook-url", "SLACK_WEBHOOK_URL", None),
    *[
        (f"sources/{name}/secret", f"BATON_{name.upper()}_SECRET",
         DEV_SENDGRID_PUBLIC_KEY if name == "sendgrid" else f"dev-{name}-secret")
        for name in SOURCES
    ],
]  # fmt: skip


def free_port() -> int:
    """A TCP port free right now on 127.0.0.1 (tests run stacks side by side)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _require_free(port: int, env_var: str) -> None:
    # moto's server thread dies silently on a taken port, and its start() then waits forever.
    with socket.socket() as s:
        if s.connect_ex(("127.0.0.1", port)) == 0:
            raise RuntimeError(f"port {port} is in use: set {env_var} to another port")


def seed_secrets(ssm: Any, prefix: str, environ: dict[str, str]) -> list[str]:
    seeded = []
    for name, env_var, default in SECRETS:
        if value := environ.get(env_var) or default:
            ssm.put_parameter(Name=prefix + name, Value=value, Type="SecureString", Overwrite=True)
            seeded.append(prefix + name)
    return seeded


def allow_landing_origin(environ: Any, landing_port: int) -> None:
    """Let the example landing page post forms: its origin joins both allow-lists (kept, not replaced)."""
    origins = [f"http://{host}:{landing_port}" for host in ("127.0.0.1", "localhost")]
    for var, values in (
        ("BATON_CORS_ORIGINS", origins),
        ("BATON_REDIRECT_ALLOWLIST", [o + "/" for o in origins]),
    ):
        current = [v.strip() for v in environ.get(var, "").split(",") if v.strip()]
        environ[var] = ",".join(current + [v for v in values if v not in current])


class _LandingFiles(SimpleHTTPRequestHandler):
    """The landing page, its HTML pointing at this stack's API and origin (no-JS forms post there)."""

    def __init__(self, *args: Any, rewrites: list[tuple[bytes, bytes]], **kwargs: Any) -> None:
        self.rewrites = rewrites  # set first: the base class answers the request in __init__
        super().__init__(*args, **kwargs)

    def send_head(self) -> Any:
        path = Path(self.translate_path(self.path))
        if path.is_dir() and self.path.split("?", 1)[0].endswith("/"):
            path = path / "index.html"
        if path.suffix != ".html" or not path.is_file():
            return super().send_head()
        body = path.read_bytes()
        for old, new in self.rewrites:
            body = body.replace(old, new)
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")  # the ports change between runs
        self.end_headers()
        return io.BytesIO(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("landing: " + format, *args)


class LocalStack:
    def __init__(self, moto_port: int = 5000, app_port: int = 8000, landing_port: int = 8080,
                 schedule_seconds: float = 2.0, run_app: bool = True, autoreload: bool = False,
                 app_output: IO[Any] | None = None, local_dir: Path | None = None, persist: bool = False,
                 snapshot_seconds: float = 10.0) -> None:  # fmt: skip
        if persist and local_dir is None:
            raise ValueError("persist needs a local_dir to keep the state in")
        self.moto_port, self.app_port, self.landing_port = moto_port, app_port, landing_port
        self.schedule_seconds, self.run_app, self.autoreload = schedule_seconds, run_app, autoreload
        self.app_output = app_output  # where chalice local's output goes; None: this process's
        self.endpoint, self.app_url = f"http://127.0.0.1:{moto_port}", f"http://127.0.0.1:{app_port}"
        self.landing_url: str | None = None
        self.local_dir = local_dir
        self.state = State(local_dir / "state") if persist and local_dir is not None else None
        self.snapshot_seconds = snapshot_seconds
        self.restored: dict[str, int] | None = None  # items loaded per table; None: started empty
        self.ruleset_version: int | None = None
        self.ruleset_published = False  # False: a kept version was already active
        self.outputs: dict[str, str] = {}
        self.secrets: list[str] = []
        self.registry = workers.Registry()
        self._clients: dict[str, Any] = {}
        self.region = "us-east-1"
        self._state_read = False  # the state is written only once it was read (or found absent)
        self._saved_writes = -1
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._moto: Any = None
        self._app: subprocess.Popen[bytes] | None = None
        self._landing: ThreadingHTTPServer | None = None
        self._saved_env: dict[str, str] | None = None

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> LocalStack:
        try:
            self._start()
        except BaseException:  # Ctrl-C while starting too: leave nothing running
            self.stop()
            raise
        return self

    def _start(self) -> None:
        import boto3
        from moto.server import ThreadedMotoServer

        _require_free(self.moto_port, "BATON_MOTO_PORT")
        self._saved_env = dict(os.environ)
        serialize_moto_dynamodb()  # concurrent writers must not lose updates, as in real DynamoDB
        self._moto = ThreadedMotoServer(ip_address="127.0.0.1", port=self.moto_port, verbose=False)
        self._moto.start()
        self.region = region = os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or "us-east-1"
        os.environ.update(AWS_ENDPOINT_URL=self.endpoint, AWS_ACCESS_KEY_ID="testing",
                          AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION=region,
                          AWS_ACCOUNT_ID_ENDPOINT_MODE="disabled")  # fmt: skip  # streams via moto
        for var in ("AWS_SESSION_TOKEN", "AWS_PROFILE"):  # never mix real credentials in
            os.environ.pop(var, None)
        session = boto3.session.Session()
        self._clients = {name: session.client(name) for name in ("dynamodb", "sqs")}
        self.outputs = deploy_data_plane(session.client("cloudformation"), STAGE)
        os.environ.update(app_env(self.outputs, STAGE))
        # A delivery sweep here lasts seconds, not AWS's 55: the stack stops within its budget.
        os.environ.setdefault("BATON_DELIVERY_SWEEP_SECONDS", str(LOCAL_SWEEP_SECONDS))
        # Links in the alerts (lead pages) point here, on whatever port the stack serves.
        os.environ.setdefault("BATON_PUBLIC_URL", self.app_url)
        if self.state is not None:
            self.restored = self.state.load_tables(self._clients["dynamodb"], self.outputs)
            if self.restored is not None:  # kept by an older version: list its leads too (docs/migrations.md)
                from chalicelib.store.dynamodb import DynamoDBLeads

                DynamoDBLeads(self.outputs["LeadsTableName"], self.outputs["OutboxTableName"]).backfill_listing()
            self._state_read, self._saved_writes = True, dynamodb_writes()
        default_outbox = str((self.local_dir or ROOT / ".baton") / "slack-outbox.jsonl")
        outbox = Path(os.environ.setdefault("BATON_SLACK_OUTBOX_FILE", default_outbox))
        outbox.parent.mkdir(parents=True, exist_ok=True)
        self.secrets = seed_secrets(session.client("ssm"), os.environ["BATON_SSM_PREFIX"], dict(os.environ))
        allow_landing_origin(os.environ, self.landing_port)
        _reset_app_caches()
        self.ruleset_version, self.ruleset_published = ensure_active_ruleset()
        self._start_workers(session)
        self._start_landing()  # before the app: once /health answers, everything else is up
        if self.run_app:
            self._start_app()
        self._write_stack_file()

    def _start_workers(self, session: Any) -> None:
        if str(ROOT) not in sys.path:
            sys.path.insert(0, str(ROOT))
        # Imported only now: app.py may read its configuration from the variables set above.
        self.registry = reg = workers.discover(importlib.import_module("app"))
        sqs = session.client("sqs")
        queues = workers.Queues(sqs, self.outputs["DeadLetterQueueUrl"])

        # moto skips CloudFormation subscriptions: the consumer queue is subscribed here.
        consumer = sqs.create_queue(QueueName=f"baton-{STAGE}-handoff-consumer")["QueueUrl"]
        sns, subscriptions = session.client("sns"), {}
        for topic in {workers.short_name(self.outputs["HandoffTopicArn"]), *(h.source for h in reg.sns)}:
            subscriptions[topic] = sns.subscribe(
                TopicArn=sns.create_topic(Name=topic)["TopicArn"],  # idempotent: finds existing topics
                Protocol="sqs", Endpoint=_queue_arn(sqs, consumer), ReturnSubscriptionArn=True,
                Attributes={"RawMessageDelivery": "false"},  # keep the envelope and its attributes
            )["SubscriptionArn"]  # fmt: skip

        # Kept messages go back before anything receives (their queues all exist by now).
        if self.state is not None:
            queued = self.state.load_queues(sqs)
            if self.restored is not None:
                kept = ", ".join(f"{self.outputs[k]}: {self.restored[k]}" for k in TABLE_OUTPUTS)
                log.info("kept data reloaded from %s (items in %s; %d queued messages)", self.state.directory,
                         kept, queued)  # fmt: skip

        # With no handlers a worker is not started: messages wait in their queue.
        if reg.sns:
            self._spawn("sns", functools.partial(workers.sns_step, queues, consumer, reg.sns, subscriptions))
        for target in reg.sqs:
            url = sqs.create_queue(QueueName=target.source)["QueueUrl"]
            arn = _queue_arn(sqs, url)
            self._spawn(target.name, functools.partial(workers.sqs_step, queues, url, arn, target))
        streams = session.client("dynamodbstreams")
        for target in reg.streams:
            # Reloaded items were written, so their stream recorded them: read after those records
            # (taken now, before anything else writes), or a reload would relay them again.
            position = "LATEST" if self.restored is not None else "TRIM_HORIZON"
            try:
                iterators = workers.shard_iterators(streams, target.source, position)
            except Exception:  # e.g. a placeholder ARN: say so once rather than every second
                hint = "BATON_OUTBOX_STREAM_ARN has the outbox's"
                log.warning("%s: no stream %r (%s)", target.name, target.source, hint)
                continue
            self._spawn(target.name, functools.partial(workers.stream_step, streams, self._stop, target, iterators))
        for target in reg.schedules:  # one thread each, as each is its own function in AWS
            step = functools.partial(workers.schedule_step, self._stop, [target], self.schedule_seconds)
            self._spawn(f"schedule {target.name}", step)
        if self.state is not None:
            self._spawn("snapshots", self._snapshot_step)

    def _snapshot_step(self) -> None:
        if not self._stop.wait(self.snapshot_seconds):  # at a stop, stop() writes the last one
            self._save_tables()

    def _save_tables(self) -> None:
        writes = dynamodb_writes()
        if self.state is None or not self._state_read or writes == self._saved_writes:
            return
        names = {key: self.outputs[key] for key in TABLE_OUTPUTS}
        items = dynamodb_items(list(names.values()), self.region)
        count = self.state.save_tables({key: items[name] for key, name in names.items()})
        self._saved_writes = writes
        log.debug("snapshot: %d items in %s", count, self.state.directory)

    def _save_state(self) -> None:
        """At a stop, with nothing else running: the tables, and the messages still queued."""
        if self.state is None or not self._state_read or self._moto is None:
            return
        try:
            self._save_tables()
            queued = self.state.save_queues(self._clients["sqs"], f"baton-{STAGE}-")
            log.info("data kept in %s (%d queued messages); `make reset` empties it", self.state.directory, queued)
        except Exception:  # the stop goes on: moto and the ports must be released whatever happens
            log.exception("the data could not be kept in %s", self.state.directory)

    def _write_stack_file(self) -> None:
        if self.local_dir is None:
            return
        self.local_dir.mkdir(parents=True, exist_ok=True)
        info = {
            "pid": os.getpid(), "stage": STAGE, "api_url": self.app_url if self.run_app else None,
            "landing_url": self.landing_url, "aws_endpoint": self.endpoint,
            "region": self.region, "slack_outbox": os.environ["BATON_SLACK_OUTBOX_FILE"],
            "state_dir": str(self.state.directory) if self.state else None,
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }  # fmt: skip
        partial = self.local_dir / f".{STACK_FILE}.{os.getpid()}.partial"
        partial.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        os.replace(partial, self.local_dir / STACK_FILE)

    def _remove_stack_file(self) -> None:
        """Only ours: another stack may have started on other ports with the same directory."""
        if self.local_dir is None:
            return
        path = self.local_dir / STACK_FILE
        try:
            if json.loads(path.read_text(encoding="utf-8")).get("pid") == os.getpid():
                path.unlink()
        except (OSError, ValueError, AttributeError):
            pass

    def _spawn(self, name: str, step: Any) -> None:
        self._threads.append(workers.Worker(name, self._stop, step))
        self._threads[-1].start()

    def _start_app(self) -> None:
        _require_free(self.app_port, "BATON_APP_PORT")
        cmd = [sys.executable, "-m", "devstack.chalice_local", "local", "--host", "127.0.0.1",
               "--port", str(self.app_port), "--stage", STAGE]
        # The reloader stats the whole tree (.venv too) every second and restarts on any write,
        # the Slack outbox file included: opt in with BATON_AUTORELOAD=1.
        cmd.append("--autoreload" if self.autoreload else "--no-autoreload")
        # Own process group: Ctrl-C reaches only us, and stop() also ends the reloader's child. It
        # dies with this process all the same (devstack.chalice_local), however this one ends.
        env = {**os.environ, PARENT_ENV: str(os.getpid())}
        self._app = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=self.app_output,
                                     stderr=self.app_output, start_new_session=True)  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(self.app_url + "/health", timeout=2).close()
                return
            except urllib.error.HTTPError:
                return  # it answers: a 503 only says that a check fails, which /health shows
            except OSError:
                try:
                    code = self._app.wait(timeout=0.25)
                except subprocess.TimeoutExpired:
                    continue
                raise RuntimeError(f"chalice local exited with {code} before serving /health") from None
        raise RuntimeError(f"chalice local did not answer {self.app_url}/health within 60 s")

    def _start_landing(self) -> None:
        landing = ROOT / "examples" / "landing"
        if not landing.is_dir():
            return
        origin = f"http://127.0.0.1:{self.landing_port}".encode()
        rewrites = [(PAGE_API, self.app_url.encode()), (PAGE_ORIGIN, origin)]
        handler = functools.partial(_LandingFiles, directory=str(landing), rewrites=rewrites)
        try:
            self._landing = ThreadingHTTPServer(("127.0.0.1", self.landing_port), handler)
        except OSError as exc:  # optional: the API is what matters
            log.warning("landing page not served on port %d: %s", self.landing_port, exc)
            return
        threading.Thread(target=self._landing.serve_forever, name="landing", daemon=True).start()
        self.landing_url = f"http://127.0.0.1:{self.landing_port}/"

    def wait(self) -> int:
        """Block until chalice local exits on its own (stop() is the way it is meant to end).

        Waits in slices: the kernel may hand Ctrl-C (SIGINT) to any thread, and Python runs its
        handler only when the main thread next runs Python code, which a bare ``waitpid()`` would
        never let it do (the stack then ignored Ctrl-C, about one start in ten).
        """
        while self._app:
            try:
                return self._app.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                continue
        return 0

    def stop(self) -> None:
        self._remove_stack_file()  # first: a stopping stack is no longer one to call
        self._stop.set()
        if self._app and self._app.poll() is None:
            os.killpg(self._app.pid, signal.SIGTERM)
            try:
                self._app.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self._app.pid, signal.SIGKILL)
                self._app.wait()
        # One budget for all the workers (daemons: one busy with a slow job must not hold the exit).
        deadline = time.monotonic() + 5
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        self._save_state()
        if self._landing:
            self._landing.shutdown()
            self._landing.server_close()
        if self._moto:
            self._moto.stop()
        self._app, self._landing, self._moto, self._threads = None, None, None, []
        if self._saved_env is not None:
            os.environ.clear()
            os.environ.update(self._saved_env)
            self._saved_env = None
            _reset_app_caches()


def ensure_active_ruleset() -> tuple[int, bool]:
    """The active rule-set version, and whether it was published now.

    A new stack gets the shipped rule set, created and published through the same service the API
    uses; a stack that kept its data keeps the version that was active (published again, it would
    become a new version and re-score every lead).
    """
    from chalicelib.bootstrap import container
    from chalicelib.rules.loader import default_ruleset

    rulesets = container().rulesets
    active = rulesets.repo.active().version
    if active is not None:
        return active, False
    created = rulesets.create(default_ruleset().model_dump(mode="json", by_alias=True))
    rulesets.publish(created["version"])
    return int(created["version"]), True


def _queue_arn(sqs: Any, url: str) -> str:
    return str(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"])


def _reset_app_caches() -> None:
    # Clients and settings cached before the endpoint was set would talk to the wrong place.
    from chalicelib import aws, bootstrap, config

    aws.reset_clients()
    config.settings.cache_clear()
    bootstrap.use(None)

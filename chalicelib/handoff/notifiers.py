"""Deliver Block Kit messages to Slack, behind one small interface (:class:`SlackNotifier`).

Three implementations, chosen by :func:`notifier_from_settings` (bot > webhook > file):

- :class:`BotNotifier`: a bot token and ``chat.postMessage`` / ``chat.update``.
- :class:`WebhookNotifier`: incoming webhooks, one URL per channel (plus a default). They
  cannot edit a posted message; answers to a click go through the click's ``response_url``.
- :class:`FileNotifier`: the local stack without Slack settings. Prints a one-line summary and
  appends one JSON line per message to an outbox file.

``slack_sdk`` costs ~110 ms to import, so it is imported only when a notifier first talks to
Slack, never when this module is imported (the API Lambda imports it and never posts).

Every call retries through one :class:`~chalicelib.handoff.retry.RetryPolicy` (``retry``: 429
honouring ``Retry-After``, 5xx and connection errors with exponential backoff). When retries are
exhausted, :class:`DeliveryFailed` is raised with the HTTP status and Slack's error code in
``details``, never a URL or a token (an incoming-webhook URL is itself a secret). The caller
keeps the message (outbox / queue redelivery / dead-letter queue): nothing is dropped here.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol, TextIO

from chalicelib.errors import DeliveryFailed
from chalicelib.handoff.retry import RetryPolicy, retry_after_seconds

if TYPE_CHECKING:  # for type checkers only: importing slack_sdk is what we avoid at runtime
    from slack_sdk.web import WebClient

Block = dict[str, Any]

DEFAULT_API_URL = "https://slack.com/api/"
DEFAULT_TIMEOUT_SECONDS = 10


@dataclass(frozen=True)
class PostedMessage:
    """Where a message landed. ``ts`` is None when Slack does not say (incoming webhooks)."""

    channel: str
    ts: str | None


class SlackNotifier(Protocol):
    """What the handoff consumer, reminders and the interaction route need from Slack."""

    #: False when posted messages cannot be edited later (incoming webhooks).
    can_update: bool

    def post(self, channel: str, text: str, blocks: list[Block]) -> PostedMessage: ...

    def update(self, channel: str, ts: str, text: str, blocks: list[Block]) -> PostedMessage: ...

    def respond(
        self, response_url: str, text: str, blocks: list[Block], replace_original: bool = True
    ) -> None: ...


# --- helpers ---------------------------------------------------------------------------------


def _sdk_logger() -> logging.Logger:
    # slack_sdk logs full request URLs at DEBUG and INFO, and an incoming-webhook URL (or a
    # response_url) is a credential: keep its logger at WARNING whatever the root level is.
    logger = logging.getLogger("baton.slack.sdk")
    logger.setLevel(logging.WARNING)
    return logger


def _check_url(url: str, what: str) -> str:
    # slack_sdk logs "Invalid URL detected: <url>" at ERROR for a non-http URL: refuse it first.
    if not isinstance(url, str) or not url.lower().startswith(("https://", "http://")):
        raise DeliveryFailed(f"{what} is not an http(s) URL", details={"retryable": False})
    return url


def _slack_error_code(body: Any) -> str | None:
    """Slack's short error code (``channel_not_found``, ``invalid_payload``...), if there is one.

    Anything else (an HTML error page, the SDK's quote of a non-JSON body) is not echoed.
    """
    candidate = body.get("error") if isinstance(body, Mapping) else body
    if not isinstance(candidate, str):
        return None
    text = candidate.strip()
    if text and len(text) <= 100 and all(c.isascii() and (c.isalnum() or c in "_-.") for c in text):
        return text
    return None


def _failure(
    what: str, status: int | None, error: str | None, headers: Mapping[str, Any] | None
) -> DeliveryFailed:
    details: dict[str, Any] = {
        "status": status,
        "retryable": status is None or status == 429 or status >= 500,
    }
    if error:
        details["error"] = error
    if status == 429 and headers is not None:
        details["retry_after"] = retry_after_seconds(headers)
    suffix = f"HTTP {status}" if status is not None else "no response"
    if error:
        suffix += f" ({error})"
    return DeliveryFailed(f"Slack {what} failed: {suffix}", details=details)


def _transport_failure(what: str, exc: Exception) -> DeliveryFailed:
    # Only the class name: messages of some errors embed the URL.
    return DeliveryFailed(
        f"Slack {what} failed: {type(exc).__name__}",
        details={"status": None, "retryable": True, "error": type(exc).__name__},
    )


def _send_webhook(url: str, body: dict[str, Any], retry: RetryPolicy, timeout: int, what: str) -> None:
    from slack_sdk.webhook import WebhookClient

    client = WebhookClient(url, timeout=timeout, retry_handlers=retry.handlers(), logger=_sdk_logger())
    try:
        response = client.send_dict(body)
    except Exception as exc:  # every transport error becomes DeliveryFailed
        raise _transport_failure(what, exc) from None
    if response.status_code != 200:
        raise _failure(what, response.status_code, _slack_error_code(response.body), response.headers)


def _respond(
    response_url: str,
    text: str,
    blocks: list[Block],
    replace_original: bool,
    retry: RetryPolicy,
    timeout: int,
) -> None:
    _check_url(response_url, "response_url")
    body = {"text": text, "blocks": blocks, "replace_original": replace_original}
    _send_webhook(response_url, body, retry, timeout, "response_url reply")


# --- notifiers -------------------------------------------------------------------------------


class BotNotifier:
    """A Slack app's bot token: posts, edits, and answers clicks. ``base_url`` for tests."""

    can_update = True

    def __init__(
        self,
        token: str,
        *,
        base_url: str = DEFAULT_API_URL,
        retry: RetryPolicy | None = None,
        timeout: int = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        if not token:
            raise ValueError("a bot token is required")
        self._token = token
        self._base_url = base_url
        self.retry = retry or RetryPolicy()
        self._timeout = timeout
        self._web: WebClient | None = None

    def __repr__(self) -> str:  # never the token
        return f"BotNotifier(base_url={self._base_url!r})"

    def _client(self) -> WebClient:
        if self._web is None:
            from slack_sdk.web import WebClient

            self._web = WebClient(
                token=self._token,
                base_url=self._base_url,
                timeout=self._timeout,
                retry_handlers=self.retry.handlers(),
                logger=_sdk_logger(),
            )
        return self._web

    def _call(self, what: str, call: Callable[[WebClient], Any]) -> Any:
        from slack_sdk.errors import SlackApiError

        try:
            return call(self._client())
        except SlackApiError as exc:
            response = exc.response
            raise _failure(
                what, int(response.status_code), _slack_error_code(response.data), response.headers
            ) from None
        except Exception as exc:  # every transport error becomes DeliveryFailed
            raise _transport_failure(what, exc) from None

    def post(self, channel: str, text: str, blocks: list[Block]) -> PostedMessage:
        response = self._call(
            "chat.postMessage",
            lambda web: web.chat_postMessage(
                channel=channel,
                text=text,
                blocks=blocks,
                unfurl_links=False,
                unfurl_media=False,
                link_names=False,  # never turn a lead's "@channel" in the fallback into a mention
            ),
        )
        return PostedMessage(channel=str(response.get("channel") or channel), ts=response.get("ts"))

    def update(self, channel: str, ts: str, text: str, blocks: list[Block]) -> PostedMessage:
        response = self._call(
            "chat.update",
            lambda web: web.chat_update(channel=channel, ts=ts, text=text, blocks=blocks, link_names=False),
        )
        return PostedMessage(channel=str(response.get("channel") or channel), ts=response.get("ts") or ts)

    def respond(
        self, response_url: str, text: str, blocks: list[Block], replace_original: bool = True
    ) -> None:
        _respond(response_url, text, blocks, replace_original, self.retry, self._timeout)


class WebhookNotifier:
    """Incoming webhooks: each URL posts to one channel, so channels map to URLs.

    ``webhook_urls`` is a mapping ``channel -> url`` (``"#sales"`` and ``"sales"`` both match;
    a ``"default"`` key is the fallback) or a single URL used for every channel; ``default``
    is one more fallback URL.
    """

    can_update = False

    def __init__(
        self,
        webhook_urls: Mapping[str, str] | str,
        default: str | None = None,
        *,
        retry: RetryPolicy | None = None,
        timeout: int = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        urls = {"default": webhook_urls} if isinstance(webhook_urls, str) else dict(webhook_urls)
        if default:
            urls.setdefault("default", default)
        urls = {key: value for key, value in urls.items() if value}
        if not urls:
            raise ValueError("at least one incoming webhook URL is required")
        for value in urls.values():
            _check_url(value, "incoming webhook URL")
        self._urls = urls
        self.retry = retry or RetryPolicy()
        self._timeout = timeout

    def __repr__(self) -> str:  # never the URLs: they are credentials
        return f"WebhookNotifier(channels={sorted(self._urls)!r})"

    def _url_for(self, channel: str) -> str:
        bare = channel.lstrip("#")
        for key in (channel, bare, f"#{bare}", "default"):
            if key in self._urls:
                return self._urls[key]
        raise DeliveryFailed(
            "no incoming webhook configured for this channel",
            details={"channel": channel, "retryable": False},
        )

    def post(self, channel: str, text: str, blocks: list[Block]) -> PostedMessage:
        body = {"text": text, "blocks": blocks, "unfurl_links": False, "unfurl_media": False}
        _send_webhook(self._url_for(channel), body, self.retry, self._timeout, "incoming webhook")
        return PostedMessage(channel=channel, ts=None)

    def update(self, channel: str, ts: str, text: str, blocks: list[Block]) -> PostedMessage:
        raise DeliveryFailed(
            "incoming webhooks cannot edit a posted message; answer through the click's response_url",
            details={"channel": channel, "retryable": False},
        )

    def respond(
        self, response_url: str, text: str, blocks: list[Block], replace_original: bool = True
    ) -> None:
        _respond(response_url, text, blocks, replace_original, self.retry, self._timeout)


class FileNotifier:
    """The local stack's Slack: a readable line on stdout and a JSON line in the outbox file.

    Each line is ``{"kind": "post"|"update"|"respond", "channel", "ts", "text", "blocks"}``
    (``respond`` adds ``replace_original``; the response_url itself is not written).
    """

    can_update = True

    def __init__(
        self,
        path: str | Path,
        *,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not str(path):
            raise ValueError("an outbox file path is required")
        self.path = Path(path)
        self._stream = stream
        self._clock = clock
        self._lock = threading.Lock()
        self._last_ts = 0.0

    def __repr__(self) -> str:
        return f"FileNotifier(path={str(self.path)!r})"

    def _next_ts(self) -> str:
        # Slack ts are unique per channel; keep them unique and increasing here too.
        ts = max(self._clock(), self._last_ts + 0.000001)
        self._last_ts = ts
        return f"{ts:.6f}"

    def _write(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with _locked(self.path), self.path.open("a", encoding="utf-8") as out:
                out.write(line + "\n")
        except OSError as exc:
            raise DeliveryFailed(
                "local Slack outbox file is not writable",
                details={"error": type(exc).__name__, "retryable": True},
            ) from None
        # The terminal (and whatever collects its output) gets where it went, never the text:
        # alerts carry names, companies and addresses. The outbox file is the message.
        where = record["channel"] or "response_url"
        stream = self._stream if self._stream is not None else sys.stdout
        print(f"[slack {record['kind']}] {where} ts={record['ts']}: written to {self.path}", file=stream, flush=True)

    def post(self, channel: str, text: str, blocks: list[Block]) -> PostedMessage:
        with self._lock:
            ts = self._next_ts()
            self._write({"kind": "post", "channel": channel, "ts": ts, "text": text, "blocks": blocks})
        return PostedMessage(channel=channel, ts=ts)

    def update(self, channel: str, ts: str, text: str, blocks: list[Block]) -> PostedMessage:
        with self._lock:
            self._write({"kind": "update", "channel": channel, "ts": ts, "text": text, "blocks": blocks})
        return PostedMessage(channel=channel, ts=ts)

    def respond(
        self, response_url: str, text: str, blocks: list[Block], replace_original: bool = True
    ) -> None:
        with self._lock:
            self._write(
                {
                    "kind": "respond",
                    "channel": None,
                    "ts": None,
                    "text": text,
                    "blocks": blocks,
                    "replace_original": replace_original,
                }
            )


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """The outbox file's writers (the local stack's processes) and its erasure take turns."""
    with open(f"{path}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def forget_in_outbox_file(path: str | Path, lead_id: str) -> int:
    """Erasure on the local stack: drop the outbox file's messages that name the lead (its id is in
    their buttons and digest lines); return how many went. Real Slack keeps what it was sent."""
    file = Path(path)
    if not file.exists():
        return 0
    with _locked(file):
        lines = file.read_text(encoding="utf-8").splitlines(keepends=True)
        kept = [line for line in lines if lead_id not in line]
        if len(kept) < len(lines):
            temporary = file.with_name(file.name + ".tmp")
            temporary.write_text("".join(kept), encoding="utf-8")
            os.replace(temporary, file)
    return len(lines) - len(kept)


def notifier_from_settings(
    webhook_url: str | None,
    webhook_urls: Mapping[str, str] | None,
    bot_token: str | None,
    outbox_file: str,
    *,
    retry: RetryPolicy | None = None,
    api_base_url: str = DEFAULT_API_URL,
) -> SlackNotifier:
    """Bot token if set, else incoming webhooks if set, else the local outbox file.

    With none of the three, :class:`DeliveryFailed` (nothing would be delivered anywhere).
    """
    if bot_token:
        return BotNotifier(bot_token, base_url=api_base_url, retry=retry)
    urls = {key: value for key, value in (webhook_urls or {}).items() if value}
    if urls or webhook_url:
        return WebhookNotifier(urls, default=webhook_url or None, retry=retry)
    if outbox_file:
        return FileNotifier(outbox_file)
    raise DeliveryFailed(
        "no Slack settings (bot token or webhook URL) and no local outbox file", details={"retryable": False}
    )

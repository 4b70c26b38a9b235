"""Client for any OpenAI-compatible server (vLLM, SGLang, llama.cpp, transformers serve)."""

from __future__ import annotations

import base64
import json
import os
import queue
import re
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from agent.backends.base import (
    BackendError,
    Cancelled,
    ChatMessage,
    Completion,
    Conversation,
    Delta,
    ImagePart,
    OnDelta,
    ToolCall,
)
from agent.backends.bounded_http import (
    STREAM_BYTES,
    STREAM_LINES,
    Line,
    ReplyLimits,
    bounded_client,
    no_reply,
    redact_url,
    stream_too_long,
)

__all__ = ["API_KEY_ENV", "OpenAIBackend", "endpoint_warning", "redact_url"]

API_KEY_ENV = "DESKPILOT_API_KEY"
_POLL_S = 0.02


def _one_line(exc: BaseException | str, limit: int = 200) -> str:
    """Server-chosen text as one printable line: no control characters or escape sequences."""
    text = "".join(c if c.isprintable() else " " for c in str(exc))
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _causes(exc: BaseException) -> list[BaseException]:
    """The exception and what it was raised from, outermost first."""
    chain: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and seen not in chain:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    return chain


def _status_detail(exc: Any) -> str:
    """The server's own error message from a 4xx/5xx body, else the HTTP reason phrase."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return _one_line(body["message"], 160)
    if isinstance(body, str) and body.strip():
        return _one_line(body, 160)
    response = getattr(exc, "response", None)
    return str(getattr(response, "reason_phrase", "") or "no details")


def _connect_reason(exc: BaseException) -> str:
    """Why a connection could not be made, in a few words."""
    innermost = _causes(exc)[-1]
    if isinstance(innermost, ConnectionRefusedError):
        return "connection refused"
    if isinstance(innermost, socket.gaierror):
        return "host name not found"
    return _one_line(re.sub(r"^\[Errno -?\d+\]\s*", "", str(innermost)) or "no connection", 80)


def _refuses_tools(exc: BaseException | None) -> bool:
    """Whether a status error says the server takes no `tools` parameter."""
    import openai

    if not isinstance(exc, openai.APIStatusError):
        return False
    text = f"{exc} {_status_detail(exc)}".lower()
    if exc.status_code == 400:  # vLLM without --enable-auto-tool-choice, and others
        return "tool" in text
    # llama.cpp's server without --jinja: HTTP 500 "tools param requires --jinja flag".
    return exc.status_code == 500 and "requires --jinja" in text


def endpoint_warning(url: str) -> str | None:
    """A warning when screenshots would leave the machine unencrypted (not loopback, not HTTPS)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme == "https" or host in ("localhost", "::1") or host.startswith("127."):
        return None
    return (
        f"{host or url} is neither loopback nor HTTPS: screenshots of your desktop travel "
        "unencrypted; use https:// or a local server"
    )


def refuses_tool_images(message: str) -> bool:
    """Whether an HTTP 400's text is about a tool message or its image content.

    What servers say varies ("tool message content must be a string", "images are only
    supported in user messages", "Unexpected content type for role tool"); a refusal of the
    `tools` parameter itself names neither images, content nor a role.
    """
    text = message.lower()
    about_tool = "tool" in text or "role" in text
    about_images = any(word in text for word in ("image", "content", "multimodal"))
    return about_tool and about_images


class OpenAIBackend:
    """Streams chat completions; images go as PNG data URLs, tools as the `tools` parameter."""

    def __init__(
        self,
        base_url: str,
        model: str | None = None,
        *,
        api_key_env: str = API_KEY_ENV,
        timeout_s: float = 120.0,
        connect_timeout_s: float = 5.0,
        thinking: bool | None = None,
        max_tokens: int = 4096,
        sampling: Mapping[str, float] | None = None,
        max_stream_s: float | None = None,
        max_stream_chars: int | None = None,
        max_retries: int = 0,
        limits: ReplyLimits | None = None,
    ) -> None:
        import openai

        self.base_url = base_url.rstrip("/")
        self.api_key_env = api_key_env
        self.thinking = thinking
        self.max_tokens = max_tokens
        self.sampling = dict(sampling or {})
        # Servers without a tool parser (or llama.cpp without --jinja) refuse `tools`; we then
        # declare the tools in the system prompt, as the chat template would, and parse text.
        self.tools_in_prompt = False
        # Qwen 3.5's own multi-step shape until this server refuses images in tool messages;
        # then deskpilot's earlier shape for the rest of this backend's life.
        self.conversation: Conversation = "native"
        self._timeout_s = timeout_s
        self._connect_timeout_s = connect_timeout_s
        # A server that keeps streaming (or keeps the stream open) never trips the read timeout:
        # these bound one answer whatever the server does. max_tokens is the server's own cap.
        self.max_stream_s = max_stream_s if max_stream_s else max(600.0, 15 * timeout_s)
        self.max_stream_chars = max_stream_chars or max(32_768, 16 * max_tokens)
        # Wall-clock deadlines and byte caps on every reply, enforced under the SDK (its own
        # timeouts are per read); a token is ~250 bytes and 2 lines of event stream.
        self.limits = limits or ReplyLimits(
            header_s=timeout_s,
            body_s=timeout_s,
            stream_s=self.max_stream_s,
            stream_bytes=max(STREAM_BYTES, 1024 * max_tokens),
            stream_lines=max(STREAM_LINES, 16 * max_tokens),
        )
        self._client = openai.OpenAI(
            base_url=self.base_url,
            api_key=os.environ.get(api_key_env) or "EMPTY",
            timeout=openai.Timeout(timeout_s, connect=connect_timeout_s),
            # The SDK would silently resend on 5xx/429/connection errors with its own backoff;
            # the agent loop retries retryable BackendErrors itself, where the user can see it.
            max_retries=max_retries,
            http_client=bounded_client(self.base_url, self.limits),
        )
        self._urls: dict[int, tuple[bytes, str]] = {}
        self.model = model or self._first_model()

    def list_models(self) -> list[str]:
        """The model ids the server serves (GET /models)."""
        try:
            return [m.id for m in self._client.models.list().data]
        except Exception as exc:  # every failure becomes one user-facing line
            raise self.as_backend_error(exc) from exc

    def as_backend_error(self, exc: BaseException) -> BackendError:
        """A request failure as a one-line BackendError saying what happened and what to do."""
        import openai

        url = redact_url(self.base_url)
        for cause in _causes(exc):
            if isinstance(cause, BackendError):  # a limit the HTTP client enforced
                return cause
        if isinstance(exc, openai.APIStatusError):
            return self._status_error(exc)
        names = {type(e).__name__ for e in _causes(exc)}
        if isinstance(exc, openai.APIConnectionError):
            if "ConnectTimeout" in names:
                return BackendError(
                    f"cannot reach {url} (no answer to connect within "
                    f"{self._connect_timeout_s:g} s): is the address right and the server up?",
                    retryable=True,
                )
            if "ConnectError" in names:
                return BackendError(
                    f"cannot reach {url} ({_connect_reason(exc)}): is the server running? "
                    "(--endpoint takes the /v1 base URL; see docs/backends.md)",
                    retryable=True,
                )
            if isinstance(exc, openai.APITimeoutError):
                return no_reply(url, self._timeout_s)
            detail = next(
                (_one_line(e, 100) for e in _causes(exc)[1:] if str(e).strip()), "connection lost"
            )
            return BackendError(
                f"the connection to {url} broke before the answer was complete ({detail}): "
                "retry, or check the server's log",
                retryable=True,
            )
        if isinstance(exc, json.JSONDecodeError):
            # An SSE `data:` line (or the model list) that does not parse.
            return BackendError(
                f"{url} sent a reply that is not valid JSON ({_one_line(exc, 100)}): retry, "
                "or check the server's log",
                retryable=True,
            )
        if isinstance(exc, openai.APIResponseValidationError):
            return BackendError(
                f"{url} sent a reply of an unexpected shape ({_one_line(exc, 100)}): retry, "
                "or check that --endpoint is an OpenAI-compatible /v1 base URL",
                retryable=True,
            )
        if isinstance(exc, openai.APIError):
            # An {"error": ...} object inside the stream (vLLM sends one when generation fails).
            return BackendError(
                f"{url} reported an error mid-answer: {_one_line(exc, 160)}; retry, or check "
                "the server's log",
                retryable=True,
            )
        return BackendError(
            f"{url} sent a reply this client cannot read ({type(exc).__name__}: "
            f"{_one_line(exc, 100)}): retry, or check the server's log",
            retryable=True,
        )

    def _status_error(self, exc: Any) -> BackendError:
        url = redact_url(self.base_url)
        code = int(exc.status_code)
        detail = _status_detail(exc)
        if code in (401, 403):
            return BackendError(f"{url} refused the API key: set {self.api_key_env} (HTTP {code})")
        if code == 404:
            return BackendError(
                f"{url} answered HTTP 404 ({detail}): check the model name and that --endpoint "
                "is the server's /v1 base URL"
            )
        if code == 429:
            return BackendError(
                f"{url} is rate-limiting requests (HTTP 429: {detail}): wait, then retry",
                retryable=True,
            )
        if code >= 500 or code in (408, 409, 425):
            return BackendError(
                f"{url} answered HTTP {code} ({detail}): retry, or check the server's log",
                retryable=True,
            )
        return BackendError(
            f"the server rejected the request (HTTP {code}: {detail}): check the model name "
            "and the server's options"
        )

    def _first_model(self) -> str:
        models = self.list_models()
        if not models:
            raise BackendError(f"{redact_url(self.base_url)} serves no models; pass --model")
        return models[0]

    def describe(self) -> dict[str, object]:
        """Backend facts for the recording; the key is never included."""
        return {
            "kind": "openai",
            "endpoint": redact_url(self.base_url),
            "model": self.model,
            "api_key_env": self.api_key_env,
            "api_key_set": bool(os.environ.get(self.api_key_env)),
            "thinking": self.thinking,
            "tools_in_prompt": self.tools_in_prompt,
            "conversation": self.shape(),
        }

    def shape(self) -> Conversation:
        """The shape requests go in now (tools declared in the prompt: no server template)."""
        return "legacy" if self.tools_in_prompt else self.conversation

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()

    def _image_url(self, image: ImagePart) -> str:
        key = id(image.png)
        hit = self._urls.get(key)
        if hit is not None and hit[0] is image.png:
            return hit[1]
        url = "data:image/png;base64," + base64.b64encode(image.png).decode("ascii")
        self._urls[key] = (image.png, url)
        return url

    def to_openai(
        self, messages: Sequence[ChatMessage], tools: Sequence[Mapping[str, object]]
    ) -> list[dict[str, Any]]:
        """Our messages in OpenAI's wire format (base64 encoded once per screenshot)."""
        from agent.prompt import legacy_messages
        from agent.protocol import tools_system_text

        if self.shape() == "legacy":
            messages = legacy_messages(messages)
        used: set[int] = set()
        out: list[dict[str, Any]] = []
        for i, msg in enumerate(messages):
            parts = list(msg.content)
            if i == 0 and msg.role == "system" and self.tools_in_prompt and tools:
                # The chat template puts the tools block first, then the system text.
                parts = [tools_system_text(tools) + "\n\n" + msg.text()]
            entry: dict[str, Any] = {"role": msg.role}
            if all(isinstance(p, str) for p in parts):
                entry["content"] = "".join(str(p) for p in parts)
            else:
                content: list[dict[str, Any]] = []
                for p in parts:
                    if isinstance(p, ImagePart):
                        used.add(id(p.png))
                        url = self._image_url(p)
                        content.append({"type": "image_url", "image_url": {"url": url}})
                    elif p:
                        content.append({"type": "text", "text": p})
                entry["content"] = content
            if msg.tool_calls:
                entry["tool_calls"] = [
                    {
                        "id": c.id,
                        "type": "function",
                        "function": {"name": c.name, "arguments": c.arguments},
                    }
                    for c in msg.tool_calls
                ]
            if msg.tool_call_id is not None:
                entry["tool_call_id"] = msg.tool_call_id
            out.append(entry)
        for key in list(self._urls):
            if key not in used:
                del self._urls[key]
        return out

    def request_body(
        self, messages: Sequence[ChatMessage], tools: Sequence[Mapping[str, object]]
    ) -> dict[str, Any]:
        """The keyword arguments of one chat.completions.create call."""
        body: dict[str, Any] = {
            "model": self.model,
            "messages": self.to_openai(messages, tools),
            "max_tokens": self.max_tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
            **self.sampling,
        }
        if tools and not self.tools_in_prompt:
            body["tools"] = list(tools)
        if self.thinking is not None:
            body["extra_body"] = {"chat_template_kwargs": {"enable_thinking": self.thinking}}
        return body

    def complete(
        self,
        messages: Sequence[ChatMessage],
        tools: Sequence[dict[str, object]],
        *,
        on_delta: OnDelta | None = None,
        cancel: threading.Event | None = None,
    ) -> Completion:
        """One streamed request; falls back once each to deskpilot's earlier conversation shape
        (a server refusing images in tool messages) and to tools in the prompt (refusing tools)."""
        import openai

        from agent.prompt import has_tool_images

        try:
            completion = self._stream(self.request_body(messages, tools), on_delta, cancel)
            completion.conversation = self.shape()
            return completion
        except BackendError as exc:
            refused = exc.__cause__
            if (
                isinstance(refused, openai.BadRequestError)
                and self.shape() == "native"
                and has_tool_images(messages)
                and refuses_tool_images(str(refused))
            ):
                self.conversation = "legacy"
                return self.complete(messages, tools, on_delta=on_delta, cancel=cancel)
            if tools and not self.tools_in_prompt and _refuses_tools(refused):
                # For the rest of this backend's life: the server will not change its mind.
                self.tools_in_prompt = True
                return self.complete(messages, tools, on_delta=on_delta, cancel=cancel)
            raise

    def _stream(
        self, body: dict[str, Any], on_delta: OnDelta | None, cancel: threading.Event | None
    ) -> Completion:
        """Read the stream on a helper thread, so a stop or a deadline is honoured at once.

        The reader thread hands each delta to this thread through a queue: on_delta runs here,
        on the caller's thread, as Backend promises.
        """
        url = redact_url(self.base_url)
        start = time.monotonic()
        result = Completion(content="", tools_in_prompt=self.tools_in_prompt)
        calls: dict[int, dict[str, str]] = {}
        content: list[str] = []
        reasoning: list[str] = []
        failure: list[BaseException] = []
        done = threading.Event()
        handoff: queue.Queue[Delta | None] = queue.Queue()  # None: the reader has finished
        stop = threading.Event()
        stream_box: list[Any] = []
        line = Line()
        # [time the response headers came (None before), time of the last text, chars, events]
        progress: list[Any] = [None, start, 0, 0]
        content_type: list[str] = [""]

        def grow(text: str) -> None:
            now = time.monotonic()
            if result.first_token_s is None:
                result.first_token_s = now - start
            progress[1] = now
            progress[2] += len(text)
            if progress[2] > self.max_stream_chars:
                raise BackendError(
                    f"the model streamed more than {self.max_stream_chars} characters without "
                    "finishing; stopped reading (retry, or lower max tokens)",
                    retryable=True,
                )

        def emit(kind: str, text: str) -> None:
            grow(text)
            (reasoning if kind == "reasoning" else content).append(text)
            handoff.put(Delta("reasoning" if kind == "reasoning" else "content", text))

        def reader() -> None:
            with line.watch():
                read()

        def read() -> None:
            try:
                stream = self._client.chat.completions.create(**body)
                stream_box.append(stream)
                if stop.is_set():  # the caller gave up while the headers were on their way
                    stream.close()
                    return
                content_type[0] = str(stream.response.headers.get("content-type", ""))
                progress[1] = progress[0] = time.monotonic()
                for chunk in stream:
                    if stop.is_set() or (cancel is not None and cancel.is_set()):
                        break
                    progress[3] += 1
                    if getattr(chunk, "usage", None):
                        result.prompt_tokens = chunk.usage.prompt_tokens
                        result.completion_tokens = chunk.usage.completion_tokens
                    for choice in chunk.choices or []:
                        delta = choice.delta
                        if choice.finish_reason:
                            result.finish_reason = choice.finish_reason
                        if delta is None:
                            continue
                        extra = delta.model_extra or {}
                        thought = extra.get("reasoning_content") or extra.get("reasoning")
                        if isinstance(thought, str) and thought:
                            emit("reasoning", thought)
                        if delta.content:
                            emit("content", delta.content)
                        for tc in delta.tool_calls or []:
                            slot = calls.setdefault(tc.index, {"id": "", "name": "", "args": ""})
                            if tc.id:
                                slot["id"] = tc.id
                            if tc.function is not None:
                                name = tc.function.name or ""
                                args = tc.function.arguments or ""
                                grow(name + args)
                                slot["name"] += name
                                slot["args"] += args
            except BaseException as exc:  # handed to the caller's thread
                failure.append(exc)
            finally:
                done.set()
                handoff.put(None)

        def hang_up() -> None:
            stop.set()
            line.hang_up()  # before the headers too: the reader thread ends now, not later
            if stream_box:
                try:
                    stream_box[0].close()
                except Exception:  # closing a half-read stream may raise; it is closed anyway
                    pass

        def give_up(error: BackendError) -> BackendError:
            hang_up()
            return error

        thread = threading.Thread(target=reader, name="openai-stream", daemon=True)
        thread.start()
        while True:
            now = time.monotonic()
            if cancel is not None and cancel.is_set():
                raise give_up(Cancelled("generation stopped"))
            # Deadlines bind the reader: once it is done, a slow on_delta is not a silent server.
            reading = not done.is_set()
            if reading and now - start > self.max_stream_s:
                raise give_up(stream_too_long(self.max_stream_s))
            if reading and progress[0] is not None and now - progress[1] > self._timeout_s:
                # Keep-alive comments or empty chunks reset the read timeout but carry nothing.
                raise give_up(
                    BackendError(
                        f"{url} sent no text for {self._timeout_s:g} s (the stream stayed "
                        "open); stopped reading: retry, or check the server",
                        retryable=True,
                    )
                )
            try:
                delta = handoff.get(timeout=_POLL_S)
            except queue.Empty:
                continue
            if delta is None:
                break  # the reader finished and every delta it put was delivered
            if on_delta is not None:
                try:
                    on_delta(delta)
                except BaseException:  # the caller's own failure, handed back unchanged
                    hang_up()
                    raise
        if cancel is not None and cancel.is_set():
            raise Cancelled("generation stopped")
        if failure:
            raise self.as_backend_error(failure[0]) from failure[0]
        if result.finish_reason is None:
            if progress[3] == 0:
                raise BackendError(
                    f"{url} answered with {content_type[0] or 'no content type'} instead of an "
                    "event stream: check that --endpoint is the server's /v1 base URL",
                    retryable=True,
                )
            raise BackendError(
                f"{url} ended the stream before the answer was complete (no finish reason): "
                "retry, or check the server's log",
                retryable=True,
            )
        result.content = "".join(content)
        result.reasoning = "".join(reasoning)
        result.tool_calls = [
            ToolCall(c["name"], c["args"], c["id"] or None) for _, c in sorted(calls.items())
        ]
        result.total_s = time.monotonic() - start
        return result

"""Client for any OpenAI-compatible server (vLLM, SGLang, llama.cpp, transformers serve)."""

from __future__ import annotations

import base64
import os
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from agent.backends.base import (
    BackendError,
    Cancelled,
    ChatMessage,
    Completion,
    Delta,
    ImagePart,
    OnDelta,
    ToolCall,
)

API_KEY_ENV = "DESKPILOT_API_KEY"


def redact_url(url: str) -> str:
    """The URL without user, password or query string (they may hold secrets)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 200 else text[:197] + "..."


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
        self._timeout_s = timeout_s
        self._client = openai.OpenAI(
            base_url=self.base_url,
            api_key=os.environ.get(api_key_env) or "EMPTY",
            timeout=openai.Timeout(timeout_s, connect=connect_timeout_s),
            max_retries=1,
        )
        self._urls: dict[int, tuple[bytes, str]] = {}
        self.model = model or self._first_model()

    def list_models(self) -> list[str]:
        """The model ids the server serves (GET /models)."""
        import openai

        try:
            return [m.id for m in self._client.models.list().data]
        except openai.AuthenticationError as exc:
            raise BackendError(
                f"{redact_url(self.base_url)} refused the API key: set {self.api_key_env}"
            ) from exc
        except openai.APIConnectionError as exc:
            raise BackendError(
                f"cannot reach {redact_url(self.base_url)}: is the server running? "
                "(see docs/backends.md; --endpoint takes the /v1 base URL)"
            ) from exc
        except openai.APIError as exc:
            raise BackendError(
                f"{redact_url(self.base_url)} failed to list models: {_one_line(exc)}"
            ) from exc

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
        }

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
        from agent.protocol import tools_system_text

        used: set[int] = set()
        out: list[dict[str, Any]] = []
        for i, msg in enumerate(messages):
            parts = list(msg.content)
            if i == 0 and msg.role == "system" and self.tools_in_prompt and tools:
                # The chat template puts the tools block first, then the system text.
                parts = [tools_system_text(tools) + "\n\n" + msg.text()]
            if all(isinstance(p, str) for p in parts):
                out.append({"role": msg.role, "content": "".join(str(p) for p in parts)})
                continue
            content: list[dict[str, Any]] = []
            for p in parts:
                if isinstance(p, ImagePart):
                    used.add(id(p.png))
                    content.append({"type": "image_url", "image_url": {"url": self._image_url(p)}})
                elif p:
                    content.append({"type": "text", "text": p})
            out.append({"role": msg.role, "content": content})
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
        """One streamed request; falls back to tools-in-prompt once if the server refuses tools."""
        import openai

        try:
            return self._stream(self.request_body(messages, tools), on_delta, cancel)
        except openai.BadRequestError as exc:
            if tools and not self.tools_in_prompt and "tool" in str(exc).lower():
                self.tools_in_prompt = True
                return self.complete(messages, tools, on_delta=on_delta, cancel=cancel)
            raise BackendError(f"the server rejected the request: {_one_line(exc)}") from exc
        except openai.AuthenticationError as exc:
            raise BackendError(f"the server refused the API key: set {self.api_key_env}") from exc
        except openai.APITimeoutError as exc:
            raise BackendError(
                f"{redact_url(self.base_url)} did not answer within {self._timeout_s:.0f} s"
            ) from exc
        except openai.APIConnectionError as exc:
            raise BackendError(
                f"lost the connection to {redact_url(self.base_url)}: {_one_line(exc)}"
            ) from exc
        except openai.APIStatusError as exc:
            raise BackendError(
                f"{redact_url(self.base_url)} answered HTTP {exc.status_code}: {_one_line(exc)}"
            ) from exc

    def _stream(
        self, body: dict[str, Any], on_delta: OnDelta | None, cancel: threading.Event | None
    ) -> Completion:
        """Read the stream on a helper thread so a stop is honoured even while a chunk is late."""
        start = time.monotonic()
        result = Completion(content="")
        calls: dict[int, dict[str, str]] = {}
        content: list[str] = []
        reasoning: list[str] = []
        failure: list[BaseException] = []
        done = threading.Event()
        stream_box: list[Any] = []

        def emit(kind: str, text: str) -> None:
            if result.first_token_s is None:
                result.first_token_s = time.monotonic() - start
            (reasoning if kind == "reasoning" else content).append(text)
            if on_delta is not None:
                on_delta(Delta("reasoning" if kind == "reasoning" else "content", text))

        def reader() -> None:
            try:
                stream = self._client.chat.completions.create(**body)
                stream_box.append(stream)
                for chunk in stream:
                    if cancel is not None and cancel.is_set():
                        break
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
                                slot["name"] += tc.function.name or ""
                                slot["args"] += tc.function.arguments or ""
                            if result.first_token_s is None:
                                result.first_token_s = time.monotonic() - start
            except BaseException as exc:  # handed to the caller's thread
                failure.append(exc)
            finally:
                done.set()

        thread = threading.Thread(target=reader, name="openai-stream", daemon=True)
        thread.start()
        while not done.wait(0.02):
            if cancel is not None and cancel.is_set():
                if stream_box:
                    try:
                        stream_box[0].close()
                    except Exception:  # closing a half-read stream may raise; it is closed anyway
                        pass
                raise Cancelled("generation stopped")
        if failure and not (cancel is not None and cancel.is_set()):
            raise failure[0]
        if cancel is not None and cancel.is_set():
            raise Cancelled("generation stopped")
        result.content = "".join(content)
        result.reasoning = "".join(reasoning)
        result.tool_calls = [
            ToolCall(c["name"], c["args"], c["id"] or None) for _, c in sorted(calls.items())
        ]
        result.total_s = time.monotonic() - start
        return result

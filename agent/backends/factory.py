"""Builds the backend a configuration asks for; shared by the CLI and the app."""

from __future__ import annotations

from typing import Any, Literal

from agent.backends.local import OnProgress

BackendKind = Literal["local", "openai"]


def endpoint_warning(endpoint: str | None) -> str | None:
    """A one-line warning when an endpoint is neither loopback nor HTTPS (None: no warning)."""
    if not endpoint:
        return None
    from agent.backends.openai_compat import endpoint_warning as warning

    return warning(endpoint)


def build_backend(
    kind: BackendKind,
    *,
    endpoint: str | None = None,
    model: str | None = None,
    device: str | None = None,
    thinking: bool | None = None,
    max_tokens: int | None = None,
    timeout_s: float = 120.0,
    max_stream_s: float | None = None,
    api_key_env: str = "DESKPILOT_API_KEY",
    on_progress: OnProgress | None = None,
) -> Any:
    """An OpenAIBackend or a (not yet started) LocalBackend; raises BackendError or ValueError.

    max_stream_s bounds one streamed answer (None: 15 x timeout_s, at least 600 s).
    """
    if kind == "openai":
        if not endpoint:
            raise ValueError("the OpenAI-compatible backend needs an endpoint URL (its /v1 base)")
        from agent.backends.openai_compat import OpenAIBackend

        return OpenAIBackend(
            endpoint,
            model or None,
            api_key_env=api_key_env,
            timeout_s=timeout_s,
            thinking=thinking,
            max_tokens=max_tokens or 4096,
            max_stream_s=max_stream_s,
        )
    from agent.backends.local import LocalBackend, default_thinking
    from agent.config import DEFAULT_LOCAL_MODEL

    name = model or DEFAULT_LOCAL_MODEL
    think = default_thinking(name) if thinking is None else thinking
    return LocalBackend(
        name,
        device=device or None,
        thinking=think,
        max_new_tokens=max_tokens or (4096 if think else 1024),
        on_progress=on_progress,
    )

"""A real OpenAI-compatible server on 127.0.0.1 that answers from a script (the model stand-in)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# The faults a Reply can inject, as a broken or overloaded server would show them:
#   hang        accept the request, then never send a byte (until the server closes)
#   not_json    HTTP 200 with an HTML page instead of a stream (a proxy's error page)
#   invalid_json  stream a few good chunks, then a `data:` line that is not JSON
#   endless     stream the content, then more text forever, never finishing
#   keepalive   stream the role chunk, then only SSE comments and empty deltas forever
#   drop        stream half the content, then cut the connection (no end of stream)
#   error_event stream half the content, then an {"error": ...} event (vLLM on a failed step)
FAULTS = ("hang", "not_json", "invalid_json", "endless", "keepalive", "drop", "error_event")


@dataclass
class Reply:
    """One scripted answer: content, optional reasoning_content, optional structured tool calls."""

    content: str = ""
    reasoning: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    status: int = 200
    delay_s: float = 0.0
    chunk_chars: int = 7
    fault: str | None = None
    fault_interval_s: float = 0.0  # pause between chunks of an endless/keepalive stream

    def __post_init__(self) -> None:
        if self.fault is not None and self.fault not in FAULTS:
            raise ValueError(f"unknown fault {self.fault!r}; one of {FAULTS}")


def xml_call(**params: Any) -> str:
    """A computer_use call in Qwen 3.5's XML format (non-string values as JSON)."""

    def value(v: Any) -> str:
        return v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)

    body = "".join(f"<parameter={k}>\n{value(v)}\n</parameter>\n" for k, v in params.items())
    return f"<tool_call>\n<function=computer_use>\n{body}</function>\n</tool_call>"


def json_call(**params: Any) -> str:
    """A computer_use call in the JSON-in-content form (Qwen2.5-VL / Qwen3-VL style)."""
    payload = {"name": "computer_use", "arguments": params}
    return f"<tool_call>\n{json.dumps(payload, ensure_ascii=False)}\n</tool_call>"


def structured_call(**params: Any) -> list[dict[str, Any]]:
    """A computer_use call as an OpenAI `tool_calls` list (vLLM --tool-call-parser qwen3_coder)."""
    return [
        {
            "id": f"call_{uuid.uuid4().hex[:8]}",
            "type": "function",
            "function": {
                "name": "computer_use",
                "arguments": json.dumps(params, ensure_ascii=False),
            },
        }
    ]


class _QuietServer(ThreadingHTTPServer):
    """A client that hangs up mid-stream (a stop, a timeout) is expected, not an error."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def _tool_images(body: dict[str, Any]) -> bool:
    """Whether a request has a tool message with an image in it."""
    return any(
        m.get("role") == "tool"
        and isinstance(m.get("content"), list)
        and any(p.get("type") == "image_url" for p in m["content"])
        for m in body.get("messages", [])
    )


class CountOnly(list[dict[str, Any]]):
    """A request log that counts requests without keeping them (a bench's megabytes of base64)."""

    def append(self, item: dict[str, Any]) -> None:
        """Keep an empty placeholder."""
        super().append({})


@dataclass
class ScriptedServer:
    """Serves /v1/models and streaming /v1/chat/completions; keeps every request body."""

    script: list[Reply | Callable[[dict[str, Any]], Reply]]
    model: str = "Qwen/Qwen3.5-9B"
    requests: list[dict[str, Any]] = field(default_factory=list)
    api_key: str | None = None
    reject_tools: bool = False
    # llama.cpp's llama-server without --jinja: HTTP 500 to any request carrying `tools`.
    no_jinja: bool = False
    # Refuse (HTTP 400, as some servers do) a tool-role message that carries an image.
    reject_tool_images: bool = False
    refused: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        server = self
        self._closing = threading.Event()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _auth_ok(self) -> bool:
                if server.api_key is None:
                    return True
                if self.headers.get("Authorization") == f"Bearer {server.api_key}":
                    return True
                self._json(401, {"error": {"message": "invalid api key", "type": "auth"}})
                return False

            def _json(self, status: int, obj: Any) -> None:
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802
                if not self._auth_ok():
                    return
                if self.path.rstrip("/") == "/v1/models":
                    self._json(
                        200,
                        {
                            "object": "list",
                            "data": [{"id": server.model, "object": "model", "owned_by": "test"}],
                        },
                    )
                else:
                    self._json(404, {"error": {"message": "not found"}})

            def do_POST(self) -> None:  # noqa: N802
                if not self._auth_ok():
                    return
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length))
                if self.path.rstrip("/") != "/v1/chat/completions":
                    self._json(404, {"error": {"message": "not found"}})
                    return
                if server.reject_tools and body.get("tools"):
                    self._json(
                        400,
                        {
                            "error": {
                                "message": '"auto" tool choice requires --enable-auto-tool-choice '
                                "--tool-call-parser to be set",
                                "type": "BadRequestError",
                            }
                        },
                    )
                    return
                if server.no_jinja and body.get("tools"):
                    server.refused.append(body)
                    message = "tools param requires --jinja flag"
                    self._json(500, {"error": {"code": 500, "message": message,
                                               "type": "server_error"}})  # fmt: skip
                    return
                if server.reject_tool_images and _tool_images(body):
                    server.refused.append(body)
                    self._json(
                        400,
                        {
                            "error": {
                                "message": "Invalid 'messages': image content is only supported "
                                "in user messages, not in role 'tool'",
                                "type": "BadRequestError",
                            }
                        },
                    )
                    return
                server.requests.append(body)
                n = len(server.requests) - 1
                item = (
                    server.script[n]
                    if n < len(server.script)
                    else Reply(xml_call(action="terminate", status="failure"))
                )
                reply = item(body) if callable(item) else item
                if reply.delay_s:
                    server._closing.wait(reply.delay_s)
                if reply.status != 200:
                    self._json(reply.status, {"error": {"message": "scripted failure"}})
                    return
                if reply.fault is not None:
                    self._fault(reply)
                    return
                if body.get("stream"):
                    self._stream(body, reply)
                else:
                    self._whole(body, reply)

            def _chunk(
                self, delta: dict[str, Any], finish: str | None = None, usage: Any = None
            ) -> None:
                obj: dict[str, Any] = {
                    "id": "chatcmpl-1",
                    "object": "chat.completion.chunk",
                    "created": int(time.time()),
                    "model": server.model,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                }
                if usage is not None:
                    obj["choices"] = []
                    obj["usage"] = usage
                data = f"data: {json.dumps(obj)}\n\n".encode()
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

            def _raw(self, data: bytes) -> None:
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

            def _fault(self, reply: Reply) -> None:
                fault = reply.fault
                if fault == "hang":
                    server._closing.wait()
                    self.close_connection = True
                    return
                if fault == "not_json":
                    page = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html")
                    self.send_header("Content-Length", str(len(page)))
                    self.end_headers()
                    self.wfile.write(page)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self._chunk({"role": "assistant", "content": ""})
                step = reply.chunk_chars
                text = reply.content
                if fault in ("drop", "error_event"):
                    text = text[: len(text) // 2]
                for i in range(0, len(text), step):
                    self._chunk({"content": text[i : i + step]})
                if fault == "drop":
                    self.close_connection = True
                    return  # no terminating chunk: the client sees the connection end mid-body
                if fault == "error_event":
                    error = {"error": {"message": "CUDA out of memory", "code": 500}}
                    self._raw(f"data: {json.dumps(error)}\n\n".encode())
                    self.wfile.write(b"0\r\n\r\n")
                    return
                if fault == "invalid_json":
                    self._raw(b'data: {"id": "chatcmpl-1", "choices": [{"delta": {"cont\n\n')
                    self._raw(b"data: [DONE]\n\n")
                    self.wfile.write(b"0\r\n\r\n")
                    return
                # endless / keepalive: until the client hangs up or the server closes.
                while not server._closing.wait(reply.fault_interval_s):
                    if fault == "endless":
                        self._chunk({"content": (reply.content or "more ") * 8})
                    else:
                        self._raw(b": keep-alive\n\n")
                        self._chunk({})
                self.close_connection = True

            def _stream(self, body: dict[str, Any], reply: Reply) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self._chunk({"role": "assistant", "content": ""})
                step = reply.chunk_chars
                if reply.reasoning:
                    for i in range(0, len(reply.reasoning), step):
                        self._chunk({"reasoning_content": reply.reasoning[i : i + step]})
                for i in range(0, len(reply.content), step):
                    self._chunk({"content": reply.content[i : i + step]})
                for idx, call in enumerate(reply.tool_calls or []):
                    args = call["function"]["arguments"]
                    self._chunk(
                        {
                            "tool_calls": [
                                {
                                    "index": idx,
                                    "id": call["id"],
                                    "type": "function",
                                    "function": {"name": call["function"]["name"], "arguments": ""},
                                }
                            ]
                        }
                    )
                    for i in range(0, len(args), step):
                        self._chunk(
                            {
                                "tool_calls": [
                                    {"index": idx, "function": {"arguments": args[i : i + step]}}
                                ]
                            }
                        )
                finish = "tool_calls" if reply.tool_calls else "stop"
                self._chunk({}, finish)
                self._chunk(
                    {},
                    usage={
                        "prompt_tokens": 1000 + 10 * len(server.requests),
                        "completion_tokens": max(1, len(reply.content) // 4),
                        "total_tokens": 0,
                    },
                )
                end = b"data: [DONE]\n\n"
                self.wfile.write(f"{len(end):x}\r\n".encode() + end + b"\r\n0\r\n\r\n")
                self.wfile.flush()

            def _whole(self, body: dict[str, Any], reply: Reply) -> None:
                message: dict[str, Any] = {"role": "assistant", "content": reply.content}
                if reply.reasoning:
                    message["reasoning_content"] = reply.reasoning
                if reply.tool_calls:
                    message["tool_calls"] = reply.tool_calls
                self._json(
                    200,
                    {
                        "id": "chatcmpl-1",
                        "object": "chat.completion",
                        "model": server.model,
                        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                        "usage": {
                            "prompt_tokens": 1000,
                            "completion_tokens": 10,
                            "total_tokens": 1010,
                        },
                    },
                )

        self._httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        """The /v1 base URL."""
        host, port = self._httpd.server_address[:2]
        name = host.decode() if isinstance(host, bytes) else host
        return f"http://{name}:{port}/v1"

    def close(self) -> None:
        """Stop serving; hanging and endless replies end too."""
        self._closing.set()
        self._httpd.shutdown()
        self._httpd.server_close()

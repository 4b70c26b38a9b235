"""The HTTP client under the openai SDK: what an endpoint can make deskpilot hold or wait for.

A hostile or broken server must not grow memory without limit (an endless line, a gzip bomb),
hold a request open past the timeout by trickling bytes (httpx's timeouts are per read), or
send the request elsewhere with a redirect. Every violation is one BackendError.
"""

from __future__ import annotations

import re
import socket
import threading
import time
import urllib.request
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urljoin, urlsplit, urlunsplit

import httpcore2
import httpx2

from agent.backends.base import BackendError

MIB = 1024 * 1024
# The default caps (docs/reliability.md#network): one event-stream line or event, one streamed
# answer after decompression, one reply that is not a stream (a model list, an error body).
LINE_BYTES = 1 * MIB
STREAM_BYTES = 16 * MIB
BODY_BYTES = 1 * MIB
# Lines in one streamed answer (a 4096-token answer has ~8,192): each costs the SDK's line
# splitter Python time however short it is, so a stream of bare newlines is cut off here.
STREAM_LINES = 256 * 1024
# A decompressed piece handed on at a time: what a compression bomb can make us hold at once.
_PIECE = 64 * 1024
_LINE_END = re.compile(b"[\r\n]")
# The API paths the SDK appends to the /v1 base URL (to name the base a redirect points to).
_API_PATHS = ("/chat/completions", "/models")


@dataclass(frozen=True, slots=True)
class ReplyLimits:
    """What one reply may cost in seconds and bytes (docs/reliability.md#network)."""

    header_s: float  # status line and headers complete, from the start of the request
    body_s: float  # a whole reply that is not an event stream, from the start of the request
    stream_s: float  # a whole event stream (one answer), from the start of the request
    line_bytes: int = LINE_BYTES  # one event-stream line, or one event (lines up to a blank one)
    stream_bytes: int = STREAM_BYTES  # one event stream, after decompression
    body_bytes: int = BODY_BYTES  # a reply that is not an event stream (model list, error body)
    stream_lines: int = STREAM_LINES  # lines in one event stream


def redact_url(url: str) -> str:
    """The URL without user, password or query string (they may hold secrets)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def size_text(n: int) -> str:
    """A byte count for messages: whole MiB or KiB where exact."""
    if n % MIB == 0:
        return f"{n // MIB} MiB"
    if n % 1024 == 0:
        return f"{n // 1024} KiB"
    return f"{n} bytes"


def no_reply(url: str, timeout_s: float) -> BackendError:
    """No complete status line and headers within the timeout (nothing, or a trickle)."""
    return BackendError(
        f"no reply from {url} within {timeout_s:g} s: the server may be overloaded or stuck; "
        "retry, or raise the timeout",
        retryable=True,
    )


def stream_too_long(stream_s: float) -> BackendError:
    """An answer still streaming at its deadline."""
    return BackendError(
        f"the model streamed for more than {stream_s:g} s without finishing; stopped reading "
        "(retry, or raise the limit)",
        retryable=True,
    )


def _printable(text: str, limit: int = 200) -> str:
    """Server-chosen text made safe to print: percent-escaped outside printable ASCII, cut short."""
    safe = quote(text, safe="".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != "%"))
    return safe if len(safe) <= limit else safe[: limit - 3] + "..."


def redirect_error(url: str, request_url: str, status: int, location: str | None) -> BackendError:
    """A redirect, refused: the message names where it pointed and the --endpoint to use."""
    if not location:
        return BackendError(
            f"{url} answered HTTP {status} (a redirect without a Location): deskpilot does not "
            "follow redirects; check --endpoint"
        )
    target = redact_url(urljoin(request_url, location.strip()))
    path = urlsplit(request_url).path
    base = target
    for suffix in _API_PATHS:
        if path.endswith(suffix) and target.endswith(suffix):
            base = target[: -len(suffix)]
    return BackendError(
        f"{url} redirected the request to {_printable(target)} (HTTP {status}); deskpilot does "
        "not follow redirects, so nothing was sent there: if that is your server, pass "
        f"--endpoint {_printable(base)}"
    )


_local = threading.local()


@contextmanager
def _deadline(at: float) -> Iterator[None]:
    """Bound every socket read and write on this thread to end by `at` (monotonic seconds)."""
    before = getattr(_local, "at", None)
    _local.at = at
    try:
        yield
    finally:
        _local.at = before


def _left(timeout: float | None) -> float | None:
    """The socket timeout to use: the given one, shortened to the thread's deadline."""
    at: float | None = getattr(_local, "at", None)
    if at is None:
        return timeout
    left = at - time.monotonic()
    if left <= 0:
        raise httpcore2.ReadTimeout("the reply's deadline passed")
    return left if timeout is None else min(timeout, left)


class Line:
    """The connection one thread's requests use, so that another thread can cut it at once."""

    def __init__(self) -> None:
        self.stream: httpcore2.NetworkStream | None = None
        self.cut = False

    @contextmanager
    def watch(self) -> Iterator[None]:
        """Within this block, this thread's connection is the one hang_up() cuts."""
        before = getattr(_local, "line", None)
        _local.line = self
        try:
            yield
        finally:
            _local.line = before

    def hang_up(self) -> None:
        """Wake a read blocked on the connection now (close() alone waits for the next byte)."""
        self.cut = True
        sock = self.stream.get_extra_info("socket") if self.stream is not None else None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _using(stream: httpcore2.NetworkStream) -> None:
    """Note the thread's connection for its Line; refuse to go on once the line was cut."""
    line: Line | None = getattr(_local, "line", None)
    if line is not None:
        line.stream = stream
        if line.cut:
            raise httpcore2.ReadError("the request was stopped")


class _DeadlineStream(httpcore2.NetworkStream):
    """A connection whose reads and writes end at the current request's deadline."""

    def __init__(self, inner: httpcore2.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        """Read at most max_bytes, waiting no later than the deadline."""
        _using(self)
        return self._inner.read(max_bytes, _left(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        """Send the buffer; a server that stops reading cannot stall it past the deadline."""
        _using(self)
        self._inner.write(buffer, _left(timeout))

    def close(self) -> None:
        """Close the connection."""
        self._inner.close()

    def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore2.NetworkStream:
        """TLS over this connection, bounded the same way."""
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, _left(timeout)))

    def get_extra_info(self, info: str) -> Any:
        """The underlying stream's details (its socket, for a hang-up)."""
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore2.NetworkBackend):
    """Opens connections that honour the thread's deadline."""

    def __init__(self, inner: httpcore2.NetworkBackend) -> None:
        self._inner = inner

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.NetworkStream:
        """A TCP connection, bounded."""
        stream = self._inner.connect_tcp(host, port, _left(timeout), local_address, socket_options)
        return _DeadlineStream(stream)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore2.NetworkStream:
        """A Unix socket connection, bounded."""
        stream = self._inner.connect_unix_socket(path, _left(timeout), socket_options)
        return _DeadlineStream(stream)

    def sleep(self, seconds: float) -> None:
        """Sleep (connection retries; none are configured)."""
        self._inner.sleep(seconds)


class _Inflate:
    """gzip or zlib decompression in bounded pieces, so a bomb is counted before it is held."""

    def __init__(self, url: str, wbits: int) -> None:
        self._url = url
        self._z = zlib.decompressobj(wbits)

    def feed(self, data: bytes) -> Iterator[bytes]:
        """The decompressed pieces of data, each at most _PIECE bytes."""
        if self._z.eof:
            return  # bytes after the end of the compressed stream are ignored
        try:
            while True:
                out = self._z.decompress(data, _PIECE)
                if out:
                    yield out
                data = self._z.unconsumed_tail
                # A full piece may leave output pending inside zlib even with no input left.
                if self._z.eof or (not data and len(out) < _PIECE):
                    return
        except zlib.error as exc:
            raise BackendError(
                f"{self._url} sent compressed data that does not decompress ({exc}): retry, "
                "or check the server's log",
                retryable=True,
            ) from exc


class _EventBounds:
    """Tracks the current event-stream line and event, as the SDK's SSE decoder splits them."""

    def __init__(self) -> None:
        self.lines = 0  # lines ended so far
        self.line = 0  # bytes of the line not yet ended
        self.event = 0  # bytes of the event's ended lines
        self._skip_lf = False  # the last line ended with CR: a LF next completes that CRLF

    def feed(self, data: bytes) -> int:
        """Account for data; the largest line or event size it reached."""
        start = 0
        most = 0
        for match in _LINE_END.finditer(data):
            end = match.start()
            if self._skip_lf and end == start and data[end] == 10:
                self._skip_lf = False
                start = end + 1
                continue
            self._skip_lf = data[end] == 13
            self.lines += 1
            length = self.line + end - start
            self.line = 0
            # A blank line ends the event; the SDK keeps an event's data lines until then.
            self.event = 0 if length == 0 else self.event + length
            most = max(most, self.event)
            start = end + 1
        if start < len(data):
            self._skip_lf = False
            self.line += len(data) - start
        return max(most, self.event + self.line)


class _BoundedStream(httpx2.SyncByteStream):
    """A reply body read within its deadline and caps, decompressed here in bounded pieces."""

    def __init__(
        self,
        inner: httpx2.SyncByteStream,
        *,
        url: str,
        limits: ReplyLimits,
        start: float,
        status: int,
        streamed: bool,
        listing: bool,
        inflate: _Inflate | None,
    ) -> None:
        self._inner = inner
        self._url = url
        self._limits = limits
        self._status = status
        self._listing = listing
        self._streamed = streamed
        self._until = start + (limits.stream_s if streamed else limits.body_s)
        self._cap = limits.stream_bytes if streamed else limits.body_bytes
        self._inflate = inflate
        self._events = _EventBounds() if streamed else None
        self._raw = 0
        self._held = 0

    def _late(self) -> BackendError:
        if self._streamed:
            return stream_too_long(self._limits.stream_s)
        return BackendError(
            f"{self._url} did not finish its reply (HTTP {self._status}) within "
            f"{self._limits.body_s:g} s (it came too slowly); retry, or raise the timeout",
            retryable=True,
        )

    def _too_big(self) -> BackendError:
        what = "an answer" if self._streamed else f"one reply (HTTP {self._status})"
        # A catalogue of many models may be large: --model makes the list unnecessary.
        todo = (
            "pass --model, or check the server" if self._listing else "retry, or check the server"
        )
        return BackendError(
            f"{self._url} sent more than {size_text(self._cap)} in {what}; stopped reading "
            f"({todo})",
            retryable=True,
        )

    def _count(self, piece: bytes) -> None:
        self._held += len(piece)
        if self._held > self._cap:
            raise self._too_big()
        if self._events is None:
            return
        if self._events.feed(piece) > self._limits.line_bytes:
            raise BackendError(
                f"{self._url} sent an event-stream line or event longer than "
                f"{size_text(self._limits.line_bytes)}; stopped reading (retry, or check the "
                "server)",
                retryable=True,
            )
        if self._events.lines > self._limits.stream_lines:
            raise BackendError(
                f"{self._url} sent more than {self._limits.stream_lines:,} lines in an answer; "
                "stopped reading (retry, or check the server)",
                retryable=True,
            )

    def __iter__(self) -> Iterator[bytes]:
        """The body's (decompressed) bytes; raises BackendError at the first limit passed."""
        chunks = iter(self._inner)
        while True:
            try:
                with _deadline(self._until):
                    raw = next(chunks)
            except StopIteration:
                return
            except httpx2.TimeoutException as exc:
                if time.monotonic() >= self._until:
                    raise self._late() from exc
                raise
            self._raw += len(raw)
            if self._raw > self._cap:
                raise self._too_big()
            for piece in self._inflate.feed(raw) if self._inflate else (raw,):
                self._count(piece)
                yield piece

    def close(self) -> None:
        """Close the inner stream (and with it, the connection if unread)."""
        self._inner.close()


def _proxy_for(url: str) -> str | None:
    """The proxy the environment names for url (HTTP(S)_PROXY, NO_PROXY), as httpx would use."""
    parts = urlsplit(url)
    proxies = urllib.request.getproxies()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    return proxy


class BoundedTransport(httpx2.BaseTransport):
    """Sends each request with deadlines on the socket; refuses redirects; bounds each reply."""

    def __init__(self, base_url: str, limits: ReplyLimits) -> None:
        self.limits = limits
        self._url = redact_url(base_url)
        proxy = _proxy_for(base_url)
        try:
            self._inner = httpx2.HTTPTransport(proxy=proxy)
        except (ImportError, ValueError) as exc:  # a SOCKS proxy without socksio, a bad URL
            raise BackendError(
                f"the proxy the environment names for {self._url} ({redact_url(proxy or '')}) "
                f"cannot be used: {exc}; fix HTTP(S)_PROXY / ALL_PROXY, or add the host to "
                "NO_PROXY"
            ) from exc
        # httpx2 takes no network backend: set it on the pool it made (checked, so a changed
        # httpx2 fails here rather than silently losing the deadlines).
        pool = getattr(self._inner, "_pool", None)
        backend = getattr(pool, "_network_backend", None)
        if not isinstance(backend, httpcore2.NetworkBackend):
            raise RuntimeError("httpx2's HTTPTransport no longer has a pool with a network backend")
        pool._network_backend = _DeadlineBackend(backend)  # type: ignore[union-attr]

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        """Send the request; the reply's headers within header_s; its body bounded as it is read."""
        limits = self.limits
        start = time.monotonic()
        # Compression saves little on these replies and a bomb costs much: ask for none.
        request.headers["Accept-Encoding"] = "identity"
        try:
            with _deadline(start + limits.header_s):
                response = self._inner.handle_request(request)
        except httpx2.TimeoutException as exc:
            if time.monotonic() >= start + limits.header_s:
                raise no_reply(self._url, limits.header_s) from exc
            raise
        status = response.status_code
        try:
            if 300 <= status < 400 and status != 304:
                raise redirect_error(
                    self._url, str(request.url), status, response.headers.get("location")
                )
            headers = httpx2.Headers(response.headers)
            inflate = self._decoder(headers.get("content-encoding", ""))
            if inflate is not None:
                del headers["content-encoding"]  # decoded here: httpx2 must not decode again
                headers.pop("content-length", None)
            kind = headers.get("content-type", "").split(";")[0].strip().lower()
            streamed = request.method == "POST" and status < 300 and kind == "text/event-stream"
            declared = headers.get("content-length", "")
            if not streamed and declared.isdigit() and int(declared) > limits.body_bytes:
                raise BackendError(
                    f"{self._url} announced a reply of {size_text(int(declared))} (HTTP "
                    f"{status}), over the {size_text(limits.body_bytes)} cap; not read (check "
                    "the server)",
                    retryable=True,
                )
        except BaseException:
            response.close()
            raise
        assert isinstance(response.stream, httpx2.SyncByteStream)
        body = _BoundedStream(
            response.stream,
            url=self._url,
            limits=limits,
            start=start,
            status=status,
            streamed=streamed,
            listing=request.method == "GET" and request.url.path.endswith("/models"),
            inflate=inflate,
        )
        return httpx2.Response(status, headers=headers, stream=body, extensions=response.extensions)

    def _decoder(self, encoding: str) -> _Inflate | None:
        """A bounded decoder for the reply's Content-Encoding; refuses what it cannot bound."""
        codings = [c.strip().lower() for c in encoding.split(",") if c.strip()]
        codings = [c for c in codings if c != "identity"]
        if not codings:
            return None
        if codings == ["gzip"] or codings == ["x-gzip"]:
            return _Inflate(self._url, 16 + zlib.MAX_WBITS)
        if codings == ["deflate"]:
            return _Inflate(self._url, 32 + zlib.MAX_WBITS)  # zlib-wrapped (or gzip) data
        raise BackendError(
            f"{self._url} sent a reply compressed as {_printable(encoding, 40)}, which deskpilot "
            "does not read (it asks for none, and reads only gzip and deflate within its size "
            "caps): turn that compression off in the server or proxy"
        )

    def close(self) -> None:
        """Close the connection pool."""
        self._inner.close()


def bounded_client(base_url: str, limits: ReplyLimits) -> httpx2.Client:
    """An httpx2 client for the openai SDK's http_client=: bounded replies, no redirects."""
    return httpx2.Client(transport=BoundedTransport(base_url, limits), follow_redirects=False)

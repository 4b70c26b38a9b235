"""The bounded HTTP client's pieces: event-stream accounting, bounded decompression, messages."""

from __future__ import annotations

import gzip
import random
import zlib

import pytest

from agent.backends.base import BackendError
from agent.backends.bounded_http import _EventBounds, _Inflate, redirect_error, size_text


def feed_all(chunks: list[bytes]) -> tuple[_EventBounds, int]:
    bounds = _EventBounds()
    most = 0
    for chunk in chunks:
        most = max(most, bounds.feed(chunk))
    return bounds, most


@pytest.mark.parametrize("end", [b"\n", b"\r\n", b"\r"])
def test_events_end_at_a_blank_line_whatever_the_line_ends(end: bytes) -> None:
    one = b"data: " + b"x" * 100 + end
    stream = (one + end) * 50
    # Cut everywhere, CRLF pairs included: the accounting must not depend on chunking.
    for size in (1, 2, 7, 64, len(stream)):
        bounds, most = feed_all([stream[i : i + size] for i in range(0, len(stream), size)])
        assert most == 106 and bounds.event == 0 and bounds.line == 0
        assert bounds.lines == 100


def test_an_event_of_many_lines_counts_them_all_and_a_line_counts_before_it_ends() -> None:
    _, most = feed_all([b"data: 1234\n" * 10])
    assert most == 100
    bounds, most = feed_all([b"data: ", b"y" * 1000])
    assert most == 1006 and bounds.line == 1006


def test_bounded_inflate_restores_data_exactly_in_bounded_pieces() -> None:
    rng = random.Random(7)
    data = bytes(rng.getrandbits(8) for _ in range(50_000)) + bytes(3_000_000)
    for packed, wbits in (
        (gzip.compress(data), 16 + zlib.MAX_WBITS),
        (zlib.compress(data), 32 + zlib.MAX_WBITS),
    ):
        inflate = _Inflate("URL", wbits)
        pieces = [p for i in range(0, len(packed), 999) for p in inflate.feed(packed[i : i + 999])]
        assert b"".join(pieces) == data
        assert max(len(p) for p in pieces) <= 64 * 1024


def test_corrupt_compressed_data_is_one_retryable_error() -> None:
    inflate = _Inflate("URL", 16 + zlib.MAX_WBITS)
    with pytest.raises(BackendError, match="sent compressed data that does not decompress") as e:
        list(inflate.feed(b"\x1f\x8b\x08\x00garbage-garbage"))
    assert e.value.retryable


def test_a_redirect_names_the_base_to_use_or_the_target_as_is() -> None:
    error = redirect_error(
        "http://a/v1", "http://a/v1/chat/completions", 302, "https://b:8443/api/v1/chat/completions"
    )
    assert "redirected the request to https://b:8443/api/v1/chat/completions (HTTP 302)" in str(
        error
    )
    assert str(error).endswith("pass --endpoint https://b:8443/api/v1")
    assert error.retryable is False
    relative = redirect_error("http://a/v1", "http://a/v1/models", 301, "/other")
    assert "to http://a/other (HTTP 301)" in str(relative)
    assert "without a Location" in str(redirect_error("http://a/v1", "http://a/v1/x", 302, None))


def test_size_text() -> None:
    assert size_text(16 * 1024 * 1024) == "16 MiB"
    assert size_text(64 * 1024) == "64 KiB"
    assert size_text(1000) == "1000 bytes"

"""The scripted model for benches, in a process of its own as a real server is.

`python -m bench._server N` answers N mouse moves instantly; benches with their own script
serve it with serve_until_stdin_closes and start it with serving().
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

from bench._x11 import ROOT
from tests.support.scripted_server import CountOnly, Reply, ScriptedServer, xml_call


def serve_until_stdin_closes(server: ScriptedServer) -> None:
    """Print the server's /v1 URL for the parent; serve until the parent closes stdin."""
    print(server.url, flush=True)
    sys.stdin.read()
    server.close()


@contextmanager
def serving(module: str, *args: str) -> Iterator[str]:
    """`python -m MODULE ARGS` serving while inside (see serve_until_stdin_closes): its URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().strip()
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        proc.wait(timeout=10)


def scripted_server(steps: int) -> AbstractContextManager[str]:
    """The instant scripted model (mouse_move after mouse_move) while inside: its URL."""
    return serving("bench._server", str(steps))


def main() -> None:
    """Serve N instant mouse moves (N from the command line)."""
    steps = int(sys.argv[1])
    points = ([300, 400], [600, 500])
    # The whole reply in one chunk: the model is instant, only the hand-over is measured.
    script: list[Reply] = [
        Reply(xml_call(action="mouse_move", coordinate=points[i % 2]), chunk_chars=1 << 16)
        for i in range(steps)
    ]
    serve_until_stdin_closes(ScriptedServer(list(script), requests=CountOnly()))


if __name__ == "__main__":
    main()

"""Child processes that are always stopped by their PID, and loopback ports that are free.

:class:`Child` wraps :class:`subprocess.Popen` as a context manager: on exit (normal or not) it
sends SIGTERM to that PID, waits a bounded time, then SIGKILL, and waits again. Nothing is ever
stopped by name.
"""

from __future__ import annotations

import random
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

__all__ = ["Child", "free_port_block", "ConformanceError"]

from meshsim._exceptions import MeshsimError

LOOPBACK = "127.0.0.1"


class ConformanceError(MeshsimError):
    """A real-Envoy run could not be set up or did not finish (binary missing, port busy, timeout)."""


class Child:
    """A child process stopped by its PID when the ``with`` block ends, also on failure.

    Parameters
    ----------
    argv
        The command.
    stdout, stderr
        Paths to write them to (``None``: a pipe for stdout, DEVNULL for stderr).
    stop_timeout
        Seconds to wait after SIGTERM before SIGKILL.
    """

    def __init__(self, argv: Sequence[str], *, stdout: Path | None = None, stderr: Path | None = None,
                 stop_timeout: float = 5.0, env: dict[str, str] | None = None) -> None:
        self.argv = list(argv)
        self.stdout_path = stdout
        self.stderr_path = stderr
        self.stop_timeout = stop_timeout
        self.env = env
        self.proc: subprocess.Popen | None = None
        self._files: list[IO[Any]] = []

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def __enter__(self) -> Child:
        out: Any = subprocess.PIPE
        err: Any = subprocess.DEVNULL
        if self.stdout_path is not None:
            out = open(self.stdout_path, "wb")
            self._files.append(out)
        if self.stderr_path is not None:
            err = open(self.stderr_path, "wb")
            self._files.append(err)
        try:
            self.proc = subprocess.Popen(self.argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=self.env)
        except BaseException:
            self._close_files()
            raise
        return self

    def wait_line(self, expected: str, timeout: float) -> None:
        """Wait (bounded) for a line ``expected`` on the child's stdout pipe."""
        assert self.proc is not None and self.proc.stdout is not None
        import selectors

        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        buf = b""
        try:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise ConformanceError(f"{self.argv[0]} exited with code {self.proc.returncode} before '{expected}'")
                for _key, _ in sel.select(timeout=max(0.0, min(0.2, deadline - time.monotonic()))):
                    chunk = self.proc.stdout.read1(4096)  # type: ignore[attr-defined]
                    buf += chunk
                    if expected.encode() in buf:
                        return
        finally:
            sel.close()
        raise ConformanceError(f"{self.argv[0]}: no '{expected}' within {timeout:g} s")

    def stop(self) -> int | None:
        """SIGTERM this PID, wait up to ``stop_timeout``, then SIGKILL; the exit code."""
        p = self.proc
        if p is None:
            return None
        if p.poll() is None:
            try:
                p.terminate()
                p.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=self.stop_timeout)
        if p.stdout is not None:
            p.stdout.close()
        self._close_files()
        return p.returncode

    def _close_files(self) -> None:
        for f in self._files:
            f.close()
        self._files = []

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def free_port_block(n: int, *, low: int = 30000, high: int = 60000, tries: int = 200,
                    rng: random.Random | None = None) -> int:
    """The first of ``n`` consecutive loopback ports that are free now (a random block in [low, high)).

    Raises
    ------
    ConformanceError
        No free block in ``tries`` attempts.
    """
    r = rng or random.Random()
    for _ in range(tries):
        base = r.randrange(low, high - n)
        if all(_bindable(base + i) for i in range(n)):
            return base
    raise ConformanceError(f"no {n} consecutive free ports on {LOOPBACK} in {low}..{high}")

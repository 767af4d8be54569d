"""The app and its terminal: no terminal means a clear refusal; a terminal that goes away ends the app."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

ENV = dict(os.environ, TERM="xterm-256color", HF_HUB_OFFLINE="1")
COMMAND = [sys.executable, "-m", "workbench"]


@pytest.mark.parametrize("stdin_tty", [False, True])
def test_without_a_terminal_the_app_refuses_at_once_and_names_the_headless_commands(tmp_path, stdin_tty):
    """`workbench </dev/null >/dev/null` (cron, nohup, a pipe) once spun a core forever."""
    master, slave = pty.openpty()
    try:
        started = time.monotonic()
        done = subprocess.run(
            [*COMMAND, "--workspace", str(tmp_path)],
            stdin=slave if stdin_tty else subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=ENV,
            timeout=30,
            text=True,
        )
        elapsed = time.monotonic() - started
    finally:
        os.close(master)
        os.close(slave)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "needs a terminal" in lines[0] and "workbench --help" in lines[0]
    assert "stdout" in lines[0]
    assert elapsed < 10  # generous for a loaded CI machine; it takes about half a second


def _start_on_a_pty(workspace: Path, *, ignore_hangup: bool) -> tuple[subprocess.Popen, int]:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))

    def in_child() -> None:
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)  # the pty becomes the app's controlling terminal
        if ignore_hangup:
            signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as nohup would: only the guard can notice

    proc = subprocess.Popen(
        [*COMMAND, "--workspace", str(workspace)],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
        preexec_fn=in_child,
        env=dict(ENV, WORKBENCH_CONFIG_DIR=str(workspace / ".state")),  # never the user's own state file
        close_fds=True,
    )
    os.close(slave)
    return proc, master


def _read_until(master: int, needle: bytes, timeout: float) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while needle not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                seen += os.read(master, 65536)
            except OSError:
                break
    return seen


@pytest.mark.parametrize("ignore_hangup", [False, True], ids=["hangup", "nohup"])
def test_closing_the_terminal_under_the_running_app_ends_it(tmp_path, ignore_hangup):
    proc, master = _start_on_a_pty(tmp_path, ignore_hangup=ignore_hangup)
    try:
        screen = _read_until(master, b"palette", timeout=60)
        assert b"palette" in screen, screen[-500:]
        assert proc.poll() is None
        os.close(master)  # the SSH connection drops: the pty's other end is gone
        master = -1
        started = time.monotonic()
        proc.wait(timeout=30)
        assert time.monotonic() - started < 15  # the guard looks every 2 s and forces the exit after 3 more
    finally:
        if master >= 0:
            os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()

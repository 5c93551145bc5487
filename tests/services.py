"""Real services for integration tests: an SMTP sink on loopback, a Celery worker process.

A service that is not reachable skips the test, or fails it when REQUIRE_SERVICES=1 (CI)."""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

ROOT = Path(__file__).resolve().parent.parent


def service_unavailable(reason: str):
    if os.environ.get("REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason} (REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SmtpSink:
    """An SMTP server on loopback that keeps every message it receives."""

    def __init__(self, *, refuse_first: int = 0, on_accept=None):
        self.refuse_first = refuse_first  # answer "try again later" to the first N messages
        self.refused = 0
        # Called with the number of messages kept so far after keeping one and before the
        # server answers "250" to the client.
        self.on_accept = on_accept
        self.messages: list[EmailMessage] = []
        self.arrived: list[float] = []  # time.monotonic() of each message
        self._arrived = threading.Condition()
        self.port = free_port()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd handler hook
        if self.refused < self.refuse_first:
            self.refused += 1
            return "451 4.3.0 Try again later"
        message = message_from_bytes(envelope.original_content, policy=policy.default)
        with self._arrived:
            self.messages.append(message)
            self.arrived.append(time.monotonic())
            count = len(self.messages)
            self._arrived.notify_all()
        if self.on_accept is not None:
            self.on_accept(count)
        return "250 Message accepted for delivery"

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self):
        self._controller.start()

    def stop(self):
        self._controller.stop()

    def wait_for(self, count: int, timeout: float = 30) -> list[EmailMessage]:
        with self._arrived:
            self._arrived.wait_for(lambda: len(self.messages) >= count, timeout=timeout)
            return list(self.messages)


class CeleryWorker:
    """`celery -A config worker` in a subprocess, with the given environment, in a process
    group of its own (its pool's processes with it), so that kill() can end them all. By
    default one process takes every queue; `queues`, `concurrency` and `options` (such as
    --max-tasks-per-child) make it one of several workers, named `name`."""

    ready_line = " ready."

    def __init__(
        self,
        env: dict[str, str],
        *,
        queues: str = "default,render,mail,webhooks",
        concurrency: int = 1,
        name: str = "test",
        options: tuple[str, ...] = (),
    ):
        self.command = (
            "worker",
            "--loglevel=INFO",
            f"--concurrency={concurrency}",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            f"--queues={queues}",
            f"--hostname={name}-{os.getpid()}@%h",
            *options,
        )
        self.env = {**os.environ, **env}
        self.output: list[str] = []
        self._ready = threading.Event()
        self.process = None

    def start(self, timeout: float = 60):
        self.launch()
        self.wait_ready(timeout)

    def launch(self):
        """Start the process without waiting for it: several start side by side."""
        self._ready.clear()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", *self.command],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def wait_ready(self, timeout: float = 60):
        if not self._ready.wait(timeout):
            self.stop()
            raise RuntimeError("Celery did not start:\n" + "".join(self.output))

    def _read(self):
        for line in self.process.stdout:
            self.output.append(line)
            if self.ready_line in line:
                self._ready.set()

    def kill(self):
        """SIGKILL to the whole process group: the main process and the pool's processes die
        at once, with no warm shutdown; tasks in flight die unacknowledged."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self):
        stop_together([self])

    def log_count(self, text: str) -> int:
        """How many lines of its output so far contain the text."""
        return sum(text in line for line in self.output)

    def wait_for_log(self, text: str, timeout: float = 30) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in line for line in self.output):
                return True
            time.sleep(0.1)
        return False


def stop_together(processes: list[CeleryWorker]):
    """Warm shutdown (each worker finishes the task at hand) of several processes at once; one
    that is not done within 20 seconds is killed."""
    running = [each for each in processes if each.process and each.process.poll() is None]
    for each in running:
        each.process.terminate()
    for each in running:
        try:
            each.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            each.kill()


class CeleryBeat(CeleryWorker):
    """`celery -A config beat`: the real scheduler, publishing the outbox sweep on time."""

    ready_line = "beat: Starting"

    def __init__(self, env: dict[str, str], schedule: Path):
        super().__init__(env)
        self.command = ("beat", "--loglevel=INFO", f"--schedule={schedule}")

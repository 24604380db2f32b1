"""Shared fixtures: a real `pantau serve` process on free loopback ports."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def require(binary: str, package: str) -> str:
    """Path of a system binary; skip (naming the Debian package) when absent, fail under CI."""
    path = shutil.which(binary)
    if path:
        return path
    message = f"needs `{binary}` (Debian package: {package})"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}; under CI nothing may skip: .ci/run must install it")
    pytest.skip(message)


class HubProcess:
    """`pantau serve` in a subprocess with its own data directory and ports."""

    def __init__(self, data_dir: Path, config: str | None = None, log_path: Path | None = None) -> None:
        self.data_dir = data_dir
        self.port, self.http_port, self.grpc_port = free_port(), free_port(), free_port()
        self.config_path: Path | None = None
        if config is not None:
            self.config_path = data_dir.parent / f"pantau-{self.port}.yaml"
            self.config_path.write_text(config)
        self.log_path = log_path or data_dir.parent / f"pantau-{self.port}.log"
        self.proc: subprocess.Popen | None = None

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def otlp_http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def otlp_grpc(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "pantau", "serve", "--data-dir", str(self.data_dir),
               "--port", str(self.port), "--otlp-http-port", str(self.http_port),
               "--otlp-grpc-port", str(self.grpc_port)]
        if self.config_path:
            cmd += ["--config", str(self.config_path)]
        return cmd

    def start(self, timeout: float = 30.0) -> HubProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"pantau exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.api}/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"pantau did not become ready:\n{self.log()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def get(self, path: str, **params) -> httpx.Response:
        return httpx.get(f"{self.api}{path}", params=params, timeout=30)


@pytest.fixture
def hub_factory(tmp_path: Path) -> Iterator:
    started: list[HubProcess] = []

    def make(config: str | None = None, data_dir: Path | None = None) -> HubProcess:
        hub = HubProcess(data_dir or tmp_path / f"data{len(started)}", config)
        started.append(hub)
        return hub

    yield make
    for hub in started:
        hub.kill()


@pytest.fixture
def hub(hub_factory) -> HubProcess:
    return hub_factory().start()


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.05):
    """Poll `predicate` until it returns a truthy value (for asynchronous effects like indexing)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under CI=true nothing may skip: a skip there is a missing system package, so fail."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") == "true" and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, where nothing may skip: {reason}"

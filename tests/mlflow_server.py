"""A real `mlflow server` process on 127.0.0.1, light and fast to start, for tests and benchmarks.

The recipe is the one measured in ../shared/NOTES-mlflow-litellm.md ("Suggested defaults"): one uvicorn
worker, no job runner, litellm's bundled price map, telemetry off: 3 processes, ready in about 8 s here
(a default server is 15 processes, ~3.7 GB and 17 s).

    with MlflowServer(tmp_path) as server:      # its own sqlite backend and artifact root under tmp_path
        client = MlflowClient(server.url)
        server.stop(); ...; server.start()       # an outage: same port, same backend, same artifacts

The server runs in its own session (process group), so stop() ends it and every child it forked
(uvicorn's worker) with one killpg, and waits until the port is closed: a stopped server refuses
connections at once, which is what an outage test needs.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import IO

HOST = "127.0.0.1"
# /health must go straight to loopback: an HTTP(S)_PROXY in the environment must not capture it.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port() -> int:
    "A TCP port on 127.0.0.1 that nothing listens on right now."
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def port_open(port: int, host: str = HOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def healthy(url: str, timeout: float = 2.0) -> bool:
    "Whether `url`/health answers 200."
    try:
        with _DIRECT.open(url.rstrip("/") + "/health", timeout=timeout) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


PYCACHE = Path(tempfile.gettempdir())/"llmops-bench-pycache"


def server_env(**extra: str) -> dict[str, str]:
    """The environment of a light, quiet, offline MLflow server process (or of `llmops-bench ui`).

    When the environment forbids bytecode files (PYTHONDONTWRITEBYTECODE, as on this machine, whose venv holds no
    __pycache__), every start compiles mlflow, fastapi and litellm again: 8.4 s of imports instead of 4 s. The server
    then writes its bytecode under a private prefix in the temp folder instead (never into the venv)."""
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "LITELLM_LOCAL_MODEL_COST_MAP": "True",
           "MLFLOW_DISABLE_TELEMETRY": "true", "PYTHONUNBUFFERED": "1"}
    if env.pop("PYTHONDONTWRITEBYTECODE", None) and not env.get("PYTHONPYCACHEPREFIX"):
        env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    env.pop("MLFLOW_TRACKING_URI", None)   # the server's own store comes from its flags, never from the test's client setting
    return {**env, **extra}


class MlflowServer:
    """`mlflow server` with its own sqlite backend (`backend_db`) and proxied artifact root (`artifacts_dir`) under `directory`."""

    def __init__(self, directory: str | Path, port: int | None = None, startup_timeout: float = 90.0) -> None:
        self.directory = Path(directory).resolve()
        self.directory.mkdir(parents=True, exist_ok=True)
        self.backend_db = self.directory/"mlflow.db"
        self.artifacts_dir = self.directory/"artifacts"
        self.port = port or free_port()
        self.startup_timeout = startup_timeout
        self.startup_s: float | None = None   # seconds the last start() took until /health answered
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def command(self) -> list[str]:
        return [sys.executable, "-m", "mlflow", "server",
                "--backend-store-uri", f"sqlite:///{self.backend_db.as_posix()}",   # sqlite:/// + /abs/path: 4 slashes
                "--artifacts-destination", str(self.artifacts_dir),
                "--host", HOST, "--port", str(self.port), "--workers", "1"]

    def start(self) -> MlflowServer:
        "Start the server (again, after stop(): same port, backend and artifacts) and wait until /health answers."
        if self.running:
            raise RuntimeError(f"the MLflow server at {self.url} is already running")
        if port_open(self.port):
            raise RuntimeError(f"port {self.port} is taken; cannot start the MLflow server there")
        # the log goes to a file, not a pipe: nobody drains it while the server runs, and its tail explains a failed start
        self._log = tempfile.TemporaryFile()
        begin = time.monotonic()
        self._proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                                      env=server_env(), cwd=self.directory, start_new_session=True)
        deadline = begin + self.startup_timeout
        while not healthy(self.url, timeout=1.0):
            if self._proc.poll() is not None:
                code, tail = self._proc.returncode, self.log_tail()
                self.stop()
                raise RuntimeError(f"mlflow server exited with code {code} before answering /health; its output:\n{tail}")
            if time.monotonic() > deadline:
                tail = self.log_tail()
                self.stop()
                raise RuntimeError(f"mlflow server did not answer {self.url}/health within {self.startup_timeout:g} s; its output:\n{tail}")
            time.sleep(0.2)
        self.startup_s = time.monotonic() - begin
        return self

    def log_tail(self, limit: int = 6000) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-limit:]

    def stop(self, timeout: float = 15.0) -> None:
        "SIGTERM the server's whole process group, SIGKILL it after `timeout`, and wait until the port is closed. Safe to call twice."
        proc, self._proc = self._proc, None
        if proc is not None:
            _end_group(proc, timeout)
        deadline = time.monotonic() + timeout
        while port_open(self.port) and time.monotonic() < deadline:
            time.sleep(0.1)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> MlflowServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def _end_group(proc: subprocess.Popen, timeout: float) -> None:
    "End a process started with start_new_session=True and every process of its group."
    try:
        pgid = os.getpgid(proc.pid)
    except ProcessLookupError:
        pgid = proc.pid   # the leader is gone; its group id was its pid
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        # the leader is gone; give the rest of the group (uvicorn's worker) a moment, then make sure
        end = time.monotonic() + wait
        while time.monotonic() < end and _group_alive(pgid):
            time.sleep(0.1)
        if not _group_alive(pgid):
            break
    else:
        proc.wait()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


if __name__ == "__main__":   # python tests/mlflow_server.py DIR: start one by hand and print its address
    with MlflowServer(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="mlflow-server-")) as s:
        print(f"{s.url} ready in {s.startup_s:.1f} s (backend {s.backend_db}, artifacts {s.artifacts_dir}); Ctrl-C stops it", flush=True)
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass

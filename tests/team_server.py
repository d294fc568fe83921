"""A team's MLflow server as `llmops-bench server` starts it, for tests and benchmarks: a private PostgreSQL cluster
(tests/postgres_server.py), the basic-auth app, artifacts served through the server, on a free port of 127.0.0.1.

    with TeamServerProcess(folder) as team:          # PostgreSQL + the server, ready
        team.add_user("alice")                       # an account (by the admin), its password in team.passwords
        env = team.client_env("alice")               # MLFLOW_TRACKING_URI/USERNAME/PASSWORD for a client process
        team.stop(); team.start()                    # a restart: same databases, same artifacts, same port

The secrets (admin password, Flask secret key, the database password) are random per instance and reach the server through
its environment only, as `llmops-bench server` requires.
"""
from __future__ import annotations

import os
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path
from types import TracebackType
from typing import IO

from llmops_bench import server
from tests.mlflow_server import HOST, _end_group, free_port, port_open, server_env
from tests.postgres_server import PostgresCluster

CLI = Path(sys.executable).parent/"llmops-bench"


class TeamServerProcess:
    "PostgreSQL and `llmops-bench server` (default permission `default_permission`) under `folder`."

    def __init__(self, folder: str | Path, default_permission: str = "NO_PERMISSIONS", workers: int = 1) -> None:
        self.folder = Path(folder).resolve()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.default_permission, self.workers = default_permission, workers
        self.admin_password = secrets.token_urlsafe(18)
        self.secret_key = secrets.token_hex(32)
        self.passwords: dict[str, str] = {"admin": self.admin_password}
        self.pg: PostgresCluster | None = None
        self._proc: subprocess.Popen | None = None
        self._log: IO[bytes] | None = None
        self.startup_s: float | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def command(self) -> list[str]:
        return [str(CLI), "server", "--backend-store-uri", self.pg.uri("mlflow"), "--artifacts-destination", str(self.folder/"artifacts"),
                "--port", str(self.port), "--workers", str(self.workers), "--default-permission", self.default_permission,
                "--config-dir", str(self.folder/"config")]

    def start(self) -> TeamServerProcess:
        "Start PostgreSQL (first time: create the cluster and both databases) and the server; wait until /health answers."
        if self.pg is None:
            self.pg = PostgresCluster().start()
            self.pg.create_database("mlflow"); self.pg.create_database("mlflow_auth")
        env = server_env(**self.pg.env, **{server.ADMIN_PASSWORD_ENV: self.admin_password, server.SECRET_KEY_ENV: self.secret_key})
        for k in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"): env.pop(k, None)
        self._log = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(self.command(), env=env, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                                      cwd=self.folder, start_new_session=True)
        try: self.startup_s = server.wait_ready(self.url, timeout=180, process=self._proc)
        except RuntimeError as e:
            tail = self.log_tail()
            self.stop()
            raise RuntimeError(f"{e}; its output:\n{tail}") from None
        return self

    def log_tail(self, limit: int = 6000) -> str:
        if self._log is None: return ""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-limit:]

    def stop(self) -> None:
        "End the server's process group and wait for its port to close (PostgreSQL keeps running)."
        proc, self._proc = self._proc, None
        if proc is not None: _end_group(proc, 20.0)
        import time
        deadline = time.monotonic() + 20
        while port_open(self.port) and time.monotonic() < deadline: time.sleep(0.1)
        if self._log is not None: self._log.close(); self._log = None

    def remove(self) -> None:
        self.stop()
        if self.pg is not None: self.pg.remove()

    def admin(self):
        "MLflow's basic-auth client (users and permissions); it sends the credentials in the environment when called (see `as_admin`)."
        from mlflow.server.auth.client import AuthServiceClient
        return AuthServiceClient(self.url)

    def as_admin(self) -> "_env":
        return _env(self.client_env("admin"))

    def add_user(self, name: str) -> str:
        "Create account `name` with a random password (kept in `passwords`); the password."
        self.passwords[name] = secrets.token_urlsafe(18)
        with self.as_admin(): self.admin().create_user(name, self.passwords[name])
        return self.passwords[name]

    def grant(self, user: str, experiment_id: str, permission: str) -> None:
        "Grant `user` `permission` (READ, EDIT, MANAGE, ...) on experiment `experiment_id`, as the admin."
        with self.as_admin():
            self.admin().grant_user_permission(username=user, resource_type="experiment", resource_id=experiment_id, permission=permission)

    def client_env(self, user: str | None) -> dict[str, str]:
        "MLFLOW_TRACKING_URI, and the user's credentials (None: no credentials at all)."
        env = {"MLFLOW_TRACKING_URI": self.url}
        if user: env.update(MLFLOW_TRACKING_USERNAME=user, MLFLOW_TRACKING_PASSWORD=self.passwords[user])
        return env

    def __enter__(self) -> TeamServerProcess:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.remove()


class _env:
    "Set environment variables for a `with` block (credentials reach MLflow's client only through the environment)."
    def __init__(self, values: dict[str, str | None]) -> None:
        self.values, self.before = values, {}

    def __enter__(self):
        for k, v in self.values.items():
            self.before[k] = os.environ.get(k)
            if v is None: os.environ.pop(k, None)
            else: os.environ[k] = v

    def __exit__(self, *exc):
        for k, v in self.before.items():
            if v is None: os.environ.pop(k, None)
            else: os.environ[k] = v

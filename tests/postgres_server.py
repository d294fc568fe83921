"""A private PostgreSQL cluster in a temporary folder on a free port of 127.0.0.1, for tests and benchmarks.

Debian's server binaries (`postgresql` package, /usr/lib/postgresql/<major>/bin) run `initdb` and `pg_ctl` on a folder of
our own: nothing touches the machine's own cluster, and the socket lives in that folder too. `initdb` refuses to run as
root, so as root the cluster belongs to the `postgres` system user (the package creates it) and the folder is handed to it.

    with PostgresCluster() as pg:
        pg.create_database("mlflow")
        pg.uri("mlflow")          # postgresql://bench@127.0.0.1:PORT/mlflow (the password is in PGPASSWORD, never the URI)
"""
from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

from tests.mlflow_server import HOST, free_port


def postgres_bin() -> Path | None:
    "The newest Debian PostgreSQL server binaries folder, None when the `postgresql` package is not installed."
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parent.parent.name))
    return Path(found[-1]).parent if found else None


class PostgresCluster:
    "A throwaway cluster: superuser `bench` with a random password (scram-sha-256 on loopback), on `port`."

    user = "bench"

    def __init__(self, port: int | None = None) -> None:
        self.bin = postgres_bin()
        if self.bin is None:
            raise RuntimeError("PostgreSQL's server binaries are missing (no /usr/lib/postgresql/*/bin/initdb): "
                               "install Debian's `postgresql` package (apt-get install postgresql).")
        self.port = port or free_port()
        self.password = secrets.token_urlsafe(16)
        self.folder = Path(tempfile.mkdtemp(prefix="llmops-bench-pg-"))
        self.data = self.folder/"data"
        self._owner = "postgres" if os.geteuid() == 0 else None   # initdb refuses root

    def _run(self, *argv: str) -> str:
        cmd = ["runuser", "-u", self._owner, "--", *argv] if self._owner else list(argv)
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=self.folder)
        if done.returncode:
            raise RuntimeError(f"{' '.join(argv[:2])} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        return done.stdout

    def start(self) -> PostgresCluster:
        "initdb (first time only), then start the server and wait until it accepts connections."
        if self._owner:
            pw = pwd.getpwnam(self._owner)
            os.chown(self.folder, pw.pw_uid, pw.pw_gid)
        if not self.data.exists():
            pwfile = self.folder/"pwfile"
            pwfile.write_text(self.password + "\n")
            if self._owner: os.chown(pwfile, pwd.getpwnam(self._owner).pw_uid, -1)
            pwfile.chmod(0o600)
            self._run(str(self.bin/"initdb"), "-D", str(self.data), "-U", self.user, f"--pwfile={pwfile}", "-A", "scram-sha-256",
                      "-E", "UTF8", "--no-instructions")
            pwfile.unlink()
        options = f"-h {HOST} -p {self.port} -k {self.folder} -c fsync=off -c max_connections=200"
        self._run(str(self.bin/"pg_ctl"), "-D", str(self.data), "-l", str(self.folder/"server.log"), "-o", options, "-w", "-t", "60", "start")
        return self

    def stop(self) -> None:
        if (self.data/"postmaster.pid").exists():
            self._run(str(self.bin/"pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    @property
    def env(self) -> dict[str, str]:
        "What a client needs in its environment to connect (libpq reads the password from PGPASSWORD)."
        return {"PGPASSWORD": self.password}

    def uri(self, database: str) -> str:
        return f"postgresql://{self.user}@{HOST}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        "Create database `name`; its URI."
        import psycopg
        db = psycopg.connect(host=HOST, port=self.port, user=self.user, password=self.password, dbname="postgres", autocommit=True)   # CREATE DATABASE cannot run in a transaction
        try:
            with db.cursor() as cur: cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            db.close()
        return self.uri(name)

    def __enter__(self) -> PostgresCluster:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.remove()

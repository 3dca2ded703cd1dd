"""A throwaway local registry (Debian's `docker-registry`) on 127.0.0.1, wiped between pushes."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from .setup import BenchUser
from .util import debug


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


class Registry:
    """One docker-registry process with its config and storage in a scratch dir."""

    def __init__(self, workdir: Path, log: Path):
        self.dir = workdir
        self.log = log
        self.proc: subprocess.Popen | None = None
        self.port = next((p for p in range(5000, 5100) if _port_free(p)), 5000)

    @property
    def host(self) -> str:
        """host:port to put in image references."""
        return f"127.0.0.1:{self.port}"

    def _write_config(self) -> Path:
        cfg = self.dir / "config.yml"
        cfg.write_text(
            "version: 0.1\n"
            "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
            "storage:\n"
            f"  filesystem:\n    rootdirectory: {self.dir / 'data'}\n"
            "  delete:\n    enabled: true\n"
            f"http:\n  addr: {self.host}\n"
        )
        return cfg

    def start(self) -> None:
        """Start with empty storage and wait until /v2/ answers."""
        self.dir.mkdir(parents=True, exist_ok=True)
        cfg = self._write_config()
        logf = open(self.log, "a")
        self.proc = subprocess.Popen(
            ["docker-registry", "serve", str(cfg)], stdout=logf, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"docker-registry exited at start (see {self.log})")
            try:
                with urllib.request.urlopen(f"http://{self.host}/v2/", timeout=1) as r:
                    if r.status == 200:
                        debug(f"registry up on {self.host}")
                        return
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        raise RuntimeError(f"docker-registry did not answer on {self.host} within 20 s")

    def _dropin(self, home: Path) -> Path:
        return home / ".config/containers/registries.conf.d/50-kiln-bench.conf"

    def trust_for(self, user: BenchUser) -> None:
        """Mark the registry insecure (plain http) in the bench user's registries.conf drop-in dir,
        for tools that read registries.conf rather than take --tls-verify=false."""
        path = self._dropin(user.home)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f'[[registry]]\nlocation = "{self.host}"\ninsecure = true\n')
        for p in (path, path.parent, path.parent.parent, path.parent.parent.parent):
            if p == user.home:
                break
            os.chown(p, user.uid, user.gid)

    def untrust(self, user: BenchUser) -> None:
        """Remove what trust_for wrote."""
        self._dropin(user.home).unlink(missing_ok=True)

    def stop(self) -> None:
        """Stop the process this object started."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def wipe(self) -> None:
        """Restart with empty storage, so the next push uploads every blob."""
        self.stop()
        shutil.rmtree(self.dir / "data", ignore_errors=True)
        self.start()

    def catalog(self) -> list[str]:
        """Repositories the registry holds."""
        try:
            with urllib.request.urlopen(f"http://{self.host}/v2/_catalog", timeout=5) as r:
                return list(json.load(r).get("repositories") or [])
        except (urllib.error.URLError, OSError, ValueError):
            return []

    def has(self, repo: str, tag: str) -> bool:
        """Whether repo:tag has a manifest."""
        req = urllib.request.Request(
            f"http://{self.host}/v2/{repo}/manifests/{tag}",
            method="HEAD",
            headers={
                "Accept": "application/vnd.oci.image.manifest.v1+json,"
                "application/vnd.docker.distribution.manifest.v2+json"
            },
        )
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

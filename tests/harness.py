"""Real servers on loopback for integration tests: the gateway CLI, Orthanc, DCMTK storescu.

Everything runs as a subprocess, as a user would run it, on free ports in a test's own folder.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

STORESCU = shutil.which("storescu", path="/usr/bin:/usr/local/bin") or "/usr/bin/storescu"
ORTHANC = shutil.which("Orthanc", path="/usr/sbin:/usr/bin") or "/usr/sbin/Orthanc"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Any, timeout: float, interval: float = 0.1, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what or predicate}")


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


def storescu(
    port: int,
    paths: Sequence[Path],
    called: str = "DEID_GATEWAY",
    calling: str = "MODALITY",
    options: Sequence[str] = ("-xr",),
    check: bool = True,
    timeout: float = 600,
) -> subprocess.CompletedProcess[str]:
    """Run DCMTK's storescu (``TCP_NODELAY=1``: without it DCMTK waits ~40 ms per image)."""
    env = {**os.environ, "TCP_NODELAY": "1"}
    cmd = [STORESCU, *options, "-aet", calling, "-aec", called, "127.0.0.1", str(port)]
    cmd += [str(p) for p in paths]
    if any(p.is_dir() for p in paths):
        cmd[1:1] = ["+sd", "+r"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"storescu failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return proc


def c_store(port: int, files: Sequence[Path], sop_class: str = "1.2.840.10008.5.1.4.1.1.2",
            called: str = "DEID_GATEWAY") -> list[int]:
    """Send ``files`` (Explicit VR Little Endian, CT by default) over one pynetdicom
    association and return each C-STORE status; an association aborted before an answer
    fails the test."""
    from pydicom.uid import ExplicitVRLittleEndian
    from pynetdicom import AE

    ae = AE(ae_title="MODALITY")
    ae.add_requested_context(sop_class, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", port, ae_title=called)
    assert assoc.is_established
    statuses = []
    for f in files:
        rsp = assoc.send_c_store(f)
        assert assoc.is_established and "Status" in rsp, "association aborted, no answer"
        statuses.append(int(rsp.Status))
    assoc.release()
    return statuses


DCMSEND = shutil.which("dcmsend", path="/usr/bin:/usr/local/bin") or "/usr/bin/dcmsend"


def dcmsend(port: int, folder: Path, called: str = "DEID_GATEWAY",
            calling: str = "MODALITY", timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run DCMTK's dcmsend on a folder: it proposes each file's own transfer syntax, so a
    folder mixing compressed syntaxes goes in one run (storescu proposes one at most)."""
    env = {**os.environ, "TCP_NODELAY": "1"}
    cmd = [DCMSEND, "-v", "-aet", calling, "-aec", called, "+sd", "+r", "127.0.0.1", str(port),
           str(folder)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"dcmsend failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return proc


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` (``"8m"``) mounted at ``path`` for the block (root only), so that a
    test can fill a real file system; unmounted (lazily, if still busy) afterwards."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
                   check=True, capture_output=True)
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


def can_mount() -> bool:
    """Whether this process may mount a tmpfs (root with the mount command)."""
    return os.geteuid() == 0 and shutil.which("mount") is not None


def fill(path: Path, chunk: int = 64 * 1024) -> int:
    """Write ``path`` until its file system is full (as another program would); returns the
    bytes written. Delete the file to free the space again."""
    written = 0
    block = b"\0" * chunk
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        while True:
            try:
                written += os.write(fd, block)
            except OSError as err:
                if err.errno != errno.ENOSPC:
                    raise
                if len(block) == 1:
                    return written
                block = block[: len(block) // 2]  # top up the last partial page too
    finally:
        os.close(fd)


PG_BINS = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))


class Postgres:
    """A PostgreSQL server of the test's own (``initdb``, ``pg_ctl``) on a free loopback port,
    which a test may stop and start again without disturbing the shared server. Run as the
    ``postgres`` user when the test runs as root (the server refuses root); its folder is in
    /tmp, where that user can reach it."""

    def __init__(self) -> None:
        if not PG_BINS:
            raise RuntimeError("PostgreSQL's server programs are not installed")
        self.bin = PG_BINS[-1].parent
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="deid-pg-"))
        self.data = self.root / "data"
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
                  "-E", "UTF8", "--no-sync")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, program: str, *args: str) -> None:
        cmd = [str(self.bin / program), *args]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)

    def start(self) -> Postgres:
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c max_connections=200")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"),
                  "-o", options, "-w", "start")
        return self

    def stop(self) -> None:
        """A fast shutdown: sessions are ended, new connections refused."""
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def destroy(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


class Orthanc:
    """A real Orthanc (Debian package) with its own storage, HTTP on loopback only."""

    def __init__(self, root: Path, aet: str = "ORTHANC") -> None:
        self.root = root
        self.aet = aet
        self.http_port = free_port()
        self.dicom_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        root.mkdir(parents=True, exist_ok=True)
        self.config = root / "orthanc.json"
        self.config.write_text(json.dumps({
            "Name": "test-research-pacs",
            "StorageDirectory": str(root / "storage"),
            "IndexDirectory": str(root / "index"),
            "HttpPort": self.http_port,
            "DicomPort": self.dicom_port,
            "DicomAet": aet,
            "RemoteAccessAllowed": False,  # HTTP answers loopback only
            "AuthenticationEnabled": False,
            "DicomCheckCalledAet": False,
            "DicomAlwaysAllowStore": True,
            "DicomAlwaysAllowEcho": True,
            "StorageCompression": False,
            "Plugins": [],
            "DicomThreadsCount": 4,
            "HttpThreadsCount": 4,
            "ConcurrentJobs": 1,
            "SaveJobs": False,
        }))

    def start(self) -> Orthanc:
        log = open(self.root / "orthanc.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen([ORTHANC, str(self.config)], stdout=log, stderr=log)
        wait_for(self._up, 30, what="Orthanc")
        return self

    def _up(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"Orthanc exited: {(self.root / 'orthanc.log').read_text()[-2000:]}")
        try:
            self.get("/system")
            return port_open(self.dicom_port)
        except (urllib.error.URLError, ConnectionError, OSError):
            return False

    def get(self, path: str) -> Any:
        url = f"http://127.0.0.1:{self.http_port}{path}"
        with urllib.request.urlopen(url, timeout=10) as r:
            return json.loads(r.read())

    def count_instances(self) -> int:
        return int(self.get("/statistics")["CountInstances"])

    def sop_instance_uids(self) -> list[str]:
        out = []
        for iid in self.get("/instances"):
            tags = self.get(f"/instances/{iid}/simplified-tags")
            out.append(tags["SOPInstanceUID"])
        return out

    def new_instance_events(self) -> int:
        """How many times an instance was stored as new (a duplicate would not count)."""
        n, since = 0, 0
        while True:
            page = self.get(f"/changes?since={since}&limit=1000")
            n += sum(1 for c in page["Changes"] if c["ChangeType"] == "NewInstance")
            if page["Done"]:
                return n
            since = page["Last"]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@contextlib.contextmanager
def orthanc(root: Path) -> Iterator[Orthanc]:
    o = Orthanc(root).start()
    try:
        yield o
    finally:
        o.stop()


class Gateway:
    """``deid-gateway serve -c <file>`` as a subprocess, in its own folder."""

    def __init__(self, root: Path, config: dict[str, Any]) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.port = config.setdefault("receiver", {}).setdefault("port", free_port())
        config.setdefault("spool", {}).setdefault("root", str(root / "spool"))
        config.setdefault("database", {}).setdefault("url", f"sqlite:///{root / 'gateway.db'}")
        config.setdefault("metrics", {}).setdefault("port", free_port())
        config.setdefault("workers", {}).setdefault("count", 2)
        self.settings = config
        self.config_path = root / "gateway.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = root / "gateway.log"

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "gateway.cli", *args, "-c", str(self.config_path)],
            capture_output=True, text=True, cwd=self.root, timeout=120,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"deid-gateway {' '.join(args)}: {proc.stderr[-3000:]}")
        return proc

    def start(self, timeout: float = 60) -> Gateway:
        log = open(self.log_path, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "serve", "-c", str(self.config_path)],
            stdout=log, stderr=log, cwd=self.root, start_new_session=True,
        )
        wait_for(self._up, timeout, what="gateway receiver")
        return self

    def _up(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"gateway exited: {self.log_path.read_text()[-3000:]}")
        return port_open(self.port)

    def kill(self) -> None:
        """SIGKILL the whole gateway (serve process and its workers), as a crash would."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout: float = 60) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def status(self) -> dict[str, int]:
        out = self.cli("status").stdout
        counts = {}
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1].isdigit():
                counts[parts[0]] = int(parts[1])
        return counts

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    @property
    def runtime_dir(self) -> Path:
        """The gateway's runtime folder (metrics files, sockets, identity memory)."""
        from gateway.config import parse_settings

        return parse_settings(self.settings).runtime_dir


@contextlib.contextmanager
def gateway(root: Path, config: dict[str, Any]) -> Iterator[Gateway]:
    g = Gateway(root, config).start()
    try:
        yield g
    finally:
        try:
            g.stop()
        finally:
            if g.proc is not None and g.proc.poll() is None:
                g.kill()
            shutil.rmtree(g.runtime_dir, ignore_errors=True)  # in /dev/shm unless configured


def destination(o: Orthanc, name: str = "research", **extra: Any) -> dict[str, Any]:
    return {"name": name, "ae_title": o.aet, "host": "127.0.0.1", "port": o.dicom_port, **extra}

"""A real, private, one-node SLURM cluster for tests (no mocks).

:func:`start_cluster` starts ``munged``, ``slurmctld`` and ``slurmd`` (Debian ``munge`` and
``slurm-wlm``) in the foreground as child processes, with **everything** under one folder:

``ROOT/``
    ``slurm.conf``      the cluster's only configuration (``SLURM_CONF`` points here for
                        the daemons and for every client command)
    ``plugstack.conf``  empty, so nothing in /etc/slurm is read
    ``munge/``          ``munge.key`` (random, 0400), ``munge.socket``, pid and seed files
                        (the socket goes to a short mkdtemp folder if ROOT's path is too
                        long for a Unix socket)
    ``state/``          ``StateSaveLocation``
    ``spool/``          ``SlurmdSpoolDir`` (slurmstepd sockets, job scripts)
    ``log/``            ``slurmctld.log``, ``slurmd.log``, ``jobcomp.txt`` and each daemon's
                        stdout/stderr (``munged.stdout`` is munged's log)
    ``run/``            slurm pid files

The node is this host under the name slurmd finds for itself (``hostname -s``, as
``slurmd -C`` prints it), at 127.0.0.1, with the CPUs ``slurmd -C`` reports (at least 2),
``ProctrackType=proctrack/linuxproc`` and ``TaskPlugin=task/none`` (no cgroups), so it
runs as root in a container. ``SlurmctldPort``/``SlurmdPort`` are free TCP ports picked at
start (picked again if a daemon finds one taken), ``FirstJobId`` is random, and no system
munge socket or /etc/slurm file is used: several clusters (several pytest sessions) run
side by side on one machine. ``munged`` runs with ``--force`` because pytest's temporary
folders (0700) are not searchable by all users, which it would otherwise refuse; only
root uses this socket. ``AuthInfo=...,cred_expire=10`` lets a requeued job start again
after 10 s instead of 120 s.

:meth:`SlurmCluster.stop` cancels what is left in the queue, then stops the three daemons
**by the PIDs this module started** (SIGTERM, then SIGKILL after a grace period). Nothing
is matched by name, so other sessions' daemons are never touched. The daemons also get
SIGTERM from Linux if the test process itself dies (``PR_SET_PDEATHSIG``).

Use it from a module-scoped fixture::

    @pytest.fixture(scope="module")
    def slurm(tmp_path_factory):
        skip_reason = missing_slurm()
        if skip_reason:
            pytest.skip(skip_reason)
        cluster = start_cluster(tmp_path_factory.mktemp("slurm"))
        yield cluster
        cluster.stop()
"""

from __future__ import annotations

import ctypes
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "INSTALL_HINT",
    "TERMINAL_STATES",
    "JobFailed",
    "SlurmCluster",
    "assert_completed",
    "log_of",
    "missing_slurm",
    "parse_scontrol_record",
    "start_cluster",
]

INSTALL_HINT = "run `sudo .ci/install-slurm.sh` (Debian packages slurm-wlm and munge)"

#: Programs the cluster needs. Daemons live in /usr/sbin, often not on a user's PATH.
_CLIENTS = ("sbatch", "srun", "squeue", "sinfo", "scontrol", "scancel")
_DAEMONS = ("munged", "slurmctld", "slurmd")
_SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin", "/usr/bin"])

#: Job states after which a job will not run again (``scontrol show job`` spelling).
TERMINAL_STATES = frozenset(
    {
        "COMPLETED",
        "FAILED",
        "CANCELLED",
        "TIMEOUT",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "BOOT_FAIL",
        "DEADLINE",
        "PREEMPTED",
        "SPECIAL_EXIT",
        "REVOKED",
    }
)

#: Unix socket paths longer than this do not fit ``sockaddr_un`` (108 bytes with the NUL).
_MAX_SOCKET_PATH = 100
#: Memory the node advertises, MiB: small, so the node registers on any test machine.
_NODE_MEMORY_MB = 1024
#: Job credential lifetime, s; also how long a requeued job waits before it may start
#: again (SLURM's default: 120 s, too long for a test of requeueing).
_CRED_EXPIRE_S = 10
#: ``prctl`` option: signal sent to a process when its parent dies (linux/prctl.h).
_PR_SET_PDEATHSIG = 1
#: Attempts to start the cluster when a picked port was taken in the meantime.
_START_ATTEMPTS = 3
#: Environment prefixes that would make client commands talk to another cluster or job.
_SLURM_ENV_PREFIXES = ("SLURM_", "SBATCH_", "SRUN_", "SALLOC_", "SQUEUE_", "SINFO_", "SCONTROL_")


class JobFailed(AssertionError):
    """A job ended in a state other than COMPLETED, or did not end in time."""


def _which(name: str) -> str | None:
    return shutil.which(name, path=_SEARCH_PATH)


def missing_slurm() -> str | None:
    """Why a real cluster cannot be started here, or ``None`` when it can.

    >>> reason = missing_slurm()
    >>> reason is None or "install-slurm.sh" in reason or "root" in reason
    True
    """
    missing = [name for name in (*_CLIENTS, *_DAEMONS) if _which(name) is None]
    if missing:
        return f"SLURM/munge programs not installed ({', '.join(missing)} missing): {INSTALL_HINT}"
    if os.geteuid() != 0:
        return "the test SLURM cluster runs its daemons as root (SlurmUser=root); run the tests as root"
    return None


def _free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports that were free a moment ago (bound to port 0, then closed)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without SLURM job/client variables (the tests may
    themselves run inside a SLURM job), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SLURM_ENV_PREFIXES)}
    env["PATH"] = _SEARCH_PATH
    env.update(extra or {})
    return env


def _node_hardware() -> dict[str, int]:
    """Name, CPUs and topology from ``slurmd -C`` (``NodeName=vm CPUs=2 Boards=1 ...``).

    The name is the one slurmd will look itself up by: ``hostname -s``.
    """
    out = subprocess.run([_which("slurmd"), "-C"], capture_output=True, text=True, timeout=60, check=True).stdout
    first = out.splitlines()[0] if out else ""
    hw: dict = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", first)}
    name = re.search(r"NodeName=(\S+)", first)
    if "CPUs" not in hw or not name:
        raise RuntimeError(f"`slurmd -C` printed no NodeName=... CPUs=N line: {out!r}")
    hw["NodeName"] = name.group(1)
    return hw


def parse_scontrol_record(line: str) -> dict[str, str]:
    """One ``scontrol -o show ...`` line -> ``{key: value}``; a value may contain spaces.

    >>> parse_scontrol_record("JobId=7 JobName=a b JobState=COMPLETED ExitCode=0:0")
    {'JobId': '7', 'JobName': 'a b', 'JobState': 'COMPLETED', 'ExitCode': '0:0'}
    """
    record: dict[str, str] = {}
    key = None
    for token in line.split(" "):
        match = re.match(r"^([A-Za-z][A-Za-z0-9_:/]*)=(.*)$", token)
        if match:
            key = match.group(1)
            record[key] = match.group(2)
        elif key is not None and token:
            record[key] += " " + token
    return record


@dataclass
class SlurmCluster:
    """A running private cluster; see the module docstring. Use :func:`start_cluster`."""

    root: Path
    hostname: str
    cpus: int
    ports: tuple[int, int]
    munge_socket: Path
    env: dict[str, str]
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    _log_handles: list = field(default_factory=list, repr=False)

    @property
    def conf(self) -> Path:
        return self.root / "slurm.conf"

    # ------------------------------------------------------------------ clients
    def run(
        self,
        args: Sequence[str],
        *,
        timeout: float = 60,
        check: bool = True,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> subprocess.CompletedProcess:
        """Run a client command (``sbatch``, ``squeue``, ...) against this cluster."""
        full_env = dict(self.env, **(env or {}))
        proc = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, env=full_env, cwd=cwd)
        if check and proc.returncode != 0:
            raise RuntimeError(
                f"`{' '.join(map(str, args))}` exited {proc.returncode}\n"
                f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}\n{self.logs()}"
            )
        return proc

    def sbatch(
        self,
        script: Path | str,
        *script_args: str,
        options: Sequence[str] = (),
        export: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> int:
        """Submit ``script`` with ``sbatch [options] script [script_args]``; returns the job id.

        ``export`` is passed as ``--export=ALL,K=V,...`` (values must not contain commas).
        """
        args = [_which("sbatch"), "--parsable"]
        if export:
            bad = [k for k, v in export.items() if "," in str(v)]
            if bad:
                raise ValueError(f"--export values cannot contain commas: {bad}; pass them through env")
            args.append("--export=ALL," + ",".join(f"{k}={v}" for k, v in export.items()))
        args += [*options, str(script), *script_args]
        out = self.run(args, cwd=cwd).stdout.strip()
        return int(out.split(";")[0])

    def jobs(self, job_id: int) -> list[dict[str, str]]:
        """``scontrol show job`` records of ``job_id`` (one per array task once they started)."""
        proc = self.run([_which("scontrol"), "-o", "show", "job", str(job_id)], check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"scontrol show job {job_id} failed: {proc.stderr.strip()}\n{self.logs()}")
        return [parse_scontrol_record(line) for line in proc.stdout.splitlines() if line.strip()]

    def wait(
        self, job_id: int, *, timeout: float = 300, poll_s: float = 1.0, expect: str | None = "COMPLETED"
    ) -> list[dict[str, str]]:
        """Poll ``scontrol show job`` until every record of ``job_id`` is in a terminal state.

        Returns the records. Raises :class:`JobFailed` (with the records and daemon logs)
        on timeout, or when ``expect`` is given and some record ended in another state.
        """
        deadline = time.monotonic() + timeout
        while True:
            records = self.jobs(job_id)
            states = [r.get("JobState", "?") for r in records]
            pending_array = any("[" in r.get("ArrayTaskId", "") or "-" in r.get("ArrayTaskId", "") for r in records)
            if records and not pending_array and all(s in TERMINAL_STATES for s in states):
                break
            if time.monotonic() > deadline:
                raise JobFailed(
                    f"job {job_id} not finished after {timeout:.0f} s: states {states}\n"
                    f"{_fmt_records(records)}\n{self.logs()}"
                )
            time.sleep(poll_s)
        if expect is not None and any(s != expect for s in states):
            raise JobFailed(
                f"job {job_id} ended in states {states}, expected all {expect}\n{_fmt_records(records)}\n{self.logs()}"
            )
        return records

    def wait_node_idle(self, timeout: float = 60) -> None:
        """Wait until ``sinfo`` shows the node idle (slurmd registered, node usable)."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            self._check_alive()
            proc = self.run([_which("sinfo"), "-h", "-N", "-o", "%N %T"], check=False, timeout=30)
            last = (proc.stdout + proc.stderr).strip()
            if proc.returncode == 0 and f"{self.hostname} idle" in proc.stdout:
                return
            time.sleep(0.5)
        raise RuntimeError(f"node {self.hostname} not idle after {timeout:.0f} s; sinfo says: {last!r}\n{self.logs()}")

    # ------------------------------------------------------------------ daemons
    def _check_alive(self) -> None:
        dead = {name: p.returncode for name, p in self.processes.items() if p.poll() is not None}
        if dead:
            raise RuntimeError(f"daemon(s) exited early: {dead}\n{self.logs()}")

    def logs(self, tail_lines: int = 40) -> str:
        """The last lines of every daemon log, for failure messages."""
        parts = []
        for path in sorted((self.root / "log").glob("*")) + sorted((self.root / "munge").glob("*.log")):
            try:
                lines = path.read_text(errors="replace").splitlines()[-tail_lines:]
            except OSError as exc:
                lines = [f"<unreadable: {exc}>"]
            parts.append(f"----- {path} (last {tail_lines} lines) -----\n" + "\n".join(lines))
        return "\n".join(parts)

    def stop(self, grace_s: float = 15, *, remove_socket_dir: bool = True) -> None:
        """Cancel remaining jobs, then stop the daemons this cluster started, by PID.

        Safe to call more than once.
        """
        if self.processes.get("slurmctld") and self.processes["slurmctld"].poll() is None:
            self.run([_which("scancel"), "--full", "--user", str(os.geteuid())], check=False, timeout=30)
            deadline = time.monotonic() + grace_s
            while time.monotonic() < deadline:
                proc = self.run([_which("squeue"), "-h", "-o", "%i"], check=False, timeout=30)
                if proc.returncode != 0 or not proc.stdout.strip():
                    break
                time.sleep(0.5)
        # Reverse start order: slurmd, slurmctld, munged.
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self.processes.get(name)
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=grace_s)
        for handle in self._log_handles:
            handle.close()
        self._log_handles.clear()
        if remove_socket_dir and self.munge_socket.parent != self.root / "munge":  # short folder outside ROOT
            shutil.rmtree(self.munge_socket.parent, ignore_errors=True)


def log_of(record: dict[str, str]) -> Path:
    """The ``StdOut`` file of a job record."""
    return Path(record["StdOut"])


def assert_completed(cluster: SlurmCluster, records: list[dict[str, str]]) -> None:
    """Every record COMPLETED with exit code 0; else an assertion with its log and the daemons'."""
    for r in records:
        log = log_of(r)
        text = log.read_text(errors="replace") if log.exists() else "<no log>"
        assert r["JobState"] == "COMPLETED" and r["ExitCode"] == "0:0", (
            f"job {r['JobId']}: {r['JobState']} exit {r['ExitCode']}\n--- {log}\n{text}\n{cluster.logs()}"
        )


def _fmt_records(records: list[dict[str, str]]) -> str:
    keys = ("JobId", "ArrayJobId", "ArrayTaskId", "JobState", "Reason", "ExitCode", "StdOut")
    return "\n".join("  " + " ".join(f"{k}={r[k]}" for k in keys if k in r) for r in records)


def _write_conf(cluster: SlurmCluster, hw: Mapping[str, int]) -> None:
    root = cluster.root
    ctld_port, slurmd_port = cluster.ports
    topology = " ".join(
        f"{k}={hw[k]}"
        for k in ("Boards", "SocketsPerBoard", "CoresPerSocket", "ThreadsPerCore")
        if k in hw and hw.get("CPUs", 0) == cluster.cpus
    )
    conf = f"""\
# Private test cluster written by tests/slurm_cluster.py; see its docstring.
ClusterName=hpasegtest
SlurmctldHost={cluster.hostname}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={cluster.munge_socket},cred_expire={_CRED_EXPIRE_S}
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/run/slurmctld.pid
SlurmdPidFile={root}/run/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
PlugStackConfig={root}/plugstack.conf
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobContainerType=job_container/none
SwitchType=switch/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc={root}/log/jobcomp.txt
FirstJobId={random.randint(1000, 900000)}
MinJobAge=3600
MailProg=/bin/true
ReturnToService=2
InactiveLimit=0
KillWait=5
Waittime=0
TmpFS={root}/tmp
NodeName={cluster.hostname} NodeAddr=127.0.0.1 CPUs={cluster.cpus} {topology} RealMemory={_NODE_MEMORY_MB} State=UNKNOWN
PartitionName=debug Nodes={cluster.hostname} Default=YES MaxTime=INFINITE State=UP
"""
    if cluster.cpus != hw["CPUs"]:  # fewer CPUs than the 2-task tests need: trust the conf
        conf += "SlurmdParameters=config_overrides\n"
    (root / "slurm.conf").write_text(conf)
    (root / "plugstack.conf").write_text("")


def _munge_socket_path(root: Path) -> Path:
    path = root / "munge" / "munge.socket"
    if len(str(path)) <= _MAX_SOCKET_PATH:
        return path
    short = Path(tempfile.mkdtemp(prefix="hpaseg-munge-"))  # removed by stop()
    return short / "munge.socket"


def _start(name: str, args: list[str], cluster: SlurmCluster) -> None:
    out = open(cluster.root / "log" / f"{name}.stdout", "wb")
    cluster._log_handles.append(out)
    cluster.processes[name] = subprocess.Popen(
        args,
        stdout=out,
        stderr=subprocess.STDOUT,
        env=cluster.env,
        stdin=subprocess.DEVNULL,
        preexec_fn=_die_with_parent,
    )


def _die_with_parent() -> None:
    """In the daemon, before exec: ask Linux for SIGTERM when the test process dies, so
    a killed pytest does not leave daemons behind (best effort; Linux only)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _wait_for(predicate, what: str, cluster: SlurmCluster, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        cluster._check_alive()
        time.sleep(0.2)
    raise RuntimeError(f"{what} not ready after {timeout:.0f} s\n{cluster.logs()}")


def start_cluster(root: Path, *, timeout: float = 90) -> SlurmCluster:
    """Start munged, slurmctld and slurmd under ``root``; return when the node is idle.

    Retries with new ports when a daemon could not bind the ones picked (another process
    took them in between). On failure the daemons already started are stopped before the
    error, which carries the daemons' logs, propagates.
    """
    root = Path(root).resolve()
    for sub in ("munge", "state", "spool", "log", "run", "tmp"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    # The key and the socket are private to root: munged (run with --force) only warns
    # that a pytest temp folder (0700) is not searchable by all users.
    for sub in ("", "munge"):
        os.chmod(root / sub, 0o700)
    hw = _node_hardware()
    munge_socket = _munge_socket_path(root)
    key = root / "munge" / "munge.key"
    key.write_bytes(os.urandom(1024))
    os.chmod(key, 0o400)
    for attempt in range(1, _START_ATTEMPTS + 1):
        cluster = SlurmCluster(
            root=root,
            hostname=str(hw["NodeName"]),
            cpus=max(2, hw["CPUs"]),
            ports=tuple(_free_ports(2)),  # type: ignore[arg-type]
            munge_socket=munge_socket,
            env=_clean_env({"SLURM_CONF": str(root / "slurm.conf")}),
        )
        _write_conf(cluster, hw)
        try:
            _start_daemons(cluster, key, timeout)
            return cluster
        except RuntimeError:
            logs = cluster.logs()
            cluster.stop(remove_socket_dir=False)
            if attempt == _START_ATTEMPTS or "Address already in use" not in logs:
                if munge_socket.parent != root / "munge":
                    shutil.rmtree(munge_socket.parent, ignore_errors=True)
                raise
    raise AssertionError("unreachable")


def _start_daemons(cluster: SlurmCluster, key: Path, timeout: float) -> None:
    munge = cluster.root / "munge"
    _start(
        "munged",
        [
            _which("munged"),
            "--foreground",
            "--force",
            f"--socket={cluster.munge_socket}",
            f"--key-file={key}",
            f"--pid-file={munge / 'munged.pid'}",
            f"--log-file={munge / 'munged.log'}",
            f"--seed-file={munge / 'munged.seed'}",
        ],
        cluster,
    )
    _wait_for(cluster.munge_socket.exists, f"munged socket {cluster.munge_socket}", cluster, timeout)
    _start("slurmctld", [_which("slurmctld"), "-D", "-c", "-f", str(cluster.conf)], cluster)

    def controller_up() -> bool:
        proc = cluster.run([_which("scontrol"), "ping"], check=False, timeout=30)
        return proc.returncode == 0 and "UP" in proc.stdout

    _wait_for(controller_up, "slurmctld (scontrol ping)", cluster, timeout)
    _start("slurmd", [_which("slurmd"), "-D", "-f", str(cluster.conf)], cluster)
    cluster.wait_node_idle(timeout)

"""A real one-node SLURM cluster on this machine, for tests/test_slurm.py.

``slurm_cluster`` (session-scoped) installs Debian's ``slurm-wlm`` and ``munge`` when they
are missing, writes a minimal ``slurm.conf`` (this host as the only node, one partition
``debug``, no accounting, no cgroups) with every state, spool, log, PID file and socket
under a temporary directory, starts ``munged``, ``slurmctld`` and ``slurmd`` as root, and
waits until ``sinfo`` shows the node idle. ``SLURM_CONF`` points the clients (``sbatch``,
``sinfo``, ``scontrol``, and ``srun`` inside the jobs, which inherit the environment) at
it. Teardown stops the daemons it started, by PID, and checks that none is left.

Skipped (with the reason) where this cannot work: not root, not Debian, no apt-get, the
packages not installable, or another ``slurmctld`` already running on this machine.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

PACKAGES = ("slurm-wlm", "munge")
DAEMONS = ("munged", "slurmctld", "slurmd")
NEEDED = ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "srun", "sinfo", "scontrol")
# A requeued job may start again only after the credential lifetime (default 120 s).
CRED_EXPIRE_S = 10


@dataclass
class Cluster:
    root: Path
    conf: Path
    node: str
    partition: str = "debug"
    pids: dict[str, int] = field(default_factory=dict)
    before: set[int] = field(default_factory=set)  # such daemons already running (munged)
    install_s: float = 0.0
    start_s: float = 0.0

    def env(self) -> dict[str, str]:
        return {"SLURM_CONF": str(self.conf)}

    def run(self, *args: str, check: bool = True, timeout: float = 30) -> str:
        proc = subprocess.run(
            list(args),
            env={**os.environ, **self.env()},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(args)}: exit {proc.returncode}: {proc.stderr}")
        return proc.stdout

    def jobs(self) -> list[dict[str, str]]:
        """The jobs slurmctld knows (running, pending, and finished ones for MinJobAge)."""
        out = self.run("squeue", "-h", "-a", "-t", "all", "-o", "%i|%T|%r|%j")
        return [
            dict(zip(("id", "state", "reason", "name"), line.split("|"), strict=False))
            for line in out.splitlines()
            if line.strip()
        ]

    def job(self, job_id: str) -> dict[str, str]:
        """``scontrol show job`` as a dict (first record; its keys as SLURM spells them)."""
        out = self.run("scontrol", "-o", "show", "job", job_id)
        fields = {}
        for token in out.split("\n")[0].split():
            key, _, value = token.partition("=")
            fields[key] = value
        return fields

    def log(self, daemon: str, lines: int = 40) -> str:
        path = self.root / f"{daemon}.log"
        return "\n".join(path.read_text().splitlines()[-lines:]) if path.exists() else ""


def _skip_unless_possible() -> None:
    if os.name != "posix" or os.geteuid() != 0:
        pytest.skip("a real SLURM cluster needs root (it starts munged, slurmctld, slurmd)")
    if not Path("/etc/debian_version").exists() or shutil.which("apt-get") is None:
        pytest.skip("the SLURM fixture installs Debian's slurm-wlm and munge: not Debian")
    others = _running(("slurmctld", "slurmd"))
    if others:
        pytest.skip(
            f"another SLURM daemon already runs on this machine (PIDs {others}): "
            "not starting a second cluster next to it"
        )


def _running(names) -> list[int]:
    """PIDs of processes whose executable name is one of ``names``."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            comm = (proc / "comm").read_text().strip()
        except OSError:
            continue
        if comm in names and _alive(int(proc.name)):
            pids.append(int(proc.name))
    return pids


def _install() -> float:
    """apt-get install the packages if a command is missing; the seconds it took."""
    if all(shutil.which(cmd) for cmd in NEEDED):
        return 0.0
    start = time.monotonic()
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # no service starts from the packages' postinst scripts: the fixture starts its own
    policy = Path("/usr/sbin/policy-rc.d")
    own_policy = not policy.exists()
    if own_policy:
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    try:
        install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *PACKAGES]
        proc = subprocess.run(install, env=env, capture_output=True, text=True)
        if proc.returncode != 0:  # stale or missing package lists: update once, try again
            subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True)
            proc = subprocess.run(install, env=env, capture_output=True, text=True)
    finally:
        if own_policy:
            policy.unlink()
    if proc.returncode != 0 or not all(shutil.which(cmd) for cmd in NEEDED):
        pytest.skip(f"could not install {' '.join(PACKAGES)}: {proc.stderr.strip()[-300:]}")
    return time.monotonic() - start


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_conf(root: Path, node: str) -> Path:
    for sub in ("state", "spool"):
        (root / sub).mkdir(exist_ok=True)
    ctld_port, d_port = _free_port(), _free_port()
    conf = root / "slurm.conf"
    conf.write_text(
        f"""\
ClusterName=descentlab
SlurmctldHost={node}
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={root}/munge.socket,cred_expire={CRED_EXPIRE_S}
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/builtin
# look at pending jobs every 2 s, not 60: a requeued job waits out its begin time, then
# nothing else wakes the scheduler
SchedulerParameters=sched_interval=2
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
KillWait=10
MinJobAge=300
InactiveLimit=0
NodeName={node} CPUs={os.cpu_count()} State=UNKNOWN
PartitionName=debug Nodes={node} Default=YES MaxTime=INFINITE State=UP
"""
    )
    return conf


def _start_munged(cluster: Cluster) -> None:
    root = cluster.root
    key = root / "munge.key"
    subprocess.run(["mungekey", "--create", f"--keyfile={key}"], check=True, capture_output=True)
    key.chmod(0o600)
    subprocess.run(
        [
            "munged",
            "--force",
            f"--key-file={key}",
            f"--socket={root}/munge.socket",
            f"--pid-file={root}/munged.pid",
            f"--log-file={root}/munged.log",
            f"--seed-file={root}/munged.seed",
        ],
        check=True,
        capture_output=True,
    )  # munged daemonizes: its PID is in its PID file
    cluster.pids["munged"] = _read_pid(root / "munged.pid")


def _read_pid(path: Path, timeout: float = 10) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return int(path.read_text().strip())
        except (OSError, ValueError):
            time.sleep(0.1)
    raise AssertionError(f"no PID file {path}")


def _start_slurm(cluster: Cluster) -> None:
    env = {**os.environ, **cluster.env()}
    # -i: ignore state from an earlier run; both daemonize and write their PID files
    subprocess.run(["slurmctld", "-i"], env=env, check=True, capture_output=True)
    cluster.pids["slurmctld"] = _read_pid(cluster.root / "slurmctld.pid")
    subprocess.run(["slurmd"], env=env, check=True, capture_output=True)
    cluster.pids["slurmd"] = _read_pid(cluster.root / "slurmd.pid")


def _wait_idle(cluster: Cluster, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline:
        state = cluster.run("sinfo", "-h", "-N", "-o", "%T", check=False).strip()
        if state == "idle":
            return
        time.sleep(0.5)
    raise AssertionError(
        f"node not idle after {timeout} s (sinfo: {state!r})\n{cluster.log('slurmctld')}\n"
        f"{cluster.log('slurmd')}"
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is not running
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _stop(cluster: Cluster) -> None:
    # slurmd first (it ends its jobs' steps), then the controller, then munged
    for name in ("slurmd", "slurmctld", "munged"):
        pid = cluster.pids.get(name)
        if pid is None or not _alive(pid):
            continue
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
            time.sleep(0.5)


def start_cluster(root: Path) -> Cluster:
    _skip_unless_possible()
    install_s = _install()
    start = time.monotonic()
    node = socket.gethostname().split(".")[0]
    cluster = Cluster(root=root, conf=_write_conf(root, node), node=node, install_s=install_s)
    cluster.before = set(_running(DAEMONS))
    try:
        _start_munged(cluster)
        _start_slurm(cluster)
        _wait_idle(cluster)
    except BaseException:
        _stop(cluster)
        raise
    cluster.start_s = time.monotonic() - start
    return cluster


def _processes_of(conf: Path) -> list[int]:
    """PIDs started under this cluster (its ``SLURM_CONF`` in their environment): the job
    steps' ``slurmstepd`` and whatever they run. A step whose slurmd is gone can outlive it."""
    marker = f"SLURM_CONF={conf}".encode()
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            environ = (proc / "environ").read_bytes()
        except OSError:
            continue
        if marker in environ.split(b"\0") and _alive(int(proc.name)):
            pids.append(int(proc.name))
    return pids


def stop_cluster(cluster: Cluster) -> None:
    """Cancel what is left, stop the daemons by PID, end any job step left behind, and check
    that nothing of the cluster runs any more."""
    cluster.run("scancel", "--full", "-u", "root", check=False)
    _stop(cluster)
    for pid in _processes_of(cluster.conf):
        os.kill(pid, signal.SIGKILL)
    time.sleep(0.2)
    left = {name: pid for name, pid in cluster.pids.items() if _alive(pid)}
    assert not left, f"SLURM daemons still running after teardown: {left}"
    steps = _processes_of(cluster.conf)
    assert not steps, f"processes of the cluster still running after teardown: {steps}"
    others = sorted(set(_running(DAEMONS)) - cluster.before)
    assert not others, f"SLURM/munge daemons running after teardown: PIDs {others}"


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """A running one-node SLURM cluster (see the module docstring); SLURM_CONF set for the
    session's subprocesses."""
    root = tmp_path_factory.mktemp("slurm")
    root.chmod(0o700)
    cluster = start_cluster(root)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SLURM_CONF", str(cluster.conf))
        # submitit polls sacct, which fails without accounting: its warning every few
        # seconds says nothing here (jobs are followed through their result files)
        mp.setenv("SUBMITIT_LOG_LEVEL", "ERROR")
        yield cluster
    stop_cluster(cluster)

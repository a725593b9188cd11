"""Three real hosts for the Ansible tests, on this machine.

Each host is a real OpenSSH server of its own on a 127.0.0.1 port whose sessions are chrooted
(`ChrootDirectory`) into a Debian root of its own: the suite's debootstrap root plus Debian's
python3 (tests/test_pyz.py builds and caches it), as an overlay, with /proc, /dev and /dev/pts
bound. So Ansible connects over ssh, finds /usr/bin/python3, copies gpuwizard.pyz there and
runs it at `/` — each host's apt, dpkg, /etc and journal are its own, as on three servers.
The sshd's are started once per session; each test mounts fresh roots under them.

ChrootDirectory wants every folder above the root owned by root and writable by nobody else,
which rules out /tmp: the hosts live under /var/lib/gpuwizard-test-fleet/<pid>.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional

import pytest

REPO = Path(__file__).resolve().parent.parent
COLLECTIONS = REPO / "ansible"
TOP = Path("/var/lib/gpuwizard-test-fleet")
HOST_ROOT_VERSION = "bookworm-python3-gnupg-v1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class FleetHost:
    name: str
    port: int
    where: Path  # the folder holding the overlay; the root is where/"root"
    proc: Optional[subprocess.Popen[bytes]] = None

    @property
    def root(self) -> Path:
        return self.where / "root"


@dataclass
class Fleet:
    """The hosts, the ssh key, and how to run ansible-playbook against them."""

    hosts: list[FleetHost]
    key: Path
    folder: Path
    pyz: Path
    sha256: str
    host_vars: dict[str, dict[str, Any]] = field(default_factory=dict)
    extra_hosts: dict[str, dict[str, Any]] = field(default_factory=dict)  # e.g. a dead one

    def inventory(self, pin: bool = True, **group_vars: Any) -> Path:
        """A YAML inventory (written as JSON, which is YAML): the group gpu, its vars."""
        hosts = {
            h.name: {"ansible_host": "127.0.0.1", "ansible_port": h.port}
            | self.host_vars.get(h.name, {})
            for h in self.hosts
        } | self.extra_hosts
        base = {
            "ansible_user": "root",
            "ansible_ssh_private_key_file": str(self.key),
            "ansible_python_interpreter": "/usr/bin/python3",
        }
        if pin:
            base |= {"gpuwizard_pyz": str(self.pyz), "gpuwizard_pyz_sha256": self.sha256}
        doc = {"all": {"children": {"gpu": {"hosts": hosts, "vars": base | group_vars}}}}
        path = self.folder / "inventory.yml"
        path.write_text(json.dumps(doc, indent=2))
        return path

    def playbook(
        self,
        name: str,
        *args: str,
        results: Optional[Path] = None,
        as_a_checkout: bool = False,
        **group_vars: Any,
    ) -> subprocess.CompletedProcess[str]:
        """ansible-playbook from this venv with the collection from the checkout. With
        `as_a_checkout` the play is the checkout's own ansible/ beside a dist/ folder that
        `build_pyz.py` filled, and the inventory names no build: the role's defaults find it."""
        inventory = self.inventory(pin=not as_a_checkout, **group_vars)
        if as_a_checkout:
            play = self.pyz.parent.parent / "ansible"
            play.mkdir(exist_ok=True)
            shutil.copy2(COLLECTIONS / name, play / name)
            name = str(play / name)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "PYTHON"))}
        env.update(
            ANSIBLE_CONFIG=str(COLLECTIONS / "ansible.cfg"),
            ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS),
            ANSIBLE_HOST_KEY_CHECKING="False",
            ANSIBLE_PIPELINING="True",  # one ssh round trip a task, not four
            ANSIBLE_SSH_ARGS="-o ControlMaster=no -o UserKnownHostsFile=/dev/null",
            ANSIBLE_LOCAL_TEMP=str(self.folder / "ansible-local"),
            ANSIBLE_FORCE_COLOR="0",
            ANSIBLE_NOCOLOR="1",
            ANSIBLE_DEPRECATION_WARNINGS="False",
            GPUWIZARD_FLEET_FILE=str(results or (self.folder / "gpuwizard-fleet.json")),
        )
        bindir = Path(sys.executable).parent
        return subprocess.run(  # noqa: S603 - an argv list
            [str(bindir / "ansible-playbook"), "-i", str(inventory), name, "-f", "3", *args],
            cwd=str(COLLECTIONS),
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )


def closed_port() -> int:
    """A 127.0.0.1 port nobody listens on: a host that is down."""
    return _free_port()


def recap(output: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP's numbers per host: {'host1': {'ok': 7, 'changed': 1, ...}}."""
    out: dict[str, dict[str, int]] = {}
    lines = output.split("PLAY RECAP", 1)[-1].splitlines()[1:]
    for line in lines:
        if " : " not in line:
            continue
        host, _, rest = line.partition(" : ")
        out[host.strip()] = {k: int(v) for k, v in (p.split("=") for p in rest.split())}
    return out


def recap_lines(output: str) -> list[str]:
    tail = output.split("PLAY RECAP", 1)[-1].splitlines()[1:]
    return ["PLAY RECAP"] + [line.rstrip() for line in tail if " : " in line]


def _start_sshd(host: FleetHost, folder: Path, host_key: Path, auth: Path) -> None:
    binary = shutil.which("sshd") or "/usr/sbin/sshd"
    config = folder / f"sshd_config.{host.name}"
    config.write_text(
        f"Port {host.port}\nListenAddress 127.0.0.1\nHostKey {host_key}\n"
        f"AuthorizedKeysFile {auth}\nPermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
        f"StrictModes no\nPidFile {folder / (host.name + '.pid')}\nPrintMotd no\n"
        f"ChrootDirectory {host.root}\nSubsystem sftp internal-sftp\n"
        "ClientAliveInterval 0\nMaxStartups 30\n"
    )
    host.proc = subprocess.Popen(  # noqa: S603
        [binary, "-D", "-e", "-f", str(config)],
        stdout=open(folder / f"{host.name}.log", "wb"),  # noqa: SIM115 - lives with sshd
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", host.port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError("sshd did not start: " + (folder / f"{host.name}.log").read_text())


def _host_root_tarball(python: Path, where: Path) -> Path:
    """The python3 root plus gnupg, what a server has that gpuwizard checks keys on: built once
    with apt from the Debian mirror, cached by name like the other roots."""
    from tests.debroot import CACHE_DIR, MIRROR, debian_root

    tarball = CACHE_DIR / f"debroot-{HOST_ROOT_VERSION}.tar"
    if tarball.exists():
        return tarball
    import fcntl

    with open(CACHE_DIR / "debroot-fleet.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        if tarball.exists():
            return tarball
        lower = where / "lower"
        lower.mkdir()
        subprocess.run(["tar", "-C", str(lower), "-xf", str(python)], check=True)  # noqa: S603 S607
        with debian_root(lower, where / "work") as root:
            env = {"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
            for argv in (
                ["apt-get", "update", "-qq"],
                ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "gnupg"],
                ["apt-get", "clean"],
            ):
                r = subprocess.run(  # noqa: S603
                    ["chroot", str(root), *argv], capture_output=True, text=True, env=env
                )
                if r.returncode != 0:
                    pytest.skip(f"could not install gnupg from {MIRROR}: {r.stderr[-300:]}")
            shutil.rmtree(root / "var/lib/apt/lists", ignore_errors=True)
            (root / "var/lib/apt/lists/partial").mkdir(parents=True)
            from tests.debroot import mount_binds, unmount_binds

            unmount_binds(root)
            tmp = tarball.with_suffix(".tmp")
            subprocess.run(["tar", "-C", str(root), "-cf", str(tmp), "."], check=True)  # noqa: S603 S607
            os.replace(tmp, tarball)
            mount_binds(root)  # debian_root unmounts them
        shutil.rmtree(lower, ignore_errors=True)
    return tarball


@pytest.fixture(scope="session")
def fleet_base(
    debroot_base: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, list[FleetHost], Path, Path, str]]:
    """Once per session: the python3 root (read-only lower layer), gpuwizard.pyz, a key, and
    three sshd's (host1..host3) chrooted into where their roots will be mounted."""
    from tests.test_pyz import _python_root_tarball

    if shutil.which("sshd") is None and not Path("/usr/sbin/sshd").exists():
        pytest.fail("openssh-server is not installed (scripts/test installs it)")
    python = _python_root_tarball(debroot_base, tmp_path_factory.mktemp("fleet-pybuild"))
    top = TOP / str(os.getpid())
    shutil.rmtree(top, ignore_errors=True)
    top.mkdir(parents=True, mode=0o755)
    os.chmod(TOP, 0o755)
    base = top / "base"
    base.mkdir()
    tarball = _host_root_tarball(python, tmp_path_factory.mktemp("fleet-build"))
    subprocess.run(["tar", "-C", str(base), "-xf", str(tarball)], check=True)  # noqa: S603 S607
    pyz = top / "dist" / "gpuwizard.pyz"
    built = subprocess.run(  # noqa: S603
        [sys.executable, str(REPO / "scripts" / "build_pyz.py"), "--out", str(pyz)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if built.returncode != 0 and "could not fetch" in built.stderr:
        pytest.skip(f"no wheels and no PyPI for gpuwizard.pyz: {built.stderr.strip()[:300]}")
    assert built.returncode == 0, built.stderr
    sha = hashlib.sha256(pyz.read_bytes()).hexdigest()
    keys = top / "keys"
    keys.mkdir(mode=0o700)
    host_key, user_key = keys / "host_key", keys / "user_key"
    for k in (host_key, user_key):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(k)], check=True)  # noqa: S603 S607
    auth = keys / "authorized_keys"
    auth.write_text(Path(f"{user_key}.pub").read_text())
    os.chmod(auth, 0o600)
    Path("/run/sshd").mkdir(exist_ok=True)
    hosts = []
    for i in (1, 2, 3):
        h = FleetHost(f"host{i}", _free_port(), top / f"host{i}")
        h.root.mkdir(parents=True)
        _start_sshd(h, keys, host_key, auth)
        hosts.append(h)
    try:
        yield base, hosts, user_key, pyz, sha
    finally:
        for h in hosts:
            if h.proc is not None:
                h.proc.terminate()
                h.proc.wait(timeout=10)
        shutil.rmtree(top, ignore_errors=True)


@pytest.fixture
def fleet(fleet_base: Any, tmp_path: Path) -> Iterator[Fleet]:
    """Three hosts with fresh roots for one test."""
    from tests.debroot import debian_root

    base, hosts, key, pyz, sha = fleet_base
    with contextlib.ExitStack() as stack:
        for h in hosts:
            stack.enter_context(debian_root(base, h.where))
        yield Fleet(hosts, key, tmp_path, pyz, sha)

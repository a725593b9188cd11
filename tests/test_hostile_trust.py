"""Hostile inputs, trust and privilege (issue 13, items 1-5 and 13).

Each test is an attack tried for real: real gpg keys made here, real files and symlinks, a
real second user (made with useradd, run through setpriv with a clean environment, from /).
Keep these green: they are the promises of README's "Safety model".
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import secrets
import shutil
import stat
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Iterator

import pytest

from gpuwizard import events as ev
from gpuwizard.host.system import Host
from gpuwizard.journal import Journal

REPO = Path(__file__).resolve().parent.parent
SITE = sysconfig.get_paths()["purelib"]

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (useradd, chown)")


# -- a real second user -----------------------------------------------------------------------
class User:
    """An unprivileged account that runs gpuwizard from / with a clean environment."""

    def __init__(self, name: str, python: str) -> None:
        self.name = name
        self.python = python
        entry = pwd.getpwnam(name)
        self.uid, self.gid = entry.pw_uid, entry.pw_gid

    def run(
        self, *args: str, path: str = "/usr/bin:/bin", timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        boot = (
            "import sys; sys.path[:0] = [sys.argv.pop(1), sys.argv.pop(1)]; "
            "from gpuwizard.cli import run; run(sys.argv[1:])"
        )
        argv = [
            "setpriv",
            f"--reuid={self.uid}",
            f"--regid={self.gid}",
            "--clear-groups",
            "env",
            "-i",
            f"PATH={path}",
            "HOME=/nonexistent",
            "NO_COLOR=1",
            self.python,
            "-I",
            "-c",
            boot,
            str(REPO),
            SITE,
            *args,
        ]
        return subprocess.run(
            argv, cwd="/", capture_output=True, text=True, timeout=timeout, check=False
        )


def _python_for(uid: int, gid: int) -> str:
    """An interpreter the user can run: ours, or the system's of the same version (a pyenv
    under /root is not readable by others)."""
    candidates = [
        sys.executable,
        f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}",
    ]
    for exe in candidates:
        res = subprocess.run(
            [
                "setpriv",
                f"--reuid={uid}",
                f"--regid={gid}",
                "--clear-groups",
                "env",
                "-i",
                exe,
                "-I",
                "-c",
                "import encodings",
            ],
            cwd="/",
            capture_output=True,
            check=False,
        )
        if res.returncode == 0:
            return exe
    pytest.skip("no Python interpreter an unprivileged user can run")


@pytest.fixture(scope="session")
def other_user() -> Iterator[User]:
    name = f"gwz{secrets.token_hex(3)}"
    subprocess.run(["useradd", "-M", "-s", "/bin/sh", "-d", "/nonexistent", name], check=True)
    try:
        entry = pwd.getpwnam(name)
        yield User(name, _python_for(entry.pw_uid, entry.pw_gid))
    finally:
        subprocess.run(["userdel", name], check=False, capture_output=True)


@pytest.fixture
def open_tmp() -> Iterator[Path]:
    """A temp folder another user can reach (pytest's tmp_path sits in a 0700 folder)."""
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="gpuwizard-hostile-", dir="/var/tmp"))
    base.chmod(0o755)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _sandbox_root(base: Path) -> Path:
    root = base / "root"
    for d in ("etc/docker", "etc/apt/sources.list.d", "usr/share/keyrings", "var/lib", "usr/bin"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "etc/os-release").write_text(
        'ID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\nPRETTY_NAME="Debian GNU/Linux 12"\n'
    )
    (root / "etc/docker/daemon.json").write_text('{"log-driver": "json-file"}\n')
    base.chmod(0o755)
    return root


# -- 13: a normal user ------------------------------------------------------------------------
def test_status_plan_doctor_as_a_real_user_say_what_is_unknown_and_never_crash(
    open_tmp: Path, other_user: User
) -> None:
    """/root and a home are unreadable, a PATH entry is unreadable, the journal is root's:
    every command answers, and its JSON names the facts it could not read."""
    tmp_path = open_tmp
    root = _sandbox_root(tmp_path)
    apt = root / "usr/bin/apt-get"
    apt.write_text("#!/bin/sh\nexit 0\n")
    apt.chmod(0o755)
    for home in (root / "root", root / "home" / "alice"):
        (home / ".docker").mkdir(parents=True)
        home.chmod(0o700)
    state = tmp_path / "state"
    journal = Journal(state)
    journal.start_run(["gpuwizard", "apply"]).save_backup(b"secret")
    secret_dir = tmp_path / "secret-bin"
    secret_dir.mkdir(mode=0o700)
    common = ["--root", str(root), "--state-dir", str(state), "--json"]
    for command in ("status", "plan", "doctor", "history"):
        res = other_user.run(command, *common, path=f"{secret_dir}:/usr/bin:/bin")
        assert "Traceback" not in res.stderr, (command, res.stderr)
        assert res.stdout.startswith("{"), (command, res.stdout, res.stderr)
        data = json.loads(res.stdout)
        unknown = data["unknown_without_permission"]
        assert unknown, (command, data)
    # at / too: the real /root is unreadable to the user and PATH holds an unreadable folder
    res = other_user.run("status", "--json", path=f"{secret_dir}:/usr/bin:/bin")
    assert "Traceback" not in res.stderr, res.stderr
    assert json.loads(res.stdout)["unknown_without_permission"]


# -- 5: backups and events are private, secrets masked ----------------------------------------
def test_state_dir_backups_and_events_are_private_and_events_mask_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gpuwizard.worker import _EventWriter

    monkeypatch.setattr(os, "umask", os.umask)  # keep the test's umask as it is
    old = os.umask(0o022)
    try:
        state = tmp_path / "state"
        state.mkdir(mode=0o755)  # left so by an older version
        journal = Journal(state)
        writer = journal.start_run(["gpuwizard", "apply"])
        daemon = (
            b'{"proxies": {"https-proxy": "http://bob:hunter2@proxy:3128"},\n'
            b' "auths": {"r.example": {"auth": "Ym9iOmh1bnRlcjI="}}}\n'
        )
        sha = writer.save_backup(daemon)
        emit = _EventWriter(writer)
        emit(
            ev.DiffReady(
                "daemon-config",
                [{"path": "/etc/docker/daemon.json", "before": daemon.decode(), "after": "{}"}],
            )
        )
        emit(ev.LogLine("repository", "Get:1 https://u:tok3n@mirror/x?token=tok3n stable"))
        writer.close_events()
    finally:
        os.umask(old)
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert stat.S_IMODE((state / "runs").stat().st_mode) == 0o700
    folder = writer.folder
    for f in (
        folder / "backups" / sha,
        folder / "events.jsonl",
        folder / "journal.jsonl",
        folder / "meta.json",
    ):
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    assert (folder / "backups" / sha).read_bytes() == daemon  # the backup keeps the bytes
    events = (folder / "events.jsonl").read_text()
    for secret in ("hunter2", "Ym9iOmh1bnRlcjI=", "tok3n"):
        assert secret not in events
    assert "proxy:3128" in events  # the rest of the diff is still there


# -- 1: the signing key -----------------------------------------------------------------------
class Keys:
    """Real OpenPGP keys made with gpg for these tests: NVIDIA's stand-in, an attacker's, an
    expired one and a revoked one, each exported as an armored file."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.files: dict[str, Path] = {}
        self.fprs: dict[str, str] = {}

    def gpg(self, *args: str, faked: str = "") -> subprocess.CompletedProcess[str]:
        extra = [f"--faked-system-time={faked}"] if faked else []
        return subprocess.run(
            [
                "gpg",
                "--homedir",
                str(self.home),
                "--batch",
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                "",
                *extra,
                *args,
            ],
            capture_output=True,
            text=True,
            check=True,
        )

    def make(self, name: str, expire: str = "1y", faked: str = "") -> str:
        self.gpg(
            "--quick-gen-key",
            f"{name} <{name.lower()}@example.invalid>",
            "ed25519",
            "sign",
            expire,
            faked=faked,
        )
        out = self.gpg("--with-colons", "--list-keys", f"<{name.lower()}@example.invalid>").stdout
        fpr = next(ln.split(":")[9] for ln in out.splitlines() if ln.startswith("fpr"))
        self.fprs[name] = fpr
        return fpr

    def export(self, label: str, *names: str) -> Path:
        path = self.home.parent / f"{label}.asc"
        path.write_text(self.gpg("--armor", "--export", *[self.fprs[n] for n in names]).stdout)
        self.files[label] = path
        return path


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keys]:
    home = tmp_path_factory.mktemp("gpg") / "home"
    home.mkdir(mode=0o700)
    k = Keys(home)
    k.make("Nvidia")
    k.make("Attacker")
    k.make("Old", expire="1d", faked="20200101T000000")
    rev = k.make("Revoked")
    cert = (home / "openpgp-revocs.d" / f"{rev}.rev").read_text()
    (home / "rev.asc").write_text(cert.replace(":-----BEGIN", "-----BEGIN"))
    k.gpg("--import", str(home / "rev.asc"))
    k.export("two", "Nvidia", "Attacker")
    k.export("expired", "Old")
    k.export("revoked", "Revoked")
    try:
        yield k
    finally:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], check=False)


def _keyring_primaries(keyring: bytes, tmp: Path) -> list[str]:
    path = tmp / "check.gpg"
    path.write_bytes(keyring)
    home = tmp / "check-home"
    home.mkdir(mode=0o700, exist_ok=True)
    out = subprocess.run(
        ["gpg", "--homedir", str(home), "--batch", "--with-colons", "--show-keys", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    lines = out.splitlines()
    return [lines[i + 1].split(":")[9] for i, ln in enumerate(lines) if ln.startswith("pub")]


def test_a_key_file_with_a_second_key_writes_only_the_checked_key(
    keys: Keys, tmp_path: Path
) -> None:
    from gpuwizard.actions.packages import WriteKeyring
    from gpuwizard.host.keys import checked_key

    host = Host(_sandbox_root(tmp_path))
    good, evil = keys.fprs["Nvidia"], keys.fprs["Attacker"]
    key = checked_key(host, keys.files["two"].as_uri(), good)
    assert _keyring_primaries(key.keyring, tmp_path) == [good]
    assert _keyring_primaries(key.armored, tmp_path) == [good]  # rpm's copy too
    assert not any("Attacker" in u for u in key.uids)
    assert key.dropped == (evil,) and any("only" in w for w in key.warnings)
    preview = (
        WriteKeyring(
            "/usr/share/keyrings/k.gpg",
            key.keyring,
            fingerprint=key.fingerprint,
            uids=list(key.uids),
            source="file",
            dropped=list(key.dropped),
        )
        .preview(host)[0]
        .after
    )
    assert "Attacker" not in (preview or "") and f"left out, not trusted: key {evil}" in preview


def test_a_revoked_key_is_refused_and_an_expired_one_warned_about(
    keys: Keys, tmp_path: Path
) -> None:
    from gpuwizard.errors import WizardError
    from gpuwizard.host.keys import checked_key

    host = Host(_sandbox_root(tmp_path))
    with pytest.raises(WizardError, match="revoked"):
        checked_key(host, keys.files["revoked"].as_uri(), keys.fprs["Revoked"])
    old = checked_key(host, keys.files["expired"].as_uri(), keys.fprs["Old"])
    assert any("expired on 2020-01-02" in w for w in old.warnings), old.warnings


def test_an_https_download_redirected_to_http_is_refused(
    keys: Keys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import http.server
    import ssl
    import threading

    from gpuwizard.host.keys import KeyUnavailable, fetch_key
    from gpuwizard.steps.repository import probe_repository

    body = keys.files["two"].read_bytes()
    served: list[str] = []

    class Plain(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            served.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a: object) -> None:
            pass

    plain = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Plain)
    target = f"http://127.0.0.1:{plain.server_address[1]}"

    class Redirect(Plain):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(302)
            self.send_header("Location", target + self.path)
            self.end_headers()

    cert, pkey = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(pkey),
            "-out",
            str(cert),
        ],
        capture_output=True,
        check=True,
    )
    tls = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, pkey)
    tls.socket = ctx.wrap_socket(tls.socket, server_side=True)
    for srv in (plain, tls):
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    try:
        url = f"https://127.0.0.1:{tls.server_address[1]}"
        with pytest.raises(KeyUnavailable, match="https to http"):
            fetch_key(url + "/gpgkey")
        with pytest.raises(Exception, match="https to http"):
            probe_repository(url + "/stable/deb/amd64/InRelease")
        assert served == []  # nothing was fetched over plain http
    finally:
        for srv in (plain, tls):
            srv.shutdown()


# -- 4: --root never reaches the build host ---------------------------------------------------
def _write(host: Host, state: Path, path: str, content: bytes) -> tuple[Journal, str]:
    from gpuwizard.actions.base import ApplyContext
    from gpuwizard.actions.files import WriteFile

    journal = Journal(state)
    run = journal.start_run(["gpuwizard", "apply"])
    action = WriteFile(path, content)
    action.step = "daemon-config"
    action.run(ApplyContext(host, run, "daemon-config"))
    run.append("end", {"status": "finished"})
    return journal, run.run_id


def test_an_absolute_daemon_json_link_in_a_root_never_writes_the_build_host(
    tmp_path: Path,
) -> None:
    from gpuwizard.actions.files import WriteFile
    from gpuwizard.errors import WizardError

    root = _sandbox_root(tmp_path / "t")
    victim = tmp_path / "build-host-daemon.json"  # a file of the machine preparing the image
    victim.write_text('{"the": "build host"}\n')
    link = root / "etc/docker/daemon.json"
    link.unlink()
    link.symlink_to(victim)  # absolute: in the image it means <root><victim>, not the host's
    host = Host(root)
    with pytest.raises(WizardError, match="symlink to .* which does not exist"):
        WriteFile("/etc/docker/daemon.json", b"{}\n").preview(host)
    # a relative link climbing out with .. stops at the root
    link.unlink()
    link.symlink_to("../" * 12 + str(victim).lstrip("/"))
    with pytest.raises(WizardError, match="does not exist"):
        WriteFile("/etc/docker/daemon.json", b"{}\n").preview(host)
    # a link to a real file of the image: written there, and the preview says where
    (root / "srv/conf").mkdir(parents=True)
    (root / "srv/conf/daemon.json").write_text("{}\n")
    link.unlink()
    link.symlink_to("/srv/conf/daemon.json")
    diff = WriteFile("/etc/docker/daemon.json", b'{"a": 1}\n').preview(host)[0]
    assert f"its target /srv/conf/daemon.json is written, under {root}" in diff.path
    assert "the link says /srv/conf/daemon.json" in diff.path
    _write(host, tmp_path / "state", "/etc/docker/daemon.json", b'{"a": 1}\n')
    assert (root / "srv/conf/daemon.json").read_text() == '{"a": 1}\n' and link.is_symlink()
    assert victim.read_text() == '{"the": "build host"}\n'


def test_a_linked_etc_docker_folder_in_a_root_stays_inside_it(tmp_path: Path) -> None:
    root = _sandbox_root(tmp_path / "t")
    host_docker = tmp_path / "build-host-etc-docker"
    host_docker.mkdir()
    (host_docker / "daemon.json").write_text('{"the": "build host"}\n')
    shutil.rmtree(root / "etc/docker")
    (root / "etc/docker").symlink_to(host_docker)
    _write(Host(root), tmp_path / "state", "/etc/docker/daemon.json", b'{"a": 1}\n')
    assert (host_docker / "daemon.json").read_text() == '{"the": "build host"}\n'
    assert (root / str(host_docker).lstrip("/") / "daemon.json").read_text() == '{"a": 1}\n'


def test_a_journal_edited_inside_a_root_cannot_steer_rollback_outside_it(tmp_path: Path) -> None:
    from gpuwizard import wizard

    root = _sandbox_root(tmp_path / "t")
    victim = tmp_path / "build-host-file"
    victim.write_text("precious\n")
    host = Host(root)
    state = root / "var/lib/gpuwizard"
    journal, run_id = _write(host, state, "/etc/docker/daemon.json", b'{"a": 1}\n')
    path = journal.runs_dir / run_id / "journal.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    for rec in lines:  # the root's owner points the undo record at the build host
        if rec["type"] == "intent":
            rec["data"]["undo"]["real"] = str(victim)
            rec["data"]["undo"]["path"] = "/../../../.." + str(victim)
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    from gpuwizard.errors import WizardError

    for force in (False, True):
        with contextlib.suppress(WizardError):  # refusing is fine; writing outside is not
            wizard.rollback(host, journal, run_id=run_id, force=force)
        assert victim.read_text() == "precious\n"
    # the path it named is re-rooted: whatever happened, happened inside the root
    assert (root / "etc/docker/daemon.json").exists()


def test_the_lock_and_the_state_dir_are_never_followed_or_foreign(
    tmp_path: Path, other_user: User
) -> None:
    from gpuwizard.errors import JournalError
    from gpuwizard.options import Options
    from gpuwizard.worker import state_dir_for

    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    (state / "lock").symlink_to(victim)
    with pytest.raises(JournalError, match="symlink"):
        Journal(state).acquire("r1", ["gpuwizard", "apply"])
    assert victim.read_text() == "precious\n"
    # a state dir under the root linked to the build host's resolves inside the root
    root = _sandbox_root(tmp_path / "t")
    host_state = tmp_path / "build-host-state"
    host_state.mkdir()
    (root / "var/lib/gpuwizard").symlink_to(host_state)
    where = state_dir_for(Host(root), Options())
    assert str(where).startswith(str(root)) and where != host_state
    # a state dir someone else owns (pre-created by the root's owner) is refused
    foreign = tmp_path / "foreign"
    foreign.mkdir(mode=0o700)
    os.chown(foreign, other_user.uid, other_user.gid)
    with pytest.raises(JournalError, match="belongs to uid"):
        Journal(foreign).ensure_writable()


# -- 3: demo mode -----------------------------------------------------------------------------
def test_demo_never_writes_in_a_folder_or_through_links_another_user_planted(
    open_tmp: Path, other_user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gpuwizard.demo import ROOT_ENV, demo_host
    from gpuwizard.errors import WizardError

    victim = open_tmp / "victim-dir"  # stands for /etc: the demo must never write there
    victim.mkdir()
    planted = open_tmp / "gpuwizard-demo-0"  # pre-created by the other user, links inside
    planted.mkdir(mode=0o777)
    (planted / "root").symlink_to(victim)
    os.lchown(planted / "root", other_user.uid, other_user.gid)
    os.chown(planted, other_user.uid, other_user.gid)
    planted.chmod(0o777)
    monkeypatch.setenv(ROOT_ENV, str(planted))
    with pytest.raises(WizardError, match="belongs to uid"):
        demo_host()
    # ours, but left world-writable: refused too
    loose = open_tmp / "loose"
    loose.mkdir()
    loose.chmod(0o777)
    monkeypatch.setenv(ROOT_ENV, str(loose))
    with pytest.raises(WizardError, match="writable by others"):
        demo_host()
    # a symlink where the folder should be
    (open_tmp / "linked").symlink_to(victim)
    monkeypatch.setenv(ROOT_ENV, str(open_tmp / "linked"))
    with pytest.raises(WizardError, match="symlink"):
        demo_host()
    assert list(victim.iterdir()) == []
    # the default: a private folder in the user's runtime dir, never a name under /tmp
    runtime = open_tmp / "run-user"
    runtime.mkdir(mode=0o700)
    monkeypatch.delenv(ROOT_ENV)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    host = demo_host()
    from gpuwizard.demo import folder_name

    mine = runtime / folder_name()  # per user and per install: a pyz never reads a pip's
    assert folder_name().startswith("gpuwizard-demo-") and len(folder_name()) > 16
    assert host.root == mine / "root"
    assert stat.S_IMODE(mine.stat().st_mode) == 0o700
    assert os.environ[ROOT_ENV] == str(mine)  # the worker finds it


def test_masking_hides_secrets_but_never_a_verdict_or_an_image_name() -> None:
    from gpuwizard.events import MASK, mask_secrets

    kept = [
        "passed: nvidia/cuda:13.0.2-base-ubuntu24.04",
        "GPU test: 3 of 3 passed",
        "authority: the NVIDIA key",
        "bypassed: nothing",
    ]
    for line in kept:
        assert mask_secrets(line) == line
    for line in ('"proxyPassword": "hunter2"', "registry-token: abc", '"auths": "Zm9v"'):
        assert MASK in mask_secrets(line) and "hunter2" not in mask_secrets(line)

"""The paths real servers take, on a real systemd: a trixie root booted with systemd-nspawn
(systemd 257 as PID 1, Docker 28.5, Podman 5.4; tests/systemd_bed.py), gpuwizard installed inside
from this checkout and driven from outside with nsenter.

Restart through `systemctl`, the start-limit lock-out, the worker as a transient unit, and the
auto-revert as a transient systemd timer that fires with every gpuwizard process gone.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import time

import pytest
from systemd_bed import Bed

pytestmark = pytest.mark.slow

DAEMON_JSON = "/etc/docker/daemon.json"
SOMEONES = (
    b'{\n    "log-driver": "json-file",\n    "log-opts": {"max-size": "10m", "max-file": "3"}\n}\n'
)
STATE = "/var/lib/gpuwizard"
STEPS = ("apply", "--step", "daemon-config", "--step", "restart")
APPLY = (*STEPS, "--yes", "--docker-wait", "30")


def _fresh(bed: Bed, daemon_json: bytes = SOMEONES) -> None:
    """Someone's daemon.json, Docker running on it, no gpuwizard state, no leftover units."""
    for pid in _gpuwizard_pids(bed):
        bed.sh(f"kill -9 {pid}; true")
    bed.sh(
        "systemctl stop 'gpuwizard-*.timer' 'gpuwizard-*.service' 'gpuwizard-*.scope' 2>/dev/null;"
        f"rm -rf {STATE} /etc/default/docker /etc/systemd/system/docker.service.d;"
        "systemctl daemon-reload; systemctl reset-failed; true"
    )
    bed.path(DAEMON_JSON).write_bytes(daemon_json)
    bed.run(["systemctl", "restart", "docker"], check=True)
    assert bed.docker_serves()


def _history(bed: Bed) -> list[dict]:
    res = bed.gpuwizard("history", "--json")
    return list(json.loads(res.stdout)["runs"])


def _runtimes(bed: Bed) -> str:
    return bed.run(["docker", "info", "--format", "{{json .Runtimes}}"]).stdout


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def _units(bed: Bed, pattern: str = "gpuwizard-*") -> str:
    return bed.sh(f"systemctl list-units --all --no-legend --plain '{pattern}'; true")


def _gpuwizard_pids(bed: Bed) -> list[int]:
    """Every gpuwizard process in the bed (its CLI, its worker, a timer's revert)."""
    out = bed.sh(
        "for d in /proc/[0-9]*; do printf '%s ' ${d#/proc/}; tr '\\0' ' ' < $d/cmdline; echo;"
        " done 2>/dev/null; true"
    )
    pids = []
    for line in out.splitlines():
        pid, _, args = line.strip().partition(" ")
        if "python" in args and "gpuwizard" in args and "/proc/" not in args:
            pids.append(int(pid))
    return pids


def _apply_until_awaiting(bed: Bed, auto_revert: int) -> tuple[str, object]:
    """Start an apply with an auto-revert window (no terminal: nobody answers); return the run
    id once it awaits confirmation, and the CLI process (still watching)."""
    cmd = ["gpuwizard", *STEPS, "--docker-wait", "30", "--auto-revert", str(auto_revert)]
    # a terminal (script(1)) that answers the plan's question and then nothing more
    cli = bed.popen(
        ["script", "-qfc", shlex.join(cmd), "/dev/null"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    cli.stdin.write("y\n")  # type: ignore[union-attr]
    cli.stdin.flush()  # type: ignore[union-attr]
    _wait(
        lambda: bool(_history(bed)) and _history(bed)[-1]["status"] == "awaiting-confirmation",
        90,
        "the run to await confirmation",
    )
    return _history(bed)[-1]["run"], cli


# -- restart through systemctl, the worker as a transient unit -------------------------------


def test_restart_goes_through_systemctl_and_the_worker_unit_is_collected(
    systemd_bed: Bed,
) -> None:
    bed = systemd_bed
    _fresh(bed)
    assert bed.sh("cat /proc/1/comm").strip() == "systemd"
    before = bed.sh("systemctl show docker -p MainPID --value").strip()
    res = bed.gpuwizard(*APPLY, "--no-auto-revert")
    out = res.stdout + res.stderr
    print(out)
    assert res.returncode == 0, out
    assert "$ systemctl restart docker" in out
    assert "Docker lists runtimes:" in out and "nvidia" in out
    assert bed.sh("systemctl show docker -p MainPID --value").strip() != before
    assert '"nvidia"' in _runtimes(bed)
    run = _history(bed)[-1]
    assert run["status"] == "finished"
    unit = bed.path(f"{STATE}/runs/{run['run']}/unit").read_text().strip()
    assert unit.startswith("gpuwizard-")
    # the worker ran as that transient unit, and it is gone (collected) now
    assert bed.sh(f"journalctl -u {unit} --no-pager -q; true").strip(), "no journal for the unit"
    _wait(lambda: unit not in _units(bed), 10, f"{unit} to be collected")


# -- the auto-revert as a transient systemd timer --------------------------------------------


def test_auto_revert_timer_fires_with_every_gpuwizard_process_killed(systemd_bed: Bed) -> None:
    bed = systemd_bed
    _fresh(bed)
    run_id, cli = _apply_until_awaiting(bed, auto_revert=6)
    assert b'"nvidia"' in bed.path(DAEMON_JSON).read_bytes()
    timer = f"gpuwizard-revert-{run_id.lower()}.timer"
    assert timer in _units(bed, "gpuwizard-revert-*"), _units(bed)
    cli.kill()  # type: ignore[attr-defined]
    cli.wait()  # type: ignore[attr-defined]
    for pid in _gpuwizard_pids(bed):
        bed.sh(f"kill -9 {pid}")  # the shell's kill: the bed has no procps
    _wait(lambda: not _gpuwizard_pids(bed), 10, "every gpuwizard process to be gone")
    _wait(lambda: bed.path(DAEMON_JSON).read_bytes() == SOMEONES, 40, "daemon.json to be back")
    _wait(lambda: _history(bed)[-1]["status"] == "auto-reverted", 20, "the run auto-reverted")
    assert bed.docker_serves()
    assert '"nvidia"' not in _runtimes(bed)
    log = bed.sh(f"journalctl -u gpuwizard-revert-{run_id.lower()}.service --no-pager -q; true")
    print(log)
    assert "auto-reverted" in log
    _wait(lambda: "gpuwizard-revert" not in _units(bed), 10, "the timer's units to be collected")


def test_confirm_cancels_the_timer(systemd_bed: Bed) -> None:
    bed = systemd_bed
    _fresh(bed)
    run_id, cli = _apply_until_awaiting(bed, auto_revert=6)
    res = bed.gpuwizard("confirm")
    print(res.stdout + res.stderr)
    assert res.returncode == 0 and "confirmed" in res.stdout
    _wait(lambda: _history(bed)[-1]["status"] == "finished", 20, "the run to be kept")
    assert "gpuwizard-revert" not in _units(bed, "gpuwizard-revert-*")
    time.sleep(6 + 4)  # past the deadline and the timer's grace
    assert b'"nvidia"' in bed.path(DAEMON_JSON).read_bytes()
    assert _history(bed)[-1]["status"] == "finished"
    cli.kill()  # type: ignore[attr-defined]  # it still waits at its question
    cli.wait()  # type: ignore[attr-defined]


def test_stopping_the_worker_unit_during_the_window_still_reverts_at_the_deadline(
    systemd_bed: Bed,
) -> None:
    bed = systemd_bed
    _fresh(bed)
    run_id, cli = _apply_until_awaiting(bed, auto_revert=8)
    unit = bed.path(f"{STATE}/runs/{run_id}/unit").read_text().strip()
    cli.kill()  # type: ignore[attr-defined]
    cli.wait()  # type: ignore[attr-defined]
    bed.run(["systemctl", "stop", unit], check=True)  # as at shutdown
    assert b'"nvidia"' in bed.path(DAEMON_JSON).read_bytes()
    _wait(lambda: bed.path(DAEMON_JSON).read_bytes() == SOMEONES, 40, "daemon.json to be back")
    _wait(lambda: _history(bed)[-1]["status"] == "auto-reverted", 20, "the run auto-reverted")
    assert bed.docker_serves() and '"nvidia"' not in _runtimes(bed)


def test_any_command_after_the_deadline_reverts_and_a_late_confirm_is_refused(
    systemd_bed: Bed,
) -> None:
    """No timer (as after a reboot): the next gpuwizard command of any kind reverts."""
    bed = systemd_bed
    _fresh(bed)
    run_id, cli = _apply_until_awaiting(bed, auto_revert=5)
    cli.kill()  # type: ignore[attr-defined]
    cli.wait()  # type: ignore[attr-defined]
    bed.sh("systemctl stop 'gpuwizard-revert-*.timer' 'gpuwizard-*.service' 'gpuwizard-*.scope'")
    time.sleep(6)
    late = bed.gpuwizard("confirm", run_id)
    print(late.stdout + late.stderr)
    assert late.returncode != 0
    assert "Too late to keep run" in late.stderr or "was not kept" in late.stderr
    assert _history(bed)[-1]["status"] == "auto-reverted"  # `confirm` itself reverted it first
    assert bed.path(DAEMON_JSON).read_bytes() == SOMEONES
    assert bed.docker_serves() and '"nvidia"' not in _runtimes(bed)


def test_status_after_the_deadline_reverts(systemd_bed: Bed) -> None:
    bed = systemd_bed
    _fresh(bed)
    run_id, cli = _apply_until_awaiting(bed, auto_revert=5)
    cli.kill()  # type: ignore[attr-defined]
    cli.wait()  # type: ignore[attr-defined]
    bed.sh("systemctl stop 'gpuwizard-revert-*.timer' 'gpuwizard-*.service' 'gpuwizard-*.scope'")
    time.sleep(6)
    res = bed.gpuwizard("status")
    print(res.stdout + res.stderr)
    assert f"Run {run_id} was not confirmed before its deadline" in res.stderr
    assert bed.path(DAEMON_JSON).read_bytes() == SOMEONES
    assert _history(bed)[-1]["status"] == "auto-reverted"


# -- the start limit, and what a failed restart prints -----------------------------------------

REFUSED = b'{\n    "no-such-option": true\n}\n'


def _lock_out(bed: Bed) -> None:
    """Someone else restarts Docker on a daemon.json it refuses until systemd locks it out."""
    bed.path(DAEMON_JSON).write_bytes(REFUSED)
    for _ in range(5):
        bed.run(["systemctl", "restart", "docker"], timeout=60)
    _wait(
        lambda: (
            bed.sh("systemctl show docker.socket -p Result --value").strip()
            == "service-start-limit-hit"
        ),
        30,
        "docker.service to hit its start limit",
    )
    log = bed.sh("journalctl -u docker --no-pager -q | tail -n 20")
    assert "Start request repeated too quickly" in log, log


def test_a_unit_locked_out_by_the_start_limit_is_reset_and_a_valid_change_is_kept(
    systemd_bed: Bed,
) -> None:
    bed = systemd_bed
    _fresh(bed)
    _lock_out(bed)
    bed.path(DAEMON_JSON).write_bytes(SOMEONES)  # they fixed their file; the unit stays locked
    assert not bed.docker_serves(seconds=3)
    plan = bed.gpuwizard("plan", "--step", "daemon-config", "--step", "restart")
    print(plan.stdout)
    assert "locked out by systemd's start limit" in plan.stdout
    res = bed.gpuwizard(*APPLY, "--no-auto-revert")
    out = res.stdout + res.stderr
    print(out)
    assert res.returncode == 0, out
    assert "locked out by systemd's start limit" in out and "reset-failed" in out
    assert "$ systemctl restart docker" in out
    assert bed.docker_serves() and '"nvidia"' in _runtimes(bed)
    assert b'"nvidia"' in bed.path(DAEMON_JSON).read_bytes()  # the valid change is kept
    assert _history(bed)[-1]["status"] == "finished"


def test_a_failed_detached_restart_prints_the_daemons_log_from_this_restart(
    systemd_bed: Bed,
) -> None:
    bed = systemd_bed
    _fresh(bed)
    _lock_out(bed)  # an older, unrelated refusal in the journal
    bed.path(DAEMON_JSON).write_bytes(SOMEONES)
    bed.run(["systemctl", "reset-failed", "docker"], check=True)
    bed.run(["systemctl", "start", "docker"], check=True)
    # something gpuwizard cannot see refuses the next start: a drop-in's ExecStartPre
    dropin = bed.path("/etc/systemd/system/docker.service.d/refuse.conf")
    dropin.parent.mkdir(parents=True, exist_ok=True)
    dropin.write_text(
        "[Service]\nExecStartPre=/bin/sh -c 'echo gpuwizard-test: this start is refused >&2;"
        " exit 1'\n"
    )
    bed.run(["systemctl", "daemon-reload"], check=True)
    res = bed.gpuwizard(*APPLY, "--no-auto-revert")
    out = res.stdout + res.stderr
    print(out)
    assert res.returncode != 0
    assert "Restarting Docker failed" in out
    assert "gpuwizard-test: this start is refused" in out  # the detail, printed
    assert "no-such-option" not in out  # the older refusal is not shown as this one's
    assert "Docker started once on it" not in out
    # the drop-in refuses the rollback's start too: said so, not "Docker answers again"
    assert "the rollback did not bring it back either" in out
    assert "answers again" not in out
    assert bed.path(DAEMON_JSON).read_bytes() == SOMEONES  # restored
    assert _history(bed)[-1]["status"] != "finished"


# -- what the unit WILL start: DOCKER_OPTS and drop-ins ------------------------------------------


def test_a_conflict_in_docker_opts_is_found_before_the_restart(systemd_bed: Bed) -> None:
    """dockerd runs without --log-driver; /etc/default/docker has gained one since: the next
    start would fail (`specified both as a flag and in the configuration file`)."""
    bed = systemd_bed
    _fresh(bed)  # someone's daemon.json sets log-driver
    bed.path("/etc/default/docker").write_text('DOCKER_OPTS="--log-driver=journald"\n')
    res = bed.gpuwizard("plan", "--step", "daemon-config", "--step", "restart")
    print(res.stdout)
    assert "log-driver" in res.stdout and "DOCKER_OPTS in /etc/default/docker" in res.stdout
    applied = bed.gpuwizard(*APPLY, "--no-auto-revert")
    print(applied.stdout + applied.stderr)
    assert applied.returncode != 0
    assert "$ systemctl restart docker" not in applied.stdout  # refused before any restart
    assert bed.path(DAEMON_JSON).read_bytes() == SOMEONES


def test_a_flag_gone_from_docker_opts_is_no_conflict(systemd_bed: Bed) -> None:
    """dockerd was started with --log-driver from DOCKER_OPTS; the setting moved into
    daemon.json since. The running argv still has the flag, the unit will not."""
    bed = systemd_bed
    _fresh(bed, b"{}\n")
    bed.path("/etc/default/docker").write_text('DOCKER_OPTS="--log-driver=journald"\n')
    bed.run(["systemctl", "restart", "docker"], check=True)
    assert bed.docker_serves()
    bed.path(DAEMON_JSON).write_bytes(b'{\n    "log-driver": "journald"\n}\n')
    bed.path("/etc/default/docker").write_text("# moved to daemon.json\n")
    res = bed.gpuwizard(*APPLY, "--no-auto-revert")
    out = res.stdout + res.stderr
    print(out)
    assert res.returncode == 0, out
    assert bed.docker_serves() and '"nvidia"' in _runtimes(bed)


def test_validate_names_the_real_daemon_json_and_own_checks_catch_what_it_lets_through(
    systemd_bed: Bed,
) -> None:
    bed = systemd_bed
    _fresh(bed)
    assert "28.5" in bed.sh("dockerd --version")
    bed.path(DAEMON_JSON).write_bytes(b'{\n    "no-such-option": true\n}\n')
    res = bed.gpuwizard("plan", "--step", "daemon-config", "--json")
    step = next(s for s in json.loads(res.stdout)["steps"] if s["step"] == "daemon-config")
    print(step["reason"])
    assert "--validate" in step["reason"] and DAEMON_JSON in step["reason"]
    assert "gpuwizard-daemon-" not in step["reason"]  # not the temp file it validated
    for bad, words in (
        (b'{"default-runtime": "crun"}', "no runtime of that name"),
        (b'{"runtimes": {"x": {"path": "/bin/x", "runtimeType": "io.x.v1"}}}', "both `path`"),
        (b'{"runtimes": {"runc": {"path": "/usr/bin/runc"}}}', "named `runc`"),
    ):
        # dockerd --validate itself lets each of these through
        bed.path("/root/v.json").write_bytes(bad)
        ok = bed.run(["dockerd", "--validate", "--config-file", "/root/v.json"])
        assert ok.returncode == 0, ok.stderr
        bed.path(DAEMON_JSON).write_bytes(bad)
        res = bed.gpuwizard("plan", "--step", "daemon-config", "--json")
        step = next(s for s in json.loads(res.stdout)["steps"] if s["step"] == "daemon-config")
        print(bad, "->", step["state"], step["reason"])
        assert step["state"] in ("failed", "blocked") and words in step["reason"]


def test_a_dropped_terminal_leaves_the_worker_unit_to_revert_at_the_deadline(
    systemd_bed: Bed,
) -> None:
    """The SSH drop, on systemd: the terminal goes (its pty closes: SIGHUP to the CLI), the
    worker is a transient unit outside that session, reverts at the deadline itself, logs that
    in its unit's journal, and the unit ends cleanly (an auto-revert is not a failure)."""
    bed = systemd_bed
    _fresh(bed)
    run_id, cli = _apply_until_awaiting(bed, auto_revert=5)
    unit = bed.path(f"{STATE}/runs/{run_id}/unit").read_text().strip()
    terminal = [
        line.split()[0]
        for line in bed.sh(
            "for d in /proc/[0-9]*; do printf '%s ' ${d#/proc/}; tr '\\0' ' ' < $d/cmdline;"
            " echo; done 2>/dev/null; true"
        ).splitlines()
        if line.split()[1:2] == ["script"]
    ]
    assert terminal, "the script(1) terminal is not running"
    for pid in terminal:
        bed.sh(f"kill -9 {pid}")
    cli.wait(timeout=20)  # type: ignore[attr-defined]
    assert bed.run(["systemctl", "is-active", "--quiet", unit]).returncode == 0
    _wait(lambda: bed.path(DAEMON_JSON).read_bytes() == SOMEONES, 40, "daemon.json to be back")
    _wait(lambda: _history(bed)[-1]["status"] == "auto-reverted", 20, "the run auto-reverted")
    assert bed.docker_serves() and '"nvidia"' not in _runtimes(bed)
    _wait(lambda: unit not in _units(bed), 20, f"{unit} to end and be collected")
    log = bed.sh(f"journalctl -u {unit} --no-pager -q; true")
    print(log)
    assert f"gpuwizard run {run_id}: auto-reverted" in log
    assert "Failed with result" not in log and "status=2" not in log


def test_the_worker_is_the_forked_cli_in_a_scope_of_its_own(systemd_bed: Bed) -> None:
    """On systemd the CLI forks its worker (gpuwizard imported, the plan in hand: no second
    interpreter, no second probe) and the worker moves into `gpuwizard-RUN.scope`, outside
    the SSH session's scope; its lines go to that unit's journal, as a service's did."""
    bed = systemd_bed
    _fresh(bed)
    run_id, cli = _apply_until_awaiting(bed, auto_revert=30)
    folder = f"{STATE}/runs/{run_id}"
    unit = bed.path(f"{folder}/unit").read_text().strip()
    assert unit == f"gpuwizard-{run_id.lower()}.scope"
    pid = bed.path(f"{folder}/spawned-pid").read_text().strip()
    assert f"/{unit}" in bed.sh(f"cat /proc/{pid}/cgroup")
    assert bed.run(["systemctl", "is-active", "--quiet", unit]).returncode == 0
    cmdline = bed.sh(f"tr '\\0' ' ' < /proc/{pid}/cmdline")
    assert "_worker" not in cmdline and " apply " in f" {cmdline} ", cmdline  # the CLI, forked
    res = bed.gpuwizard("confirm")
    assert res.returncode == 0, res.stdout + res.stderr
    _wait(lambda: unit not in _units(bed), 20, f"{unit} to end and be collected")
    log = bed.sh(f"journalctl -u {unit} --no-pager -q; true")
    print(log)
    assert f"gpuwizard run {run_id}: awaiting-confirmation" in log
    assert f"gpuwizard run {run_id}: finished" in log
    cli.kill()  # type: ignore[attr-defined]  # it still waits at its question
    cli.wait()  # type: ignore[attr-defined]


def test_a_worker_systemd_will_not_take_into_a_scope_hands_over_to_a_service(
    systemd_bed: Bed,
) -> None:
    """busctl fails (here: one that always refuses, first on PATH): the forked worker never
    runs inside the session's scope; it starts the systemd-run service as before and leaves,
    and the CLI follows that unit's run to the end."""
    bed = systemd_bed
    _fresh(bed)
    fake = bed.path("/usr/local/sbin/busctl")
    fake.write_text("#!/bin/sh\necho 'Access denied (stand-in busctl)' >&2\nexit 1\n")
    fake.chmod(0o755)
    try:
        res = bed.gpuwizard(*APPLY, "--no-auto-revert")
        print(res.stdout + res.stderr)
        assert res.returncode == 0, res.stdout + res.stderr
        run = _history(bed)[-1]
        assert run["status"] == "finished"
        folder = f"{STATE}/runs/{run['run']}"
        unit = bed.path(f"{folder}/unit").read_text().strip()
        assert unit.startswith("gpuwizard-") and not unit.endswith(".scope"), unit
        log = bed.path(f"{folder}/worker.log").read_text()
        assert "no scope" in log and "stand-in busctl" in log, log
    finally:
        fake.unlink()


# -- the CDI refresh units, as a plan reads them ----------------------------------------------

UNITS_READ = r"""
import json, subprocess
from gpuwizard.host import cdi
from gpuwizard.host.system import Host

host = Host()
calls = []
real = host.runner.run
def counting(argv, **kw):
    calls.append(list(argv))
    return real(argv, **kw)
host.runner.run = counting
got = cdi.unit_states(host)

# systemd's own words, unit by unit: is-enabled, is-active, and a failed unit's Result
def systemctl(*args):
    return subprocess.run(["systemctl", *args], capture_output=True, text=True)
want = {}
for unit in cdi.REFRESH_UNITS:
    enabled = systemctl("is-enabled", unit)
    if enabled.returncode != 0 and "not-found" in enabled.stdout + enabled.stderr:
        continue
    active = systemctl("is-active", unit).stdout.strip() or "unknown"
    if active == "failed":
        result = systemctl("show", unit, "-p", "Result").stdout.strip()
        active = "failed:" + result.partition("=")[2]
    want[unit] = (enabled.stdout.strip() or "unknown") + "/" + active
print(json.dumps({"got": got, "want": want, "programs": [c[0] for c in calls]}))
"""
REFRESH_SERVICE = "[Unit]\nDescription=stand-in\n[Service]\nType=oneshot\nExecStart=/bin/false\n"
REFRESH_PATH = (
    "[Unit]\nDescription=stand-in\n[Path]\nPathChanged=/run/gw-cdi-trigger\n"
    "[Install]\nWantedBy=multi-user.target\n"
)


def _refresh_units(bed: Bed) -> dict:
    res = bed.run(["python3", "-c", UNITS_READ], check=True)
    return dict(json.loads(res.stdout))


def test_the_refresh_units_are_read_in_one_systemctl_as_systemd_words_them(
    systemd_bed: Bed,
) -> None:
    """The plan's view of nvidia-cdi-refresh.path/.service, against `systemctl is-enabled`
    and `is-active` asked unit by unit: absent; the path enabled and the service failed; the
    path disabled and the service masked.
    One `systemctl show` answers it all (unit by unit it was two to six programs)."""
    lib = systemd_bed.path("/usr/lib/systemd/system")  # where the toolkit's package puts them
    try:
        seen = _refresh_units(systemd_bed)
        assert seen["got"] == seen["want"] == {}
        assert seen["programs"] == ["systemctl"]

        (lib / "nvidia-cdi-refresh.service").write_text(REFRESH_SERVICE)
        (lib / "nvidia-cdi-refresh.path").write_text(REFRESH_PATH)
        systemd_bed.sh(
            "systemctl daemon-reload; systemctl enable --now nvidia-cdi-refresh.path;"
            "systemctl start nvidia-cdi-refresh.service; true"
        )
        seen = _refresh_units(systemd_bed)
        assert seen["want"] == {
            "nvidia-cdi-refresh.path": "enabled/active",
            "nvidia-cdi-refresh.service": "static/failed:exit-code",
        }
        assert seen["got"] == seen["want"]
        assert seen["programs"] == ["systemctl"]

        systemd_bed.sh(
            "systemctl disable --now nvidia-cdi-refresh.path; systemctl reset-failed;"
            "systemctl mask nvidia-cdi-refresh.service"
        )
        seen = _refresh_units(systemd_bed)
        assert seen["want"]["nvidia-cdi-refresh.service"].startswith("masked/")
        assert seen["want"]["nvidia-cdi-refresh.path"] == "disabled/inactive"
        assert seen["got"] == seen["want"]
    finally:
        systemd_bed.sh(
            "systemctl unmask nvidia-cdi-refresh.service; systemctl disable --now "
            "nvidia-cdi-refresh.path; rm -f /usr/lib/systemd/system/nvidia-cdi-refresh.*;"
            "systemctl daemon-reload; systemctl reset-failed; true"
        )

"""The restart step against a real private dockerd: guarded, verified, rolled back on failure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpuwizard import wizard
from gpuwizard.errors import WizardError
from gpuwizard.events import LogLine, Progress
from gpuwizard.host.system import Host
from gpuwizard.journal import Journal
from tests.dockerd import IMAGE, Dockerd, docker_steps, plan_and_apply, wizard_options

pytestmark = pytest.mark.slow

USER_JSON = b'{\n  "log-level": "warn",\n  "max-concurrent-downloads": 3\n}\n'


def test_configure_and_restart_makes_docker_list_the_nvidia_runtime(
    dockerd: Dockerd, tmp_path: Path
) -> None:
    dockerd.daemon_json.write_bytes(USER_JSON)
    events: list = []
    opts = wizard_options(dockerd, steps=("daemon-config", "restart"))
    the_plan, _ = plan_and_apply(opts, tmp_path / "state", events)
    assert the_plan.step("restart").state == "pending"
    info = dockerd.client().info()
    assert "nvidia" in info["Runtimes"]
    written = json.loads(dockerd.daemon_json.read_bytes())
    assert written["log-level"] == "warn" and written["max-concurrent-downloads"] == 3
    assert any(isinstance(e, Progress) and "waiting for Docker" in e.label for e in events) or any(
        isinstance(e, LogLine) and e.text == "Docker is back" for e in events
    )


def test_rollback_restores_daemon_json_bytes_after_failed_restart(
    dockerd: Dockerd, tmp_path: Path
) -> None:
    """A daemon.json dockerd refuses (here: a key also set as a flag, which only the daemon
    itself notices at start) makes the restart fail; the wizard restores the original bytes,
    starts Docker once on them, and Docker serves again."""
    original = b'{\n    "debug": false\n}\n'
    dockerd.daemon_json.write_bytes(original)
    opts = wizard_options(dockerd, steps=("daemon-config", "restart"), docker_wait=10.0)
    host = Host()
    the_plan = wizard.plan(host, opts, steps=docker_steps())
    # someone edits the file between preview and apply in a way dockerd refuses to start with
    write = the_plan.step("daemon-config").actions[0]
    write.content = write.content.replace(
        b'"debug": false', b'"debug": false,\n    "pidfile": "/tmp/conflict.pid"'
    )
    run = Journal(tmp_path / "state").start_run(["test"])
    events: list = []
    with pytest.raises(WizardError) as err:
        wizard.apply(host, opts, the_plan, run, emit=events.append, steps=docker_steps())
    assert "Restarting Docker failed" in err.value.cause
    assert "pidfile" in err.value.detail  # the daemon's own last log lines are shown
    assert dockerd.daemon_json.read_bytes() == original
    assert dockerd.running()
    assert dockerd.client().ping()
    notes = [e.text for e in events if isinstance(e, LogLine) and e.text.startswith("undone")]
    assert any("restored byte-exact" in n for n in notes)
    assert any("Docker restarted on the restored daemon.json" in n for n in notes)


def test_gpus_fails_before_toolkit_and_works_after_hook_appears_and_restart(
    bare_dockerd: Dockerd, tmp_path: Path
) -> None:
    d = bare_dockerd
    before = d.docker("run", "--rm", "--gpus", "all", IMAGE, "true", check=False)
    assert before.returncode != 0
    assert 'could not select device driver "" with capabilities: [[gpu]]' in before.stderr
    d.install_stand_ins()  # the toolkit's hook appears on dockerd's PATH
    opts = wizard_options(d, steps=("daemon-config", "restart"))
    the_plan, _ = plan_and_apply(opts, tmp_path / "state")
    assert (
        "newer than the running dockerd" in the_plan.step("restart").reason
        or "changes" in the_plan.step("restart").reason
    )
    after = d.docker("run", "--rm", "--gpus", "all", IMAGE, "true", check=False)
    assert after.returncode == 0, after.stderr
    assert d.calls("nvidia-container-runtime-hook")


def test_restart_warns_when_containers_run_without_live_restore(
    dockerd: Dockerd, tmp_path: Path
) -> None:
    c = dockerd.client().containers.run(IMAGE, ["sleep", "30"], detach=True)
    try:
        opts = wizard_options(dockerd, steps=("daemon-config", "restart"))
        the_plan = wizard.plan(Host(), opts, steps=docker_steps())
        warnings = the_plan.step("restart").warnings
        assert any("1 running container(s) will be stopped" in w for w in warnings)
    finally:
        c.remove(force=True)


def test_restart_is_done_when_nothing_changed(dockerd: Dockerd) -> None:
    opts = wizard_options(dockerd, steps=("restart",))
    the_plan = wizard.plan(Host(), opts, steps=docker_steps())
    assert the_plan.step("restart").state == "done"


def test_rollback_after_success_restores_bytes_then_restarts_docker_on_them(
    dockerd: Dockerd, tmp_path: Path
) -> None:
    dockerd.daemon_json.write_bytes(USER_JSON)
    opts = wizard_options(dockerd, steps=("daemon-config", "restart"))
    plan_and_apply(opts, tmp_path / "state")
    assert "nvidia" in dockerd.client().info()["Runtimes"]
    events: list = []
    report = wizard.rollback(Host(), Journal(tmp_path / "state"), emit=events.append)
    undone = report[0]["undone"]
    # the domain's order: daemon.json back first, then Docker restarted on it
    assert undone[0].startswith("daemon-config:") and "restored byte-exact" in undone[0]
    assert undone[1].startswith("restart:")
    assert dockerd.daemon_json.read_bytes() == USER_JSON
    assert "nvidia" not in dockerd.client().info()["Runtimes"]


def test_the_gpus_probe_leaves_no_container_behind_when_the_hook_fails(dockerd: Dockerd) -> None:
    """A failing prestart hook leaves the probe `Created`; `run(remove=True)` never removed
    it (issue 13, item 11). The hook here is a STAND-IN that fails on purpose."""
    from gpuwizard.actions.services import gpu_probe

    hook = dockerd.bin / "nvidia-container-runtime-hook"
    saved = hook.read_bytes()
    hook.write_text("#!/bin/sh\necho 'stand-in hook: failing on purpose' >&2\nexit 1\n")
    hook.chmod(0o755)
    client = dockerd.client()
    try:
        before = {c.id for c in client.containers.list(all=True)}
        failed = dockerd.docker(
            "run", "--gpus", "all", "--name", "gw-oracle", IMAGE, "true", check=False
        )
        assert failed.returncode != 0  # the hook really fails the start
        dockerd.docker("rm", "-f", "gw-oracle", check=False)
        gpu_probe(Host(), dockerd.docker_host, IMAGE)
        after = {c.id for c in client.containers.list(all=True)}
        assert after == before, [c.name for c in client.containers.list(all=True)]
    finally:
        hook.write_bytes(saved)
        hook.chmod(0o755)
        client.close()


def _restarted(d: Dockerd) -> tuple[int, float]:
    """Restart a test daemon; (its new pid, a moment before the restart began)."""
    import subprocess
    import time

    began = time.time()
    subprocess.run(d.restart_command(), check=True, capture_output=True)
    pid = d.pid()
    assert pid is not None
    return pid, began


def test_what_dockerd_found_at_start_is_what_the_engine_answers(
    dockerd: Dockerd, bare_dockerd: Dockerd
) -> None:
    """The restart vouches for `--gpus` from /proc (the PATH and root dockerd started with,
    its start time against the hook's ctime) only where the engine's own answer, a `--gpus
    all` container, agrees: with the hook on dockerd's PATH, and without it."""
    from gpuwizard.actions.services import gpu_probe
    from gpuwizard.host import docker as engine

    for d, has_hook in ((dockerd, True), (bare_dockerd, False)):
        pid, began = _restarted(d)
        found = engine.hook_found_at_start(pid, began)
        refused = gpu_probe(Host(), d.docker_host, IMAGE)
        assert (found is not None) is has_hook, (d.base, found)
        assert (refused is None) is has_hook, refused
        if has_hook:
            assert found == f"{d.bin}/nvidia-container-runtime-hook"


def test_a_hook_newer_than_the_daemon_or_a_daemon_older_than_the_restart_is_not_vouched_for(
    dockerd: Dockerd,
) -> None:
    from gpuwizard.host import docker as engine

    pid = dockerd.pid()
    assert pid is not None
    started = engine.process_start_time(pid)
    assert started is not None
    hook = dockerd.bin / "nvidia-container-runtime-hook"
    assert engine.hook_found_at_start(pid, started) == str(hook)  # there before it started
    # not the restarted daemon: it started before the restart began
    assert engine.hook_found_at_start(pid, started + 5.0) is None
    hook.chmod(0o755)  # the file changed now (its ctime), after dockerd looked for it
    assert engine.hook_found_at_start(pid, started) is None


def test_the_restart_vouches_for_gpus_without_a_container_where_proc_shows_it(
    dockerd: Dockerd, tmp_path: Path
) -> None:
    import time

    t0 = int(time.time())
    events: list = []
    opts = wizard_options(dockerd, steps=("daemon-config", "restart"))
    plan_and_apply(opts, tmp_path / "state", events)
    said = [e.text for e in events if isinstance(e, LogLine) and "device driver" in e.text]
    assert said and "found" in said[0] and "on its PATH when it started" in said[0], said
    created = dockerd.docker(
        "events",
        "--since",
        str(t0),
        "--until",
        str(int(time.time()) + 1),
        "--filter",
        "type=container",
        "--filter",
        "event=create",
        "--format",
        "{{.Actor.ID}}",
    )
    assert created.stdout.strip() == "", created.stdout


def test_where_proc_cannot_vouch_the_engine_is_asked_and_its_refusal_fails_the_restart(
    bare_dockerd: Dockerd, tmp_path: Path
) -> None:
    """No hook on the restarted dockerd's PATH: the `--gpus` container runs, the engine
    refuses it, and the restart step fails with the engine's words."""
    from gpuwizard.actions.base import ApplyContext
    from gpuwizard.actions.services import RestartDocker

    action = RestartDocker(
        method="command",
        command=bare_dockerd.restart_command(),
        docker_host=bare_dockerd.docker_host,
        wait=20.0,
        gpu_probe_image=IMAGE,
    )
    run = Journal(tmp_path / "state").start_run(["test"])
    ctx = ApplyContext(Host(), run, "restart")
    action.apply(ctx)
    with pytest.raises(WizardError) as err:
        action.verify(ctx)
    assert "registered no NVIDIA device driver" in err.value.cause
    assert "could not select device driver" in err.value.detail

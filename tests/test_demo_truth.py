"""Demo mode tells the truth (issue 16, item 9) and screenshot mode is byte-stable (item 1).

The demo names the machine it plays, never the folder holding it or the folder gpuwizard is
installed in; its doctor sees the GPU its driver and NVML report; its hints never change the
real machine. Screenshot mode freezes what moves (the clock, run ids, the GPU readings).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import gpuwizard
from gpuwizard import cli, clock
from gpuwizard.demo import ROOT_ENV, demo_host
from gpuwizard.journal import new_run_id

INSTALL = str(Path(gpuwizard.__file__).resolve().parent)


@pytest.fixture
def demo_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "demo"
    monkeypatch.setenv(ROOT_ENV, str(folder))
    return folder


@pytest.mark.parametrize("args", [["plan"], ["--json", "plan"], ["history"]])
def test_demo_output_names_no_install_path_and_no_demo_folder(
    demo_root: Path, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    cli.main(["--demo", *args])
    out = capsys.readouterr()
    text = out.out + out.err
    assert INSTALL not in text
    assert str(demo_root) not in text
    if args == ["plan"]:
        assert "file:///usr/share/gpuwizard-demo/demo-key.asc" in text


def test_demo_paths_are_shown_as_the_demo_machine_s(demo_root: Path) -> None:
    host = demo_host()
    assert host.display("/etc/docker/daemon.json") == "/etc/docker/daemon.json"


def test_demo_doctor_agrees_with_the_recorded_host(
    demo_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cli.main(["--demo", "--json", "doctor"])
    report = json.loads(capsys.readouterr().out)
    links = {link["name"]: link for link in report["links"]}
    assert links["hardware"]["verdict"] == "ok", links["hardware"]
    assert "10de:2335 at 0000:00:06.0" in links["hardware"]["summary"]
    assert links["driver"]["verdict"] == "ok"
    assert links["cdi"]["verdict"] == "ok", links["cdi"]  # the device nodes are there
    for link in report["links"]:
        command = link["next_command"]
        assert not command.startswith("sudo"), f"{link['name']}: {command}"
        assert not command.startswith("gpuwizard ") or command.startswith("gpuwizard --demo")


def test_the_frozen_clock_gives_the_same_run_ids_every_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(clock.SCREENSHOT_ENV, "1795947300")
    assert clock.now() == 1795947300.0
    first = new_run_id(tmp_path)
    assert first == "20261129T101500Z-000001"
    (tmp_path / first).mkdir()
    assert new_run_id(tmp_path) == "20261129T101500Z-000002"
    monkeypatch.delenv(clock.SCREENSHOT_ENV)
    assert new_run_id(tmp_path) != new_run_id(tmp_path)  # random tails on a normal run


def test_the_screenshot_gpu_feed_is_one_fixed_frame(demo_root: Path) -> None:
    from gpuwizard.tui.gpu_feed import HISTORY, ScreenshotGpuFeed

    host = demo_host()
    one, two = ScreenshotGpuFeed(host), ScreenshotGpuFeed(host)
    assert one.sample() == one.sample() == two.sample()
    assert list(one.history.util[0]) == list(two.history.util[0])
    assert len(one.history.util[0]) == HISTORY
    assert len(set(one.history.util[0])) > 3  # a live-looking minute, not a flat line
    one.history.add(one.sample())
    assert list(one.history.util[0]) == list(two.history.util[0])  # frozen

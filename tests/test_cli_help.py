"""The CLI's own words: `--help` lists no internal command and describes every option, and
demo mode never hints at a command that would change the real machine."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from gpuwizard.cli import build_parser

REPO = Path(__file__).resolve().parent.parent


def _undescribed(parser: argparse.ArgumentParser, name: str) -> list[str]:
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub, subparser in action.choices.items():
                if sub != "_worker":
                    out += _undescribed(subparser, sub)
        elif not action.help:
            out.append(f"{name} {'/'.join(action.option_strings) or action.dest}")
    return out


def test_every_option_is_described() -> None:
    assert _undescribed(build_parser(), "gpuwizard") == []


def test_help_does_not_list_the_internal_worker() -> None:
    shown = build_parser().format_help()
    assert "==SUPPRESS==" not in shown and "_worker" not in shown
    assert "status" in shown and "attach" in shown


def test_demo_hints_never_say_sudo(tmp_path: Path) -> None:
    env = dict(os.environ, GPUWIZARD_DEMO_ROOT=str(tmp_path / "demo"))
    for command in ("status", "plan"):
        res = subprocess.run(
            [sys.executable, "-m", "gpuwizard", "--demo", command],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert res.returncode == 0, res.stderr
        assert "sudo gpuwizard" not in res.stdout, res.stdout
        assert "gpuwizard --demo apply" in res.stdout, res.stdout


def _help(*command: str) -> str:
    res = subprocess.run(
        [sys.executable, "-m", "gpuwizard", *command, "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_a_subcommand_s_help_lists_only_the_options_it_uses() -> None:
    history = _help("history")
    for absent in ("--auto-revert", "--repo-url", "--step", "--cdi-spec", "--no-mouse", "--yes"):
        assert absent not in history, (absent, history)
    assert "--state-dir" in history and "--json" in history
    apply = _help("apply")
    assert "--auto-revert" in apply and "--repo-url" in apply and "--step" in apply
    assert "--no-mouse" not in apply  # the app's, not a subcommand's
    assert "--auto-revert" not in _help("plan")
    assert "--repo-url" not in _help("rollback") and "--force" in _help("rollback")


def test_scripts_may_still_pass_every_shared_option_to_any_subcommand(tmp_path: Path) -> None:
    """The Ansible module appends its shared options to `confirm` and `rollback` too."""
    env = dict(os.environ, GPUWIZARD_DEMO_ROOT=str(tmp_path / "demo"))
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "gpuwizard",
            "--demo",
            "history",
            "--json",
            "--auto-revert",
            "30",
            "--repo-url",
            "https://mirror.example/stable",
            "--step",
            "restart",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr

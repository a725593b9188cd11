"""Steps made of real file actions on a root folder, to drive the engine on its own.

They are not stand-ins for gpuwizard's steps: they exercise the real journal, the real
atomic writes and the real rollback on real files, with no dependency on apt or Docker.
"""

from __future__ import annotations

from gpuwizard.actions.files import RemoveFile, WriteFile
from gpuwizard.host.system import Host
from gpuwizard.options import Options
from gpuwizard.steps.base import DONE, PENDING, Simulation, Step, StepPlan

NEW_CONF = b'{\n  "log-driver": "json-file",\n  "runtimes": {"nvidia": {"path": "x"}}\n}\n'
NEW_LIST = b"deb [signed-by=/usr/share/keyrings/k.gpg] http://127.0.0.1/ /\n"


class FilesStep(Step):
    """Writes two files and removes a legacy one."""

    name = "repository"
    title = "Files"

    def plan(self, host: Host, options: Options, sim: Simulation) -> StepPlan:
        actions = [
            WriteFile(path="/etc/app/a.conf", content=NEW_CONF, reason="rewrite a.conf"),
            RemoveFile(path="/etc/apt/sources.list.d/legacy.list", reason="remove legacy"),
            WriteFile(
                path="/etc/apt/sources.list.d/new.list", content=NEW_LIST, reason="add new.list"
            ),
        ]
        needed = [a for a in actions if a.needed(host)]
        diffs = [d for a in needed for d in a.preview(host)]
        return self.make(PENDING if needed else DONE, actions=needed, diffs=diffs)


class ConfigStep(Step):
    """Writes a second file in another step, so rollback order across steps is exercised."""

    name = "daemon-config"
    title = "Config"

    def plan(self, host: Host, options: Options, sim: Simulation) -> StepPlan:
        a = WriteFile(
            path="/etc/docker/daemon.json",
            content=b'{"runtimes": {}}\n',
            reason="write daemon.json",
        )
        if not a.needed(host):
            return self.make(DONE)
        return self.make(PENDING, actions=[a], diffs=a.preview(host))


def steps() -> list[Step]:
    return [FilesStep(), ConfigStep()]

"""gpuwizard.gpu.fleet: every host's gpuwizard result of a play, in one JSON file.

Ansible prints one block per task; a person with eight GPU servers wants one line per server.
This callback only gathers: per host, Ansible's verdict for the play (like the recap: failed,
unreachable, changed or ok), the failure's message, and the last `gpuwizard` result the module
returned (the GPU, the driver, the toolkit, each step's state). `gpuwizard fleet FILE` draws
it (80 columns, or --json); drawing stays in gpuwizard, which needs no Ansible.
"""

from __future__ import annotations

DOCUMENTATION = r"""
name: fleet
type: aggregate
short_description: Write gpuwizard-fleet.json, every host's gpuwizard result, for `gpuwizard fleet`
description:
  - At the end of the playbook, writes one JSON document with, per host, Ansible's verdict,
    the message of a failure, and what the gpuwizard.gpu.gpuwizard module reported.
  - Read it with C(gpuwizard fleet FILE) (a table at 80 columns) or C(gpuwizard fleet FILE --json).
requirements:
  - enabled in C(callbacks_enabled) (ansible/ansible.cfg of the gpuwizard checkout does)
options:
  path:
    description: Where the file is written.
    default: gpuwizard-fleet.json
    type: path
    env:
      - name: GPUWIZARD_FLEET_FILE
    ini:
      - section: callback_gpuwizard_fleet
        key: path
"""

import json
import os
import tempfile

from ansible.plugins.callback import CallbackBase

FORMAT = 1
RANK = {"ok": 0, "changed": 1, "failed": 2, "unreachable": 3}


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "gpuwizard.gpu.fleet"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, display=None):
        super().__init__(display=display)
        self.hosts = {}
        self.playbook = ""
        self.check_mode = False

    def _host(self, result):
        name = result._host.get_name()
        return self.hosts.setdefault(name, {"result": "ok", "msg": "", "gpuwizard": None})

    def _verdict(self, entry, verdict, msg=""):
        """The play's verdict for the host, as the recap ranks it; the first failure's msg."""
        if RANK[verdict] > RANK[entry["result"]]:
            entry["result"] = verdict
        if msg and verdict in ("failed", "unreachable") and not entry["msg"]:
            entry["msg"] = msg

    def _gather(self, result):
        data = result._result
        entry = self._host(result)
        if isinstance(data.get("gpuwizard"), dict):
            entry["gpuwizard"] = data["gpuwizard"]
            for key in ("cause", "remedy"):
                if data.get(key):
                    entry[key] = data[key]
        return entry, data

    def v2_playbook_on_start(self, playbook):
        self.playbook = os.path.basename(getattr(playbook, "_file_name", "") or "")

    def v2_playbook_on_play_start(self, play):
        from ansible import context

        self.check_mode = bool(context.CLIARGS.get("check")) or self.check_mode

    def v2_runner_on_ok(self, result):
        entry, data = self._gather(result)
        self._verdict(entry, "changed" if data.get("changed") else "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        entry, data = self._gather(result)
        if not ignore_errors:
            self._verdict(entry, "failed", str(data.get("msg") or ""))

    def v2_runner_on_unreachable(self, result):
        entry, data = self._gather(result)
        self._verdict(entry, "unreachable", str(data.get("msg") or ""))

    def v2_playbook_on_stats(self, stats):
        path = os.path.abspath(self.get_option("path"))
        doc = {
            "gpuwizard_fleet": FORMAT,
            "playbook": self.playbook,
            "check_mode": self.check_mode,
            "hosts": self.hosts,
        }
        folder = os.path.dirname(path) or "."
        fd, tmp = tempfile.mkstemp(prefix=".gpuwizard-fleet-", dir=folder)
        with os.fdopen(fd, "w") as fh:
            json.dump(doc, fh, indent=2, sort_keys=True, default=str)
            fh.write("\n")
        os.replace(tmp, path)
        self._display.display(f"gpuwizard fleet: {path}  (see it with: gpuwizard fleet {path})")

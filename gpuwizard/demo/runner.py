"""The recorded runner: answers every command as the recorded host would and applies its
effect to the demo root only (a stand-in for the machine's programs, named as such)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from gpuwizard.demo.recorded import (
    DOCKER_VERSION,
    DRIVER_VERSION,
    GPU_UUID,
    NVIDIA_SMI,
    TOOLKIT_VERSION,
    cdi_spec,
)
from gpuwizard.errors import CommandFailed
from gpuwizard.host.runner import TAIL_LINES, CommandResult, LineCallback
from gpuwizard.host.toolkit import TOOLKIT_PACKAGES


# -- the runner ------------------------------------------------------------------------------
@dataclass
class DemoRunner:
    """Records every argv and answers like the recorded host would, changing only the demo root.

    Output is short and plausible; the effect of a command on the demo machine (packages in
    dpkg's status, the files a package brings) is written under the demo root so a later
    check (dpkg-query, which) sees it, in this process or in the worker's.
    """

    root: Path
    delay: float = 0.05  # seconds per output line: enough to watch, quick to test
    history: list[tuple[str, ...]] = field(default_factory=list)

    def run(
        self,
        argv: Sequence[str],
        *,
        on_line: Optional[LineCallback] = None,
        timeout: Optional[float] = None,
        env: Optional[Mapping[str, str]] = None,
        input: Optional[bytes] = None,
        check: bool = True,
        cwd: Optional[str] = None,
        remedy: str = "",
        **_extra: Any,  # pass_fds and friends: nothing is started, so nothing is passed
    ) -> CommandResult:
        argv = [str(a) for a in argv]
        if len(argv) > 2 and argv[0] == "chroot":
            argv = argv[2:]  # the demo root plays the machine; there is nothing to chroot
        self.history.append(tuple(argv))
        self._log_argv(argv)
        start = time.monotonic()
        code, out, err = self._answer(argv, input)
        lines: list[str] = []
        for stream, text in (("out", out), ("err", err)):
            for line in text.splitlines():
                lines.append(line)
                if on_line is not None:
                    on_line(stream, line)
                    if self.delay:
                        time.sleep(self.delay)
        result = CommandResult(
            tuple(argv), code, out, err, "\n".join(lines[-TAIL_LINES:]), time.monotonic() - start
        )
        if check and code != 0:
            raise CommandFailed(argv, code, result.tail, remedy)
        return result

    def _log_argv(self, argv: list[str]) -> None:
        """Keep every command the demo 'ran' in the demo root, for the curious."""
        with open(self.root / "var/lib/gpuwizard/demo-commands.log", "a", encoding="utf-8") as fh:
            fh.write(" ".join(argv) + "\n")

    # each answer: (exit status, stdout, stderr)
    def _answer(self, argv: list[str], input: Optional[bytes]) -> tuple[int, str, str]:
        name = os.path.basename(argv[0])
        args = argv[1:]
        handler = getattr(self, "_" + name.replace("-", "_").replace(".", "_"), None)
        if handler is not None:
            result: tuple[int, str, str] = handler(args, input)
            return result
        return 0, f"(demo) would run: {' '.join(argv)}\n", ""

    # apt / dpkg ---------------------------------------------------------------------------
    def _status_path(self) -> Path:
        return self.root / "var/lib/dpkg/status"

    def installed(self) -> dict[str, str]:
        """Package -> version, from the demo root's dpkg status."""
        out = {}
        text = self._status_path().read_text() if self._status_path().exists() else ""
        for stanza in text.split("\n\n"):
            fields = dict(line.split(": ", 1) for line in stanza.splitlines() if ": " in line)
            if fields.get("Package") and "installed" in fields.get("Status", ""):
                out[fields["Package"]] = fields.get("Version", "")
        return out

    def _write_status(self, packages: dict[str, str]) -> None:
        stanzas = [
            f"Package: {p}\nStatus: install ok installed\nArchitecture: amd64\nVersion: {v}\n"
            for p, v in sorted(packages.items())
        ]
        self._status_path().write_text("\n".join(stanzas) + "\n")

    def _apt_get(self, args: list[str], _input: Optional[bytes]) -> tuple[int, str, str]:
        words: list[str] = []
        skip = False
        for a in args:
            if skip:
                skip = False
            elif a in ("-o", "-c", "-t"):
                skip = True  # the option's value follows
            elif not a.startswith("-"):
                words.append(a)
        if not words:
            return 0, "", ""
        verb, names = words[0], words[1:]
        if {"-s", "--simulate", "--dry-run", "--just-print"} & set(args):
            return 0, self._simulated(verb, names), ""
        if verb == "update":
            self._write_index()
            url = self._repository_url() or "http://archive.ubuntu.com/ubuntu noble"
            return (
                0,
                (
                    f"Get:1 {url}  InRelease [1477 B]\n"
                    f"Get:2 {url}  Packages [20.4 kB]\n"
                    "Fetched 21.9 kB in 1s (24.1 kB/s)\nReading package lists...\n"
                ),
                "",
            )
        if verb == "install":
            packages = self.installed()
            out = [
                "Reading package lists...",
                "Building dependency tree...",
                "The following NEW packages will be installed:",
                "  " + " ".join(n.split("=")[0] for n in names),
            ]
            for n in names:
                pkg, _, version = n.partition("=")
                version = version or TOOLKIT_VERSION
                packages[pkg] = version
                out.append(f"Unpacking {pkg} ({version}) ...")
            for n in names:
                pkg, _, version = n.partition("=")
                out.append(f"Setting up {pkg} ({version or TOOLKIT_VERSION}) ...")
            self._write_status(packages)
            self._place_toolkit_files(packages)
            return 0, "\n".join(out) + "\n", ""
        if verb in ("remove", "purge", "autoremove"):
            packages = self.installed()
            out = ["Reading package lists..."]
            for n in names:
                pkg = n.split("=")[0]
                if packages.pop(pkg, None) is not None:
                    out.append(f"Removing {pkg} ...")
            self._write_status(packages)
            self._place_toolkit_files(packages)
            return 0, "\n".join(out) + "\n", ""
        return 0, f"(demo) apt-get {' '.join(args)}\n", ""

    _apt = _apt_get

    def _simulated(self, verb: str, names: list[str]) -> str:
        installed = self.installed()
        lines = []
        for n in names:
            pkg, _, version = n.partition("=")
            if verb == "install":
                old = f"[{installed[pkg]}] " if pkg in installed else ""
                lines.append(
                    f"Inst {pkg} {old}({version or TOOLKIT_VERSION} "
                    "nvidia-container-toolkit:stable [amd64])"
                )
            elif pkg in installed:
                lines.append(f"Remv {pkg} [{installed[pkg]}]")
        return "\n".join(lines) + "\n"

    def _write_index(self) -> None:
        """What apt-get update leaves: the NVIDIA source's Packages index in the demo root."""
        url = self._repository_url()
        if url is None:
            return
        from gpuwizard.host.sources import apt_list_prefix

        lists = self.root / "var/lib/apt/lists"
        lists.mkdir(parents=True, exist_ok=True)
        (lists / (apt_list_prefix(url) + "Packages")).write_text(
            "".join(
                f"Package: {n}\nVersion: {TOOLKIT_VERSION}\nArchitecture: amd64\n\n"
                for n in TOOLKIT_PACKAGES
            )
        )

    def _repository_listed(self) -> bool:
        return self._repository_url() is not None

    def _repository_url(self) -> Optional[str]:
        """The URL of the NVIDIA source the repository step wrote, if it did."""
        lists = self.root / "etc/apt/sources.list.d"
        for path in sorted(lists.glob("*nvidia*")) if lists.is_dir() else []:
            for line in path.read_text(errors="replace").splitlines():
                words = [
                    w
                    for w in line.split()
                    if not w.startswith("[") and "=" not in w and not w.endswith("]")
                ]
                if len(words) >= 2 and words[0] == "deb":
                    return words[1].replace("$(ARCH)", "amd64")  # as apt substitutes it
        return None

    def _apt_cache(self, args: list[str], _input: Optional[bytes]) -> tuple[int, str, str]:
        words = [a for a in args if not a.startswith("-")]
        if not words:
            return 0, "", ""
        verb, names = words[0], words[1:]
        src = f"{self._repository_url()}  Packages"
        if verb == "madison":
            if not self._repository_listed():
                return 0, "", ""
            return (
                0,
                "".join(
                    f"{n} | {v} | {src}\n"
                    for n in names
                    if n in TOOLKIT_PACKAGES
                    for v in (TOOLKIT_VERSION, "1.17.7-1", "1.16.2-1")
                ),
                "",
            )
        if verb == "policy":
            installed = self.installed()
            out = []
            candidate = TOOLKIT_VERSION if self._repository_listed() else "(none)"
            for n in names:
                out.append(
                    f"{n}:\n  Installed: {installed.get(n, '(none)')}\n  Candidate: {candidate}"
                )
            return 0, "\n".join(out) + "\n", ""
        return 0, "", ""

    def _place_toolkit_files(self, packages: dict[str, str]) -> None:
        present = "nvidia-container-toolkit" in packages
        for prog in (
            "nvidia-ctk",
            "nvidia-container-runtime",
            "nvidia-container-runtime-hook",
            "nvidia-container-cli",
        ):
            path = self.root / "usr/bin" / prog
            if present:
                path.write_text("#!/bin/sh\n# demo stand-in\n")
                path.chmod(0o755)
            elif path.exists():
                path.unlink()

    def _dpkg_query(self, args: list[str], _input: Optional[bytes]) -> tuple[int, str, str]:
        packages = self.installed()
        fmt = next(
            (a.split("=", 1)[1] for a in args if a.startswith(("-f=", "--showformat="))), None
        )
        if fmt is None and "-f" in args:
            fmt = args[args.index("-f") + 1]
        names = [a for a in args if not a.startswith("-") and a != fmt]
        out, err, code = [], [], 0
        for n in names or sorted(packages):
            if n in packages:
                if fmt:
                    out.append(
                        fmt.replace("${Package}", n)
                        .replace("${Version}", packages[n])
                        .replace("${Status}", "install ok installed")
                        .replace("${db:Status-Abbrev}", "ii ")
                        .replace("\\n", "\n")
                        .replace("\\t", "\t")
                    )
                else:
                    out.append(f"{n}\t{packages[n]}\n")
            else:
                code = 1
                err.append(f"dpkg-query: no packages found matching {n}\n")
        return code, "".join(out), "".join(err)

    def _dpkg(self, args: list[str], _input: Optional[bytes]) -> tuple[int, str, str]:
        if "--print-architecture" in args:
            return 0, "amd64\n", ""
        return 0, f"(demo) dpkg {' '.join(args)}\n", ""

    # docker, systemd, nvidia --------------------------------------------------------------
    def _systemctl(self, args: list[str], _input: Optional[bytes]) -> tuple[int, str, str]:
        verbs = [a for a in args if not a.startswith("-")]
        if verbs and verbs[0] == "is-active":
            return 0, "active\n", ""
        if verbs and verbs[0] == "show":
            return 0, "ActiveState=active\nSubState=running\nNRestarts=0\n", ""
        return 0, "", ""

    def _docker(self, args: list[str], _input: Optional[bytes]) -> tuple[int, str, str]:
        if args[:1] == ["version"] or "--version" in args:
            return 0, f"Docker version {DOCKER_VERSION}, build 9f9e405\n", ""
        if args[:1] == ["run"]:
            if any("nvidia-smi" in a for a in args):
                return 0, NVIDIA_SMI, ""
            return 0, "", ""
        return 0, f"(demo) docker {' '.join(args)}\n", ""

    def _nvidia_smi(self, args: list[str], _input: Optional[bytes]) -> tuple[int, str, str]:
        if "--query-gpu=driver_version" in " ".join(args):
            return 0, f"{DRIVER_VERSION}\n", ""
        return 0, NVIDIA_SMI, ""

    def _nvidia_ctk(self, args: list[str], _input: Optional[bytes]) -> tuple[int, str, str]:
        if "--version" in args:
            version = TOOLKIT_VERSION.split("-")[0]
            return 0, f"NVIDIA Container Toolkit CLI version {version}\ncommit: demo\n", ""
        # `cdi generate` writes the shape of the spec the real toolkit 1.20.0 made on the
        # recorded H200 (schema 0.5.0; devices 0, the GPU's UUID, all); `cdi list` names them
        if args[:2] == ["cdi", "generate"]:
            output = next((a.split("=", 1)[1] for a in args if a.startswith("--output=")), "")
            if not output:
                return 1, "", "demo: nvidia-ctk cdi generate needs --output=FILE\n"
            Path(output).write_text(cdi_spec())
            return (
                0,
                "",
                'Auto-detected mode as "nvml"\nUsing driver version 580.159.04\n'
                "Generated CDI spec with version 0.5.0\n",
            )
        if args[:2] == ["cdi", "list"]:
            names = ["nvidia.com/gpu=0", f"nvidia.com/gpu={GPU_UUID}", "nvidia.com/gpu=all"]
            return 0, f"Found {len(names)} CDI devices\n" + "\n".join(names) + "\n", ""
        return 0, f"(demo) nvidia-ctk {' '.join(args)}\n", ""

    def _gpg(self, args: list[str], _input: Optional[bytes]) -> tuple[int, str, str]:
        """Answers for the demo key only, as recorded from gpg 2.2; nothing is imported."""
        data = Path(__file__).resolve().parent.parent / "data"
        if "--dearmor" in args and "-o" in args:
            Path(args[args.index("-o") + 1]).write_bytes((data / "demo-key.gpg").read_bytes())
            return 0, "", ""
        if "--import" in args and "show-only" in args:
            if _input is not None and b"BEGIN PGP PUBLIC KEY" not in _input:
                return 2, "", "gpg: no valid OpenPGP data found.\n"
            return 0, (data / "demo-key.colons").read_text(), ""
        return 0, "", ""

    def _uname(self, args: list[str], _input: Optional[bytes]) -> tuple[int, str, str]:
        return 0, "6.8.0-60-generic\n" if "-r" in args else "Linux\n", ""

"""Package sources on the host, parsed once: apt's one-line `.list` entries, deb822 `.sources`
stanzas and yum/zypper `.repo` sections, and which of them are NVIDIA leftovers.

Leftovers from the old guides (nvidia-docker.list, nvidia-container-runtime.list,
libnvidia-container.list, a file holding `# Unsupported distribution!`) make apt fail with
`Conflicting values set for option Signed-By` next to the new list, so they are found here and
handed to the repository step, which backs them up and removes them.
"""

from __future__ import annotations

import configparser
import re
import urllib.parse
from dataclasses import dataclass
from typing import Optional

from gpuwizard.host.system import Host

KEYRING = "/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg"
APT_LIST = "/etc/apt/sources.list.d/nvidia-container-toolkit.list"
REPO_ID = "nvidia-container-toolkit"
RPM_KEY = "/etc/pki/rpm-gpg/RPM-GPG-KEY-nvidia-container-toolkit"
YUM_REPO = "/etc/yum.repos.d/nvidia-container-toolkit.repo"
ZYPP_REPO = "/etc/zypp/repos.d/nvidia-container-toolkit.repo"
UNSUPPORTED = "# Unsupported distribution!"
NVIDIA_HOST = "nvidia.github.io"
_DEB_LINE = re.compile(r"^\s*(deb|deb-src)\s+(\[[^\]]*\]\s+)?(\S+)")


@dataclass(frozen=True)
class LegacySource:
    """A source file that points at NVIDIA's (or the mirror's) old repositories."""

    path: str
    before: bytes
    after: Optional[bytes]  # None: remove the whole file
    entries: tuple[str, ...]  # the offending lines or stanzas, as shown to the user

    def describe(self) -> str:
        what = "remove" if self.after is None else "drop NVIDIA entries from"
        return f"{what} {self.path} (legacy NVIDIA source: {len(self.entries)} entr" + (
            "y)" if len(self.entries) == 1 else "ies)"
        )


@dataclass(frozen=True)
class SourceMatcher:
    """Which URIs count as NVIDIA's: anything on nvidia.github.io, and on a mirror only what
    lies under the mirror's NVIDIA tree (a company mirror also serves Debian itself)."""

    repo_url: str

    def matches(self, uri: str) -> bool:
        parts = urllib.parse.urlparse(uri)
        if parts.hostname and parts.hostname.lower() == NVIDIA_HOST:
            return True
        norm = uri.rstrip("/") + "/"
        base = self.repo_url.rstrip("/")
        own = [base + "/"]
        exp = experimental_url(base)
        if exp:
            own.append(exp + "/")
        if any(norm.startswith(p) for p in own):
            return True
        # NVIDIA's old repositories are siblings of libnvidia-container/ (nvidia-docker/,
        # nvidia-container-runtime/); a mirror of the site keeps that layout
        parent = base.rsplit("/", 1)[0] if base.count("/") > 2 else base
        if parent.endswith("/libnvidia-container") and parent.count("/") > 2:
            parent = parent.rsplit("/", 1)[0]
        return norm.startswith(parent + "/") and any(m in parts.path for m in _NVIDIA_PATHS)


_NVIDIA_PATHS = (
    "libnvidia-container",
    "nvidia-docker",
    "nvidia-container-runtime",
    "nvidia-container-toolkit",
)


def apt_source_files(host: Host) -> list[str]:
    files = []
    if host.path("/etc/apt/sources.list").is_file():
        files.append("/etc/apt/sources.list")
    folder = host.path("/etc/apt/sources.list.d")
    if folder.is_dir():
        for p in sorted(folder.iterdir()):
            if p.suffix in (".list", ".sources") and p.is_file():
                files.append(f"/etc/apt/sources.list.d/{p.name}")
    return files


@dataclass(frozen=True)
class AptEntry:
    """One `deb` entry (a one-line `.list` line or a deb822 stanza's URI and suite)."""

    file: str
    line: int  # the line of a .list; the stanza's number in a .sources
    uri: str
    suite: str
    signed_by: Optional[str]

    def key(self) -> tuple[str, str]:
        """What apt compares to find two entries for one source."""
        return self.uri.replace("$(ARCH)", "ARCH").rstrip("/"), self.suite


_DEB = re.compile(r"^\s*deb\s+(?:\[(?P<opts>[^\]]*)\]\s+)?(?P<uri>\S+)\s+(?P<suite>\S+)")


@dataclass(frozen=True)
class AptSources:
    """apt's sources as read: the entries naming a host, and files saying `Unsupported
    distribution` (what NVIDIA's URL serves for a release it does not know)."""

    entries: tuple[AptEntry, ...]
    unsupported: tuple[str, ...]


def apt_sources(host: Host, needle: str = NVIDIA_HOST) -> AptSources:
    """Every enabled `deb` entry whose URI contains `needle`, one-line and deb822."""
    entries: list[AptEntry] = []
    unsupported: list[str] = []
    for name in apt_source_files(host):
        text = host.read_text(name)
        if text is None:
            continue
        if "unsupported distribution" in text.lower():
            unsupported.append(name)
        if name.endswith(".sources"):
            entries += _deb822_entries(name, text, needle)
            continue
        for number, line in enumerate(text.splitlines(), 1):
            m = _DEB.match(line)
            if not m or needle not in m.group("uri"):
                continue
            opts = dict(o.split("=", 1) for o in (m.group("opts") or "").split() if "=" in o)
            entries.append(
                AptEntry(name, number, m.group("uri"), m.group("suite"), opts.get("signed-by"))
            )
    return AptSources(tuple(entries), tuple(unsupported))


def _deb822_entries(name: str, text: str, needle: str) -> list[AptEntry]:
    out = []
    for number, stanza in enumerate(re.split(r"\n\s*\n", text), 1):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if ":" in line and not line.startswith((" ", "#")):
                k, _, v = line.partition(":")
                fields[k.strip().lower()] = v.strip()
        if fields.get("enabled", "yes").lower() == "no":
            continue
        for uri in fields.get("uris", "").split():
            if needle in uri:
                for suite in fields.get("suites", "/").split():
                    out.append(AptEntry(name, number, uri, suite, fields.get("signed-by")))
    return out


def _list_file(path: str, data: bytes, matcher: SourceMatcher) -> Optional[LegacySource]:
    # surrogateescape: a byte that is not UTF-8 (a Latin-1 comment) goes back out unchanged
    text = data.decode("utf-8", "surrogateescape")
    if UNSUPPORTED in text:
        return LegacySource(path, data, None, (UNSUPPORTED,))
    keep: list[str] = []
    hits: list[str] = []
    for line in text.splitlines(keepends=True):
        m = _DEB_LINE.match(line)
        if m and matcher.matches(m.group(3)):
            hits.append(line.rstrip("\n"))
        else:
            keep.append(line)
    if not hits:
        return None
    active = [x for x in keep if x.strip() and not x.lstrip().startswith("#")]
    if not active and path != "/etc/apt/sources.list":
        return LegacySource(path, data, None, tuple(hits))
    return LegacySource(path, data, "".join(keep).encode("utf-8", "surrogateescape"), tuple(hits))


def _sources_file(path: str, data: bytes, matcher: SourceMatcher) -> Optional[LegacySource]:
    text = data.decode("utf-8", "surrogateescape")
    stanzas = re.split(r"\n[ \t]*\n", text.strip("\n"))
    keep: list[str] = []
    hits: list[str] = []
    for stanza in stanzas:
        uris: list[str] = []
        for line in stanza.splitlines():
            if line.lower().startswith("uris:"):
                uris += line.split(":", 1)[1].split()
        if uris and any(matcher.matches(u) for u in uris):
            hits.append(stanza)
        else:
            keep.append(stanza)
    if not hits:
        return None
    active = [
        s
        for s in keep
        if any(ln.strip() and not ln.lstrip().startswith("#") for ln in s.splitlines())
    ]
    if not active:
        return LegacySource(path, data, None, tuple(hits))
    return LegacySource(
        path, data, ("\n\n".join(keep) + "\n").encode("utf-8", "surrogateescape"), tuple(hits)
    )


def legacy_apt_sources(host: Host, repo_url: str, own: str) -> list[LegacySource]:
    """Every apt source, other than our own list, that points at NVIDIA's repositories."""
    matcher = SourceMatcher(repo_url)
    out = []
    for path in apt_source_files(host):
        if path == own:
            continue
        try:
            data = host.path(path).read_bytes()
        except OSError:
            continue
        found = (_sources_file if path.endswith(".sources") else _list_file)(path, data, matcher)
        if found is not None:
            out.append(found)
    return out


def own_list_lines(repo_url: str, keyring: str, experimental: bool) -> str:
    """The list NVIDIA publishes, with signed-by added (what the documented sed produces)."""
    base = repo_url.rstrip("/")
    lines = [f"deb [signed-by={keyring}] {base}/deb/$(ARCH) /"]
    exp = experimental_url(base)
    if exp is not None:
        prefix = "" if experimental else "#"
        lines.append(f"{prefix}deb [signed-by={keyring}] {exp}/deb/$(ARCH) /")
    return "\n".join(lines) + "\n"


def experimental_url(repo_url: str) -> Optional[str]:
    """NVIDIA's experimental channel sits beside stable; a mirror without that shape has none."""
    base = repo_url.rstrip("/")
    if base.endswith("/stable"):
        return base[: -len("/stable")] + "/experimental"
    return None


APT_AUTH_FILE = "/etc/apt/auth.conf.d/nvidia.conf"


def login_remedy(url: str) -> str:
    """Where a mirror's login goes instead of its URL, for apt and for dnf/yum (USER and
    PASSWORD stand for it; nothing of a login in `url` is repeated)."""
    parts = urllib.parse.urlsplit(url)
    hostport = parts.netloc.rpartition("@")[2]
    # apt_auth.conf(5): a machine with no protocol matches https only
    machine = hostport if parts.scheme == "https" else f"{parts.scheme}://{hostport}"
    return (
        f"apt: a file {APT_AUTH_FILE} (owned by root, mode 0600) with the line "
        f"`machine {machine} login USER password PASSWORD`; dnf/yum: username=USER and "
        f"password=PASSWORD in the [{REPO_ID}] section of {YUM_REPO} (owned by root, mode "
        "0600; gpuwizard keeps them when it writes the file)"
    )


def wants_login(output: str) -> bool:
    """apt's `401  Unauthorized`, dnf's `Status code: 401`: the mirror wants a login."""
    return re.search(r"\b401\s+Unauthori[sz]ed|Status code: 401\b", output) is not None


def apt_list_prefix(uri: str) -> str:
    """How apt names the index files of a URI in /var/lib/apt/lists."""
    parts = urllib.parse.urlparse(uri)
    host = parts.netloc.rsplit("@", 1)[-1]
    path = parts.path.rstrip("/")
    return (host + path).replace("/", "_") + "_"


def apt_index_present(host: Host, uri: str) -> bool:
    folder = host.path("/var/lib/apt/lists")
    prefix = apt_list_prefix(uri)
    return folder.is_dir() and any(folder.glob(prefix + "Packages*"))


# -- rpm .repo files ---------------------------------------------------------------------------


def parse_repo(text: str) -> dict[str, dict[str, str]]:
    """A .repo file as {section: {key: value}}; unreadable files are empty."""
    cp = configparser.RawConfigParser(strict=False, interpolation=None)
    try:
        cp.read_string(text)
    except configparser.Error:
        return {}
    return {s: dict(cp.items(s)) for s in cp.sections()}


def render_repo(sections: dict[str, dict[str, str]]) -> str:
    out = []
    for name, keys in sections.items():
        out.append(f"[{name}]")
        out += [f"{k}={v}" for k, v in keys.items()]
        out.append("")
    return "\n".join(out)


def repo_satisfied(existing: str, wanted: dict[str, dict[str, str]]) -> bool:
    """Key by key: every key we want is there with our value (other keys may exist)."""
    have = parse_repo(existing)
    for section, keys in wanted.items():
        got = have.get(section)
        if got is None:
            return False
        for k, v in keys.items():
            if got.get(k) != v:
                return False
    return True


def legacy_repo_files(host: Host, folder: str, repo_url: str, own: str) -> list[LegacySource]:
    """Old NVIDIA .repo files (nvidia-docker.repo, nvidia-container-runtime.repo, …)."""
    matcher = SourceMatcher(repo_url)
    real = host.path(folder)
    out: list[LegacySource] = []
    if not real.is_dir():
        return out
    for p in sorted(real.glob("*.repo")):
        path = f"{folder}/{p.name}"
        if path == own:
            continue
        data = p.read_bytes()
        sections = parse_repo(data.decode("utf-8", "replace"))
        hits = [
            s
            for s, keys in sections.items()
            if any(matcher.matches(u) for u in keys.get("baseurl", "").split())
        ]
        if hits and len(hits) == len(sections):
            out.append(LegacySource(path, data, None, tuple(f"[{h}]" for h in hits)))
    return out


@dataclass(frozen=True)
class RepoSection:
    """One enabled section of a .repo file that names a host."""

    file: str
    section: str
    baseurl: str


def repo_sections(
    host: Host, folder: str, needle: str = NVIDIA_HOST
) -> tuple[list[RepoSection], list[str]]:
    """Enabled .repo sections whose baseurl contains `needle`, and files saying `Unsupported
    distribution`."""
    found: list[RepoSection] = []
    unsupported: list[str] = []
    real = host.path(folder)
    for p in sorted(real.glob("*.repo")) if real.is_dir() else []:
        text = p.read_text(errors="replace")
        if "unsupported distribution" in text.lower():
            unsupported.append(f"{folder}/{p.name}")
        for section, keys in parse_repo(text).items():
            url = keys.get("baseurl", "")
            if needle in url and keys.get("enabled", "1").strip() in ("1", "yes"):
                found.append(RepoSection(f"{folder}/{p.name}", section, url))
    return found, unsupported

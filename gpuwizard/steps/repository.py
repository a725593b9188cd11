"""The NVIDIA repository: the signing key (fingerprint checked before anything trusts it), the
source list or .repo file, the package index of that source, and the removal of the leftovers
of the old guides that make apt fail with `Conflicting values set for option Signed-By`.
"""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Optional

from gpuwizard.actions.base import Action, ApplyContext
from gpuwizard.actions.files import RemoveFile, WriteFile
from gpuwizard.actions.packages import ImportRpmKey, RefreshPackageIndex, WriteKeyring
from gpuwizard.errors import WizardError
from gpuwizard.events import mask_login
from gpuwizard.host import download
from gpuwizard.host.keys import (
    MIRROR_REMEDY,
    CheckedKey,
    KeyUnavailable,
    checked_key,
    keyring_fingerprints,
    keyring_without,
    normalize_fingerprint,
)
from gpuwizard.host.packages import (
    TOOLKIT_PACKAGES,
    AptPackages,
    PackageManager,
    RpmPackages,
    ZypperPackages,
    docker_packaging_refusal,
    package_manager,
    vendor_build_refusal,
)
from gpuwizard.host.sources import (
    APT_LIST,
    KEYRING,
    REPO_ID,
    RPM_KEY,
    YUM_REPO,
    ZYPP_REPO,
    LegacySource,
    apt_index_present,
    experimental_url,
    legacy_apt_sources,
    legacy_repo_files,
    login_remedy,
    own_list_lines,
    parse_repo,
    render_repo,
    repo_satisfied,
)
from gpuwizard.host.system import Host
from gpuwizard.options import Options
from gpuwizard.steps.base import BLOCKED, DONE, PENDING, Simulation, Step, StepPlan

# Keys that old guides added with apt-key: today's key and the one that expired in 2018.
OLD_KEY_IDS = ("C45B1676A04EA552",)
PENDING_MARK = "repository-pending"


def refusal_plan(
    step: Step, host: Host, pm: Optional[PackageManager], repo_url: str
) -> Optional[StepPlan]:
    """The cases where NVIDIA's packages must not be installed, shared with the packages step."""
    if pm is None:
        return step.make(
            BLOCKED,
            reason="no apt, dnf, yum or zypper on this system",
            remedy="Install the NVIDIA Container Toolkit the way your "
            "distribution documents it; gpuwizard can still configure "
            "Docker (--step daemon-config).",
        )
    if isinstance(pm, RpmPackages):
        foreign = pm.foreign_database()
        if foreign is not None:
            return step.make(
                BLOCKED,
                reason=f"the root's rpm database is at {foreign}, where this machine's "
                "rpm does not look (it would install into a second database)",
                remedy="Run gpuwizard inside the target (chroot into it, or on the machine "
                "itself), or from a machine of the same distribution family.",
            )
    refusal = docker_packaging_refusal(host)
    if refusal is None:
        refusal = vendor_build_refusal(pm, pm.installed(TOOLKIT_PACKAGES), _host_of(repo_url))
    if refusal is not None:
        return step.make(BLOCKED, reason=refusal.cause, remedy=refusal.remedy)
    return None


def _host_of(url: str) -> str:
    return urllib.parse.urlparse(url).netloc


class LoginWanted(WizardError):
    """The repository answered HTTP 401: it is there, and wants a login gpuwizard does not
    send. apt brings its own (/etc/apt/auth.conf.d), so on apt this is only a warning."""


def probe_repository(url: str, timeout: float = 20.0) -> None:
    """Read-only: is the repository there? (InRelease for apt, repomd.xml for rpm)."""
    if url.startswith("file://"):
        return
    shown = mask_login(url)  # the URL as messages show it (a login never reaches here)
    req = urllib.request.Request(url, headers={"User-Agent": "gpuwizard"}, method="GET")
    try:
        with download.urlopen(req, timeout=timeout) as resp:
            resp.read(1)
    except urllib.error.HTTPError as exc:
        if exc.code == 401:
            raise LoginWanted(
                f"The repository wants a login (HTTP 401 for {shown})",
                f"gpuwizard sends none; the package manager brings it. {login_remedy(url)}. "
                "zypper: gpuwizard cannot give it one; use a mirror path this host reaches "
                "without a login.",
            ) from exc
        raise WizardError(
            f"The NVIDIA repository answered HTTP {exc.code} for {shown}",
            "Check --repo-url (it should end in /stable, like "
            "https://nvidia.github.io/libnvidia-container/stable). " + MIRROR_REMEDY,
        ) from exc
    except download.FAILURES as exc:
        raise WizardError(
            f"The NVIDIA repository is unreachable: {shown}: {getattr(exc, 'reason', exc)}",
            "Check the network and any proxy (https_proxy). " + MIRROR_REMEDY,
        ) from exc


class RepositoryStep(Step):
    """Adds NVIDIA's repository, trusted through a checked key; removes the old ones."""

    name = "repository"

    def plan(self, host: Host, options: Options, sim: Simulation) -> StepPlan:
        pm = package_manager(host)
        refused = refusal_plan(self, host, pm, options.repo_url)
        if refused is not None:
            return refused
        assert pm is not None
        if sim.offline:
            return self._offline_plan(host, options, pm)
        try:
            key = checked_key(host, options.key_url, options.key_fingerprint)
        except KeyUnavailable as exc:
            done = self._in_place_offline(host, options, pm)
            if done is None:
                raise
            return self.make(
                DONE,
                reason=done,
                warnings=[
                    f"{exc.cause}; the installed key already has the expected fingerprint, so "
                    "nothing needs it now"
                ],
            )
        facts: dict[str, Any] = {
            "manager": pm.name,
            "repo_url": options.repo_url,
            "key_url": options.key_url,
            "fingerprint": key.fingerprint,
            "key_uids": list(key.uids),
            "key_dropped": list(key.dropped),
        }
        warnings: list[str] = list(key.warnings)
        if options.experimental and experimental_url(options.repo_url) is None:
            warnings.append(
                f"--experimental: {options.repo_url} does not end in /stable, so "
                "there is no experimental channel beside it; only stable is used"
            )
        if isinstance(pm, AptPackages):
            actions, legacy, index_uri = self._apt_actions(host, options, key, warnings)
            probe = f"{index_uri}/InRelease".replace("$(ARCH)", host.facts.arch)
        else:
            actions, legacy = self._rpm_actions(host, options, key, pm)
            index_uri = f"{options.repo_url.rstrip('/')}/rpm/$basearch"
            probe = f"{options.repo_url.rstrip('/')}/rpm/{host.facts.machine}/repodata/repomd.xml"
        facts["legacy"] = [
            {"path": lg.path, "entries": list(lg.entries), "remove": lg.after is None}
            for lg in legacy
        ]
        if not actions:
            return self.make(
                DONE,
                reason="the key, the source and its index are in place",
                facts=facts,
                warnings=warnings,
            )
        try:
            probe_repository(probe)
        except LoginWanted:
            if isinstance(pm, AptPackages):
                where = f"apt takes it from /etc/apt/auth.conf.d/ ({login_remedy(probe)})"
            elif dnf_login(host, pm):
                where = f"{pm.name} takes it from the username=/password= kept in {YUM_REPO}"
            else:
                raise
            warnings.append(
                f"the repository wants a login (HTTP 401 for {probe}); gpuwizard sends none, "
                f"{where}; the index refresh checks it"
            )
        sim.marks[PENDING_MARK] = True
        diffs = [d for a in actions for d in a.preview(host)]
        return self.make(
            PENDING,
            reason=f"{len(actions)} change(s) to the package sources",
            actions=actions,
            diffs=diffs,
            facts=facts,
            warnings=warnings,
        )

    def _offline_plan(self, host: Host, options: Options, pm: PackageManager) -> StepPlan:
        """Not selected: what the machine shows, without downloading the key."""
        done = self._in_place_offline(host, options, pm)
        if done is not None:
            return self.make(DONE, reason=done)
        seen = (
            "the NVIDIA key and source are not both in place"
            if isinstance(pm, AptPackages)
            else "the NVIDIA repository is not checked"
        )
        return self.make(
            PENDING,
            reason=f"{seen} (its key is downloaded and checked only when this step is selected)",
        )

    def _in_place_offline(self, host: Host, options: Options, pm: PackageManager) -> Optional[str]:
        """When the key cannot be downloaded (offline, say) but the installed keyring holds
        the expected key and the source is as it should be, the step is still done."""
        want = normalize_fingerprint(options.key_fingerprint)
        if isinstance(pm, AptPackages):
            listing = own_list_lines(options.repo_url, KEYRING, options.experimental)
            real = host.path(KEYRING)
            if (
                real.is_file()
                and host.read_text(APT_LIST) == listing
                and want in [f for f, _ in keyring_fingerprints(host, real)]
            ):
                return "the key and the source are in place (the key was not re-downloaded)"
        return None

    # -- apt -------------------------------------------------------------------------------
    def _apt_actions(
        self, host: Host, options: Options, key: CheckedKey, warnings: list[str]
    ) -> tuple[list[Action], list[LegacySource], str]:
        actions: list[Action] = []
        keyring = WriteKeyring(
            KEYRING,
            key.keyring,
            mode=0o644,
            reason=f"install the NVIDIA signing key {key.fingerprint} (checked) as {KEYRING}",
            fingerprint=key.fingerprint,
            uids=list(key.uids),
            source=options.key_url,
            dropped=list(key.dropped),
        )
        if keyring.needed(host):
            actions.append(keyring)
        content = own_list_lines(options.repo_url, KEYRING, options.experimental).encode()
        listing = WriteFile(
            APT_LIST, content, mode=0o644, reason=f"add the NVIDIA source {APT_LIST}"
        )
        if listing.needed(host):
            actions.append(listing)
        legacy: list[LegacySource] = []
        if not options.keep_legacy:
            legacy = legacy_apt_sources(host, options.repo_url, APT_LIST)
            for lg in legacy:
                if lg.after is None:
                    actions.append(RemoveFile(lg.path, reason=lg.describe() + ", backed up"))
                else:
                    actions.append(
                        WriteFile(lg.path, lg.after, reason=lg.describe() + ", backed up")
                    )
            actions += self._old_apt_keys(host, options)
        elif legacy_apt_sources(host, options.repo_url, APT_LIST):
            warnings.append(
                "legacy NVIDIA sources are left in place (--keep-legacy); apt may "
                "fail with `Conflicting values set for option Signed-By`"
            )
        index_uri = f"{options.repo_url.rstrip('/')}/deb/{host.facts.arch}"
        if actions or not apt_index_present(host, index_uri):
            actions.append(RefreshPackageIndex(APT_LIST, index_uri))
        return actions, legacy, index_uri

    def _old_apt_keys(self, host: Host, options: Options) -> list[Action]:
        """The NVIDIA key added with `apt-key add` to the legacy trusted.gpg: it makes apt
        trust NVIDIA for every source. Removed from a copy written back (reversible)."""
        wanted = {normalize_fingerprint(options.key_fingerprint)}
        out: list[Action] = []
        path = "/etc/apt/trusted.gpg"
        real = host.path(path)
        if not real.is_file() or real.stat().st_size == 0:
            return out
        keys = keyring_fingerprints(host, real)
        ours = [f for f, _ in keys if f in wanted or any(f.endswith(k) for k in OLD_KEY_IDS)]
        if not ours:
            return out
        reason = f"remove the NVIDIA key {', '.join(ours)} from {path} (added by apt-key)"
        if len(ours) == len(keys):
            out.append(RemoveFile(path, reason=reason + "; the file held only it, backed up"))
        else:
            out.append(
                WriteFile(
                    path,
                    keyring_without(host, real, ours),
                    reason=reason + "; other keys stay, backed up",
                )
            )
        return out

    # -- dnf / yum / zypper ----------------------------------------------------------------
    def _rpm_actions(
        self, host: Host, options: Options, key: CheckedKey, pm: PackageManager
    ) -> tuple[list[Action], list[LegacySource]]:
        if not key.armored.lstrip().startswith(b"-----BEGIN PGP"):
            raise WizardError(
                f"The key at {options.key_url} is binary; rpm imports only ASCII-armored keys",
                "Point --key-url at the armored key (NVIDIA's gpgkey is).",
            )
        actions: list[Action] = []
        key_file = WriteFile(
            RPM_KEY,
            key.armored,
            mode=0o644,
            reason=f"store the checked NVIDIA key {key.fingerprint} as {RPM_KEY}",
        )
        if key_file.needed(host):
            actions.append(key_file)
        zypper = isinstance(pm, ZypperPackages)
        repo_path = ZYPP_REPO if zypper else YUM_REPO
        wanted = rpm_repo_sections(options, zypper)
        current = host.read_text(repo_path)
        if current is None or not repo_satisfied(current, wanted):
            login = dnf_login(host, pm)
            sections = {name: {**keys, **login.get(name, {})} for name, keys in wanted.items()}
            actions.append(
                WriteFile(
                    repo_path,
                    render_repo(sections).encode(),
                    mode=0o600 if login else 0o644,
                    reason=f"add the NVIDIA repository {repo_path}"
                    + (", keeping its username/password (mode 0600)" if login else ""),
                )
            )
        if isinstance(pm, RpmPackages) and not pm.has_key(key.short_id):
            actions.append(ImportRpmKey(RPM_KEY, key.short_id, key.fingerprint))
        legacy: list[LegacySource] = []
        if not options.keep_legacy:
            folder = "/etc/zypp/repos.d" if zypper else "/etc/yum.repos.d"
            legacy = legacy_repo_files(host, folder, options.repo_url, repo_path)
            actions += [RemoveFile(lg.path, reason=lg.describe() + ", backed up") for lg in legacy]
        if actions:
            actions.append(RefreshPackageIndex(REPO_ID, options.repo_url))
        return actions, legacy

    def verify(self, ctx: ApplyContext, options: Options, plan: StepPlan) -> None:
        pm = package_manager(ctx.host)
        if pm is None:
            return
        quick = isinstance(pm, AptPackages) and pm.sources_in_our_list("nvidia-container-toolkit")
        if not quick and not pm.available("nvidia-container-toolkit"):
            raise WizardError(
                f"The repository {options.repo_url} was added, but it offers no "
                f"nvidia-container-toolkit for {ctx.host.facts.arch}",
                "NVIDIA publishes amd64 and arm64. For a mirror, check that it carries this "
                "architecture (--repo-url).",
            )


LOGIN_KEYS = ("username", "password")


def dnf_login(host: Host, pm: PackageManager) -> dict[str, dict[str, str]]:
    """The username/password a user put in gpuwizard's own .repo file (dnf and yum read them
    there; a mirror's login never goes in --repo-url), section by section, to keep when the
    file is written again. zypper reads no login from a .repo: none."""
    if isinstance(pm, ZypperPackages):
        return {}
    sections = parse_repo(host.read_text(YUM_REPO) or "")
    out: dict[str, dict[str, str]] = {}
    for name, keys in sections.items():
        if name.startswith(REPO_ID):
            login = {k: keys[k] for k in LOGIN_KEYS if keys.get(k)}
            if login:
                out[name] = login
    return out


def rpm_repo_sections(options: Options, zypper: bool) -> dict[str, dict[str, str]]:
    """NVIDIA's .repo file, key by key. gpgkey names the key file gpuwizard checked and
    stored, so neither dnf nor zypper ever trusts a second, unchecked download."""
    base = options.repo_url.rstrip("/")

    def section(name: str, url: str, enabled: bool) -> dict[str, str]:
        keys = {
            "name": name,
            "baseurl": f"{url}/rpm/$basearch",
            "repo_gpgcheck": "1",
            "gpgcheck": "0",
            "enabled": "1" if enabled else "0",
            "gpgkey": f"file://{RPM_KEY}",
        }
        if url.startswith("https://"):
            keys["sslverify"] = "1"
        if zypper:
            keys["autorefresh"] = "1"
            keys["type"] = "rpm-md"
        return keys

    out = {REPO_ID: section(REPO_ID, base, True)}
    exp = experimental_url(base)
    if exp is not None:
        out[f"{REPO_ID}-experimental"] = section(
            f"{REPO_ID}-experimental", exp, options.experimental
        )
    return out

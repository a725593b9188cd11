"""The plan as a POSIX shell script (`gpuwizard plan --export sh`): readable, idempotent, no
`curl | sh`.

Each step is one block, commented with the step's title, its state in the plan and the lines
it changed there. Every block checks first and changes only what is not in place, so a second
run changes nothing and says so. The signing key is trusted only after gpg has checked its
fingerprint; only that key is written, into its own keyring named by signed-by. Files that are
replaced or removed are copied under /var/backups/gpuwizard-export/<time>/ first.
"""

from __future__ import annotations

import shlex
from typing import Optional

from gpuwizard import __version__
from gpuwizard.export.daemon_merge import MERGE_PY
from gpuwizard.export.recipe import Block, Recipe, summary_lines

q = shlex.quote

INSTALL_HINTS = {
    "apt": {"gpg": "apt-get install gpg", "python3": "apt-get install python3"},
    "dnf": {"gpg": "dnf install gnupg2", "python3": "dnf install python3"},
    "zypper": {"gpg": "zypper install gpg2", "python3": "zypper install python3"},
}

PRELUDE = r"""set -eu

say() { printf '%s\n' "$*"; }
ok() { say "  ok: $*"; }
changed() { CHANGES=$((CHANGES + 1)); say "  changed: $*"; }
die() {
    printf 'gpu-setup: error: %s\n' "$1" >&2
    if [ $# -gt 1 ]; then printf '  -> %s\n' "$2" >&2; fi
    exit 1
}
need() { command -v "$1" >/dev/null 2>&1 || die "$1 is not installed: $2" "$3, then run this again (nothing was changed)."; }

CHANGES=0
BACKUP_DIR=${GPU_SETUP_BACKUP_DIR:-/var/backups/gpuwizard-export/$(date -u +%Y%m%dT%H%M%SZ)}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
trap 'exit 130' INT TERM HUP

# backup PATH: keep a copy of a file about to be replaced or removed
backup() {
    if [ -e "$1" ]; then
        mkdir -p "$BACKUP_DIR$(dirname "$1")"
        cp -p "$1" "$BACKUP_DIR$1"
    fi
}

# put SRC DEST MODE: make DEST hold SRC's bytes, unless it already does (PUT_CHANGED=1 if so)
put() {
    PUT_CHANGED=0
    if [ -f "$2" ] && cmp -s "$1" "$2"; then
        ok "$2 is in place"
        return 0
    fi
    backup "$2"
    mkdir -p "$(dirname "$2")"
    cp "$1" "$2.gpuwizard-new"
    chmod "$3" "$2.gpuwizard-new"
    mv -f "$2.gpuwizard-new" "$2"
    PUT_CHANGED=1
    changed "wrote $2"
}

# fetch URL FILE: download (https, http or file://), never into a shell
fetch() {
    case $1 in
    file://*) cp "${1#file://}" "$2" ;;
    *)
        if command -v curl >/dev/null 2>&1; then
            curl -fsSL --proto '=https,http' -o "$2" "$1"
        elif command -v wget >/dev/null 2>&1; then
            wget -q -O "$2" "$1"
        elif [ -x /usr/lib/apt/apt-helper ]; then
            /usr/lib/apt/apt-helper -o APT::Sandbox::User=root download-file "$1" "$2" >/dev/null
        else
            die "no curl, wget or apt-helper to download $1" "Install curl"
        fi
        ;;
    esac || die "could not download $1 (nothing was changed by this block)" \
        "Check that this host reaches it (proxy, firewall), or export with --key-url/--repo-url for a mirror."
}
"""


def _comment(text: str, prefix: str = "# ") -> list[str]:
    import textwrap

    out: list[str] = []
    for para in text.splitlines() or [""]:
        out += [prefix + line for line in textwrap.wrap(para, 94) or [""]]
    return [line.rstrip() for line in out]


def _header(r: Recipe) -> list[str]:
    lines = [
        "#!/bin/sh",
        f"# gpu-setup: exported by gpuwizard {__version__} (`gpuwizard plan --export sh`)",
        f"# from the plan on {r.exported_from} (plan digest {r.digest[:16]}), for {r.family} hosts.",
        "#",
    ]
    lines += _comment(
        "Makes Docker containers use this host's NVIDIA GPUs, step by step as gpuwizard's plan "
        "does. Read it, then run it as root: sudo sh gpu-setup.sh. Every block checks first and "
        "changes only what is not in place, so a second run changes nothing and says so. "
        "Replaced or removed files are copied under /var/backups/gpuwizard-export/<time>/ first "
        "(or $GPU_SETUP_BACKUP_DIR). "
        "No download is ever run as a program: the signing key is trusted only after gpg has "
        "checked its fingerprint. gpuwizard itself journals each change and can roll it back; "
        "this script keeps backups instead."
    )
    lines.append("#")
    return lines + summary_lines(r, "script", _comment)


def _block_header(b: Block, n: int, total: int) -> list[str]:
    lines = ["", f"# {'=' * 94}", f"# [{n}/{total}] {b.title} ({b.step}): {b.state} in the plan"]
    if b.reason:
        lines += _comment("plan: " + b.reason)
    for c in b.changes:
        lines += _comment("changes there: " + c)
    if b.note:
        lines += _comment(b.note)
    lines.append(f"# {'=' * 94}")
    return lines


def _prerequisites(r: Recipe) -> list[str]:
    hints = INSTALL_HINTS[r.family]
    tool = {"apt": "apt-get", "dnf": "dnf", "zypper": "zypper"}[r.family]
    lines = [
        "",
        "# Before anything changes: root, the package manager this script was made for, and the",
        "# tools the blocks need.",
        '[ "$(id -u)" -eq 0 ] || die "run it as root" "sudo sh $0"',
    ]
    if r.exports("repository") or r.exports("packages"):
        if r.family == "dnf":
            lines.append(
                "command -v dnf >/dev/null 2>&1 || command -v yum >/dev/null 2>&1 || "
                f'die "this script was exported for {r.family} hosts and there is no dnf here" '
                '"Export it on a host of this family (gpuwizard plan --export sh there)."'
            )
        else:
            lines.append(
                f"command -v {tool} >/dev/null 2>&1 || "
                f'die "this script was exported for {r.family} hosts and there is no {tool} here" '
                '"Export it on a host of this family (gpuwizard plan --export sh there)."'
            )
    if r.exports("repository"):
        lines.append(
            f'need gpg "it checks the signing key\'s fingerprint before anything trusts it" '
            f'"Install it ({hints["gpg"]})"'
        )
    if r.exports("daemon-config"):
        lines.append(
            f'need python3 "it merges daemon.json (the other keys are kept)" '
            f'"Install it ({hints["python3"]})"'
        )
    return lines


def render(r: Recipe) -> str:
    """The whole script."""
    lines = _header(r)
    lines.append("")
    lines += PRELUDE.splitlines()
    lines += _values(r)
    lines += _prerequisites(r)
    total = len(r.blocks)
    for n, b in enumerate(r.blocks, 1):
        lines += _block_header(b, n, total)
        if not b.exported:
            continue
        lines.append(f'say "== [{n}/{total}] {b.title}"')
        body = BLOCKS[b.step](r)
        lines += body
    lines += [
        "",
        'if [ "$CHANGES" -eq 0 ]; then',
        '    say "gpu-setup: nothing changed: every block was already in place."',
        "else",
        '    say "gpu-setup: $CHANGES change(s) made; replaced files are backed up under $BACKUP_DIR."',
        "fi",
    ]
    return "\n".join(lines) + "\n"


def _values(r: Recipe) -> list[str]:
    lines = [
        "",
        "# What the plan chose (the options it was exported with). Nothing here is a secret.",
        f"REPO_URL={q(r.repo_url)}",
        f"KEY_URL={q(r.key_url)}",
        f"KEY_FPR={r.fingerprint}",
        f"KEYRING={q(r.keyring)}",
        f"SOURCE={q(r.repo_path)}",
        f"VERSION={q(r.version or '')}"
        + ("" if r.version else "  # empty: the newest in the repository, found at run time"),
        f"DAEMON_JSON={q(r.daemon_json)}",
        f"CDI_SPEC={q(r.cdi_path)}",
        f"DOCKER_WAIT={int(r.docker_wait)}",
        "REPO_CHANGED=0",
        "TOOLKIT_CHANGED=0",
        "DAEMON_JSON_CHANGED=0",
        "export DEBIAN_FRONTEND=noninteractive",
    ]
    if r.docker_host:
        lines.append(f"export DOCKER_HOST={q(r.docker_host)}  # the engine the plan used")
    return lines


# -- the blocks ------------------------------------------------------------------------------


def _driver(r: Recipe) -> list[str]:
    paths = " ".join(q(p) for p in r.nvidia_smi)
    return [
        "# Installing a driver (kernel modules, Secure Boot, a reboot) is outside what this script",
        "# can check and undo: it only refuses to go on without one. nvidia-smi is looked for on",
        "# PATH, then where drivers put it off PATH (the plan found it at the first of these).",
        "SMI=$(command -v nvidia-smi || true)",
        f"for p in {paths}; do",
        '    if [ -z "$SMI" ] && [ -x "$p" ]; then SMI=$p; fi',
        "done",
        'if [ -n "$SMI" ] && "$SMI" -L >"$TMP/smi" 2>&1; then',
        '    ok "$(head -n 1 "$TMP/smi")"',
        "else",
        '    die "no working NVIDIA driver here (nvidia-smi is missing or fails)" \\',
        '        "Install the driver for this distribution (gpuwizard status on this host says how), then run this again."',
        "fi",
    ]


def _key_check(r: Recipe) -> list[str]:
    """Download the key, check its fingerprint, keep only that key (in $TMP/key.one)."""
    return [
        "# The key: downloaded, its fingerprint checked by gpg in a throwaway home; only the",
        "# checked key is ever written (a file holding other keys has that one exported alone).",
        'fetch "$KEY_URL" "$TMP/key"',
        'mkdir -m 700 "$TMP/gnupg"',
        'G="gpg --homedir $TMP/gnupg --batch --quiet --no-autostart"',
        '$G --with-colons --import-options show-only --import "$TMP/key" >"$TMP/key.colons" 2>"$TMP/gpg.err" ||',
        '    die "the file at $KEY_URL is not an OpenPGP key; nothing was written" \\',
        '        "Check the key URL (export again with --key-url)."',
        'FPRS=$(awk -F: \'$1 == "pub" { p = 1; next } $1 == "fpr" && p { print $10; p = 0 }\' "$TMP/key.colons")',
        'case " $(echo $FPRS) " in',
        '*" $KEY_FPR "*) ok "the key at $KEY_URL has the expected fingerprint $KEY_FPR" ;;',
        "*)",
        '    die "the key at $KEY_URL has fingerprint ${FPRS:-none}, but $KEY_FPR was expected; nothing was trusted or written" \\',
        '        "The download may have been tampered with, or a mirror re-signs with its own key: if you trust that key, export again with --key-fingerprint."',
        "    ;;",
        "esac",
        'REVOKED=$(awk -F: -v f="$KEY_FPR" \'$1 == "pub" { v = $2; p = 1; next } $1 == "fpr" && p { if ($10 == f && v == "r") print "yes"; p = 0 }\' "$TMP/key.colons")',
        '[ -z "$REVOKED" ] || die "the key $KEY_FPR at $KEY_URL has been revoked by its owner; nothing was written" \\',
        '    "Get the current key and its fingerprint, then export again."',
        'if [ "$(echo $FPRS | wc -w)" -gt 1 ]; then',
        '    say "  note: the key file holds $(echo $FPRS | wc -w) keys; only $KEY_FPR (checked) is written"',
        '    $G --import "$TMP/key" 2>/dev/null',
        '    if grep -q -e "-----BEGIN PGP" "$TMP/key"; then ARMOR=--armor; else ARMOR=; fi',
        '    $G --yes $ARMOR --output "$TMP/key.one" --export "$KEY_FPR!"',
        "else",
        '    cp "$TMP/key" "$TMP/key.one"',
        "fi",
    ]


def _repository(r: Recipe) -> list[str]:
    lines = _key_check(r)
    if r.family == "apt":
        lines += [
            "# apt wants the key dearmored, in its own keyring that only this source names",
            "# (signed-by): it trusts NVIDIA's key for NVIDIA's repository and nothing else.",
            'if grep -q -e "-----BEGIN PGP" "$TMP/key.one"; then',
            '    $G --yes --dearmor --output "$TMP/keyring" "$TMP/key.one"',
            "else",
            '    cp "$TMP/key.one" "$TMP/keyring"',
            "fi",
            'put "$TMP/keyring" "$KEYRING" 0644',
            "REPO_CHANGED=$((REPO_CHANGED | PUT_CHANGED))",
            "cat >\"$TMP/source\" <<'GPUWIZARD_SOURCE'",
            *r.list_content.splitlines(),
            "GPUWIZARD_SOURCE",
            'put "$TMP/source" "$SOURCE" 0644',
            "REPO_CHANGED=$((REPO_CHANGED | PUT_CHANGED))",
        ]
    else:
        lines += [
            "# dnf/zypper import only ASCII-armored keys; the .repo file names this checked key",
            "# file (gpgkey=file://…), so they never trust a second, unchecked download.",
            'grep -q -e "-----BEGIN PGP" "$TMP/key.one" || die "the key at $KEY_URL is binary; rpm imports only ASCII-armored keys" \\',
            '    "Export again with --key-url pointing at the armored key (NVIDIA\'s gpgkey is)."',
            'put "$TMP/key.one" "$KEYRING" 0644',
            "REPO_CHANGED=$((REPO_CHANGED | PUT_CHANGED))",
            f"if ! rpm -q gpg-pubkey-{r.rpm_short_id} >/dev/null 2>&1; then",
            '    rpm --import "$KEYRING"',
            f'    changed "imported the checked key {r.fingerprint} into rpm"',
            "    REPO_CHANGED=1",
            "else",
            f'    ok "rpm already trusts gpg-pubkey-{r.rpm_short_id}"',
            "fi",
            "cat >\"$TMP/source\" <<'GPUWIZARD_SOURCE'",
            *r.list_content.splitlines(),
            "GPUWIZARD_SOURCE",
            'put "$TMP/source" "$SOURCE" 0644',
            "REPO_CHANGED=$((REPO_CHANGED | PUT_CHANGED))",
        ]
    lines += _legacy(r)
    lines += _refresh(r)
    return lines


def _legacy(r: Recipe) -> list[str]:
    if not r.legacy:
        return [
            "# The plan found no old NVIDIA sources (nvidia-docker.list and the like) to remove."
        ]
    lines = [
        "# Old NVIDIA sources the plan removes: next to the new list they make apt fail with",
        "# `Conflicting values set for option Signed-By`. Backed up first.",
    ]
    for n, lg in enumerate(r.legacy):
        p = q(lg.path)
        if lg.remove:
            lines += [
                f"if [ -f {p} ]; then",
                f"    backup {p}",
                f"    rm -f {p}",
                f'    changed "removed the legacy NVIDIA source "{p}" (backed up)"',
                "    REPO_CHANGED=1",
                "else",
                f'    ok "no legacy source "{p}',
                "fi",
            ]
        else:
            marker = f"GPUWIZARD_ENTRIES_{n}"
            lines += [
                f"if [ -f {p} ]; then",
                f"    cat >\"$TMP/entries\" <<'{marker}'",
                *lg.entries,
                marker,
                f'    grep -vxF -f "$TMP/entries" {p} >"$TMP/kept" || true',
                f'    put "$TMP/kept" {p} 0644',
                "    REPO_CHANGED=$((REPO_CHANGED | PUT_CHANGED))",
                "fi",
            ]
    return lines


def _refresh(r: Recipe) -> list[str]:
    if r.family == "apt":
        return [
            "# The package index of this source only (a broken unrelated source cannot fail it).",
            "ARCH=$(dpkg --print-architecture)",
            "INDEX=$(printf '%s' \"${REPO_URL%/}/deb/$ARCH\" | sed -e 's|^[A-Za-z][A-Za-z0-9+.-]*://||' -e 's|/|_|g')",
            'if [ "$REPO_CHANGED" -eq 1 ] || ! ls /var/lib/apt/lists/"${INDEX}"_*Packages* >/dev/null 2>&1; then',
            '    apt-get update -q -o Dir::Etc::sourcelist="${SOURCE#/etc/apt/}" -o Dir::Etc::sourceparts=- \\',
            '        -o APT::Get::List-Cleanup=0 >"$TMP/update.log" 2>&1 || { cat "$TMP/update.log" >&2; false; } ||',
            '        die "apt could not read the NVIDIA repository at $REPO_URL" "Check that this host reaches it, or export with --repo-url for a mirror."',
            "    if grep -E '^(W|E):' \"$TMP/update.log\" >&2; then",
            '        die "apt could not use the NVIDIA repository at $REPO_URL (its message is above)" \\',
            '            "A NO_PUBKEY or signature error means the key does not sign this repository: check --key-url and --key-fingerprint."',
            "    fi",
            '    changed "refreshed the package index of $REPO_URL"',
            "else",
            '    ok "the package index of $REPO_URL is there"',
            "fi",
        ]
    refresh = (
        "zypper --non-interactive refresh nvidia-container-toolkit"
        if r.family == "zypper"
        else "dnf -y --disablerepo='*' --enablerepo=nvidia-container-toolkit makecache"
    )
    return [
        "# The metadata of this repository only.",
        'if [ "$REPO_CHANGED" -eq 1 ]; then',
        f'    {refresh} || die "could not read the NVIDIA repository at $REPO_URL" \\',
        '        "Check that this host reaches it, or export with --repo-url for a mirror."',
        '    changed "refreshed the metadata of $REPO_URL"',
        "fi",
    ]


def _installed_query(r: Recipe) -> str:
    """A shell function body: `installed NAME` prints the installed version or nothing."""
    if r.family == "apt":
        return (
            "installed() { dpkg-query -W -f '${db:Status-Abbrev} ${Version}' \"$1\" 2>/dev/null "
            "| sed -n 's/^ii  *//p'; }"
        )
    return (
        "installed() { rpm -q --qf '%{VERSION}-%{RELEASE}' \"$1\" 2>/dev/null | "
        "grep -v 'not installed' || true; }"
    )


def _newest(r: Recipe) -> list[str]:
    if r.family == "apt":
        return [
            "    for v in $(apt-cache madison nvidia-container-toolkit | awk -F'|' -v u=\"$REPO_URL\" 'index($3, u) { gsub(/ /, \"\", $2); print $2 }'); do",
            '        if [ -z "$VERSION" ] || dpkg --compare-versions "$v" gt "$VERSION"; then VERSION=$v; fi',
            "    done",
        ]
    if r.family == "zypper":
        return [
            "    VERSION=$(zypper --non-interactive --quiet search --details --match-exact --repo nvidia-container-toolkit nvidia-container-toolkit \\",
            "        | awk -F'|' '{ gsub(/ /, \"\", $4) } $4 ~ /^[0-9]/ { print $4 }' | sort -V | tail -n 1)",
        ]
    return [
        "    VERSION=$(dnf -q --disablerepo='*' --enablerepo=nvidia-container-toolkit list --showduplicates nvidia-container-toolkit 2>/dev/null \\",
        "        | awk '$1 ~ /^nvidia-container-toolkit/ { v = $2; sub(/^[0-9]+:/, \"\", v); print v }' | sort -V | tail -n 1)",
    ]


def _packages(r: Recipe) -> list[str]:
    names = " ".join(r.packages)
    lines = [
        _installed_query(r),
        "# The four toolkit packages pinned to one version (they must match exactly since 1.18).",
    ]
    if not r.version:
        lines += [
            "# The plan did not know the version (the repository was not configured yet where it",
            "# was exported): the newest this repository offers is found now. Export with",
            "# --toolkit-version to pin every host to the same one.",
            'if [ -z "$VERSION" ]; then',
            *_newest(r),
            '    [ -n "$VERSION" ] || die "the NVIDIA repository at $REPO_URL offers no nvidia-container-toolkit for this machine" \\',
            '        "Run the repository block first, and check that the mirror carries this architecture."',
            '    say "  newest in the repository: $VERSION"',
            "fi",
        ]
    legacy = " ".join(r.legacy_packages)
    if legacy:
        remove = {
            "apt": "apt-get remove -y -q -o Dpkg::Use-Pty=0 -o DPkg::Lock::Timeout=300 $LEGACY",
            "dnf": "dnf -y remove $LEGACY",
            "zypper": "zypper --non-interactive remove $LEGACY",
        }[r.family]
        lines += [
            "# The legacy packages: removed, never purged (old nvidia-docker2 owns daemon.json; the",
            "# file is backed up and kept).",
            "LEGACY=",
            f"for p in {legacy}; do",
            '    if [ -n "$(installed "$p")" ]; then LEGACY="$LEGACY $p"; fi',
            "done",
            'if [ -n "$LEGACY" ]; then',
            '    backup "$DAEMON_JSON"',
            f"    {remove}",
            '    if [ ! -e "$DAEMON_JSON" ] && [ -e "$BACKUP_DIR$DAEMON_JSON" ]; then cp -p "$BACKUP_DIR$DAEMON_JSON" "$DAEMON_JSON"; fi',
            '    changed "removed the legacy$LEGACY ($DAEMON_JSON kept)"',
            "    TOOLKIT_CHANGED=1",
            "else",
            f'    ok "none of the legacy {legacy} is installed"',
            "fi",
        ]
    install = {
        "apt": "apt-get install -y -q -o Dpkg::Use-Pty=0 -o Dpkg::Options::=--force-confold "
        "-o Dpkg::Options::=--force-confdef -o DPkg::Lock::Timeout=300 --allow-downgrades $SPECS",
        "dnf": "dnf -y --allowerasing install $SPECS",
        "zypper": "zypper --non-interactive install --no-recommends --oldpackage $SPECS",
    }[r.family]
    sep = {"apt": "=", "dnf": "-", "zypper": "="}[r.family]
    lines += [
        "SPECS=",
        "WRONG=",
        f"for p in {names}; do",
        f'    SPECS="$SPECS $p{sep}$VERSION"',
        '    [ "$(installed "$p")" = "$VERSION" ] || WRONG="$WRONG $p"',
        "done",
        'if [ -z "$WRONG" ]; then',
        '    ok "the four packages are at $VERSION"',
        "else",
        f"    {install}",
        f"    for p in {names}; do",
        '        [ "$(installed "$p")" = "$VERSION" ] || die "after the install, $p is not at $VERSION" "Read the package manager\'s output above."',
        "    done",
        '    changed "installed$WRONG at $VERSION"',
        "    TOOLKIT_CHANGED=1",
        "fi",
    ]
    return lines


def _cdi(r: Recipe) -> list[str]:
    flags = ['--output="$TMP/cdi.yaml"']
    if r.cdi_pass_driver_root:
        flags.append(f"--driver-root={q(r.cdi_driver_root)}")
    for f in r.cdi_flags:
        flags += ["--feature-flag", q(f)]
    path = (
        ""
        if r.cdi_driver_root == "/"
        else f"PATH={q(r.cdi_driver_root.rstrip('/') + '/bin')}:$PATH "
    )
    lines = [
        "# The CDI spec as nvidia-ctk writes it for this host's driver, generated into a temporary",
        "# file and put in place only when it differs. (gpuwizard prefers the toolkit's",
        "# nvidia-cdi-refresh units where they exist; this script writes the static file.)",
        'command -v nvidia-ctk >/dev/null 2>&1 || die "nvidia-ctk is not installed" "Run the packages block first."',
        f'{path}nvidia-ctk cdi generate {" ".join(flags)} >"$TMP/cdi.log" 2>&1 ||',
        '    { cat "$TMP/cdi.log" >&2; die "nvidia-ctk cdi generate failed (its output is above)" "gpuwizard doctor on this host explains it."; }',
        'put "$TMP/cdi.yaml" "$CDI_SPEC" 0644',
    ]
    if r.runtime_mode:
        cfg = "/etc/nvidia-container-runtime/config.toml"
        lines += [
            f"# The NVIDIA runtime's mode, set by nvidia-ctk on a copy of {cfg}.",
            f'if [ -f {cfg} ]; then cp {cfg} "$TMP/config.toml"; else : >"$TMP/config.toml"; fi',
            'nvidia-ctk config --config-file="$TMP/config.toml" --set '
            f"nvidia-container-runtime.mode={q(r.runtime_mode)} --in-place",
            f'put "$TMP/config.toml" {cfg} 0644',
        ]
    return lines


def _daemon_config(r: Recipe) -> list[str]:
    args = " ".join(
        "1" if x else "0" for x in (r.set_default_runtime, r.enable_cdi, r.replace_runtime)
    )
    lines = [
        "# daemon.json is merged here, at run time, against whatever this host has: the other",
        "# keys are kept. Why an embedded python3 merge and not `nvidia-ctk runtime configure",
        "# --runtime=docker`: that one also keeps the other keys, but replaces an `nvidia` runtime",
        "# someone else defined without a word, keeps no backup and cannot say whether it changed",
        "# anything (Docker is restarted only if it did). This merge refuses invalid JSON,",
        "# duplicate keys and a foreign `nvidia` runtime (the file is then left untouched), backs",
        "# the old file up, and writes the new one next to it before moving it over.",
        "# It re-indents the file (4 spaces): keys and values are kept, the layout is not.",
        "set +e",
        f'python3 - "$DAEMON_JSON" "$BACKUP_DIR" {args} <<\'GPUWIZARD_MERGE\'',
        *MERGE_PY.strip("\n").splitlines(),
        "GPUWIZARD_MERGE",
        "RC=$?",
        "set -e",
        "case $RC in",
        "0) ;;",
        "10) CHANGES=$((CHANGES + 1)); DAEMON_JSON_CHANGED=1 ;;",
        "*) exit 1 ;;",
        "esac",
    ]
    return lines


def _restart_command(r: Recipe) -> Optional[str]:
    return " ".join(q(a) for a in r.restart_command) if r.restart_command else None


def _restart(r: Recipe) -> list[str]:
    custom = _restart_command(r)
    how = (
        [f"    if {custom}; then :; else restart_failed; fi"]
        if custom
        else [
            "    if [ -d /run/systemd/system ] && systemctl cat docker.service >/dev/null 2>&1; then",
            "        systemctl reset-failed docker.service 2>/dev/null || true",
            "        systemctl restart docker.service || restart_failed",
            "    elif [ -x /etc/init.d/docker ]; then",
            "        /etc/init.d/docker restart || restart_failed",
            "    elif command -v snap >/dev/null 2>&1 && snap services docker >/dev/null 2>&1; then",
            "        snap restart docker || restart_failed",
            "    else",
            '        say "  skipped: no Docker service here (no docker.service, no /etc/init.d/docker): Docker reads $DAEMON_JSON when it starts"',
            "        return 0",
            "    fi",
        ]
    )
    return [
        "# Docker reads daemon.json (and finds the toolkit's hook) only when it starts: restarted",
        "# only if this run changed daemon.json or the packages. If it does not come back, the",
        "# old daemon.json is put back and Docker started on it once.",
        "restart_failed() {",
        '    if [ "$DAEMON_JSON_CHANGED" -eq 1 ] && [ -e "$BACKUP_DIR$DAEMON_JSON" ]; then',
        '        cp -p "$BACKUP_DIR$DAEMON_JSON" "$DAEMON_JSON"',
        '        say "  restored the old $DAEMON_JSON"',
        "        systemctl restart docker.service 2>/dev/null || /etc/init.d/docker restart 2>/dev/null || true",
        "    fi",
        '    die "Docker did not restart with the new configuration" "Read journalctl -u docker (or its log); gpuwizard doctor explains the usual causes."',
        "}",
        "restart_docker() {",
        *how,
        "    i=0",
        '    until docker info --format "{{json .Runtimes}}" 2>/dev/null | grep -q \'"nvidia"\'; do',
        "        i=$((i + 1))",
        '        [ "$i" -le "$DOCKER_WAIT" ] || restart_failed',
        "        sleep 1",
        "    done",
        '    changed "restarted Docker; it lists the nvidia runtime"',
        "}",
        'if [ "$DAEMON_JSON_CHANGED" -eq 1 ] || [ "$TOOLKIT_CHANGED" -eq 1 ]; then',
        "    restart_docker",
        "else",
        '    ok "no restart: this run changed neither daemon.json nor the toolkit"',
        "fi",
    ]


def _gpu_test(r: Recipe) -> list[str]:
    lines = [
        "# Test containers: they change nothing on the host (--rm). One that reaches the GPU is",
        "# enough, as in gpuwizard's test; each is tried so you see them all.",
        "if ! command -v docker >/dev/null 2>&1 || ! docker info >/dev/null 2>&1; then",
        '    say "  skipped: Docker is not running here; run the test once it is"',
        "else",
        "    PASSED=0",
    ]
    for t in r.tests:
        cmd = " ".join(q(a) for a in t.argv)
        lines += [f"    say {q('  $ ' + cmd)}"]
        tries = [cmd]
        for path in t.smi_paths:  # nvidia-smi on no PATH in the container: its absolute path
            tries.append(" ".join(q(a) for a in [*t.argv[:-1], path]))
        lines += [f"    if {' || '.join(tries)}; then PASSED=1; fi"]
    lines += [
        '    [ "$PASSED" -eq 1 ] || die "no test container reached the GPU" "gpuwizard doctor on this host explains why."',
        '    ok "a container reached the GPU"',
        "fi",
    ]
    return lines


BLOCKS = {
    "driver": _driver,
    "repository": _repository,
    "packages": _packages,
    "cdi": _cdi,
    "daemon-config": _daemon_config,
    "restart": _restart,
    "gpu-test": _gpu_test,
}

"""daemon.json merges over a corpus of real-world shapes: only our keys change, every other
byte stays, the preview is the exact bytes, and undo gives the original bytes back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpuwizard import daemon_json as dj
from gpuwizard.actions.base import ApplyContext
from gpuwizard.actions.files import MERGE_BACK, WriteFile
from gpuwizard.errors import RollbackConflict
from gpuwizard.host.system import Host
from gpuwizard.journal import Journal

CORPUS = Path(__file__).parent / "daemon_json_corpus"
GOOD = sorted(p for p in CORPUS.glob("*.json"))
BAD = sorted((CORPUS / "bad").glob("*.json"))
ALREADY_OURS = {
    "06-seed-guide-runtime.json",
    "19-nvidia-ctk-output.json",
    "29-nvidia-docker2-runtimeargs.json",
}


def ids(paths: list[Path]) -> list[str]:
    return [p.name for p in paths]


def plain(data: bytes) -> object:
    return json.loads(data, parse_float=str, parse_int=str)


def test_corpus_has_at_least_25_shapes() -> None:
    assert len(GOOD) >= 25


@pytest.mark.parametrize("path", GOOD, ids=ids(GOOD))
def test_merge_keeps_every_other_key_value_and_order(path: Path) -> None:
    before = path.read_bytes()
    m = dj.merge(before, dj.Wanted(), path.name)
    old, new = plain(before), plain(m.after)
    assert isinstance(old, dict) and isinstance(new, dict)
    for key, value in old.items():
        if key != "runtimes":
            assert new[key] == value, key
    for name, spec in (old.get("runtimes") or {}).items():
        if name != "nvidia":
            assert new["runtimes"][name] == spec
    assert list(new)[: len(old)] == list(old)  # order kept, ours appended
    if path.name in ALREADY_OURS:
        assert m.after == before and not m.changed
    else:
        assert new["runtimes"]["nvidia"] == {"args": [], "path": "nvidia-container-runtime"}


@pytest.mark.parametrize("path", GOOD, ids=ids(GOOD))
def test_merge_keeps_the_files_own_bytes_and_style(path: Path) -> None:
    before = path.read_bytes()
    after = dj.merge(before, dj.Wanted(set_default=True, enable_cdi=True), path.name).after
    assert after.endswith(b"\n") == before.endswith(b"\n")
    if b"\r\n" in before:
        assert after.count(b"\n") == after.count(b"\r\n")
    if b"\n\t" in before:
        assert b"\n    " not in after
    # undoing our keys alone gives the exact original bytes back, unless those are a file
    # dockerd would not start on (default-runtime nvidia without its runtime): then undo
    # stops and says so (issue 13, item 6)
    if dj.check(dj.parse(before)):
        with pytest.raises(RollbackConflict, match="Docker refuses to start"):
            dj.unmerge(after, before, after)
    else:
        assert dj.unmerge(after, before, after) == before
    # converge twice: the second merge changes nothing
    assert dj.merge(after, dj.Wanted(set_default=True, enable_cdi=True)).after == after


def test_numbers_keep_the_literal_the_file_wrote() -> None:
    before = (CORPUS / "16-big-numbers.json").read_bytes()
    after = dj.merge(before, dj.Wanted()).after
    for literal in (b"10000000000000000001", b"1.50", b"1.5e3"):
        assert literal in after


def test_unicode_is_kept_as_written_literal_and_escaped() -> None:
    lit = (CORPUS / "12-unicode-literal.json").read_bytes()
    esc = (CORPUS / "13-unicode-escapes.json").read_bytes()
    assert "Hélène".encode() in dj.merge(lit, dj.Wanted()).after
    assert b"H\\u00e9l\\u00e8ne" in dj.merge(esc, dj.Wanted()).after


def test_tabs_file_gets_tab_indented_runtime() -> None:
    after = dj.merge((CORPUS / "11-tabs.json").read_bytes(), dj.Wanted()).after
    assert b'\n\t"runtimes": {\n\t\t"nvidia": {\n\t\t\t"args": [],\n' in after


def test_fresh_file_is_what_nvidia_ctk_writes() -> None:
    m = dj.merge(None, dj.Wanted())
    assert json.loads(m.after) == {
        "runtimes": {"nvidia": {"args": [], "path": "nvidia-container-runtime"}}
    }
    assert m.after.startswith(b'{\n    "runtimes": {\n        "nvidia": {\n')


def test_enable_cdi_keeps_other_features() -> None:
    """nvidia-ctk <= 1.20 replaced `features` with {"cdi": true}; we keep the rest."""
    before = (CORPUS / "30-features-cdi-false.json").read_bytes()
    after = json.loads(dj.merge(before, dj.Wanted(enable_cdi=True)).after)
    assert after["features"] == {"containerd-snapshotter": True, "cdi": True}


def test_default_runtime_only_on_request_and_with_a_warning() -> None:
    before = (CORPUS / "02-log-opts.json").read_bytes()
    assert "default-runtime" not in json.loads(dj.merge(before, dj.Wanted()).after)
    m = dj.merge(before, dj.Wanted(set_default=True))
    assert json.loads(m.after)["default-runtime"] == "nvidia"
    assert any("toolkit is removed later" in w for w in m.warnings)


@pytest.mark.parametrize("path", GOOD, ids=ids(GOOD))
def test_preview_is_the_diff_of_the_exact_bytes_and_apply_undo_is_byte_exact(
    path: Path, tmp_path: Path
) -> None:
    target = tmp_path / "etc" / "docker" / "daemon.json"
    target.parent.mkdir(parents=True)
    before = path.read_bytes()
    target.write_bytes(before)
    target.chmod(0o640)
    m = dj.merge(before, dj.Wanted(set_default=True), path.name)
    action = WriteFile(path=str(target), content=m.after, merge_back="daemon-json")
    host = Host()
    diff = action.preview(host)[0]
    assert diff.after == m.after.decode()
    assert diff.before == before.decode()
    if not path.name.startswith("18-"):  # a one-line file can only change as a whole line
        lines = diff.unified().splitlines()
        added = {
            ln[1:].rstrip("\r").rstrip()
            for ln in lines
            if ln.startswith("+") and not ln.startswith("+++")
        }
        for ln in lines:
            if ln.startswith("-") and not ln.startswith("---"):
                old = ln[1:].rstrip("\r").rstrip()
                # the only lines we touch: the last member gains a comma, `{}` opens up,
                # or our own key changes
                assert old + "," in added or "{}" in old or "default-runtime" in old, ln
    run = Journal(tmp_path / "state").start_run(["test"])
    ctx = ApplyContext(host, run, "daemon-config")
    undo = action.prepare(ctx)
    action.apply(ctx)
    assert target.read_bytes() == m.after
    if dj.check(dj.parse(before)):
        # the original is one dockerd refuses: undo stops (item 6); --force restores it
        with pytest.raises(RollbackConflict, match="Docker refuses to start"):
            WriteFile.undo(ctx, undo, None)
        assert target.read_bytes() == m.after
        undo["merge_back"] = None
    WriteFile.undo(ctx, undo, None)
    assert target.read_bytes() == before
    assert target.stat().st_mode & 0o777 == 0o640


def test_undo_after_someone_edited_the_file_removes_only_our_keys(tmp_path: Path) -> None:
    target = tmp_path / "daemon.json"
    before = (CORPUS / "02-log-opts.json").read_bytes()
    target.write_bytes(before)
    m = dj.merge(before, dj.Wanted(set_default=True))
    action = WriteFile(path=str(target), content=m.after, merge_back="daemon-json")
    run = Journal(tmp_path / "state").start_run(["test"])
    ctx = ApplyContext(Host(), run, "daemon-config")
    undo = action.prepare(ctx)
    action.apply(ctx)
    edited = target.read_bytes().replace(b'"max-file": "3"', b'"max-file": "5"')
    target.write_bytes(edited)
    note = WriteFile.undo(ctx, undo, None)
    assert "only gpuwizard's own changes were undone" in note
    assert target.read_bytes() == before.replace(b'"max-file": "3"', b'"max-file": "5"')


def test_undo_puts_back_a_replaced_runtime_in_an_edited_file() -> None:
    before = (CORPUS / "bad" / "foreign-nvidia-runtime.json").read_bytes()
    after = dj.merge(before, dj.Wanted(replace_runtime=True)).after
    edited = after.replace(b"{\n", b'{\n    "debug": true,\n', 1)
    back = MERGE_BACK["daemon-json"](edited, before, after)
    assert back is not None
    assert json.loads(back) == {"debug": True, **json.loads(before)}


BAD_CAUSES = {
    "trailing-comma.json": "not valid JSON: Expecting property name enclosed in double quotes "
    "at line 3, column 1",
    "empty.json": "is empty",
    "whitespace-only.json": "is empty",
    "bom.json": "byte-order mark",
    "array.json": "holds a JSON list, not an object",
    "null.json": "holds a JSON null, not an object",
    "runtimes-string.json": "`runtimes` is a str, not an object",
    "foreign-nvidia-runtime.json": "already defines the runtime `nvidia` with path "
    "'/opt/acme/bin/acme-gpu-runtime'",
    "default-runtime-missing.json": "sets default-runtime 'crun', but no runtime",
    "duplicate-keys.json": "sets the key 'debug' twice (again at line 4)",
    "runc-runtime.json": "defines a runtime named `runc`",
    "latin1.json": "is not valid UTF-8",
}


@pytest.mark.parametrize("path", BAD, ids=ids(BAD))
def test_bad_input_is_a_clear_error_with_a_remedy(path: Path) -> None:
    with pytest.raises(dj.DaemonJsonError) as err:
        dj.merge(path.read_bytes(), dj.Wanted(), path.name)
    assert BAD_CAUSES[path.name] in err.value.cause
    assert err.value.remedy


def test_foreign_runtime_is_a_conflict_showing_both_paths_and_replace_is_opt_in() -> None:
    before = (CORPUS / "bad" / "foreign-nvidia-runtime.json").read_bytes()
    with pytest.raises(dj.RuntimeConflict) as err:
        dj.merge(before, dj.Wanted())
    assert "nvidia-container-runtime" in err.value.cause and "acme" in err.value.cause
    assert "--replace-runtime" in err.value.remedy
    after = json.loads(dj.merge(before, dj.Wanted(replace_runtime=True)).after)
    assert after["runtimes"]["nvidia"]["path"] == "nvidia-container-runtime"


def test_hosts_in_file_conflicts_with_dash_h_on_the_command_line() -> None:
    before = (CORPUS / "09-hosts.json").read_bytes()
    flags = dj.flag_keys(["-H", "fd://", "--containerd=/run/containerd/containerd.sock"])
    with pytest.raises(dj.DaemonJsonError) as err:
        dj.merge(before, dj.Wanted(), "/etc/docker/daemon.json", flags)
    assert "sets `hosts`" in err.value.cause and "-H" in err.value.cause
    dj.merge(before, dj.Wanted(), "/etc/docker/daemon.json", dj.flag_keys(["--debug"]))


def test_invalid_json_error_points_at_the_line() -> None:
    with pytest.raises(dj.DaemonJsonError) as err:
        dj.parse((CORPUS / "bad" / "trailing-comma.json").read_bytes(), "daemon.json")
    assert "line 3" in err.value.remedy
    assert "   3 | }" in err.value.detail


def test_default_runtime_nvidia_without_its_runtime_is_repaired_by_the_merge() -> None:
    """A hand edit users make: dockerd refuses to start with it; adding the runtime fixes it."""
    before = (CORPUS / "33-default-runtime-nvidia-without-runtime.json").read_bytes()
    after = json.loads(dj.merge(before, dj.Wanted()).after)
    assert after["default-runtime"] == "nvidia" and "nvidia" in after["runtimes"]

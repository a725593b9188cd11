"""Events are plain data that flow up from actions to whichever face draws them.

The TUI turns them into Textual messages, the CLI prints them, the detached worker appends
them to the run's events file so that a face started later can replay and follow them.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Union

from gpuwizard.states import LinkProgress, RunStatus, StepProgress


@dataclass(frozen=True)
class LogLine:
    """One line of output from a command or an action."""

    step: str
    text: str
    stream: str = "out"  # out | err | info
    kind: str = "log"


@dataclass(frozen=True)
class Progress:
    """How far a long operation is; fraction None means unknown."""

    step: str
    fraction: Optional[float]
    label: str = ""
    kind: str = "progress"


@dataclass(frozen=True)
class StepState:
    """A step changed state: pending, running, done, failed, blocked, rolled-back, skipped."""

    step: str
    state: Union[StepProgress, LinkProgress]  # a step's, or a doctor link's (step "doctor:…")
    reason: str = ""
    kind: str = "step"


@dataclass(frozen=True)
class ActionEvent:
    """An action started, finished, failed or was rolled back."""

    step: str
    action: str
    phase: str  # start | done | failed | rollback | rolled-back
    description: str = ""
    error: Optional[dict[str, Any]] = None
    kind: str = "action"


@dataclass(frozen=True)
class DiffReady:
    """A preview is ready: the diffs the user must see before anything is written."""

    step: str
    diffs: list[dict[str, Any]] = field(default_factory=list)
    kind: str = "diff"


@dataclass(frozen=True)
class RunState:
    """The whole run changed state: running, awaiting-confirmation, finished, failed…"""

    run_id: str
    state: RunStatus
    detail: str = ""
    deadline: Optional[float] = None
    kind: str = "run"


Event = Union[LogLine, Progress, StepState, ActionEvent, DiffReady, RunState]
EventSink = Callable[[Event], None]

_KINDS: dict[str, type] = {
    "log": LogLine,
    "progress": Progress,
    "step": StepState,
    "action": ActionEvent,
    "diff": DiffReady,
    "run": RunState,
}


_ENCODER = json.JSONEncoder(ensure_ascii=False)  # one encoder: json.dumps builds one a call
_FIELDS: dict[type, frozenset[str]] = {
    cls: frozenset(f.name for f in dataclasses.fields(cls)) for cls in _KINDS.values()
}


def to_json(event: Event) -> str:
    """Serialise an event to one JSON line. The events are flat (their lists and dicts are
    plain JSON already), so their fields go to json as they are: `dataclasses.asdict` deep-
    copies every value and cost more than the rest of a log line's trip to the events file."""
    return _ENCODER.encode(vars(event))


def from_json(line: str) -> Event:
    """Parse one JSON line back into an event; unknown kinds raise ValueError."""
    data = json.loads(line)
    cls = _KINDS.get(data.get("kind", ""))
    if cls is None:
        raise ValueError(f"unknown event kind: {data.get('kind')!r}")
    names = _FIELDS[cls]
    obj: Event = cls(**{k: v for k, v in data.items() if k in names})
    return obj


def from_json_lines(lines: list[bytes]) -> list[Event]:
    """Many JSON lines at once (one json.loads for the lot: a follower reading apt's output
    spends most of its time here); a damaged or unknown line is skipped, as from_json would
    have refused it."""
    lines = [ln for ln in lines if ln.strip()]
    try:
        items = json.loads(b"[" + b",".join(lines) + b"]")
    except ValueError:
        items = []
        for ln in lines:
            try:
                items.append(json.loads(ln))
            except ValueError:
                continue
    out: list[Event] = []
    for data in items:
        cls = _KINDS.get(data.get("kind", "")) if isinstance(data, dict) else None
        if cls is None:
            continue
        names = _FIELDS[cls]
        try:
            out.append(cls(**{k: v for k, v in data.items() if k in names}))
        except TypeError:
            continue
    return out


def discard(_event: Event) -> None:
    """An event sink that drops everything (for probes nobody watches)."""


# -- secrets in what is written to the events file ----------------------------------------
# daemon.json can hold proxy passwords and registry auths, apt sources tokens in URLs. The
# events file is what a face replays; the backups (0600) keep the real bytes for rollback.
MASK = "********"
_URL_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)([^/\s:@\"']*):([^/\s@\"']+)@")
# a key whose last word is one of these ("proxy-password", "proxyPassword", "auths"), not
# any word that merely starts with one ("passed: …" is a verdict, "authority" is not a secret)
_SECRET_KEY = (
    r"(?:[A-Za-z0-9]*[_-]?(?:pass(?:word|wd)?|secret|token|auth|credentials?|api[-_]?key"
    r"|private[-_]?key)s?(?:[_-][A-Za-z0-9]+)*)(?![A-Za-z0-9])"
)
_JSON_SECRET = re.compile(r'("' + _SECRET_KEY + r'"\s*:\s*")((?:[^"\\]|\\.)*)(")', re.IGNORECASE)
_QUERY_SECRET = re.compile(r"([?&;]" + _SECRET_KEY + r"=)([^&\s\"';]+)", re.IGNORECASE)
_ASSIGN_SECRET = re.compile(
    r"^(\s*" + _SECRET_KEY + r"\s*[=:]\s*)(\S.*)$", re.IGNORECASE | re.MULTILINE
)


def mask_secrets(text: str) -> str:
    """The text with secret-looking values replaced by MASK: passwords in URLs, JSON values
    of keys such as password/auth/token, `token=` in query strings, `password = …` lines."""
    if not text:
        return text
    text = _URL_USERINFO.sub(lambda m: f"{m.group(1)}{m.group(2)}:{MASK}@", text)
    text = _JSON_SECRET.sub(lambda m: m.group(1) + (MASK if m.group(2) else "") + m.group(3), text)
    text = _QUERY_SECRET.sub(lambda m: m.group(1) + MASK, text)
    return _ASSIGN_SECRET.sub(lambda m: m.group(1) + MASK, text)


_URL_LOGIN = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^?#]*@")


def mask_login(url: str) -> str:
    """A URL as it may be shown: all before the last `@` of its authority (a user, a password,
    a token; a password may hold a `/` or an `@`) is MASK. An `@` in a path is masked too:
    better a URL shown short than a login shown."""
    return mask_secrets(_URL_LOGIN.sub(lambda m: f"{m.group(1)}{MASK}@", url))


def masked(event: Event) -> Event:
    """An event as it may be stored: the diffs' and log lines' secrets masked."""
    if isinstance(event, DiffReady):
        diffs = []
        for d in event.diffs:
            d = dict(d)
            for key in ("before", "after"):
                if isinstance(d.get(key), str):
                    d[key] = mask_secrets(d[key])
            diffs.append(d)
        return dataclasses.replace(event, diffs=diffs)
    if isinstance(event, LogLine) and ("://" in event.text or "=" in event.text):
        return dataclasses.replace(event, text=mask_secrets(event.text))
    return event

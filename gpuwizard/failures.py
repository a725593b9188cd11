"""The known failures between an NVIDIA GPU and a Docker container, and how to recognise them.

One table (gpuwizard/data/failures.json) serves every face: `gpuwizard explain` for a message a
user pastes, the app's failure screen, the gpu-test verdict and `gpuwizard doctor`. Messages
arrive mangled: curly quotes, `\\"` escapes inside OCI errors, ANSI colours, and lines wrapped
(with indentation, or mid-word by a terminal), so matching works on a normalised copy.
"""

from __future__ import annotations

import json
import re
import textwrap
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any, Mapping, Optional, Union

FAMILIES = ("debian", "rhel", "suse")

_QUOTES = str.maketrans(
    {
        "\u201c": '"',
        "\u201d": '"',
        "\u201e": '"',
        "\u201f": '"',
        "\u00ab": '"',
        "\u00bb": '"',
        "\u2018": "'",
        "\u2019": "'",
        "\u201a": "'",
        "\u201b": "'",
        "\u2032": "'",
        "\u00b4": "'",
        "\u2013": "-",
        "\u2014": "-",
        "\u2212": "-",
        "\u00a0": " ",
    }
)
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Failure:
    """A recognised failure: what it is, why it happens, what to look at, what to do."""

    code: str
    title: str
    cause: str
    checks: tuple[str, ...]
    fix: str
    number: int = 0  # rank in the reference table (1 = met most often)
    details: Mapping[str, str] = field(default_factory=dict)  # cuda, key_id, path …
    matched: str = ""  # the part of the message that was recognised

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "number": self.number,
            "title": self.title,
            "cause": self.cause,
            "checks": list(self.checks),
            "fix": self.fix,
            "details": dict(self.details),
            "matched": self.matched,
        }


Text = Union[str, Mapping[str, Any]]  # plain text, or {family: text, "default": text}


@dataclass(frozen=True)
class KnownFailure:
    """One row of the table, compiled."""

    code: str
    number: int
    title: str
    priority: int
    patterns: tuple[re.Pattern[str], ...]
    squashed: tuple[re.Pattern[str], ...]  # the same, for text whose spaces were lost
    requires: tuple[tuple[re.Pattern[str], re.Pattern[str]], ...]  # (spaced, squashed)
    extract: tuple[tuple[str, re.Pattern[str]], ...]
    defaults: Mapping[str, str]
    cause: Text
    checks: Any  # list, or {family: list}
    fix: Text

    def match(self, spaced: str, squashed: str) -> Optional[str]:
        """The recognised part of the message, or None."""
        if not all(r.search(spaced) or q.search(squashed) for r, q in self.requires):
            return None
        for pat in self.patterns:
            m = pat.search(spaced)
            if m:
                return m.group(0)
        for pat in self.squashed:
            m = pat.search(squashed)
            if m:
                return m.group(0)
        return None

    def details_from(self, spaced: str, squashed: str) -> dict[str, str]:
        found: dict[str, str] = {}
        for name, pat in self.extract:
            m = pat.search(spaced) or pat.search(squashed)
            if m:
                value = (m.group(1) if m.groups() else m.group(0)).strip().rstrip(".,;:'\"")
                if value:
                    found[name] = value
        return found

    def render(self, details: Mapping[str, str], family: Optional[str], matched: str) -> Failure:
        values = _Values({**self.defaults, **details})
        checks = _pick(self.checks, family)
        return Failure(
            code=self.code,
            number=self.number,
            title=self.title,
            cause=str(_pick(self.cause, family)).format_map(values),
            checks=tuple(str(c).format_map(values) for c in checks),
            fix=str(_pick(self.fix, family)).format_map(values),
            details=dict(details),
            matched=matched,
        )


class _Values(dict[str, str]):
    """Template values; an unknown name stays visible rather than raising."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _pick(value: Any, family: Optional[str]) -> Any:
    """The family's variant of a text (or list) when the table has one, else the default."""
    if isinstance(value, Mapping):
        if family and family in value:
            return value[family]
        return value.get("default", next(iter(value.values())))
    return value


def normalise(text: str) -> str:
    """Straight quotes, no ANSI colours, no `\\"` escapes, whitespace collapsed to one space."""
    text = _ANSI.sub("", text).translate(_QUOTES)
    text = text.replace('\\"', '"').replace("\\n", " ").replace("\\t", " ")
    return _SPACE.sub(" ", text).strip()


def squash(text: str) -> str:
    """Remove spaces, so text wrapped mid-word by a terminal still matches."""
    return text.replace(" ", "")


def squash_pattern(pattern: str) -> str:
    """The pattern for squashed text: a space and its quantifier (` ?`, ` +`) go together."""
    return re.sub(r" [?+*]?", "", pattern)


def _compile(pat: str) -> re.Pattern[str]:
    return re.compile(pat, re.IGNORECASE)


def _row(data: Mapping[str, Any]) -> KnownFailure:
    pats = tuple(data["patterns"])
    return KnownFailure(
        code=data["code"],
        number=int(data.get("number", 0)),
        title=data["title"],
        priority=int(data.get("priority", 50)),
        patterns=tuple(_compile(p) for p in pats),
        squashed=tuple(_compile(squash_pattern(p)) for p in pats),
        requires=tuple(
            (_compile(p), _compile(squash_pattern(p))) for p in data.get("requires", ())
        ),
        extract=tuple((k, _compile(v)) for k, v in data.get("extract", {}).items()),
        defaults=dict(data.get("defaults", {})),
        cause=data["cause"],
        checks=data.get("checks", []),
        fix=data["fix"],
    )


@lru_cache(maxsize=1)
def table() -> tuple[KnownFailure, ...]:
    """Every known failure, in the table's order (most often met first)."""
    raw = resources.files("gpuwizard").joinpath("data/failures.json").read_text(encoding="utf-8")
    return tuple(_row(d) for d in json.loads(raw)["failures"])


def get(
    code: str, details: Optional[Mapping[str, str]] = None, family: Optional[str] = None
) -> Failure:
    """A failure by its code (doctor names failures it finds on the host this way)."""
    for row in table():
        if row.code == code:
            return row.render(details or {}, family, "")
    raise KeyError(code)


def classify(text: str, family: Optional[str] = None) -> Optional[Failure]:
    """The most specific known failure in `text`, or None when it is not one we know.

    `family` (debian | rhel | suse) picks the distribution's variant of the fix.
    """
    if not text or not text.strip():
        return None
    spaced = normalise(text)
    squashed = squash(spaced)
    best: Optional[tuple[int, int, KnownFailure, str]] = None
    for index, row in enumerate(table()):
        matched = row.match(spaced, squashed)
        if matched is None:
            continue
        key = (row.priority, -index)
        if best is None or key > (best[0], best[1]):
            best = (row.priority, -index, row, matched)
    if best is None:
        return None
    row, matched = best[2], best[3]
    return row.render(row.details_from(spaced, squashed), family, matched)


def explain(text: str, family: Optional[str] = None, width: int = 100) -> str:
    """A plain-text answer to "what does this error mean?" for the CLI."""
    failure = classify(text, family)
    if failure is None:
        return (
            "Not recognised: this message is not one of the failures gpuwizard knows.\n"
            "  -> Run `gpuwizard doctor` to check the chain from the GPU to Docker link by link,\n"
            "     and paste the whole error (with the command that printed it) when you ask\n"
            "     for help."
        )

    def para(label: str, text: str) -> str:
        return textwrap.fill(
            text,
            width,
            initial_indent=f"  {label:8}",
            subsequent_indent=" " * 10,
            break_on_hyphens=False,
            break_long_words=False,
        )

    lines = [f"{failure.title}  [{failure.code}]"]
    if failure.details:
        lines.append(
            para("found:", ", ".join(f"{k}={v}" for k, v in sorted(failure.details.items())))
        )
    lines.append(para("cause:", failure.cause))
    if failure.checks:
        lines.append("  check:")
        lines.extend(f"    $ {c}" for c in failure.checks)
    lines.append(para("fix:", failure.fix))
    return "\n".join(lines)

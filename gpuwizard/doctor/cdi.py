"""CDI specs: judged from host.cdi's probe (the same reader the cdi step uses)."""

from __future__ import annotations

from gpuwizard.doctor.links import OK, SKIPPED, WARN, Link, Walk
from gpuwizard.host import cdi


def probe_cdi(walk: Walk) -> Link:
    host = walk.host
    engine = walk.engine or {}
    state = cdi.probe(
        host,
        engine_version=str(engine.get("ServerVersion", "") or ""),
        gpu_present=bool(walk.gpu) and host.is_live,  # a --root image has no /dev to look at
    )
    facts = state.to_json()
    if state.problems:
        first = state.problems[0]
        others = "; ".join(p.title for p in state.problems[1:])
        return Link(
            "cdi",
            WARN,
            first.title + (f" (also: {others})" if others else ""),
            cause=first.cause,
            remedy=first.remedy
            + (f" {first.repair[:1].upper()}{first.repair[1:]}." if first.repair else ""),
            code=first.failure or None,
            next_command="sudo gpuwizard apply --step cdi",
            facts=facts,
        )
    specs = state.nvidia_specs()
    if specs:
        names = ", ".join(state.names())
        return Link("cdi", OK, f"{names} ({', '.join(s.path for s in specs)})", facts=facts)
    if walk.gpu is False:
        return Link("cdi", SKIPPED, "no CDI spec (not needed without an NVIDIA GPU)", facts=facts)
    return Link(
        "cdi",
        OK,
        "no CDI spec: containers use the legacy hook; `gpuwizard apply --step cdi` makes one",
        facts=facts,
    )

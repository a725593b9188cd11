"""Shared by the two stand-ins (test suite only): where to log, how to read a bundle."""

from __future__ import annotations

import json
import os
import time

HERE = os.path.dirname(os.path.abspath(__file__))
LOG = os.path.join(HERE, "standin-calls.log")


def record(program: str, **data: object) -> None:
    entry = {"program": program, "time": time.time(), **data}
    with open(LOG, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(entry) + "\n")


def bundle_config(bundle: str) -> dict:
    with open(os.path.join(bundle, "config.json"), encoding="utf-8") as fh:
        return json.load(fh)


def env_of(config: dict) -> dict[str, str]:
    out = {}
    for item in config.get("process", {}).get("env", []) or []:
        k, _, v = item.partition("=")
        out[k] = v
    return out

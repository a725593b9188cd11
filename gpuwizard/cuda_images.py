"""Which images prove a GPU works in Docker: the official smoke test, then a CUDA base image.

The smoke test (`ubuntu:24.04` running `nvidia-smi`) needs no CUDA image at all, so it cannot
fail on a deleted tag or on a CUDA gate. The CUDA image is chosen from the driver's CUDA version
and a table of full `X.Y.Z` tags (gpuwizard/data/cuda_images.json), because NVIDIA deletes
`latest`, two-part and most `X.Y.0` tags and an image newer than the driver is refused with
`unsatisfied condition: cuda>=X.Y`.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Optional

_DATA = Path(__file__).resolve().parent / "data" / "cuda_images.json"
_FULL_TAG = re.compile(r"^\d+\.\d+\.\d+-")


@lru_cache(maxsize=1)
def table() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(_DATA.read_text(encoding="utf-8"))
    return data


def _ver(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text))


def parse_cuda_version(value: int) -> str:
    """NVML's integer CUDA version to "X.Y": 13000 -> "13.0", 12040 -> "12.4"."""
    return f"{value // 1000}.{(value % 1000) // 10}"


def cuda_version_for_driver(driver_version: str) -> Optional[str]:
    """The newest CUDA "X.Y" a driver supports, from NVIDIA's minimum-driver table.

    Used when NVML cannot tell (only /proc or nvidia-smi without a CUDA line). Conservative:
    a driver between two table rows gets the older CUDA.
    """
    if not re.match(r"^\d+(\.\d+)*$", driver_version.strip()):
        return None
    drv = _ver(driver_version)
    for row in table()["driver_minimums"]:  # newest first
        if drv >= _ver(row["driver"]):
            return str(row["cuda"])
    return None


def is_full_tag(image: str) -> bool:
    """True for `repo:X.Y.Z-…` tags; False for `latest`, `11.0-base` and friends."""
    tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else "latest"
    return bool(_FULL_TAG.match(tag))


def cuda_image_candidates(
    cuda_version: Optional[str], repository: str = "nvidia/cuda", flavor: Optional[str] = None
) -> list[str]:
    """Every table tag usable with this CUDA version, best (newest) first."""
    if not cuda_version:
        return []
    limit = _ver(cuda_version)[:2]
    flavor = flavor or table()["flavor"]
    out = []
    for row in table()["tags"]:
        if _ver(row["cuda"])[:2] <= limit:
            out.append(f"{repository}:{row['tag']}-{flavor}-{row['os']}")
    return out


@dataclass(frozen=True)
class ImageChoice:
    """The images the gpu-test step runs, and why these."""

    smoke: str
    smoke_command: tuple[str, ...]
    cuda: Optional[str]
    candidates: tuple[str, ...]  # fall-backs, best first (the step checks each one exists)
    cuda_version: Optional[str]
    reason: str
    warnings: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["smoke_command"] = list(self.smoke_command)
        data["candidates"] = list(self.candidates)
        data["warnings"] = list(self.warnings)
        return data


def choose_test_images(cuda_version: Optional[str], options: Any = None) -> ImageChoice:
    """The smoke-test image and the CUDA image for a driver's CUDA version ("13.0").

    `options.test_image`, `options.cuda_image` and `options.cuda_repository` (a mirror such as
    nvcr.io/nvidia/cuda) are respected.
    """
    data = table()
    smoke = getattr(options, "test_image", None) or data["smoke_test_image"]
    repository = (getattr(options, "cuda_repository", None) or data["repository"]).rstrip("/")
    override = getattr(options, "cuda_image", None)
    warnings: list[str] = []
    if override:
        if not is_full_tag(override):
            warnings.append(
                f"{override} is not a full X.Y.Z tag; NVIDIA deletes `latest`, two-part and most "
                "X.Y.0 tags, so it may not exist any more."
            )
        return ImageChoice(
            smoke,
            tuple(data["smoke_test_command"]),
            override,
            (override,),
            cuda_version,
            "chosen by you (--cuda-image)",
            tuple(warnings),
        )
    candidates = cuda_image_candidates(cuda_version, repository)
    if not candidates:
        reason = (
            "the driver's CUDA version is unknown"
            if not cuda_version
            else f"no CUDA image in gpuwizard's table is old enough for CUDA {cuda_version}"
        )
        return ImageChoice(
            smoke,
            tuple(data["smoke_test_command"]),
            None,
            (),
            cuda_version,
            f"no CUDA test: {reason}; the smoke test alone proves the GPU works",
        )
    return ImageChoice(
        smoke,
        tuple(data["smoke_test_command"]),
        candidates[0],
        tuple(candidates),
        cuda_version,
        f"newest full tag with CUDA <= {cuda_version}, the driver's CUDA version",
    )

"""The GPU test images: the smoke test first, then a full X.Y.Z CUDA tag no newer than the
driver's CUDA version; never `latest` or a two-part tag; the user's choice wins."""

from __future__ import annotations

import re

import pytest

from gpuwizard.cuda_images import (
    choose_test_images,
    cuda_image_candidates,
    cuda_version_for_driver,
    is_full_tag,
    parse_cuda_version,
    table,
)
from gpuwizard.options import Options


def test_cuda_13_0_driver_gets_a_13_0_patch_tag() -> None:
    choice = choose_test_images("13.0", Options())
    assert choice.smoke == "ubuntu:24.04" and choice.smoke_command == ("nvidia-smi",)
    assert re.fullmatch(r"nvidia/cuda:13\.0\.\d+-base-ubuntu24\.04", choice.cuda or "")
    assert choice.cuda == "nvidia/cuda:13.0.2-base-ubuntu24.04"


def test_cuda_12_4_driver_gets_12_4_1() -> None:
    assert choose_test_images("12.4").cuda == "nvidia/cuda:12.4.1-base-ubuntu22.04"


@pytest.mark.parametrize(
    ("cuda", "tag"),
    [
        ("12.7", "12.6.3"),
        ("13.3", "13.2.2"),
        ("12.9", "12.9.1"),
        ("12.8", "12.8.1"),
        ("11.8", "11.8.0"),
        ("12.0", "12.0.1"),
    ],
)
def test_the_newest_tag_not_newer_than_the_driver(cuda: str, tag: str) -> None:
    assert f":{tag}-base-" in (choose_test_images(cuda).cuda or "")


def test_no_table_tag_is_two_part_or_latest() -> None:
    for row in table()["tags"]:
        assert re.fullmatch(r"\d+\.\d+\.\d+", row["tag"]), row
    for image in cuda_image_candidates("99.9"):
        assert is_full_tag(image) and ":latest" not in image
    assert not is_full_tag("nvidia/cuda:11.0-base")
    assert not is_full_tag("nvidia/cuda")
    assert is_full_tag("nvcr.io/nvidia/cuda:12.8.1-base-ubuntu24.04")


def test_candidates_walk_down_from_the_best() -> None:
    cands = cuda_image_candidates("12.4")
    assert cands[0].endswith("12.4.1-base-ubuntu22.04")
    assert all(not c.split(":")[1].startswith(("12.5", "12.6", "13.")) for c in cands)


def test_user_cuda_image_is_respected_and_a_two_part_one_is_warned_about() -> None:
    mine = choose_test_images("13.0", Options(cuda_image="registry.local/cuda:12.8.1-base-x"))
    assert mine.cuda == "registry.local/cuda:12.8.1-base-x" and mine.warnings == ()
    old = choose_test_images("13.0", Options(cuda_image="nvidia/cuda:11.6-base"))
    assert old.cuda == "nvidia/cuda:11.6-base"
    assert "not a full X.Y.Z tag" in old.warnings[0]


def test_mirror_repository_and_smoke_image_options() -> None:
    choice = choose_test_images(
        "12.4",
        Options(cuda_repository="nvcr.io/nvidia/cuda/", test_image="mirror.local/ubuntu:24.04"),
    )
    assert choice.cuda == "nvcr.io/nvidia/cuda:12.4.1-base-ubuntu22.04"
    assert choice.smoke == "mirror.local/ubuntu:24.04"


def test_too_old_or_unknown_cuda_gives_the_smoke_test_alone() -> None:
    assert choose_test_images("11.4").cuda is None
    unknown = choose_test_images(None)
    assert unknown.cuda is None and "unknown" in unknown.reason


def test_nvml_integer_versions() -> None:
    assert parse_cuda_version(13000) == "13.0"
    assert parse_cuda_version(12040) == "12.4"
    assert parse_cuda_version(11080) == "11.8"


@pytest.mark.parametrize(
    ("driver", "cuda"),
    [
        ("580.159.04", "13.0"),
        ("580.65.06", "13.0"),
        ("575.57.08", "12.9"),
        ("550.54.15", "12.4"),
        ("535.104.05", "12.2"),
        ("525.60.13", "12.0"),
        ("470.82.01", "11.4"),
        ("595.71.05", "13.2"),
        ("400.1", None),
        ("weird", None),
    ],
)
def test_cuda_version_from_a_driver_version_without_nvml(driver: str, cuda: object) -> None:
    assert cuda_version_for_driver(driver) == cuda

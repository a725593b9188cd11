"""Test images for a bundle: saved from the local Docker engine (`docker save`, through the
engine API), pulled first when the engine does not have them."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional

from gpuwizard.errors import WizardError
from gpuwizard.host import docker as engine
from gpuwizard.host.system import Host

NO_ENGINE_REMEDY = (
    "The test image is saved from a Docker engine on this machine: start Docker (or pass "
    "--docker-host its socket), or pass --no-images to leave images out (the offline host "
    "then needs the test image already)."
)


def _client(host: Host, docker_host: Optional[str], image: str) -> Any:
    import docker

    try:
        client = engine.connect(host, docker_host, timeout=600)
        client.ping()
    except (WizardError, docker.errors.DockerException, OSError) as exc:
        cause = exc.cause if isinstance(exc, WizardError) else str(exc)
        raise WizardError(
            f"No Docker engine to save the test image {image} from: {cause}", NO_ENGINE_REMEDY
        ) from exc
    return client


def engine_ready(host: Host, docker_host: Optional[str], image: str) -> None:
    """Fail before anything is downloaded when there is no engine to save images from."""
    _client(host, docker_host, image).close()


def save_image(
    host: Host, docker_host: Optional[str], image: str, dest: Path, say: Callable[[str], None]
) -> str:
    """Write `image` as a `docker save` tarball to `dest`; returns its image id."""
    import docker

    client = _client(host, docker_host, image)
    try:
        try:
            found = client.images.get(image)
        except docker.errors.ImageNotFound:
            say(f"{image} is not in the local engine: pulling it")
            _pull(client, image, say)
            found = client.images.get(image)
        dest.parent.mkdir(parents=True, exist_ok=True)
        with open(dest, "wb") as out:
            for chunk in client.api.get_image(image):
                out.write(chunk)
        return str(found.id)
    except docker.errors.APIError as exc:
        raise WizardError(
            f"Docker could not save {image}: {exc.explanation or exc}",
            "Check the image name (--test-image / --cuda-image), or pull it by hand first.",
        ) from exc
    finally:
        client.close()


def _pull(client: Any, image: str, say: Callable[[str], None]) -> None:
    import docker

    repo, _, tag = image.rpartition(":") if ":" in image.split("/")[-1] else (image, "", "latest")
    try:
        last = ""
        for ev in client.api.pull(repo, tag=tag, stream=True, decode=True):
            if "error" in ev:
                raise WizardError(
                    f"Cannot pull {image}: {ev['error']}",
                    "Check the name and that this machine reaches the registry.",
                )
            status = str(ev.get("status", ""))
            if status != last and status.startswith(("Pulling from", "Digest", "Status")):
                say(status)
            last = status
    except docker.errors.APIError as exc:
        raise WizardError(
            f"Cannot pull {image}: {exc.explanation or exc}",
            "Check the name and that this machine reaches the registry.",
        ) from exc

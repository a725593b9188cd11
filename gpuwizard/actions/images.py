"""Loading a test image from a bundle into the engine (`docker load`, through the engine API)
instead of pulling it: the air-gapped host's GPU test. Rollback removes what the load added
and gives a tag that was moved back to the image it named before."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from gpuwizard.actions.base import Action, ApplyContext, Diff, register
from gpuwizard.errors import WizardError
from gpuwizard.host import docker as engine
from gpuwizard.host.system import Host


def image_id(client: Any, image: str) -> Optional[str]:
    import docker

    try:
        return str(client.images.get(image).id)
    except docker.errors.ImageNotFound:
        return None


@register
@dataclass
class LoadImage(Action):
    """`docker load` one image tarball from an unpacked bundle."""

    kind = "load-image"

    image: str = ""
    path: str = ""  # the tarball, a path on this machine (the bundle's private folder)
    expected_id: str = ""  # the id the bundle recorded when it saved the image
    docker_host: Optional[str] = None

    def describe(self) -> str:
        return f"load the test image {self.image} from the bundle (docker load, not pulled)"

    def params(self) -> dict[str, Any]:
        return {"image": self.image, "path": self.path, "expected_id": self.expected_id}

    def preview(self, host: Host) -> list[Diff]:
        return [Diff("image", None, f"docker load -i {self.path}", "command", self.describe())]

    def needed(self, host: Host) -> bool:
        client = engine.connect(host, self.docker_host)
        try:
            return image_id(client, self.image) != self.expected_id
        finally:
            client.close()

    def prepare(self, ctx: ApplyContext) -> dict[str, Any]:
        client = engine.connect(ctx.host, self.docker_host)
        try:
            before = image_id(client, self.image)
        finally:
            client.close()
        return {"image": self.image, "before": before, "docker_host": self.docker_host}

    def apply(self, ctx: ApplyContext) -> dict[str, Any]:
        import docker

        client = engine.connect(ctx.host, self.docker_host, timeout=600)
        try:
            before = image_id(client, self.image)
            ctx.log(f"docker load < {self.path}")
            try:
                with open(self.path, "rb") as fh:
                    for line in client.api.load_image(fh):
                        if isinstance(line, dict) and line.get("stream"):
                            ctx.log(str(line["stream"]).strip())
                        elif isinstance(line, dict) and line.get("error"):
                            raise WizardError(
                                f"Docker could not load {self.image}: {line['error']}",
                                "The engine's disk may be full (docker system df).",
                            )
            except (OSError, docker.errors.APIError) as exc:
                raise WizardError(
                    f"Docker could not load {self.image} from {self.path}: {exc}",
                    "Check the engine (docker info) and its free space, then apply again.",
                ) from exc
            after = image_id(client, self.image)
        finally:
            client.close()
        return {"loaded": after, "before": before}

    def verify(self, ctx: ApplyContext) -> None:
        client = engine.connect(ctx.host, self.docker_host)
        try:
            got = image_id(client, self.image)
        finally:
            client.close()
        if got != self.expected_id:
            raise WizardError(
                f"After docker load, {self.image} is {got or 'missing'}, not the bundle's "
                f"{self.expected_id}",
                "The tarball holds another image than the manifest says: make the bundle again.",
            )

    @classmethod
    def undo(cls, ctx: ApplyContext, undo: dict[str, Any], result: Optional[dict[str, Any]]) -> str:
        import docker

        image, before = undo["image"], undo.get("before")
        try:
            client = engine.connect(ctx.host, undo.get("docker_host"))
        except WizardError:
            return "Docker is not reachable; the loaded image stays"
        try:
            now = image_id(client, image)
            if now is None or now == before:
                return f"{image} is as it was"
            if before is not None:
                repo, _, tag = image.rpartition(":")
                client.api.tag(before, repo or image, tag or "latest")
            try:
                client.images.remove(now if before is not None else image)
            except docker.errors.APIError as exc:
                return f"kept the loaded {image} ({exc.explanation})"
            return f"removed the loaded image {image}" + (
                f"; {image} names {before[:19]} again" if before else ""
            )
        finally:
            client.close()

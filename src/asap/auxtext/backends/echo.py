"""`echo`: no model, a deterministic text per request. For pipeline checks and tests only; never train on it."""

from __future__ import annotations

import time
from collections.abc import Sequence

from asap.auxtext.backends.base import Backend, GenContext, GenRequest, GenResult, load_image


class EchoBackend(Backend):
    """Returns ``"<task> of <uid>"``; can sleep, raise or answer empty for uids containing given markers."""

    def __init__(
        self,
        context: GenContext,
        batch_size: int = 8,
        delay_s: float = 0.0,
        fail_on: Sequence[str] = (),
        empty_on: Sequence[str] = (),
        read_images: bool = True,
    ) -> None:
        super().__init__(context)
        self.batch_size = batch_size
        self.delay_s = delay_s
        self.fail_on = tuple(fail_on)
        self.empty_on = tuple(empty_on)
        self.read_images = read_images

    @property
    def model_name(self) -> str:
        return "echo"

    def settings(self) -> dict:
        return super().settings() | {"backend": "echo"}

    def generate(self, requests: Sequence[GenRequest]) -> list[GenResult]:
        if any(marker in r.uid for r in requests for marker in self.fail_on):
            raise RuntimeError(f"echo: injected failure in a batch of {len(requests)}")
        return [self._one(r) for r in requests]

    def _one(self, request: GenRequest) -> GenResult:
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.read_images and request.image_path is not None:
            try:
                load_image(request.image_path)
            except OSError as err:
                return GenResult.failed(err)
        if any(marker in request.uid for marker in self.empty_on):
            return GenResult(output="  ")
        words = max(1, min(self.context.max_new_tokens, 16))
        output = " ".join(f"{self.context.task} of {request.uid}".split()[:words])
        return GenResult(output=output, tokens=len(output.split()))

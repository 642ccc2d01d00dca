"""`vllm`: offline batched generation with vLLM (optional; GPU). `LLM.chat` applies the model's chat template."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from typing import Any

from asap.auxtext.backends.base import Backend, GenContext, GenRequest, GenResult, image_data_url
from asap.errors import BackendUnavailable


def vllm_available() -> bool:
    return importlib.util.find_spec("vllm") is not None


class VLLMBackend(Backend):
    """vLLM's offline engine; large batches (it schedules them itself)."""

    def __init__(
        self,
        context: GenContext,
        model: str,
        model_name: str | None = None,
        batch_size: int = 256,
        dtype: str = "auto",
        tensor_parallel_size: int = 1,
        gpu_memory_utilization: float = 0.9,
        max_model_len: int | None = None,
        temperature: float = 0.0,
        engine_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(context)
        if not vllm_available():
            raise BackendUnavailable(
                "aux_backend=vllm needs vLLM, which is not installed: `pip install vllm` on a Linux GPU machine, "
                "or use aux_backend=transformers, or aux_backend=openai against a running `vllm serve`"
            )
        self.model = model
        self._model_name = model_name or model
        self.batch_size = batch_size
        self.temperature = temperature
        self.engine_kwargs = {
            "dtype": dtype,
            "tensor_parallel_size": tensor_parallel_size,
            "gpu_memory_utilization": gpu_memory_utilization,
            **({"max_model_len": max_model_len} if max_model_len else {}),
            **({"limit_mm_per_prompt": {"image": 1}} if context.task == "caption" else {}),
            **dict(engine_kwargs or {}),
        }
        self._llm: Any = None

    @property
    def model_name(self) -> str:
        return self._model_name

    def settings(self) -> dict[str, Any]:
        return super().settings() | {"backend": "vllm", "temperature": self.temperature}

    def load(self) -> None:
        if self._llm is None:
            from vllm import LLM, SamplingParams

            self._llm = LLM(model=self.model, **self.engine_kwargs)
            self._params = SamplingParams(
                temperature=self.temperature, max_tokens=self.context.max_new_tokens
            )

    def generate(self, requests: Sequence[GenRequest]) -> list[GenResult]:
        self.load()
        results: list[GenResult | None] = []
        convs = []
        for r in requests:
            try:
                convs.append(self._messages(r))
                results.append(None)
            except OSError as err:
                results.append(GenResult.failed(err))
        outputs = iter(self._llm.chat(convs, self._params, use_tqdm=False) if convs else [])
        return [res if res is not None else _result(next(outputs)) for res in results]

    def _messages(self, request: GenRequest) -> list[dict[str, Any]]:
        content: Any = request.prompt
        if request.image_path is not None:
            content = [
                {"type": "image_url", "image_url": {"url": image_data_url(request.image_path)}},
                {"type": "text", "text": request.prompt},
            ]
        system = self.context.prompt.system
        return ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": content}
        ]

    def close(self) -> None:
        self._llm = None


def _result(output: Any) -> GenResult:
    completion = output.outputs[0]
    return GenResult(output=completion.text.strip(), tokens=len(completion.token_ids))

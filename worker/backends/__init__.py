"""Model backends behind one interface (`worker.backends.base.Backend`)."""

from __future__ import annotations

from worker.backends.base import AsyncBackend, Backend, BackendError
from worker.settings import WorkerSettings


def create_backend(settings: WorkerSettings) -> Backend | AsyncBackend:
    """The backend the settings name, loaded and ready to generate."""
    if settings.backend == "simulated":
        from worker.backends.simulated import SimulatedBackend

        return SimulatedBackend.from_settings(settings)
    if settings.backend == "llama-cpp":
        # Imported lazily: llama_cpp is heavy and the simulated backend must work without it.
        from worker.backends.llama_cpp import LlamaCppBackend

        return LlamaCppBackend.from_settings(settings)
    if settings.backend == "openai":
        from worker.backends.openai_compat import OpenAIBackend

        return OpenAIBackend.from_settings(settings)
    raise BackendError(f"unknown backend {settings.backend!r}")

"""Worker settings from environment variables and flags."""

from __future__ import annotations

import pytest

from worker.settings import SettingsError, WorkerSettings, env_var_name


def test_defaults_follow_the_original_worker():
    settings = WorkerSettings.from_sources([], environ={})

    assert settings.backend == "llama-cpp"
    assert settings.limit_model_concurrency == 5
    assert settings.heart_beat_interval_s == 15.0
    assert settings.controller_address == "http://localhost:10075"
    assert settings.worker_address == "http://localhost:21002"


def test_environment_sets_defaults_and_flags_override_them():
    environ = {
        "WORKER_PORT": "21005",
        "WORKER_BACKEND": "simulated",
        "WORKER_MULTIMODAL": "true",
        "WORKER_TOKENS_PER_S": "12.5",
        "WORKER_CONTROLLER_ADDRESS": "http://ctl:10075/",
    }

    settings = WorkerSettings.from_sources(["--port", "21009", "--no-register"], environ=environ)

    assert settings.port == 21009
    assert settings.backend == "simulated"
    assert settings.multimodal is True
    assert settings.no_register is True
    assert settings.tokens_per_s == 12.5
    assert settings.controller_address == "http://ctl:10075"
    assert settings.worker_address == "http://localhost:21009"


def test_every_field_has_a_worker_env_var():
    assert env_var_name("limit_model_concurrency") == "WORKER_LIMIT_MODEL_CONCURRENCY"


@pytest.mark.parametrize(
    ("argv", "environ"),
    [
        (["--limit-model-concurrency", "0"], {}),
        (["--backend", "vllm"], {}),
        (["--worker-address", "file:///etc/passwd"], {}),
        ([], {"WORKER_PORT": "many"}),
        ([], {"WORKER_NO_REGISTER": "perhaps"}),
    ],
)
def test_unusable_values_exit_with_a_usage_error(argv, environ, capsys):
    with pytest.raises(SystemExit) as exit_info:
        WorkerSettings.from_sources(argv, environ=environ)

    assert exit_info.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_constructor_rejects_a_zero_token_rate():
    with pytest.raises(SettingsError, match="tokens_per_s must be > 0"):
        WorkerSettings(tokens_per_s=0)

"""Settings from CLI flags and CONTROLLER_* environment variables."""

from __future__ import annotations

import pytest

from controller.settings import ControllerSettings, SettingsError


def test_defaults_match_the_original_controller() -> None:
    settings = ControllerSettings.from_args([], {})
    assert (settings.host, settings.port, settings.dispatch_method) == (
        "0.0.0.0", 10075, "shortest_queue"
    )
    assert settings.heart_beat_expiration_s == 30


def test_environment_sets_defaults_and_flags_win() -> None:
    env = {"CONTROLLER_PORT": "2000", "CONTROLLER_DISPATCH_METHOD": "lottery",
           "CONTROLLER_HEART_BEAT_EXPIRATION": "90", "CONTROLLER_HOST": "127.0.0.1",
           "CONTROLLER_FIRST_FRAME_TIMEOUT": "7.5"}
    settings = ControllerSettings.from_args(["--port", "3000"], env)
    assert (settings.host, settings.port, settings.dispatch_method) == (
        "127.0.0.1", 3000, "lottery"
    )
    assert (settings.heart_beat_expiration_s, settings.first_frame_timeout_s) == (90, 7.5)


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["--dispatch-method", "fastest"], {}, "dispatch_method must be one of"),
        (["--port", "0"], {}, "port must be in"),
        (["--heart-beat-expiration", "-1"], {}, "heart_beat_expiration_s must be > 0"),
        ([], {"CONTROLLER_PORT": "ten"}, "CONTROLLER_PORT='ten' is not a valid int"),
    ],
)
def test_bad_values_exit_with_a_message_naming_the_setting(
    argv, env, message, capsys
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        ControllerSettings.from_args(argv, env)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_settings_object_validates_when_built_directly() -> None:
    with pytest.raises(SettingsError, match="max_attempts"):
        ControllerSettings(max_attempts=0)

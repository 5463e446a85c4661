"""Settings from the environment: each is checked against its kind before the service starts,
and a bad one is named as the operator wrote it, with what it must be (app/ops/settings.py)."""
import os
import subprocess

import pytest

from app import create_app
from app.ops import settings
from app.ops.settings import SettingError

from .servers import ROOT, Gunicorn, free_port
from .support import SERVER_ENV

REFUSED = {
    "RIPPLE_HISTORY_LENGTH=abc": "RIPPLE_HISTORY_LENGTH must be a whole number of at least 1, not 'abc'.",
    "RIPPLE_HISTORY_LENGTH=-5": "RIPPLE_HISTORY_LENGTH must be a whole number of at least 1, not -5.",
    "RIPPLE_HISTORY_LENGTH=0": "RIPPLE_HISTORY_LENGTH must be a whole number of at least 1, not 0.",
    "RIPPLE_MAX_MESSAGE_CHARS=2.5": "RIPPLE_MAX_MESSAGE_CHARS must be a whole number of at least 1, not 2.5.",
    "RIPPLE_HEARTBEAT_SECONDS=0": "RIPPLE_HEARTBEAT_SECONDS must be a number above 0, not 0.",
    "RIPPLE_PRESENCE_BATCH_MS=-1": "RIPPLE_PRESENCE_BATCH_MS must be a whole number of at least 0, not -1.",
    "RIPPLE_HISTORY_LENGTH=NaN": "RIPPLE_HISTORY_LENGTH must be a whole number of at least 1, not nan.",
    "RIPPLE_HEARTBEAT_SECONDS=Infinity": "RIPPLE_HEARTBEAT_SECONDS must be a number above 0, not inf.",
    "RIPPLE_RETRY_MS=0.5": "RIPPLE_RETRY_MS must be a whole number of at least 1, not 0.5.",
    "RIPPLE_GUESTS=maybe": "RIPPLE_GUESTS must be true or false, not 'maybe'.",
    "RIPPLE_POST_RATE_TOKEN=garbage": 'RIPPLE_POST_RATE_TOKEN must be a rate such as "20 per 10 seconds", '
                                      "not 'garbage'.",
}


@pytest.mark.parametrize("setting", REFUSED, ids=REFUSED)
def test_a_bad_setting_stops_the_app_with_its_name_and_rule(monkeypatch, setting):
    name, _, value = setting.partition("=")
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingError) as refused:
        create_app()
    assert str(refused.value) == REFUSED[setting]


@pytest.mark.parametrize("value, meant", [("false", False), ("off", False), ("0", False), ("yes", True),
                                          ("true", True), ("on", True)])
def test_an_on_off_setting_takes_the_usual_words(monkeypatch, value, meant):
    monkeypatch.setenv("RIPPLE_GUESTS", value)
    assert create_app().config["GUESTS"] is meant


def test_a_duration_may_be_a_fraction_and_zero_may_mean_off(monkeypatch):
    monkeypatch.setenv("RIPPLE_HEARTBEAT_SECONDS", "1.5")
    monkeypatch.setenv("RIPPLE_PRESENCE_BATCH_MS", "0")
    config = create_app().config
    assert (config["HEARTBEAT_SECONDS"], config["PRESENCE_BATCH_MS"]) == (1.5, 0)


def test_an_empty_setting_is_its_default(monkeypatch):
    monkeypatch.setenv("RIPPLE_HISTORY_LENGTH", "")  # a blank line in an env file
    monkeypatch.setenv("RIPPLE_GUESTS", " ")
    config = create_app().config
    assert (config["HISTORY_LENGTH"], config["GUESTS"]) == (1000, True)


@pytest.mark.parametrize("setting", [s for s in REFUSED if "_RATE" not in s], ids=str)
def test_the_master_reads_the_environment_as_the_app_does(setting):
    name, _, value = setting.partition("=")
    with pytest.raises(SettingError) as refused:
        settings.check(settings.from_environ({name: value}), rates=False)
    assert str(refused.value) == REFUSED[setting]


def test_the_master_leaves_rates_to_the_app():
    config = settings.from_environ({"RIPPLE_POST_RATE_TOKEN": "garbage", "RIPPLE_GUESTS": "off"})
    settings.check(config, rates=False)  # Flask-Limiter reads rates: the workers check them
    assert config["GUESTS"] is False


def test_a_bad_setting_stops_gunicorn_in_one_line_before_any_worker_boots(redis_url, tmp_path):
    env = {**os.environ, **SERVER_ENV, "REDIS_URL": redis_url, "PORT": str(free_port()),
           "RIPPLE_HISTORY_LENGTH": "many"}
    result = subprocess.run([*Gunicorn.SCRIPT, "-c", "gunicorn.conf.py"], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "Error: RIPPLE_HISTORY_LENGTH must be a whole number of at least 1, not 'many'." in result.stderr
    assert "Traceback" not in result.stderr and "Booting worker" not in result.stderr

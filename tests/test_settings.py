"""Settings from the environment: each is checked against its kind before the service starts,
and a bad one is named as the operator wrote it, with what it must be (app/ops/settings.py)."""
import os
import subprocess
import sys

import pytest

from app import create_app
from app.ops import settings
from app.ops.settings import SettingError

from .servers import ROOT, Gunicorn, free_port
from .support import SERVER_ENV

FLASK = [sys.executable, "-m", "flask", "--app", "app"]

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
    # The scheme only: the rest of a URL may hold a password.
    "REDIS_URL=ftp://:secret@host": "REDIS_URL must start with redis://, rediss://, unix://, redis+sentinel:// or "
                                    "redis+cluster:// (it starts with ftp://).",
    "REDIS_URL=localhost:6379": "REDIS_URL must start with redis://, rediss://, unix://, redis+sentinel:// or "
                                "redis+cluster:// (it has no scheme).",
    "RIPPLE_SESSION_COOKIE_SAMESITE=bogus": "RIPPLE_SESSION_COOKIE_SAMESITE must be Lax, Strict or None, not 'bogus'.",
    "RIPPLE_JWT_SECRET=short": "RIPPLE_JWT_SECRET must be at least 32 bytes, not 5.",
    "RIPPLE_JWT_LEEWAY_SECONDS=60": "RIPPLE_JWT_LEEWAY_SECONDS must be at most 10, not 60.",
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


def test_the_cookies_samesite_takes_any_case_and_is_kept_in_flasks_spelling(monkeypatch):
    monkeypatch.setenv("RIPPLE_SESSION_COOKIE_SAMESITE", "strict")
    assert create_app().config["SESSION_COOKIE_SAMESITE"] == "Strict"


def test_a_bad_setting_stops_a_command_in_one_line(tmp_path):
    env = {**os.environ, "RIPPLE_HISTORY_LENGTH": "abc", "RIPPLE_EMBEDDED_REDIS_DIR": str(tmp_path)}
    result = subprocess.run([*FLASK, "rooms", "list"], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=60)
    assert (result.returncode, result.stderr) == (
        1, "Error: RIPPLE_HISTORY_LENGTH must be a whole number of at least 1, not 'abc'.\n")


def test_the_master_leaves_rates_to_the_app():
    config = settings.from_environ({"RIPPLE_POST_RATE_TOKEN": "garbage", "RIPPLE_GUESTS": "off"})
    settings.check(config, rates=False)  # Flask-Limiter reads rates: the workers check them
    assert config["GUESTS"] is False


@pytest.mark.parametrize("setting, sentence", [
    ("LOG_LEVEL=LOUD", "LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, not 'LOUD'."),
    ("RIPPLE_REDIS_MAXMEMORY=lots", 'RIPPLE_REDIS_MAXMEMORY must be a size such as "256mb" or "2gb", not \'lots\'.'),
    # Read by each worker as it booted: each exited, and gunicorn started another, for ever.
    ("RIPPLE_MEMORY_TRIM_CONNECTIONS=-1",
     "Error: RIPPLE_MEMORY_TRIM_CONNECTIONS must be a whole number of at least 0, not '-1'."),
    # gevent's own check, in each worker: a traceback, then "Worker failed to boot".
    ("GEVENT_TRACK_GREENLET_TREE=maybe", "Error: GEVENT_TRACK_GREENLET_TREE must be true or false, not 'maybe'."),
    # subprocess's FileNotFoundError, with its traceback.
    ("RIPPLE_REDIS_SERVER=/nonexistent/valkey-server",
     "Error: RIPPLE_REDIS_SERVER must name an executable Redis server, not '/nonexistent/valkey-server'."),
    ("PORT=eighty", "Error: PORT must be a whole number of at least 1, not 'eighty'."),
], ids=["log-level", "maxmemory", "trim", "greenlet-tree", "redis-server", "port"])
def test_what_only_gunicorn_reads_is_refused_in_one_line(tmp_path, setting, sentence):
    name, _, value = setting.partition("=")
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}  # the embedded Redis's settings
    env.pop("BIND", None)  # PORT is read only without it
    env.update(SERVER_ENV, PORT=str(free_port()), RIPPLE_EMBEDDED_REDIS_DIR=str(tmp_path))
    env[name] = value
    result = subprocess.run([*Gunicorn.SCRIPT, "-c", "gunicorn.conf.py"], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and sentence in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and "Booting worker" not in result.stderr


def test_a_bad_setting_stops_gunicorn_in_one_line_before_any_worker_boots(redis_url, tmp_path):
    env = {**os.environ, **SERVER_ENV, "REDIS_URL": redis_url, "PORT": str(free_port()),
           "RIPPLE_HISTORY_LENGTH": "many"}
    result = subprocess.run([*Gunicorn.SCRIPT, "-c", "gunicorn.conf.py"], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "Error: RIPPLE_HISTORY_LENGTH must be a whole number of at least 1, not 'many'." in result.stderr
    assert "Traceback" not in result.stderr and "Booting worker" not in result.stderr


# gunicorn's own arbiter (gunicorn.conf.py's hook applied) with two real children that exit as
# workers that failed to load the app do, both before the master reaps either.
_TWO_FAILED_WORKERS = r"""
import os, runpy, subprocess, sys, time
from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter
from gunicorn.errors import HaltServer

class App(BaseApplication):
    def load_config(self):
        pass

    def load(self):
        return None

class Worker:  # the arbiter's record of a worker: its pid and heartbeat file
    def __init__(self, pid):
        self.pid, self.tmp, self.aborted = pid, open(os.devnull), False

arbiter = Arbiter(App())
runpy.run_path(sys.argv[1])["_halt_once"](arbiter)
children = [subprocess.Popen([sys.executable, "-c", "raise SystemExit(4)"]) for _ in range(2)]
for child in children:  # kept: a Popen collected would reap its child itself
    arbiter.WORKERS[child.pid] = Worker(child.pid)
    while open("/proc/%d/stat" % child.pid).read().rpartition(")")[2].split()[0] != "Z":
        time.sleep(0.01)
arbiter.cfg.set("on_exit", lambda server: print("on_exit ran", file=sys.stderr))
if sys.argv[2] == "reap":  # as Arbiter.run does when a worker's exit halts it
    try:
        arbiter.reap_workers()
    except HaltServer as inst:
        arbiter.halt(reason=inst.reason, exit_status=inst.exit_status)
else:  # as Arbiter.run does on SIGTERM (StopIteration) or SIGINT
    arbiter.halt()
"""


def two_failed_workers(halted_by):
    return subprocess.run([sys.executable, "-c", _TWO_FAILED_WORKERS, str(ROOT / "gunicorn.conf.py"), halted_by],
                          cwd=ROOT, env={**os.environ, "PYTHONMALLOC": "malloc"},
                          capture_output=True, text=True, timeout=60)


def test_workers_failing_to_load_together_stop_the_master_once_without_a_traceback():
    result = two_failed_workers("reap")
    assert result.returncode == 4, result.stderr  # gunicorn's APP_LOAD_ERROR
    assert result.stderr.count("exited with code 4") == 2 and "App failed to load." in result.stderr
    assert "Traceback" not in result.stderr and "on_exit ran" in result.stderr, result.stderr


def test_a_master_stopping_for_sigterm_reaps_workers_that_failed_to_load_without_a_traceback():
    result = two_failed_workers("halt")
    assert result.returncode == 0, result.stderr  # the stop it was asked for
    assert result.stderr.count("exited with code 4") == 2
    assert "Traceback" not in result.stderr and "on_exit ran" in result.stderr, result.stderr


def test_a_bad_rate_stops_gunicorn_in_one_line_from_the_worker(redis_url):
    # Only the workers read rates (Flask-Limiter's parser): the worker says it, the master stops.
    env = {**os.environ, **SERVER_ENV, "REDIS_URL": redis_url, "PORT": str(free_port()),
           "RIPPLE_POST_RATE_TOKEN": "garbage"}
    result = subprocess.run([*Gunicorn.SCRIPT, "-c", "gunicorn.conf.py"], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert 'Error: RIPPLE_POST_RATE_TOKEN must be a rate such as "20 per 10 seconds"' in result.stderr
    assert "Traceback" not in result.stderr, result.stderr


def test_a_misspelt_or_renamed_setting_is_named_with_what_was_meant():
    # Nothing reads RIPPLE_HISTORY_LENGHT: the service ran with the default, saying nothing.
    found = settings.misspelt({
        "RIPPLE_HISTORY_LENGHT": "5000", "RIPPLE_TRUSTED_PROXY": "1", "RIPPLE_NAME_TTL_SECONDS": "60",
        "RIPPLE_REDIS_MAXMEMROY": "1gb",
        # Ripple's own, Flask's and its extensions' (RIPPLE_<name> sets them too), and unrelated
        "RIPPLE_HISTORY_LENGTH": "5000", "RIPPLE_EMBEDDED_REDIS_DIR": "/srv", "RIPPLE_SECRET_KEY": "k",
        "RIPPLE_SESSION_COOKIE_NAME": "chat", "RIPPLE_RATELIMIT_KEY_PREFIX": "x", "RIPPLE_WTF_CSRF_SSL_STRICT": "0",
        "RIPPLE_ENV": "prod", "PATH": "/bin"})
    assert found == [
        "RIPPLE_HISTORY_LENGHT is no Ripple setting: did you mean RIPPLE_HISTORY_LENGTH? (ignored)",
        "RIPPLE_NAME_TTL_SECONDS is no longer read: RIPPLE_NAME_IDLE_SECONDS replaced it (ignored).",
        "RIPPLE_REDIS_MAXMEMROY is no Ripple setting: did you mean RIPPLE_REDIS_MAXMEMORY? (ignored)",
        "RIPPLE_TRUSTED_PROXY is no Ripple setting: did you mean RIPPLE_TRUSTED_PROXIES? (ignored)"]


def test_the_flask_settings_never_taken_for_a_misspelling_are_flasks():
    from flask import Flask
    ours = {name for name in dir(settings) if name.isupper() and not name.startswith("_")} | {"SECRET_KEY"}
    assert settings._flask == set(Flask.default_config) - ours


def test_the_master_warns_of_a_misspelt_setting(redis_url, tmp_path):
    server = Gunicorn(tmp_path, redis_url=redis_url, workers=1,
                      env=dict(SERVER_ENV, RIPPLE_HISTORY_LENGHT="5000"))
    server.start()
    server.stop()
    assert ("WARNING pid=%d rid=- gunicorn.error: RIPPLE_HISTORY_LENGHT is no Ripple setting: did you mean "
            "RIPPLE_HISTORY_LENGTH? (ignored)" % server.process.pid) in server.log_path.read_text()

"""REDIS_SENTINELS and its companions: what each value means, and one line for a bad one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from marketfeed.redis_sentinel import SENTINEL_TIMEOUT_S, sentinel_settings

VARIABLES = ("REDIS_SENTINELS", "REDIS_SENTINEL_MASTER", "REDIS_SENTINEL_PASSWORD")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_without_sentinels_redis_url_is_left_as_it_is():
    assert sentinel_settings(None) == (None, None)
    assert sentinel_settings("redis://10.0.0.5:6379/2") == (None, "redis://10.0.0.5:6379/2")


def test_sentinels_alone_select_the_master_named_mymaster(monkeypatch):
    monkeypatch.setenv("REDIS_SENTINELS", "10.0.0.5:26379, 10.0.0.6:26379,[fd00::7]:26380")
    entry, url = sentinel_settings(None)
    assert url == "redis://mymaster/0"
    assert entry == {
        "sentinels": [("10.0.0.5", 26379), ("10.0.0.6", 26379), ("fd00::7", 26380)],
        "master_name": "mymaster",
        "sentinel_kwargs": {
            "socket_timeout": SENTINEL_TIMEOUT_S, "socket_connect_timeout": SENTINEL_TIMEOUT_S,
        },
        "db": 0,
    }


def test_redis_url_gives_the_password_and_database_and_its_host_is_ignored(monkeypatch):
    monkeypatch.setenv("REDIS_SENTINELS", "s1:26379")
    monkeypatch.setenv("REDIS_SENTINEL_MASTER", "feed-main")
    monkeypatch.setenv("REDIS_SENTINEL_PASSWORD", "sentinel-secret")
    entry, url = sentinel_settings("redis://app:p%40ss@old-host:6379/3")
    assert url == "redis://app:p%40ss@feed-main/3"
    assert entry["master_name"] == "feed-main"
    assert (entry["username"], entry["password"], entry["db"]) == ("app", "p@ss", 3)
    assert entry["sentinel_kwargs"]["password"] == "sentinel-secret"


@pytest.mark.parametrize(
    ("env", "redis_url", "says"),
    [
        ({"REDIS_SENTINELS": "s1"}, None, "REDIS_SENTINELS='s1': entry 1 's1': expected host:port"),
        ({"REDIS_SENTINELS": "s1:26379,s2:x"}, None, "entry 2 's2:x': expected host:port"),
        ({"REDIS_SENTINELS": "s1:0"}, None, "entry 1 's1:0': expected host:port"),
        ({"REDIS_SENTINELS": "::1:26379"}, None, "([::1]:26379 for IPv6)"),
        ({"REDIS_SENTINELS": ","}, None, "REDIS_SENTINELS=',': expected host:port"),
        ({"REDIS_SENTINELS": "s1:1,s1:1"}, None, "entry 2 's1:1' is listed twice"),
        ({"REDIS_SENTINELS": "s1:1", "REDIS_SENTINEL_MASTER": "my master"}, None,
         "REDIS_SENTINEL_MASTER='my master': expected a name"),
        ({"REDIS_SENTINELS": "s1:1"}, "rediss://:pw@h:6380/0",
         "REDIS_URL='rediss://:***@h:6380/0': with REDIS_SENTINELS it gives only"),
        ({"REDIS_SENTINELS": "s1:1"}, "redis://h/x", "the database 'x' is not a number"),
        ({"REDIS_SENTINEL_MASTER": "mymaster"}, None,
         "REDIS_SENTINEL_MASTER is set but REDIS_SENTINELS is not"),
        ({"REDIS_SENTINEL_PASSWORD": "pw"}, "redis://h:6379/0",
         "REDIS_SENTINEL_PASSWORD is set but REDIS_SENTINELS is not"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_variable(monkeypatch, env, redis_url, says):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ImproperlyConfigured) as error:
        sentinel_settings(redis_url)
    assert says in str(error.value)
    assert "\n" not in str(error.value)


def test_settings_put_the_layer_store_and_cache_on_the_sentinels(tmp_path):
    """The settings module itself, in a process of its own (settings are read once)."""
    code = (
        "from django.conf import settings as s; "
        "host = s.CHANNEL_LAYERS['default']['CONFIG']['hosts'][0]; "
        "cache = s.CACHES['default']; "
        "print(s.REDIS_URL, host['master_name'], host['sentinels'], host['socket_timeout'], "
        "s.FEED_TICKER, cache['LOCATION'], cache['OPTIONS']['pool_class'], "
        "cache['OPTIONS']['sentinels'])"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("REDIS_")}
    env.update(
        REDIS_SENTINELS="127.0.0.1:26379", DJANGO_SETTINGS_MODULE="marketfeed.settings",
        MARKETFEED_VAR_DIR=str(tmp_path),
    )
    env.pop("FEED_TICKER", None)
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "redis://mymaster/0", "mymaster", "[('127.0.0.1',", "26379)]", "None", "external",
        "redis://mymaster/0", "feeds.publish.redis_connect.SentinelCachePool",
        "[('127.0.0.1',", "26379)]",
    ]


def test_a_bad_value_stops_manage_py_with_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("REDIS_")}
    env.update(REDIS_SENTINELS="sentinel-a", MARKETFEED_VAR_DIR=str(tmp_path))
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=root, env=env, capture_output=True,
        text=True, timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "marketfeed: configuration error: REDIS_SENTINELS='sentinel-a': entry 1 'sentinel-a': "
        "expected host:port[,host:port...], e.g. 10.0.0.5:26379,10.0.0.6:26379 "
        "([::1]:26379 for IPv6)"
    ]

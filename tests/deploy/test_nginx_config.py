"""deploy/nginx/marketfeed.conf as text: the settings the feed depends on, and nginx accepts it."""

from __future__ import annotations

import re
import subprocess

import pytest

from deploy import nginx
from tests.timeouts import timeout

SITE = nginx.SITE_CONF.read_text()
# What a live connection's quietest stretch can be: the app's heartbeat after
# 15 s of silence, daphne's 20 s ping interval plus its 30 s pong timeout.
QUIETEST_S = max(15, 20 + 30)


def location(name: str) -> str:
    match = re.search(rf"location {re.escape(name)} \{{(.*?)\n    \}}", SITE, re.S)
    assert match, f"no location {name}"
    return re.sub(r"#.*", "", match[1])


def seconds(value: str) -> int:
    number, unit = re.fullmatch(r"(\d+)(ms|s|m|h|d)?", value).groups()
    return int(number) * {"ms": 0, "s": 1, None: 1, "m": 60, "h": 3600, "d": 86400}[unit]


def test_the_websocket_location_upgrades_and_outlives_heartbeats_and_pings():
    ws = location("/ws/")
    for directive in (
        "proxy_http_version 1.1;", "proxy_set_header Upgrade $http_upgrade;",
        "proxy_set_header Connection $connection_upgrade;", "proxy_buffering off;",
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "proxy_set_header X-Forwarded-Proto $scheme;", "proxy_set_header Host $http_host;",
    ):
        assert directive in ws
    for name in ("proxy_read_timeout", "proxy_send_timeout"):
        value = re.search(rf"{name} (\S+);", ws)[1]
        assert seconds(value) > 10 * QUIETEST_S, f"{name} {value}"
    upgrade_map = r"map \$http_upgrade \$connection_upgrade \{\s*default upgrade;\s*''\s+close;"
    assert re.search(upgrade_map, SITE)


def test_the_http_location_forwards_the_same_headers():
    http = location("/")
    for header in ("Host $http_host", "X-Forwarded-For $proxy_add_x_forwarded_for",
                   "X-Forwarded-Proto $scheme"):
        assert f"proxy_set_header {header};" in http


def test_rendering_changes_only_the_servers_the_listen_and_the_log():
    rendered = nginx.render_site(
        SITE, backends=["10.0.0.1:9001", "10.0.0.2:9001", "10.0.0.3:9001"],
        listen="127.0.0.1:9999", access_log="/dev/stdout",
    )
    assert "server 10.0.0.3:9001 max_fails=3 fail_timeout=10s;" in rendered
    assert "127.0.0.1:8001" not in rendered
    assert "listen 127.0.0.1:9999;" in rendered
    assert "access_log /dev/stdout marketfeed;" in rendered
    changed = set(rendered.splitlines()) ^ set(SITE.splitlines())
    rewritten = re.compile(r"\s*(server \S+:\d+ |listen |access_log )")
    assert all(rewritten.match(line) for line in changed), changed


def test_a_site_file_without_upstream_servers_is_refused():
    with pytest.raises(nginx.NginxConfigError, match="no server directive"):
        nginx.render_site("server {\n    listen 80;\n    access_log x;\n}\n",
                          backends=["127.0.0.1:1"], listen="1", access_log="x")


def test_nginx_accepts_the_rendered_config(tmp_path):
    binary = nginx.find_nginx()
    if binary is None:
        pytest.fail("nginx is not installed: apt-get install nginx (.ci/run does)")
    conf = nginx.write_config(tmp_path, backends=["127.0.0.1:8001", "127.0.0.1:8002"],
                              listen="127.0.0.1:8080")
    result = subprocess.run(nginx.command(binary, tmp_path, conf, test=True),
                            capture_output=True, text=True, timeout=timeout(30))
    assert result.returncode == 0, result.stderr

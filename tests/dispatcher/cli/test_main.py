"""Bad settings or arguments stop a `dispatcher` command with what to fix, not a traceback."""

from __future__ import annotations

import os
import subprocess
import sys


def test_bad_settings_name_the_environment_variables() -> None:
    env = {**os.environ, "DISPATCHER_PROVIDER_PROXY": "socks5://x", "DISPATCHER_WORKER_CONCURRENCY": "abc"}
    done = subprocess.run(
        [sys.executable, "-m", "dispatcher.cli", "worker"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "DISPATCHER_WORKER_CONCURRENCY: Input should be a valid integer" in done.stderr
    assert "DISPATCHER_PROVIDER_PROXY: must be an http:// or https:// URL" in done.stderr
    command = [sys.executable, "-m", "dispatcher.cli", "worker", "--help"]
    helped = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert helped.returncode == 0 and "Run a Celery worker" in helped.stdout, helped.stderr


def test_an_account_needs_a_name() -> None:
    for name in ("", "   ", "x" * 201):
        done = subprocess.run(
            [sys.executable, "-m", "dispatcher.cli", "accounts", "create", name],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2 and "name of 1 to 200 characters" in done.stderr, done.stderr

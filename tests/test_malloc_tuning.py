"""malloc tuning: applied to this process through mallopt, handed to children through the environment, and
overridable (user values win, QLAKE_MALLOC_TUNING=0 turns it off)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from lake_assets.malloc_tuning import SETTINGS, tune_malloc


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in [*SETTINGS, "QLAKE_MALLOC_TUNING"]:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_settings_reach_this_process_and_its_children(clean_env: pytest.MonkeyPatch) -> None:
    assert tune_malloc() is (sys.platform == "linux")  # glibc takes every setting
    for name, (_, value) in SETTINGS.items():
        assert os.environ[name] == str(value)
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.environ.get('MALLOC_TRIM_THRESHOLD_'))"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert child.stdout.strip() == str(SETTINGS["MALLOC_TRIM_THRESHOLD_"][1])


def test_user_values_win_and_it_can_be_turned_off(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("MALLOC_TOP_PAD_", "1048576")
    tune_malloc()
    assert os.environ["MALLOC_TOP_PAD_"] == "1048576"
    for name in SETTINGS:
        clean_env.delenv(name, raising=False)
    clean_env.setenv("QLAKE_MALLOC_TUNING", "0")
    assert tune_malloc() is False
    assert not any(name in os.environ for name in SETTINGS)


def test_importing_the_code_location_leaves_malloc_alone() -> None:
    """Tuning comes from the CLI or the deployment's environment, not from an import."""

    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    code = "import os, lake_assets.definitions; print(any(k.startswith('MALLOC_') for k in os.environ))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"

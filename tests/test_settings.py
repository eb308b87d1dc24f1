"""One settings registry: every setting documented, and read the same way by every shell."""

from __future__ import annotations

import re

import pytest
from conftest import ROOT, run_cli

from recommender import settings


def _readme_table() -> dict[str, list[str]]:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("### Settings"):]
    section = section[:section.index("\n#", 1)]  # up to the next heading
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return {re.findall(r"`([^`]+)`", row)[0]: row for row in rows}


@pytest.mark.parametrize("name", sorted(settings.SETTINGS))
def test_every_setting_is_in_the_readme_table(name):
    setting = settings.SETTINGS[name]
    row = _readme_table().get(name)
    assert row is not None, f"README's settings table has no row for {name}"
    assert setting.env in row and f"`{setting.key}`" in row
    assert (setting.flag or "—") in row


def test_the_readme_lists_no_setting_that_does_not_exist():
    assert set(_readme_table()) <= set(settings.SETTINGS)


def test_flag_then_config_then_environment_then_default(monkeypatch):
    from service import create_app

    assert settings.get("answer_cache") == settings.SETTINGS["answer_cache"].default
    monkeypatch.setenv("RECOMMENDER_ANSWER_CACHE", "7")
    assert settings.get("answer_cache") == 7
    assert create_app().config["ANSWER_CACHE"] == 7
    assert create_app({"ANSWER_CACHE": 3}).config["ANSWER_CACHE"] == 3
    assert settings.get("answer_cache", flag=2, config={"ANSWER_CACHE": 3}) == 2
    monkeypatch.setenv("RECOMMENDER_MAX_BODY", "1024")
    app = create_app({"TESTING": True})
    assert app.config["MAX_CONTENT_LENGTH"] == 1024
    r = app.test_client().post("/v1/related", json={"title": "x" * 2000})
    assert r.status_code == 413 and "1 KiB" in r.get_json()["message"]


def test_a_bad_value_is_one_line_naming_the_variable():
    result = run_cli("serve", env={"RECOMMENDER_PORT": "eighty"})
    assert result.returncode == 1
    assert result.stderr.strip() == ("error: RECOMMENDER_PORT='eighty': port must be a "
                                     "whole number")

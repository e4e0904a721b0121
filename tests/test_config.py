"""Config errors are clear, name the key, and exit 2; the shipped config is valid."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from core.config import ConfigError, load_config, parse_config
from daemon.cli import main

REPO = Path(__file__).resolve().parents[1]

GOOD = """
sources:
  - {name: a, url: "http://127.0.0.1:9/feed.xml"}
digests:
  - name: daily
    focus: What a reader needs today.
    deliver:
      - {kind: file, directory: out}
"""


def problems(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(textwrap.dedent(text), "test.yaml", env=env or {})
    return caught.value.problems


def test_a_minimal_config_gets_defaults():
    config = parse_config(GOOD, env={})
    assert config.llm.model == "o1"
    assert config.digests[0].schedule == "0 7 * * *"
    assert config.sources_for(config.digests[0]) == config.sources


def test_yaml_syntax_error_names_the_line():
    [problem] = problems("sources: [\n  - {name: a\n")
    assert "YAML syntax error" in problem and "line" in problem


def test_unknown_key_is_named_with_its_path():
    text = GOOD.replace("focus:", "colour: blue\n    focus:")
    assert problems(text) == ["digests[0].colour: unknown key"]


def test_wrong_type_names_the_nested_path_and_value():
    text = GOOD + "      - {kind: email, host: mail, port: lots, sender: a@b.c, to: [d@e.f]}\n"
    [problem] = problems(text)
    assert problem.startswith("digests[0].deliver[1].port: ")
    assert "integer" in problem and "'lots'" in problem


def test_missing_environment_variable_is_named():
    text = GOOD.replace('"http://127.0.0.1:9/feed.xml"', '"${FEED_URL}"')
    assert problems(text) == ["sources[0].url: environment variable FEED_URL is not set"]


def test_environment_defaults_and_values_are_substituted():
    text = GOOD.replace('"http://127.0.0.1:9/feed.xml"', '"${FEED_URL:-http://127.0.0.1/x}"')
    assert parse_config(text, env={}).sources[0].url == "http://127.0.0.1/x"
    assert parse_config(text, env={"FEED_URL": "https://e.x/f"}).sources[0].url == "https://e.x/f"


def test_references_to_unknown_sources_are_errors():
    text = GOOD.replace("focus:", "sources: [nope]\n    focus:")
    assert any("unknown sources: nope" in p for p in problems(text))


def test_bad_cron_and_timezone_are_explained():
    text = GOOD.replace("focus:", "schedule: 'every day'\n    timezone: Mars/Base\n    focus:")
    found = problems(text)
    assert any(p.startswith("digests[0].schedule: expected a 5-field cron") for p in found)
    assert any(p.startswith("digests[0].timezone: unknown timezone") for p in found)


def test_relative_paths_are_relative_to_the_config_file(tmp_path: Path):
    (tmp_path / "conf.yaml").write_text(GOOD + "storage: {path: state/t.db}\n")
    config = load_config(tmp_path / "conf.yaml")
    assert config.storage.database == tmp_path / "state" / "t.db"
    assert config.digests[0].deliver[0].directory == tmp_path / "out"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sources: [\n", "YAML syntax error"),
        (GOOD.replace("focus:", "colour: 1\n    focus:"), "digests[0].colour: unknown key"),
        (GOOD.replace("name: a,", "name: a, weight: heavy,"), "sources[0].weight"),
        (GOOD.replace('"http://127.0.0.1:9/feed.xml"', '"${NOPE_X}"'), "NOPE_X is not set"),
    ],
)
def test_cli_reports_config_errors_and_exits_2(tmp_path, capsys, text, expected):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    assert main(["--config", str(path), "check"]) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err


def test_missing_config_file_exits_2(tmp_path, capsys):
    assert main(["--config", str(tmp_path / "none.yaml"), "check"]) == 2
    assert "file not found" in capsys.readouterr().err


def test_the_shipped_config_passes_check(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    assert main(["--config", str(REPO / "config.yaml"), "check"]) == 0
    out = capsys.readouterr().out
    assert "config ok" in out and "morning-brief" in out
    config = load_config(REPO / "config.yaml")
    assert len([s for s in config.sources if s.kind == "feed"]) >= 12
    assert any(s.kind == "site" for s in config.sources)


@pytest.mark.parametrize(
    ("schedule", "weekdays"),
    [
        ("0 7 * * 1", {"Monday"}),
        ("0 7 * * 0", {"Sunday"}),
        ("0 7 * * 7", {"Sunday"}),
        ("0 7 * * 1-5", {"Monday", "Tuesday", "Wednesday", "Thursday", "Friday"}),
        ("0 7 * * 5-7", {"Friday", "Saturday", "Sunday"}),
        ("0 7 * * 0,6", {"Saturday", "Sunday"}),
        ("0 7 * * */3", {"Sunday", "Wednesday", "Saturday"}),
        ("0 7 * * mon-wed", {"Monday", "Tuesday", "Wednesday"}),
        (
            "0 7 * * *",
            {"Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"},
        ),
    ],
)
def test_cron_weekdays_mean_what_they_mean_in_cron(schedule, weekdays):
    from datetime import UTC, datetime, timedelta

    from core.config import cron_trigger

    trigger = cron_trigger(schedule)
    moment = datetime(2026, 11, 27, tzinfo=UTC)
    fired = set()
    for _ in range(14):
        moment = trigger.get_next_fire_time(None, moment + timedelta(seconds=1))
        fired.add(moment.strftime("%A"))
        assert moment.hour == 7 and moment.minute == 0
    assert fired == weekdays


def test_timeouts_take_numbers_or_durations():
    text = GOOD.replace(
        "sources:", "collect: {timeout: 2m, connect_timeout: 5, read_timeout: 7.5s}\nsources:"
    )
    collect = parse_config(text, env={}).collect
    assert (collect.timeout, collect.connect_timeout, collect.read_timeout) == (120.0, 5.0, 7.5)
    assert any("collect.timeout" in p for p in problems(GOOD + "collect: {timeout: soon}\n"))

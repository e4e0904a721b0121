"""What an operator trips over, each found by trying it: a missing CA file, a repeated
config section, the real environment leaking into parse_config(env=...), the cron line on
a fresh account, a closed pipe, and a unit printed for a path the unit hides."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from processes import cli_env, printed_cron_line

from core.config import parse_config
from core.errors import ConfigError
from daemon.cli import _hidden_from_unit

SOURCES = "sources: [{name: a, url: 'https://example.com/feed'}]\n"


def test_a_ca_file_that_does_not_exist_fails_validation_naming_it(tmp_path):
    text = (
        SOURCES + "digests:\n  - name: brief\n    focus: News.\n    deliver:\n"
        "      - {kind: email, host: smtp.example.com, sender: a@example.com,\n"
        "         to: [b@example.com], ca_file: private-ca.pem}\n"
    )
    with pytest.raises(ConfigError) as failure:
        parse_config(text, base=tmp_path)
    assert failure.value.problems == [
        f"digests[0].deliver[0].ca_file: no such file: {tmp_path / 'private-ca.pem'}"
    ]
    (tmp_path / "private-ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    assert parse_config(text, base=tmp_path).digests[0].deliver[0].ca_file == (
        tmp_path / "private-ca.pem"
    )


def test_a_section_given_twice_is_an_error_naming_the_line():
    text = SOURCES + "collect: {timeout: 5}\nllm: {model: o1}\ncollect:\n  per_host: 2\n"
    with pytest.raises(ConfigError) as failure:
        parse_config(text)
    assert failure.value.problems == [
        "line 4: duplicate key 'collect' (first given at line 2); merge the two into one"
    ]


def test_a_key_given_twice_deep_inside_is_an_error_too():
    text = (
        "sources:\n  - name: a\n    url: 'https://example.com/feed'\n"
        "    interval: 5m\n    interval: 1h\n"
    )
    with pytest.raises(ConfigError, match="line 5: duplicate key 'interval'"):
        parse_config(text)


def test_yaml_merge_keys_may_still_be_overridden():
    text = (
        "x-defaults: &defaults {interval: 5m, tags: [news]}\n"
        "sources:\n  - <<: *defaults\n    name: a\n    url: 'https://example.com/feed'\n"
        "    interval: 1h\n"
    )
    with pytest.raises(ConfigError, match="x-defaults: unknown key"):
        parse_config(text)  # the anchor's home is not a section; the merge itself is fine


def test_only_the_given_environment_counts(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-the-real-environment")
    assert parse_config(SOURCES, env={}).llm.api_key is None
    assert parse_config(SOURCES, env={"OPENAI_API_KEY": "sk-given"}).llm.api_key == "sk-given"
    assert parse_config(SOURCES).llm.api_key == "sk-from-the-real-environment"
    assert parse_config(SOURCES + "llm: {api_key: ''}\n").llm.api_key is None


def test_the_printed_cron_line_works_on_a_fresh_account(tmp_path):
    line = printed_cron_line()
    command = line.split(maxsplit=5)[5]
    home = tmp_path / "fresh"
    home.mkdir()
    # cron runs the line with sh, a bare environment and the user's HOME.
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin", "PYTHONPATH": cli_env()["PYTHONPATH"]}
    ran = subprocess.run(["sh", "-c", command], env=env, capture_output=True, timeout=120)
    log = (home / ".local/state/trendfinder/cron.log").read_text()
    # trendfinder itself started, and said what is missing.
    assert f"trendfinder: invalid configuration in {home}/.config/trendfinder/config.yaml" in log
    assert "file not found" in log
    assert ran.returncode == 2  # trendfinder's own exit code for a configuration error


def test_output_into_a_closed_pipe_is_not_a_traceback(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(f"storage: {{path: {tmp_path / 'state'}}}\n" + SOURCES)
    for command in (["status", "--json"], ["service", "print"], ["--help"]):
        reader = subprocess.Popen(
            [sys.executable, "-m", "daemon", "--config", str(config), *command],
            env=cli_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert reader.stdout is not None and reader.stderr is not None
        reader.stdout.close()  # like `| head -0`: the reader is gone before the first line
        reader.wait(timeout=120)
        errors = reader.stderr.read().decode()
        assert "Traceback" not in errors and "BrokenPipeError" not in errors, errors


def shipped_unit() -> str:
    return (Path(__file__).resolve().parents[1] / "daemon" / "trendfinder.service").read_text()


@pytest.mark.parametrize(
    ("installed", "setting"),
    [
        ("/home/alice/venv/bin/trendfinder", "ProtectHome=yes"),
        ("/root/.venv/bin/trendfinder", "ProtectHome=yes"),
        ("/tmp/try/bin/trendfinder", "PrivateTmp=yes"),
    ],
)
def test_service_print_warns_about_a_path_the_unit_hides(installed, setting):
    [warning] = _hidden_from_unit(shipped_unit(), [Path(installed)])
    assert f"{installed} is under" in warning and setting in warning
    assert "cannot start" in warning


def test_an_install_under_opt_or_a_relaxed_unit_gets_no_warning():
    assert _hidden_from_unit(shipped_unit(), [Path("/opt/trendfinder/bin/trendfinder")]) == []
    relaxed = shipped_unit().replace("ProtectHome=yes", "ProtectHome=read-only")
    assert _hidden_from_unit(relaxed, [Path("/home/alice/venv/bin/trendfinder")]) == []


def test_service_print_from_an_install_in_tmp_warns_on_stderr(tmp_path):
    bin_folder = tmp_path / "venv" / "bin"
    bin_folder.mkdir(parents=True)
    entry = shutil.which("trendfinder", path=str(Path(sys.executable).parent))
    assert entry is not None, "the trendfinder entry point is installed beside python"
    shutil.copy(entry, bin_folder / "trendfinder")
    ran = subprocess.run(
        [str(bin_folder / "trendfinder"), "service", "print"],
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert f"ExecStart={bin_folder / 'trendfinder'} run" in ran.stdout
    assert "trendfinder: warning:" in ran.stderr and "PrivateTmp=yes" in ran.stderr
    assert os.fspath(tmp_path) in ran.stderr

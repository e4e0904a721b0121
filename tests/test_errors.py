"""One exception hierarchy: every error class trendfinder defines is a TrendfinderError and
carries the exit code the CLI returns for it."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import yaml

from core.errors import EXIT_FAILED, EXIT_LOCKED, EXIT_USAGE, TrendfinderError
from daemon.cli import main

PACKAGES = ("core", "sources", "digests", "daemon")


def defined_exceptions() -> list[type[BaseException]]:
    found = []
    for package_name in PACKAGES:
        package = importlib.import_module(package_name)
        for module_info in pkgutil.walk_packages(package.__path__, f"{package_name}."):
            if module_info.name.endswith("__main__"):
                continue
            module = importlib.import_module(module_info.name)
            for _, value in inspect.getmembers(module, inspect.isclass):
                if issubclass(value, BaseException) and value.__module__ == module.__name__:
                    found.append(value)
    return found


def test_every_error_trendfinder_defines_is_a_trendfinder_error():
    classes = defined_exceptions()
    assert len(classes) >= 15
    strays = [
        f"{c.__module__}.{c.__qualname__}"
        for c in classes
        # A YAML loader's own error never leaves parse_config, which turns it into ConfigError.
        if not issubclass(c, TrendfinderError | yaml.YAMLError)
    ]
    assert strays == []


def test_exit_codes_come_from_the_class():
    from core.errors import ConfigError, NotFound, StoreError, StoreLocked
    from daemon.lock import AlreadyRunning, LockUnavailable

    assert ConfigError("x", ["y"]).exit_code == EXIT_USAGE
    assert NotFound("x").exit_code == EXIT_USAGE
    assert StoreLocked("x").exit_code == EXIT_LOCKED
    assert AlreadyRunning("x").exit_code == EXIT_LOCKED
    assert StoreError("x").exit_code == EXIT_FAILED
    assert LockUnavailable("x").exit_code == EXIT_FAILED


def test_an_unknown_profile_is_a_one_line_usage_error(tmp_path, capsys):
    config = tmp_path / "config.yaml"
    config.write_text(
        f"storage: {{path: {tmp_path / 'state'}}}\n"
        "sources: [{name: a, kind: feed, url: 'http://127.0.0.1:9/feed'}]\n"
        "digests: [{name: daily, focus: news, deliver: [{kind: file}]}]\n"
    )
    code = main(["--config", str(config), "digest", "--dry-run", "--profile", "nope"])
    assert code == EXIT_USAGE
    assert capsys.readouterr().err.strip() == (
        "trendfinder: no digest profile named 'nope' (configured: daily)"
    )

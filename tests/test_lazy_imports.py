"""The commands an operator types by hand start quickly: they import none of the pipeline's
heavy libraries (like lemon24/reader's lazy-import test). Each command runs in a fresh
interpreter, which then reports which of those modules it loaded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from core.store import Store

HEAVY = (
    *("openai", "scipy", "numpy", "trafilatura", "tiktoken", "feedparser", "httpx2"),
    # The store's read-only opens are sqlite3 alone: sqlite-utils (with its plugin machinery,
    # pluggy and click) is for the commands that write.
    *("sqlite_utils", "pluggy", "click"),
)
PROBE = """
import json, os, sys
from daemon.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exit:
    code = exit.code
heavy = [name for name in json.loads(os.environ["HEAVY"]) if name in sys.modules]
print(json.dumps({"code": code, "heavy": heavy}), file=sys.stderr)
"""
COMMANDS = [
    ["--help"],
    ["status"],
    ["status", "--json"],
    ["service", "print"],
    ["service", "print", "cron"],
    ["check"],
    ["digests", "list"],
]


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("lazy")
    path = folder / "config.yaml"
    path.write_text(
        f"storage: {{path: {folder / 'state'}}}\n"
        "sources: [{name: a, kind: feed, url: 'http://127.0.0.1:9/feed'}]\n"
        "digests: [{name: daily, focus: news, deliver: [{kind: file}]}]\n"
    )
    # The reading commands read an existing store (they never create one).
    Store.open(folder / "state").close()
    return path


def run_probe(
    probe: str, command: list[str], config: Path, heavy: Sequence[str]
) -> tuple[dict[str, Any], subprocess.CompletedProcess[str]]:
    """Run `trendfinder COMMAND` under the probe; its report (exit code, heavy modules
    imported) and the process."""
    env = {**os.environ, "TRENDFINDER_CONFIG": str(config), "HEAVY": json.dumps(list(heavy))}
    ran = subprocess.run(
        [sys.executable, "-c", probe, *command],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return json.loads(ran.stderr.strip().splitlines()[-1]), ran


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_hand_typed_commands_import_no_heavy_library(command: list[str], config: Path):
    report, ran = run_probe(PROBE, command, config, HEAVY)
    assert report["code"] in (0, None), ran.stderr
    assert report["heavy"] == [], f"`trendfinder {' '.join(command)}` imported {report['heavy']}"


# What a collect needs is the fetcher, the parser and the store: none of the digest side;
# and the parser only once a body comes (a cycle of 304s, or of refusals as here, has none).
NOT_FOR_COLLECT = (
    *("openai", "httpx2", "wordfreq", "wordllama", "scipy", "numpy", "tiktoken"),
    *("feedparser", "lxml"),
)


def test_collect_imports_nothing_of_grouping_the_model_or_delivery(config: Path):
    probe = PROBE.replace(
        "if name in sys.modules]",
        "if name in sys.modules] + sorted(m for m in sys.modules if m.startswith('digests'))",
    )
    report, ran = run_probe(probe, ["collect"], config, NOT_FOR_COLLECT)
    # Its one source refuses the connection: the collect ran and says so.
    assert report["code"] == 1 and "connection refused" in ran.stderr, ran.stderr
    assert report["heavy"] == [], f"`trendfinder collect` imported {report['heavy']}"


def test_when_parsing_processes_parse_the_collecting_process_imports_no_parser():
    # Their answers come back pickled: unpickling them must not import the parser here.
    probe = (
        "import asyncio, json, sys\n"
        "from datetime import UTC, datetime\n"
        "from core.config import CollectConfig\n"
        "from sources.workers import FeedParser\n"
        "body = (b'<rss version=\"2.0\"><channel><title>T</title><item><title>One</title>'\n"
        "        b'<link>https://site.example/1</link></item></channel></rss>')\n"
        "async def run():\n"
        "    parser = FeedParser(CollectConfig(parse_processes=1), 100)\n"
        "    try:\n"
        "        return await parser.parse(body, 'http://a/', {}, datetime.now(UTC), 'a')\n"
        "    finally:\n"
        "        await parser.aclose()\n"
        "parsed = asyncio.run(asyncio.wait_for(run(), 60))\n"
        "print(json.dumps([[item.title for item in parsed.items],\n"
        "                  [name for name in ('feedparser', 'lxml') if name in sys.modules]]))\n"
    )
    ran = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=False
    )
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout) == [["One"], []]


def test_status_shows_the_last_digest_without_reading_its_document(tmp_path: Path):
    # The digest models (a tenth of `status`'s start-up to build) and the document's body
    # are for showing a digest; `status` shows only which one came last, and when.
    import sample_digests as samples

    from core.digest import TokenUsage

    path = tmp_path / "config.yaml"
    path.write_text(
        f"storage: {{path: {tmp_path / 'state'}}}\n"
        "sources: [{name: a, kind: feed, url: 'http://127.0.0.1:9/feed'}]\n"
        "digests: [{name: morning-brief, focus: news, deliver: [{kind: file}]}]\n"
    )
    with Store.open(tmp_path / "state") as store:
        store.save_digest(samples.digest(), {}, ["file"], TokenUsage())
    probe = PROBE.replace(
        "heavy = [",
        "from core.digest import Digest\n"
        "heavy = ['Digest built'] * Digest.__pydantic_complete__ + [",
    )
    report, ran = run_probe(probe, ["status"], path, HEAVY)
    assert report == {"code": 0, "heavy": []}, ran.stderr
    assert f"last digest {samples.digest().created_at:%Y-%m-%dT%H:%M}" in ran.stdout

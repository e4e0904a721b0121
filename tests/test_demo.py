"""The demo and one real cycle, end to end over loopback HTTP, as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from loopback import closed_port
from processes import storage_setting

from daemon.cli import main
from daemon.demo import serve_samples

REPO = Path(__file__).resolve().parents[1]
SHARED_STORIES = ("CloudNimbus", "AI Act", "interest rates", "Python 3.15")


def test_demo_ranks_stories_that_several_outlets_share_above_one_offs(tmp_path, capsys):
    assert main(["demo", "--keep", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "analyzer: offline" in printed
    [json_file] = (tmp_path / "digests" / "demo").glob("*.json")
    digest = json.loads(json_file.read_text())
    trends = digest["trends"]
    assert digest["analyzer"] == "offline" and digest["stats"]["items"] == 19
    assert [t["rank"] for t in trends] == list(range(1, len(trends) + 1))
    top = trends[: len(SHARED_STORIES)]
    for story in SHARED_STORIES:
        assert any(story.lower() in t["title"].lower() for t in top), story
    for trend in top:
        assert len({item["source"] for item in trend["items"]}) >= 2
    for trend in trends[len(SHARED_STORIES) :]:
        assert not any(s.lower() in trend["title"].lower() for s in ("marathon", "red panda"))
    outage = next(t for t in trends if "cloudnimbus" in t["title"].lower())
    assert len({item["source"] for item in outage["items"]}) == 4
    assert all(item["url"].startswith("https://") for t in trends for item in t["items"])
    assert (tmp_path / "digests" / "demo" / json_file.name.replace(".json", ".md")).exists()


def write_config(folder: Path, urls: dict[str, str]) -> Path:
    sources = "\n".join(f"  - {{name: {name}, url: '{url}'}}" for name, url in urls.items())
    path = folder / "config.yaml"
    path.write_text(
        f"""
storage: {{path: state/trendfinder.db}}
sources:
{sources}
digests:
  - name: brief
    focus: Technology news for engineers.
    deliver:
      - {{kind: file, directory: out}}
"""
    )
    return path


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("OPENAI_API_KEY", None)
    return subprocess.run(
        [sys.executable, "-m", "daemon", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_run_once_collects_digests_and_writes_files_and_reports_a_bad_source(tmp_path):
    with serve_samples(datetime.now(UTC)) as base:
        urls = {
            "wire": f"{base}/wire.xml",
            "ledger": f"{base}/ledger.xml",
            "herald": f"{base}/herald.xml",
            "down": f"http://127.0.0.1:{closed_port()}/feed.xml",
        }
        config = write_config(tmp_path, urls)
        result = run_cli("--config", str(config), "run", "--once", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "3 sources ok" in result.stderr and "1 failed" in result.stderr
    assert "source down:" in result.stderr and "Traceback" not in result.stderr
    [md] = (tmp_path / "out" / "brief").glob("*.md")
    assert "CloudNimbus" in md.read_text()
    assert "analyzer: offline" in md.read_text()

    listed = run_cli("--config", str(config), "digests", "list", cwd=tmp_path)
    digest_id = listed.stdout.split()[0]
    assert digest_id.startswith("brief-")
    shown = run_cli(
        "--config", str(config), "digests", "show", digest_id, "--format", "json", cwd=tmp_path
    )
    assert json.loads(shown.stdout)["profile"] == "brief"
    status = run_cli("--config", str(config), "status", "--json", cwd=tmp_path)
    info = json.loads(status.stdout)
    assert [s["name"] for s in info["failing_sources"]] == ["down"]
    assert info["store"]["digests"] == 1


def test_run_once_with_the_network_unreachable_exits_1_with_a_summary(tmp_path):
    port = closed_port()
    config = write_config(tmp_path, {f"s{n}": f"http://127.0.0.1:{port}/{n}.xml" for n in range(3)})
    result = run_cli("--config", str(config), "run", "--once", cwd=tmp_path)
    assert result.returncode == 1
    assert "0 sources ok" in result.stderr and "3 failed" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.count("failed: source s") == 3


def test_two_digests_of_a_profile_in_the_same_second_are_both_kept(tmp_path, store_url):
    from core.config import parse_config
    from core.items import NewItem
    from core.store import Store
    from daemon.runner import Runner

    moment = datetime(2026, 11, 27, 7, 0, tzinfo=UTC)
    config = parse_config(
        f"""
storage: {{{storage_setting(store_url, str(tmp_path / "t.db"))}}}
sources: [{{name: wire, url: 'http://127.0.0.1:9/feed.xml'}}]
digests:
  - {{name: brief, focus: news, deliver: [{{kind: file, directory: '{tmp_path / "out"}'}}]}}
""",
        env={},
    )

    def item(n: int) -> NewItem:
        return NewItem(
            id=f"it_{n}",
            url=f"https://wire.example/{n}",
            title=f"Harbour bridge reopens after repair number {n}",
            text="",
            published=moment,
            content_hash=f"h{n}",
        )

    with Store.open_config(config.storage) as store:
        runner = Runner(config, store, clock=lambda: moment)
        ids = []
        for n in (1, 2):
            store.add_items("wire", [item(n)], moment)
            runner.group()
            built = runner.digest(config.digests[0])
            assert built is not None
            ids.append(built.digest.id)
        runner.deliver()
    assert ids == ["brief-20261127T070000Z", "brief-20261127T070000Z-2"]
    files = sorted(path.name for path in (tmp_path / "out" / "brief").glob("*.json"))
    assert files == ["20261127T070000Z-2.json", "20261127T070000Z.json"]

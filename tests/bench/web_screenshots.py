"""The README's screenshots of the web app, taken in headless chromium as the browser tests
do, over the tests' small world (hostile headlines included) at 1280 px.

    python tests/bench/web_screenshots.py [--out docs]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from loopback.browser import launched
from test_web_browser import free_port, running
from webworld import build_digest, config_text, fill

from core.config import load_config
from core.store import Store
from daemon.web.signing import digest_vote_links

PAGES = {
    "today": "/",
    "stories": "/stories?q=the&status=developing",
    "sources": "/sources",
    "digests": "/digests",
    "status": "/status",
    "preview": "/digests/preview/news",
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path("docs"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        port = free_port()
        extra = f"serve:\n  public_url: http://127.0.0.1:{port}\n  allow_source_edits: true\n"
        path = folder / "config.yaml"
        path.write_text(config_text(folder, extra))
        config = load_config(path)
        fill(config)
        build_digest(config)
        fill(config, round=1)
        with Store.open(config.storage.database, read_only=True) as store:
            digest = store.digest(store.digest_summaries(limit=1)[0].id)
        links = digest_vote_links(config.serve, config.storage.state_dir, digest)
        assert links is not None
        vote = next(iter(links.by_story.values()))[0]
        story = f"/stories/{next(iter(links.by_story))}"
        pages = {**PAGES, "story": story, "vote": vote.split(str(port), 1)[1]}
        with launched() as browser, running(config, port, path) as url:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            for name, where in pages.items():
                page.goto(url + where)
                page.screenshot(path=str(args.out / f"web-{name}.png"), full_page=True)
                print(f"{args.out / f'web-{name}.png'}: {where}")


if __name__ == "__main__":
    main()

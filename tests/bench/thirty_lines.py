"""The 30-line collector the benchmark compares against: httpx + a semaphore + feedparser.

python tests/bench/thirty_lines.py URLS_FILE
"""

import asyncio
import sys

import feedparser
import httpx


async def main(urls: list[str]) -> None:
    limit = asyncio.Semaphore(64)
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:

        async def one(url: str) -> int:
            try:
                async with limit:
                    response = await client.get(url)
            except httpx.HTTPError:
                return -1
            return len(feedparser.parse(response.content).entries)

        counts = await asyncio.gather(*(one(url) for url in urls))
    failed = counts.count(-1)
    print(f"{len(urls)} feeds, {sum(counts) + failed} entries, {failed} failed")


if __name__ == "__main__":
    with open(sys.argv[1]) as handle:
        asyncio.run(main(handle.read().split()))

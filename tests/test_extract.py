from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
from bench.extraction_scoring import dataset_dir, load_pages, match, score

from sources.extract import (
    MAX_HTML_SIZE,
    Article,
    FeedLink,
    discover_feeds,
    discover_links,
    extract_article,
)

PARAGRAPHS = [
    "The Frobnicator 2 is available today for all customers, two years after the first "
    "model changed how teams think about frobnication in production.",
    "It is twice as fast as its predecessor, uses half the power, and keeps full "
    "compatibility with existing frobnication pipelines and their configuration files.",
    "Pricing starts at 99 dollars a month. Existing customers are upgraded automatically "
    "during the next maintenance window, with no action needed on their side.",
]

ARTICLE_PAGE = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Acme ships the Frobnicator 2 | Acme Blog</title>
<meta property="og:title" content="Acme ships the Frobnicator 2">
<meta property="article:published_time" content="2024-03-05T14:30:00+02:00">
<meta name="author" content="Jane Doe">
</head><body>
<header class="site-header"><nav>
  <a href="/">Home</a> <a href="/blog/">Blog</a> <a href="/pricing">Pricing</a>
  <span>Main navigation menu</span>
</nav></header>
<div class="ad-banner"><a href="https://ads.example/click">BUY CHEAP WIDGETS NOW</a></div>
<main><article>
  <h1>Acme ships the Frobnicator 2</h1>
  <p>{PARAGRAPHS[0]}</p>
  <p>{PARAGRAPHS[1]}</p>
  <p>{PARAGRAPHS[2]}</p>
</article></main>
<aside class="sidebar"><h3>Popular</h3>
  <a href="/blog/other-great-post-here">Other great post</a></aside>
<footer>Copyright 2024 Acme Corp. All rights reserved.</footer>
</body></html>"""


def test_article_page_yields_title_body_date_and_author() -> None:
    article = extract_article(ARTICLE_PAGE, "https://acme.example/blog/frobnicator-2")

    assert isinstance(article, Article)
    assert article.url == "https://acme.example/blog/frobnicator-2"
    assert article.title == "Acme ships the Frobnicator 2"
    assert article.text.startswith(PARAGRAPHS[0])  # not repeating the title
    for paragraph in PARAGRAPHS:
        assert paragraph in article.text
    for chrome in ("navigation menu", "BUY CHEAP", "Popular", "Copyright"):
        assert chrome not in article.text
    assert article.published == datetime(2024, 3, 5, 12, 30, tzinfo=UTC)
    assert article.author == "Jane Doe"


def test_text_is_whitespace_normalised_one_paragraph_per_line() -> None:
    page = ARTICLE_PAGE.replace(PARAGRAPHS[1], PARAGRAPHS[1].replace(" ", " \n\t  "))
    article = extract_article(page.encode(), "https://acme.example/blog/frobnicator-2")

    assert article is not None
    assert PARAGRAPHS[1] in article.text.splitlines()
    assert "  " not in article.text
    assert article.text == article.text.strip()


def test_date_without_offset_is_taken_as_utc_and_missing_metadata_is_none() -> None:
    page = (
        ARTICLE_PAGE.replace("2024-03-05T14:30:00+02:00", "2024-03-05")
        .replace('<meta name="author" content="Jane Doe">', "")
        .replace("<title>Acme ships the Frobnicator 2 | Acme Blog</title>", "")
        .replace('<meta property="og:title" content="Acme ships the Frobnicator 2">', "")
        .replace("<h1>Acme ships the Frobnicator 2</h1>", "")
    )
    article = extract_article(page, "https://acme.example/blog/frobnicator-2")

    assert article is not None
    assert article.published == datetime(2024, 3, 5, tzinfo=UTC)
    assert article.author is None
    assert article.title == ""


def test_body_in_json_ld_only_is_found_by_the_fallback() -> None:
    body = " ".join(PARAGRAPHS)
    page = (
        '<html><head><title>App</title><script type="application/ld+json">'
        f'{{"@context": "https://schema.org", "@type": "NewsArticle", "articleBody": "{body}"}}'
        '</script></head><body><div id="root"></div></body></html>'
    )
    article = extract_article(page, "https://app.example/news/1")

    assert article is not None
    assert PARAGRAPHS[0] in article.text


def test_page_without_article_body_returns_none() -> None:
    page = '<html><head><title>Login</title></head><body><nav><a href="/">Home</a></nav></body>'
    assert extract_article(page, "https://acme.example/login") is None


INDEX_PAGE = """<!doctype html>
<html><head><title>Acme Blog</title><base href="https://acme.example/"></head><body>
<header class="site-header">
  <a href="/">Acme</a>
  <nav><a href="/blog/">Blog</a> <a href="/blog/nav-link-to-a-post">In the nav</a></nav>
</header>
<main>
  <article class="post-card"><header><h2>
    <a href="/blog/2024/03/acme-ships-frobnicator-2">Acme ships the Frobnicator 2</a>
  </h2></header>
    <a href="/blog/2024/03/acme-ships-frobnicator-2#comments">3 comments</a>
    <a href="/tag/releases">releases</a> <a href="/category/product">product</a>
    <a href="/author/jane">Jane</a> <a rel="tag" href="/blog/topics-things-other">t</a>
  </article>
  <article class="post-card"><h2><a href="news/quarterly-results-are-in">Results</a></h2>
    <a href="mailto:press@acme.example">Mail us</a>
    <a href="javascript:void(0)">Share</a>
    <a href="https://twitter.com/intent/tweet?url=x">Tweet</a>
    <a href="/images/chart-of-the-quarter.png">Chart</a>
  </article>
  <a href="https://acme.example/2023/11/05/a-dated-post">Dated</a>
  <a href="https://acme.example/news/quarterly-results-are-in?utm_source=rss#top">Again</a>
  <a href="/blog/a-post-with-a-query-string?id=7&utm_medium=x&lang=en">Query</a>
  <a href="https://other.example/blog/someone-elses-great-post">Elsewhere</a>
  <a href="https://www.acme.example/blog/on-the-www-host-too">Same site</a>
  <a href="/blog/page/2">Older posts</a>
  <a href="/2024/03/">March archive</a>
  <a href="/pricing">Pricing</a>
  <a href="ftp://acme.example/blog/a-file-here-too">FTP</a>
  <a href="/login">Log in</a>
  <div class="share-buttons"><a href="/blog/share-this-post-now">Share</a></div>
</main>
<aside><a href="/blog/popular-post-in-sidebar">Popular</a></aside>
<footer><a href="/blog/footer-linked-post-here">Footer</a> <a href="/privacy-policy">P</a></footer>
</body></html>"""


def test_index_page_yields_article_links_absolute_deduplicated_in_order() -> None:
    links = discover_links(INDEX_PAGE, "https://acme.example/blog/")

    assert links == [
        "https://acme.example/blog/2024/03/acme-ships-frobnicator-2",
        "https://acme.example/news/quarterly-results-are-in",
        "https://acme.example/2023/11/05/a-dated-post",
        "https://acme.example/blog/a-post-with-a-query-string?id=7&lang=en",
        "https://www.acme.example/blog/on-the-www-host-too",
    ]


def test_other_sites_are_kept_when_asked() -> None:
    links = discover_links(INDEX_PAGE, "https://acme.example/blog/", same_site=False)

    assert "https://other.example/blog/someone-elses-great-post" in links
    assert not any("twitter.com" in link for link in links)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/2024/05/14/launch-day", True),
        ("/posts/2024-05-14-launch", True),
        ("/how-we-built-our-search-index", True),
        ("/blog/launch-day", True),
        ("/newsroom/press-releases/12345", True),
        ("/changelog/v2-3-0", True),
        ("/news/world", False),
        ("/blog/", False),
        ("/2024/05/", False),
        ("/blog/page/3", False),
        ("/tags/python", False),
        ("/feed/", False),
        ("/terms-of-service", False),
        ("/files/annual-report-2023.pdf", False),
        ("/blog/launch-day?share=twitter", False),
    ],
)
def test_article_like_paths(path: str, expected: bool) -> None:
    page = f'<html><body><main><a href="{path}">x</a></main></body></html>'
    found = discover_links(page, "https://acme.example/")
    assert bool(found) is expected, found


def test_page_advertising_rss_and_atom_yields_both_feeds() -> None:
    page = """<html><head>
    <link rel="alternate" type="application/rss+xml" title="Acme RSS" href="/feed.xml">
    <link rel="alternate" type="application/atom+xml; charset=utf-8" title=" Acme
       Atom " href="https://acme.example/atom.xml">
    <link rel="alternate" type="application/feed+json" href="feed.json">
    <link rel="alternate" type="application/rss+xml" href="/feed.xml">
    <link rel="alternate" type="application/json" href="/wp-json/wp/v2/posts/7">
    <link rel="alternate" type="text/html" hreflang="de" href="/de/">
    <link rel="stylesheet" type="text/css" href="/style.css">
    </head><body><p>Hello</p></body></html>"""

    assert discover_feeds(page, "https://acme.example/blog/") == [
        FeedLink("https://acme.example/feed.xml", "Acme RSS", "application/rss+xml"),
        FeedLink("https://acme.example/atom.xml", "Acme Atom", "application/atom+xml"),
        FeedLink("https://acme.example/blog/feed.json", None, "application/feed+json"),
    ]


DEEP = "<html><body>" + "<div>" * 100_000 + "<p>deep</p>" + "</div>" * 100_000 + "</body></html>"


@pytest.mark.parametrize(
    "html",
    [
        "",
        b"",
        "   \n ",
        random.Random(0).randbytes(200_000),
        b"\x00\xff\xfe" * 10_000,
        '{"not": "html"}',
        DEEP,
        DEEP.encode(),
        "<html><body>" + "<b><i>" * 50_000 + "</html>",
        "<html><body><p>" + "x" * 4 * MAX_HTML_SIZE + "</p></body></html>",
    ],
    ids=[
        "empty",
        "empty-bytes",
        "blank",
        "random-bytes",
        "binary",
        "json",
        "100k-nested-divs",
        "100k-nested-divs-bytes",
        "unclosed-inline-tags",
        "enormous",
    ],
)
# A hang is a failure too; how fast extraction is lives in tests/bench/bench_extraction.py.
@pytest.mark.timeout(60)
def test_hostile_html_never_raises(html: str | bytes) -> None:
    article = extract_article(html, "https://acme.example/x")
    assert discover_links(html, "https://acme.example/") == []
    assert discover_feeds(html, "https://acme.example/") == []
    if not isinstance(html, str) or "x" * 100 not in html:
        assert article is None


def test_wrong_charset_bytes_are_decoded_without_raising() -> None:
    page = ARTICLE_PAGE.replace("Frobnicator 2 is available", "Frobnicator 2 café is available")
    article = extract_article(page.encode("latin-1"), "https://acme.example/blog/frobnicator-2")

    assert article is not None
    assert "café" in article.text


# Measured with every 6th page (31 pages): F1 0.974. The floor leaves a margin for
# trafilatura/lxml version drift; the full run is tests/bench/bench_extraction.py.
BENCHMARK_SAMPLE_F1_FLOOR = 0.94


def test_benchmark_sample_f1_stays_above_floor() -> None:
    directory = dataset_dir()
    if directory is None:
        pytest.skip("scrapinghub benchmark data not found beside the repository")
    pages = list(load_pages(directory, every=6))
    matches = []
    for page in pages:
        article = extract_article(page.html, page.url)
        matches.append(match(page.body, article.text if article else ""))

    scores = score(matches)
    assert len(pages) > 25
    assert scores.f1 > BENCHMARK_SAMPLE_F1_FLOOR, scores


def test_malformed_base_url_gives_empty_lists_and_bad_base_href_is_ignored() -> None:
    bad_base = INDEX_PAGE.replace(
        '<base href="https://acme.example/">', '<base href="http://[::1">'
    )
    feed = '<link rel="alternate" type="application/rss+xml" href="/f">'

    assert discover_links(INDEX_PAGE, "http://[bad") == []
    assert discover_feeds(feed, "http://[x") == []
    # Relative links then resolve against the page's own URL.
    assert "https://acme.example/blog/news/quarterly-results-are-in" in discover_links(
        bad_base, "https://acme.example/blog/"
    )

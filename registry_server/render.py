"""Model cards as safe HTML: Markdown rendered by markdown-it-py with raw HTML off, then sanitised by nh3.

A card is written by whoever pushes a model, so it is untrusted: `<script>`, `onerror=` and `javascript:` links
must show as text or disappear, never run. Two independent layers: markdown-it escapes raw HTML and refuses
unsafe link schemes; nh3 (the Rust `ammonia` sanitiser) then keeps only an allow-list of tags and attributes.
"""

from __future__ import annotations

import nh3
from markdown_it import MarkdownIt

from zoo_core.registry.cards import parse_card

_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable("table")

_TAGS = {"a", "blockquote", "br", "code", "del", "em", "h2", "h3", "h4", "h5", "h6", "hr", "img", "li", "ol", "p",
         "pre", "strong", "table", "tbody", "td", "th", "thead", "tr", "ul"}
_ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "title"}, "th": {"style"}, "td": {"style"},
               "code": {"class"}}


def card_html(card: str) -> tuple[dict, str]:
    """(front-matter metadata, sanitised HTML of the body). Headings move one level down (the page's own
    `<h1>` is the model's name), so a screen reader's outline stays one tree."""
    metadata, body = parse_card(card or "")
    tokens = _markdown.parse(body)
    for token in tokens:
        if token.type in ("heading_open", "heading_close"):
            token.tag = f"h{min(int(token.tag[1]) + 1, 6)}"
    html = _markdown.renderer.render(tokens, _markdown.options, {})
    clean = nh3.clean(html, tags=_TAGS, attributes=_ATTRIBUTES, url_schemes={"http", "https", "mailto"},
                      link_rel="noopener noreferrer nofollow", filter_style_properties={"text-align"})
    return metadata, clean

"""Ticket comments: Markdown rendered to sanitised HTML, and the users it mentions.

Rendering has two walls. markdown-it renders CommonMark (plus tables and
strikethrough) with raw HTML turned off, so HTML in a comment shows as text,
and it already refuses ``javascript:``, ``vbscript:``, ``file:`` and most
``data:`` links. nh3 then re-parses the result and keeps only the tags,
attributes and URL schemes listed here, so a flaw in either library, or a
renderer option changed later, still cannot put script into a reader's page.

A mention is ``@`` followed by a user id in canonical UUID form, written in
ordinary text. It is found in markdown-it's token stream, not the raw source,
so code spans, code blocks and link destinations never mention anyone. The
ids returned are candidates: the caller keeps those of the organization's
users.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import nh3
from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict

# Exactly the elements the renderer below can emit; anything else in its output
# would be a bug or an attack, so the sanitiser refuses it. There is no <img>:
# an image served by a third party learns the IP address, and the time, of
# everyone who opens the ticket, so images are rendered as plain links instead.
ALLOWED_TAGS = frozenset(
    {
        "p", "br", "hr", "blockquote",
        "h1", "h2", "h3", "h4", "h5", "h6",
        "ul", "ol", "li",
        "em", "strong", "s", "code", "pre", "a",
        "table", "thead", "tbody", "tr", "th", "td",
    }
)  # fmt: skip
ALLOWED_ATTRIBUTES: dict[str, frozenset[str]] = {
    "a": frozenset({"href", "title"}),
    "code": frozenset({"class"}),
    "ol": frozenset({"start"}),
}
ALLOWED_URL_SCHEMES = frozenset({"http", "https", "mailto"})
LINK_REL = "noopener noreferrer nofollow"

_ALIGNMENTS = frozenset({"left", "center", "right"})
_CODE_LANGUAGE_CLASS = re.compile(r"language-[A-Za-z0-9_+#.-]{1,40}")
_TABLE_ALIGNMENT_STYLE = re.compile(r"text-align:(left|center|right)")

_UUID = r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"
# A word character on either side (an e-mail address, "@<id>abc") or a hyphen
# after it (a longer id) means the text is something else that contains an id.
_MENTION = re.compile(rf"(?<!\w)@({_UUID})(?![\w-])")
# Stands for text a mention cannot come from (code, an autolink's URL, an
# image): a word character, so a mention glued to it is not one either.
_OPAQUE = "_"


@dataclass(frozen=True)
class RenderedMarkdown:
    """A comment body as HTML safe to embed, and the ids it mentions."""

    html: str
    mentioned: list[uuid.UUID]


def render_markdown(source: str) -> RenderedMarkdown:
    """Render a comment's Markdown to sanitised HTML and collect its mentions."""
    env: EnvType = {}
    tokens = _MARKDOWN.parse(source, env)
    html = _MARKDOWN.renderer.render(tokens, _MARKDOWN.options, env)

    return RenderedMarkdown(html=_CLEANER.clean(html), mentioned=_mentions(tokens))


def _mentions(tokens: Sequence[Token]) -> list[uuid.UUID]:
    """Ids mentioned in the text of ``tokens``, in order, each once."""
    found: dict[uuid.UUID, None] = {}
    for token in tokens:
        if token.type != "inline" or not token.children:
            continue
        text = "".join(_visible_text(token.children))
        for match in _MENTION.finditer(text):
            found.setdefault(uuid.UUID(match.group(1)), None)
    return list(found)


def _visible_text(children: Sequence[Token]) -> Iterator[str]:
    """The text a reader sees in one inline run, with unmentionable parts opaque."""
    in_autolink = False
    for token in children:
        # Links cannot nest, so any link_close ends an autolink.
        if token.type == "link_open" and token.info == "auto":
            in_autolink = True
        elif token.type == "link_close":
            in_autolink = False

        if token.type == "text" and not in_autolink:
            yield token.content
        elif token.type in ("softbreak", "hardbreak"):
            yield "\n"
        elif token.nesting == 0:
            # Emphasis and link markers (nesting != 0) are transparent, so that
            # "*x*@<id>" still reads as glued; an autolink's URL, code spans
            # and images are opaque.
            yield _OPAQUE


def _render_image_as_link(
    self: RendererHTML,
    tokens: Sequence[Token],
    idx: int,
    options: OptionsDict,
    env: EnvType,
) -> str:
    """Render ``![alt](src "title")`` as a link to the image, never loading it."""
    token = tokens[idx]
    src = str(token.attrGet("src") or "")
    title = token.attrGet("title")
    text = self.renderInlineAsText(token.children, options, env) or src

    title_attr = "" if title is None else f' title="{escapeHtml(str(title))}"'
    return f'<a href="{escapeHtml(src)}"{title_attr}>{escapeHtml(text)}</a>'


def _render_cell_open(
    self: RendererHTML,
    tokens: Sequence[Token],
    idx: int,
    options: OptionsDict,
    env: EnvType,
) -> str:
    """Render a table cell with ``align`` instead of an inline ``style``."""
    token = tokens[idx]
    style = token.attrGet("style")
    if style is not None:
        # A page's Content-Security-Policy may refuse inline styles, and the
        # sanitiser keeps no style attribute at all; align says the same thing.
        del token.attrs["style"]
        match = _TABLE_ALIGNMENT_STYLE.fullmatch(str(style))
        if match:
            token.attrSet("align", match.group(1))
    return self.renderToken(tokens, idx, options, env)


def _keep_attribute(tag: str, attribute: str, value: str) -> str | None:
    """Keep only a code block's single ``language-*`` class, for highlighters."""
    if tag == "code" and attribute == "class":
        return value if _CODE_LANGUAGE_CLASS.fullmatch(value) else None
    return value


def _build_markdown() -> MarkdownIt:
    """The one parser: CommonMark, tables, strikethrough, no raw HTML."""
    markdown = MarkdownIt("commonmark", {"html": False, "linkify": False})
    markdown.enable(["table", "strikethrough"])
    markdown.add_render_rule("image", _render_image_as_link)
    markdown.add_render_rule("th_open", _render_cell_open)
    markdown.add_render_rule("td_open", _render_cell_open)
    return markdown


_MARKDOWN = _build_markdown()
_CLEANER = nh3.Cleaner(
    tags=ALLOWED_TAGS,
    # Only reachable if raw HTML were ever switched on: drop the script itself
    # rather than show its source as text.
    clean_content_tags=frozenset({"script", "style"}),
    attributes=ALLOWED_ATTRIBUTES,
    attribute_filter=_keep_attribute,
    tag_attribute_values={
        "th": {"align": _ALIGNMENTS},
        "td": {"align": _ALIGNMENTS},
    },
    strip_comments=True,
    link_rel=LINK_REL,
    url_schemes=ALLOWED_URL_SCHEMES,
    url_relative="pass_through",
)

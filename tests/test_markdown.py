"""Comment rendering: Markdown to sanitised HTML, and the mentions it contains."""

from __future__ import annotations

import re
import unicodedata
import uuid
from html.parser import HTMLParser

import pytest

from palo_api.markdown import render_markdown

# Written out again rather than imported: a tag or attribute slipped into the
# module's allow-list must make these tests fail, not widen them silently.
EXPECTED_TAGS = frozenset(
    {
        "p", "br", "hr", "blockquote",
        "h1", "h2", "h3", "h4", "h5", "h6",
        "ul", "ol", "li",
        "em", "strong", "s", "code", "pre", "a",
        "table", "thead", "tbody", "tr", "th", "td",
    }
)  # fmt: skip
EXPECTED_ATTRIBUTES = {
    "a": {"href", "title", "rel"},
    "code": {"class"},
    "ol": {"start"},
    "th": {"align"},
    "td": {"align"},
}
SAFE_SCHEMES = frozenset({"http", "https", "mailto"})
URL_SCHEME = re.compile(r"([a-z][a-z0-9+.-]*):")
# Written escaped: the look-alike brackets are what the test is about.
FULLWIDTH_SCRIPT = "\uff1cscript\uff1ealert(1)\uff1c/script\uff1e"

ALICE = uuid.UUID("3f2a0c4e-8b1d-4c6e-9a7f-0123456789ab")
BOB = uuid.UUID("9e8d7c6b-5a49-4382-b716-fedcba987654")
CAROL = uuid.UUID("00000000-1111-4222-8333-444455556666")


def _strip_invisible(value: str) -> str:
    """Drop what a browser ignores or a reader cannot see: spaces, controls."""
    return "".join(
        char
        for char in value
        if not char.isspace() and unicodedata.category(char) not in ("Cc", "Cf")
    )


class HtmlAudit(HTMLParser):
    """Parses rendered HTML and lists every way it breaks the allow-list."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self.text_parts: list[str] = []

    @property
    def text(self) -> str:
        """The text a reader would see, entities decoded."""
        return "".join(self.text_parts)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in EXPECTED_TAGS:
            self.problems.append(f"element <{tag}>")
        for name, value in attrs:
            self._check_attribute(tag, name, value or "")

    def handle_endtag(self, tag: str) -> None:
        if tag not in EXPECTED_TAGS:
            self.problems.append(f"end tag </{tag}>")

    def handle_data(self, data: str) -> None:
        self.text_parts.append(data)

    def handle_comment(self, data: str) -> None:
        self.problems.append(f"comment <!--{data}-->")

    def handle_decl(self, decl: str) -> None:
        self.problems.append(f"declaration <!{decl}>")

    def unknown_decl(self, data: str) -> None:
        self.problems.append(f"declaration <![{data}]>")

    def handle_pi(self, data: str) -> None:
        self.problems.append(f"processing instruction <?{data}>")

    def _check_attribute(self, tag: str, name: str, value: str) -> None:
        if name.startswith("on"):
            self.problems.append(f"event attribute {name} on <{tag}>")
        if name == "style":
            self.problems.append(f"style attribute on <{tag}>")
        if name not in EXPECTED_ATTRIBUTES.get(tag, set()):
            self.problems.append(f"attribute {name} on <{tag}>")
        if name in ("href", "src") and not _is_safe_url(value):
            self.problems.append(f"unsafe {name}={value!r} on <{tag}>")


def _is_safe_url(url: str) -> bool:
    """A relative URL, or one whose scheme is http, https or mailto."""
    scheme = URL_SCHEME.match(_strip_invisible(url).lower())
    return scheme is None or scheme.group(1) in SAFE_SCHEMES


def audit_html(html: str) -> HtmlAudit:
    """Parse ``html`` and return what it contains that the allow-list refuses."""
    audit = HtmlAudit()
    audit.feed(html)
    audit.close()
    if "<script" in html.lower():
        audit.problems.append("unescaped <script")
    return audit


XSS_PAYLOADS = [
    # Script elements.
    pytest.param("<script>alert(1)</script>", id="script"),
    pytest.param("<SCRIPT>alert(1)</SCRIPT>", id="script-uppercase"),
    pytest.param("<ScRiPt >alert(1)</sCrIpT >", id="script-mixed-case"),
    pytest.param("<scr<script>ipt>alert(1)</scr</script>ipt>", id="script-split"),
    pytest.param("<script><script>alert(1)</script></script>", id="script-nested"),
    pytest.param('<script src="https://evil.example/x.js"></script>', id="script-src"),
    pytest.param("<script\n>alert(1)</script\n>", id="script-newline-in-tag"),
    pytest.param("<svg><script>alert(1)</script></svg>", id="script-in-svg"),
    pytest.param("<scr\x00ipt>alert(1)</scr\x00ipt>", id="script-nul-inside"),
    # Event handler attributes.
    pytest.param("<img src=x onerror=alert(1)>", id="img-onerror"),
    pytest.param("<img src=x onerror=alert(1)//", id="img-onerror-unclosed"),
    pytest.param("<svg onload=alert(1)>", id="svg-onload"),
    pytest.param("<body onload=alert(1)>", id="body-onload"),
    pytest.param('<div onmouseover="alert(1)">x</div>', id="div-onmouseover"),
    pytest.param("<details open ontoggle=alert(1)>", id="details-ontoggle"),
    pytest.param(
        '<a href="https://x.example" onclick="alert(1)">x</a>', id="a-onclick"
    ),
    pytest.param(
        '![a](https://x.example/i.png "\\" onerror=\\"alert(1)")',
        id="image-title-breaks-quote",
    ),
    pytest.param(
        '![a" onerror="alert(1)](https://x.example/i.png)', id="image-alt-breaks-quote"
    ),
    pytest.param(
        "[<img src=x onerror=alert(1)>](https://x.example)", id="img-in-link-text"
    ),
    # javascript: links in every spelling.
    pytest.param("[a](javascript:alert(1))", id="js-link"),
    pytest.param("[a](JaVaScRiPt:alert(1))", id="js-link-mixed-case"),
    pytest.param("[a](   javascript:alert(1))", id="js-link-leading-spaces"),
    pytest.param("[a](<javascript:alert(1)>)", id="js-link-angle-destination"),
    pytest.param("[a](&#106;avascript:alert(1))", id="js-link-decimal-entity"),
    pytest.param("[a](&#x6A;avascript&#58;alert(1))", id="js-link-hex-entity"),
    pytest.param("[a](javascript&colon;alert(1))", id="js-link-named-entity"),
    pytest.param("[a](<java\tscript:alert(1)>)", id="js-link-tab-in-scheme"),
    pytest.param("[a](java&#9;script:alert(1))", id="js-link-tab-entity"),
    pytest.param("[a](<java\nscript:alert(1)>)", id="js-link-newline-in-scheme"),
    pytest.param("[a](java&#10;script:alert(1))", id="js-link-newline-entity"),
    pytest.param("[a](\x01javascript:alert(1))", id="js-link-control-prefix"),
    pytest.param("[a](%6Aavascript:alert(1))", id="js-link-percent-letter"),
    pytest.param("[a](javascript%3Aalert(1))", id="js-link-percent-colon"),
    pytest.param("<javascript:alert(1)>", id="js-autolink"),
    pytest.param("<JAVASCRIPT:alert(1)>", id="js-autolink-uppercase"),
    pytest.param("[a][x]\n\n[x]: javascript:alert(1)", id="js-reference-link"),
    pytest.param("[x]\n\n[x]: <javascript:alert(1)>", id="js-shortcut-reference"),
    pytest.param("![a](javascript:alert(1))", id="js-image"),
    pytest.param("![a][x]\n\n[x]: javascript:alert(1)", id="js-reference-image"),
    pytest.param('<a href="javascript:alert(1)">x</a>', id="js-raw-anchor"),
    # Other dangerous schemes.
    pytest.param("[a](vbscript:msgbox(1))", id="vbscript-link"),
    pytest.param("<VBScript:msgbox(1)>", id="vbscript-autolink"),
    pytest.param(
        "[a](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
        id="data-html-base64-link",
    ),
    pytest.param(
        "![a](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+)",
        id="data-svg-image",
    ),
    pytest.param("<data:image/svg+xml;base64,PHN2Zz4=>", id="data-svg-autolink"),
    pytest.param("![a](data:image/png;base64,iVBORw0KGgo=)", id="data-png-image"),
    pytest.param("[a](file:///etc/passwd)", id="file-link"),
    # Raw HTML that is not script but still dangerous.
    pytest.param('<iframe src="https://evil.example"></iframe>', id="iframe"),
    pytest.param('<object data="https://evil.example/x.swf"></object>', id="object"),
    pytest.param('<embed src="https://evil.example/x.swf">', id="embed"),
    pytest.param("<style>body { display: none }</style>", id="style-element"),
    pytest.param(
        '<form action="https://evil.example"><input name=p></form>', id="form"
    ),
    pytest.param(
        '<meta http-equiv="refresh" content="0;url=https://evil.example">',
        id="meta-refresh",
    ),
    pytest.param('<base href="https://evil.example/">', id="base-href"),
    pytest.param(
        '<link rel="stylesheet" href="https://evil.example/x.css">', id="link-element"
    ),
    pytest.param('<p style="position:fixed;inset:0">x</p>', id="style-attribute"),
    # Comments, CDATA and other declarations.
    pytest.param("<!-- <script>alert(1)</script> -->", id="html-comment"),
    pytest.param("<!--><script>alert(1)</script>-->", id="html-comment-abrupt"),
    pytest.param("<![CDATA[<script>alert(1)</script>]]>", id="cdata"),
    pytest.param('<?xml-stylesheet href="x.xsl"?>', id="processing-instruction"),
    pytest.param("<!DOCTYPE html><script>alert(1)</script>", id="doctype"),
    # Nesting tricks and markdown wrapped around HTML.
    pytest.param('<a href="<script>">x</a>', id="script-in-attribute"),
    pytest.param("<div>\n*<script>alert(1)</script>*\n</div>", id="markdown-in-html"),
    pytest.param(
        "> <img src=x onerror=alert(1)>\n> [a](javascript:alert(1))",
        id="blockquote-wrapped",
    ),
    pytest.param("* [x](javascript:alert(1))\n  * <svg onload=alert(1)>", id="list"),
    pytest.param(
        "| a |\n|---|\n| <script>alert(1)</script> [b](javascript:x) |", id="table"
    ),
    pytest.param(
        "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
        id="mutation-math-style",
    ),
    pytest.param(
        '<noscript><p title="</noscript><img src=x onerror=alert(1)>">',
        id="mutation-noscript",
    ),
    pytest.param(
        '```"><script>alert(1)</script>\nx\n```', id="fence-info-breaks-class"
    ),
    pytest.param("`<script>alert(1)</script>`", id="code-span"),
    # Quotes that try to leave a link's attribute.
    pytest.param(
        '[a](https://x.example "\\" onmouseover=alert(1) x=\\"")',
        id="link-title-double-quote",
    ),
    pytest.param(
        "[a](https://x.example 'x\\' onmouseover=alert(1) y=\\'')",
        id="link-title-single-quote",
    ),
    pytest.param(
        '[a](https://x.example/"onmouseover="alert(1))', id="link-url-double-quote"
    ),
    # Unicode look-alikes and invisible characters.
    pytest.param(FULLWIDTH_SCRIPT, id="fullwidth-script"),
    pytest.param("[a](java\u200bscript:alert(1))", id="zero-width-space-scheme"),
    pytest.param("[a](java\u200dscript:alert(1))", id="zero-width-joiner-scheme"),
    pytest.param("[a](\ufeffjavascript:alert(1))", id="byte-order-mark-scheme"),
    pytest.param("[a](javascript\uff1aalert(1))", id="fullwidth-colon-scheme"),
    pytest.param("<\u0131mg src=x onerror=alert(1)>", id="dotless-i-tag"),
]


@pytest.mark.parametrize("payload", XSS_PAYLOADS)
def test_xss_payload_renders_only_allowed_markup(payload: str) -> None:
    html = render_markdown(payload).html

    assert audit_html(html).problems == []


@pytest.mark.parametrize(
    ("payload", "visible"),
    [
        ("<script>alert(1)</script>", "<script>alert(1)</script>"),
        ("<img src=x onerror=alert(1)>", "<img src=x onerror=alert(1)>"),
        ("[a](javascript:alert(1))", "[a](javascript:alert(1))"),
        ("<javascript:alert(1)>", "<javascript:alert(1)>"),
        ('<iframe src="https://evil.example">', '<iframe src="https://evil.example">'),
        (FULLWIDTH_SCRIPT, FULLWIDTH_SCRIPT),
        ("`<script>alert(1)</script>`", "<script>alert(1)</script>"),
    ],
)
def test_refused_markup_is_shown_as_text(payload: str, visible: str) -> None:
    html = render_markdown(payload).html

    assert visible in audit_html(html).text


def test_link_title_quote_stays_inside_the_title() -> None:
    html = render_markdown('[a](https://x.example "\\" onmouseover=alert(1)")').html

    assert 'title="&quot; onmouseover=alert(1)"' in html


def test_javascript_links_become_text_not_links() -> None:
    for payload in (
        "[a](javascript:alert(1))",
        "<javascript:alert(1)>",
        "[a][x]\n\n[x]: javascript:alert(1)",
        "![a](javascript:alert(1))",
    ):
        assert "<a" not in render_markdown(payload).html


def test_sanitiser_drops_schemes_markdown_it_lets_through() -> None:
    # markdown-it accepts these; only the second wall removes the href.
    for payload in ("![a](data:image/png;base64,iVBORw0KGgo=)", "[a](ftp://x.example)"):
        html = render_markdown(payload).html

        assert html == '<p><a rel="noopener noreferrer nofollow">a</a></p>\n'


def test_checker_refuses_unsanitised_html() -> None:
    problems = audit_html(
        '<img src=x onerror=alert(1)><a href=" JaVa\tScRiPt:x" style="c">'
        "<script>x</script><!-- c -->"
    ).problems

    assert "element <img>" in problems
    assert "event attribute onerror on <img>" in problems
    assert "unsafe href=' JaVa\\tScRiPt:x' on <a>" in problems
    assert "style attribute on <a>" in problems
    assert "element <script>" in problems
    assert "unescaped <script" in problems
    assert "comment <!-- c -->" in problems


def test_emphasis_and_strikethrough_render() -> None:
    html = render_markdown("*em* _em_ **strong** ~~gone~~").html

    assert html == (
        "<p><em>em</em> <em>em</em> <strong>strong</strong> <s>gone</s></p>\n"
    )


def test_code_span_is_escaped() -> None:
    html = render_markdown("run `a < b && c`").html

    assert html == "<p>run <code>a &lt; b &amp;&amp; c</code></p>\n"


def test_fenced_code_is_escaped_and_keeps_its_language() -> None:
    html = render_markdown("```python\nif a < b:\n    print('<b>')\n```").html

    assert html == (
        '<pre><code class="language-python">if a &lt; b:\n'
        "    print('&lt;b&gt;')\n</code></pre>\n"
    )


def test_fenced_code_drops_a_language_class_that_is_not_a_word() -> None:
    html = render_markdown('```x" y\ncode\n```').html

    assert html == "<pre><code>code\n</code></pre>\n"


def test_lists_render() -> None:
    html = render_markdown("- one\n- two\n\n3. three\n4. four").html

    assert html == (
        "<ul>\n<li>one</li>\n<li>two</li>\n</ul>\n"
        '<ol start="3">\n<li>three</li>\n<li>four</li>\n</ol>\n'
    )


def test_table_renders_with_align_instead_of_style() -> None:
    html = render_markdown("| a | b | c |\n|:--|:-:|--:|\n| 1 | 2 | 3 |").html

    assert '<th align="left">a</th>' in html
    assert '<th align="center">b</th>' in html
    assert '<td align="right">3</td>' in html
    assert "<table>" in html
    assert "style" not in html
    assert audit_html(html).problems == []


def test_headings_render() -> None:
    html = render_markdown("# One\n\n###### Six\n\nTwo\n---").html

    assert html == "<h1>One</h1>\n<h6>Six</h6>\n<h2>Two</h2>\n"


def test_links_get_rel_noopener_noreferrer_nofollow() -> None:
    html = render_markdown('[site](https://x.example/a?b=1&c=2 "Title")').html

    assert html == (
        '<p><a href="https://x.example/a?b=1&amp;c=2" title="Title" '
        'rel="noopener noreferrer nofollow">site</a></p>\n'
    )


def test_relative_mailto_and_autolinks_are_kept() -> None:
    html = render_markdown(
        "[doc](/projects/1) [mail](mailto:a@x.example) <https://x.example>"
    ).html

    assert 'href="/projects/1"' in html
    assert 'href="mailto:a@x.example"' in html
    assert 'href="https://x.example"' in html
    assert html.count('rel="noopener noreferrer nofollow"') == 3


def test_image_becomes_a_link_and_is_never_loaded() -> None:
    html = render_markdown('![a *diagram*](https://x.example/d.png "Plan")').html

    assert html == (
        '<p><a href="https://x.example/d.png" title="Plan" '
        'rel="noopener noreferrer nofollow">a diagram</a></p>\n'
    )


def test_image_without_description_shows_its_url() -> None:
    html = render_markdown("![](https://x.example/d.png)").html

    assert ">https://x.example/d.png</a>" in html


def test_raw_html_block_is_shown_as_text() -> None:
    html = render_markdown("<div>\nhello\n</div>").html

    assert html == "<p>&lt;div&gt;\nhello\n&lt;/div&gt;</p>\n"


def test_rendering_is_deterministic() -> None:
    source = f"# T\n\n| a |\n|:-:|\n| [x](https://x.example) @{ALICE} |\n"

    assert render_markdown(source) == render_markdown(source)


def test_mentions_are_in_order_of_first_appearance_without_duplicates() -> None:
    source = f"@{BOB} and @{ALICE}, then @{BOB} again\n\n- @{CAROL}\n- @{ALICE}"

    assert render_markdown(source).mentioned == [BOB, ALICE, CAROL]


def test_uppercase_mention_is_normalised() -> None:
    rendered = render_markdown(f"hi @{str(ALICE).upper()} and @{ALICE}")

    assert rendered.mentioned == [ALICE]


def test_mentions_stay_plain_text() -> None:
    html = render_markdown(f"hi @{ALICE}").html

    assert html == f"<p>hi @{ALICE}</p>\n"


def test_mentions_in_emphasis_headings_quotes_and_tables_count() -> None:
    source = f"# @{ALICE}\n\n> **@{BOB}**\n\n| who |\n|---|\n| @{CAROL} |"

    assert render_markdown(source).mentioned == [ALICE, BOB, CAROL]


def test_mention_in_link_text_counts() -> None:
    rendered = render_markdown(f"see [@{ALICE}](https://x.example/u)")

    assert rendered.mentioned == [ALICE]


def test_mentions_in_code_are_ignored() -> None:
    source = f"`@{ALICE}`\n\n```\n@{BOB}\n```\n\n    @{CAROL}\n"

    assert render_markdown(source).mentioned == []


def test_mentions_in_link_urls_are_ignored() -> None:
    source = (
        f"[x](https://x.example/@{ALICE}) <https://x.example/@{BOB}>\n\n"
        f"[y][r]\n\n[r]: https://x.example/@{CAROL}"
    )

    assert render_markdown(source).mentioned == []


def test_mentions_in_image_descriptions_are_ignored() -> None:
    source = f"![@{ALICE}](https://x.example/a.png) ![x][r]\n\n[r]: /@{BOB}"

    assert render_markdown(source).mentioned == []


def test_mention_glued_to_a_word_is_not_one() -> None:
    source = (
        f"mail x@{ALICE} or @{BOB}abc or @{CAROL}-1 or *x*@{ALICE} "
        f"or `c`@{BOB} or é@{CAROL}"
    )

    assert render_markdown(source).mentioned == []


def test_mention_next_to_punctuation_counts() -> None:
    source = f"(@{ALICE}), @{BOB}. and\n@{CAROL}!"

    assert render_markdown(source).mentioned == [ALICE, BOB, CAROL]


def test_uuid_like_strings_are_not_mentions() -> None:
    source = (
        "@3f2a0c4e8b1d4c6e9a7f0123456789ab "
        "@3f2a0c4e-8b1d-4c6e-9a7f-0123456789 "
        "@3f2a0c4e-8b1d-4c6e-9a7f-0123456789abc "
        "@3g2a0c4e-8b1d-4c6e-9a7f-0123456789ab "
        "@{3f2a0c4e-8b1d-4c6e-9a7f-0123456789ab} "
        "@urn:uuid:3f2a0c4e-8b1d-4c6e-9a7f-0123456789ab "
        "@ 3f2a0c4e-8b1d-4c6e-9a7f-0123456789ab"
    )

    assert render_markdown(source).mentioned == []


PATHOLOGICAL_INPUTS = [
    pytest.param("[" * 20_000, id="open-brackets"),
    pytest.param("[" * 10_000 + "]" * 10_000, id="nested-brackets"),
    pytest.param("[](" * 6_700, id="unclosed-link-destinations"),
    pytest.param("*" * 20_000, id="asterisks"),
    pytest.param("_" * 20_000, id="underscores"),
    pytest.param("a*" * 10_000, id="emphasis-delimiters"),
    pytest.param("a__" * 6_700, id="underscore-delimiters"),
    pytest.param("*a_" * 6_700, id="alternating-emphasis"),
    pytest.param("> " * 10_000 + "x", id="deep-blockquote"),
    pytest.param("`" * 20_000, id="backtick-run"),
    pytest.param("`a``" * 5_000, id="mismatched-backticks"),
    pytest.param("x " + "`" * 9_999 + " " + "`" * 9_998, id="unequal-backtick-runs"),
    pytest.param("".join("`" * k + "a" for k in range(1, 200)), id="backtick-ladder"),
    pytest.param("- " * 10_000 + "x", id="deep-list"),
    pytest.param("|" * 20_000 + "\n|-|\n" + "|" * 20_000, id="table-pipes"),
]


@pytest.mark.parametrize("source", PATHOLOGICAL_INPUTS)
def test_pathological_input_renders_valid_html(source: str) -> None:
    rendered = render_markdown(source)

    assert rendered.html.strip()
    assert audit_html(rendered.html).problems == []


def test_five_thousand_mentions_are_collected() -> None:
    ids = [uuid.UUID(int=n) for n in range(1, 5_001)]
    source = " ".join(f"@{user_id}" for user_id in ids)

    rendered = render_markdown(source)

    assert rendered.mentioned == ids
    assert audit_html(rendered.html).problems == []

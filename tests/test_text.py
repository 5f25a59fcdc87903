"""md_escape: any text rendered as Markdown reads back as exactly that text (CommonMark oracle: markdown-it-py)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fairwatch.metrics.presentation.text import WORD_JOINER, hide_paths, md_escape, md_unescape, visible_text

markdown_it = pytest.importorskip("markdown_it", reason="markdown-it-py is not installed (pip install -e '.[test]')")
MD = markdown_it.MarkdownIt("commonmark")  # html on, like a renderer that would honour raw HTML
GFM = markdown_it.MarkdownIt("commonmark").enable(["table", "strikethrough"])


def _text(tokens) -> str:
    """The text a reader sees: text, code and line breaks of the inline tokens; tags (html) count as markup."""
    out = []
    for tok in tokens:
        if tok.children:
            out.append(_text(tok.children))
        elif tok.type in ("text", "code_inline"):
            out.append(tok.content)
        elif tok.type in ("softbreak", "hardbreak"):
            out.append(" ")
        elif tok.type in ("html_inline", "html_block", "image", "fence", "code_block"):
            out.append(f"<{tok.type}>")  # never expected: the markup survived
    return "".join(out)


def rendered(markdown: str, md=MD) -> tuple[str, list[str]]:
    """(visible text with whitespace as a browser shows it, the markup tokens other than a paragraph) of Markdown."""
    tokens = md.parse(markdown)
    kinds = {t.type for t in tokens} | {c.type for t in tokens for c in (t.children or ())}
    markup = sorted(kinds - {"paragraph_open", "paragraph_close", "inline", "text", "softbreak"})
    return squash(visible_text(_text(tokens))), markup


def squash(text: str) -> str:
    """Whitespace as a browser shows it: runs are one space; the ends of a paragraph are trimmed (any Unicode space)."""
    return re.sub(r"[ \t\r\n\v\f\u0085\u2028\u2029]+", " ", text).strip()


def seen(text: str) -> str:
    """What a reader should see of a raw string: CommonMark shows NUL as U+FFFD; a word joiner is invisible."""
    return squash(visible_text(text.replace("\x00", "\ufffd")))


HOSTILE = ["![x](http://evil.test/p.png)", "[Re-authenticate](http://evil.test/phish)", "<img src=x onerror=alert(1)>",
           "<script>alert(1)</script>", r"$\LaTeX$", "$$x$$", ":red[x]", ":material/lock:", ":smile:", "&lt;&amp;",
           "1. one", "# head", "- item", "> quote", "| a | b |\n|---|---|", "`code`", "***", "a\n\n    code",
           "<http://evil.test/auto>", "[ref]: http://evil.test/r", "~~gone~~", "a\\", "\\*", "*", "_x_", "x  \ny"]


@pytest.mark.parametrize("text", HOSTILE)
@pytest.mark.parametrize("md", [MD, GFM], ids=["commonmark", "gfm-tables"])
def test_hostile_text_stays_text(text, md):
    """Each attack reads back as its own text and produces no markup at all."""
    shown, markup = rendered(md_escape(text), md)
    assert markup == []
    assert shown == squash(text)


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=60))
def test_any_text_reads_back(text):
    """Over any string (punctuation-heavy and unicode alike): the rendered text equals the input."""
    shown, markup = rendered(md_escape(text))
    assert markup == []
    assert shown == seen(text)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~ \n\tabc1:w", max_size=40))
def test_punctuation_soup_reads_back(text):
    """Strings made only of Markdown's special characters: still their own text."""
    shown, markup = rendered(md_escape(text), GFM)
    assert markup == []
    assert shown == squash(text)


def test_latex_directives_icons_and_bare_links_are_broken_where_escapes_cannot_reach():
    """Streamlit's emoji, icon and bare-link plugins act on text after escapes: a word joiner breaks each pattern."""
    out = md_escape(":smile: :material/lock: :material_lock: http://evil.test www.evil.test a@evil.test")
    raw = rendered(out)[0]
    assert not re.search(r":[\w+-]+:", _text(MD.parse(out)))  # no shortcode left for remark-emoji or icons
    assert not re.search(r"https?://|www\.|\w@\w", _text(MD.parse(out)))  # nothing for GFM's autolinks
    assert raw == ":smile: :material/lock: :material_lock: http://evil.test www.evil.test a@evil.test"
    assert md_escape("$x$") == r"\$x\$"  # Streamlit's math detection skips \$ (checked in the browser)
    assert md_escape(":red[x]") == "\\:" + WORD_JOINER + "red\\[x\\]"  # \: stops remark-directive
    assert md_escape("<b>") == r"\<b\>"


def test_non_strings_and_line_breaks():
    """Numbers and None are shown as str() would; a line break cannot end the list item the value sits in."""
    assert md_escape(3) == "3" and md_escape(None) == "None" and md_escape(1.5) == r"1\.5"
    assert md_escape("a\nb\r\nc\u2028d\t\t e") == "a b c d e"
    item = "- " + md_escape("x\n- y")  # as the pages write a list of values
    assert MD.parse(item)[0].type == "bullet_list_open"
    assert sum(t.type == "list_item_open" for t in MD.parse(item)) == 1


@pytest.mark.parametrize("text, shown", [
    ("cannot read /srv/fairwatch/data/log.csv (No such file)", "cannot read …/log.csv (No such file)"),
    ("Source: /tmp/pytest-1/demo.duckdb table predictions", "Source: …/demo.duckdb table predictions"),
    ("history folder `/var/lib/fw/audits/`", "history folder `…/audits`"),
    (r"at C:\Users\bob\data.csv.", "at …/data.csv."),
    ('file "/srv/a/b.csv"', 'file "…/b.csv"'),
    ("postgresql://auditor@db.internal/predictions", "postgresql://auditor@db.internal/predictions"),
    ("https://login.example.org/.well-known/openid-configuration", "https://login.example.org/.well-known/openid-configuration"),
    ("s3a://lake/decisions/", "s3a://lake/decisions/"),
    ("logs/*.parquet and a/b/c, n/N, 1/2", "logs/*.parquet and a/b/c, n/N, 1/2"),
])
def test_hide_paths_keeps_file_names_and_urls_but_no_server_folders(text, shown):
    assert hide_paths(text) == shown


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet="abcXYZ019_-.~", min_size=1, max_size=8), min_size=2, max_size=5))
def test_no_absolute_folder_survives_hide_paths(parts):
    """Any absolute path in a sentence loses every folder; its last part stays for the reader."""
    out = hide_paths(f"cannot open /{'/'.join(parts)}: permission denied")
    assert out == f"cannot open …/{parts[-1]}: permission denied"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_md_unescape_reads_back_what_md_escape_wrote(text):
    """The tests' reader of page text: md_unescape(md_escape(x)) is x as shown (whitespace runs as one space)."""
    expected = re.sub(r"[ \t\r\n\v\f\u0085\u2028\u2029]+", " ", visible_text(text))
    assert md_unescape(md_escape(text)) == expected

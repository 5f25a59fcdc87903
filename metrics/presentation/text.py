"""Untrusted text (data values, column and file names, URL parameters, exception text) made safe for Markdown.

Streamlit draws `st.markdown`, `st.error`/`warning`/`info`/`success`, `st.caption`, headers, widget labels,
`help` tooltips, metric, expander and tab labels, radio and pills options as Markdown (react-markdown with
GFM, math, directives, emoji shortcodes and Material icons). A value such as `![x](http://host/p.png)` would
make every visitor's browser fetch that URL. `md_escape` turns any string into Markdown that Streamlit
(1.67, checked in a real browser by tests/e2e/test_browser_hostile.py) shows as exactly that text:

- every ASCII punctuation character gets a backslash (CommonMark: `\\X` is a literal X for any ASCII
  punctuation), which stops emphasis, links, images, code, headings, lists, tables, raw HTML (shown as text,
  never as tags), entities (`&lt;` stays `&lt;`), LaTeX (`$`; Streamlit's math detection skips `\\$`) and
  colour/size directives (`:red[x]`);
- three features act on the text *after* escapes are resolved, so no backslash can stop them: GFM's bare
  links (`http://`, `www.`, `a@b.org`), emoji shortcodes (`:smile:`) and icons (`:material_lock:`). A
  WORD JOINER (U+2060: invisible, no line break) breaks their patterns: after each `:` not followed by a
  space, before each `@` and inside `www.`. It is the one thing a reader's copy holds beyond the input;
- a run of spaces, tabs or line breaks becomes one space (as a browser shows it anyway), so a value can
  neither end the list item or paragraph it sits in nor start an indented code block.

`hide_paths` cuts absolute paths to their file name, for the roles that may not see the server's folders
(pages/components/auth.py `md` applies both).
"""

from __future__ import annotations

import re

WORD_JOINER = "\u2060"
_PUNCT = re.compile(r"""([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~])""")
_WHITESPACE = re.compile(r"[ \t\r\n\v\f\u0085\u2028\u2029]+")
_WWW = re.compile(r"(?i)(www)(\\\.)")
_COLON = re.compile(r"\\:(?! |$)")
# An absolute path of two or more parts (POSIX, Windows drive or UNC), not part of a URL or a relative path.
_ABS_PATH = re.compile(r"""(?<![\w:/.~\\-])(?:[A-Za-z]:|\\\\[^\s\\/'"`<>|]+)?"""
                       r"""(?:[/\\][^\s/\\'"`<>|,;()\[\]]+){2,}[/\\]?""")


def md_escape(text: object) -> str:
    """Any value as Markdown that Streamlit renders as exactly its text (str() of non-strings)."""
    out = _PUNCT.sub(r"\\\1", _WHITESPACE.sub(" ", str(text)))
    # A colon before a space ("Rule: ...") starts no pattern; sentences stay searchable as typed.
    out = _COLON.sub("\\\\:" + WORD_JOINER, out).replace("\\@", WORD_JOINER + "\\@")
    return _WWW.sub(r"\1" + WORD_JOINER + r"\2", out)


def hide_paths(text: str) -> str:
    """Text with every absolute path cut to its last part (`/srv/data/log.csv` -> `…/log.csv`): no server folders."""
    return _ABS_PATH.sub(lambda m: "…/" + re.split(r"[/\\]", m.group(0).rstrip("/\\"))[-1], text)


def md_unescape(markdown: str) -> str:
    """What md_escape's output reads as once rendered: backslash escapes resolved, word joiners dropped (for tests)."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", markdown).replace(WORD_JOINER, "")


def visible_text(rendered: str) -> str:
    """What a reader sees of md_escape's output once rendered: the word joiners are invisible."""
    return rendered.replace(WORD_JOINER, "")

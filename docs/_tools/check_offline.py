"""Check that the built site loads nothing from the network, MathJax included.

    python docs/_tools/check_offline.py docs/_build/html

Fails (exit 1) when any page or stylesheet loads a script, stylesheet, font or image
from an http(s) or protocol-relative address, or when a page with math does not load
MathJax from a file that exists in the built site. Links a reader clicks (`<a href>`)
are not loads and are not checked. Standard library only; CI runs it after the build.
"""

from __future__ import annotations

import re
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

REMOTE = re.compile(r"^(https?:)?//", re.IGNORECASE)
CSS_URL = re.compile(r"(?:url\(\s*['\"]?|@import\s+['\"])([^'\")\s]+)", re.IGNORECASE)


class _Loads(HTMLParser):
    """Collects every address a page loads (not the ones it merely links to)."""

    def __init__(self):
        super().__init__()
        self.loads: list[tuple[str, str]] = []
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ("script", "img", "iframe", "audio", "video", "source", "embed") and a.get("src"):
            self.loads.append((tag, a["src"]))
        if tag == "link" and a.get("href") and a.get("rel") not in ("canonical", "next", "prev"):
            rel = a.get("rel", "")
            if any(r in rel for r in ("stylesheet", "preload", "icon", "modulepreload")):
                self.loads.append((f"link rel={rel}", a["href"]))
        if tag == "object" and a.get("data"):
            self.loads.append((tag, a["data"]))
        if a.get("style"):
            self.styles.append(a["style"])
        self._in_style = tag == "style"

    def handle_endtag(self, tag):
        if tag == "style":
            self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.styles.append(data)


def check(site: Path) -> tuple[list[str], list[str]]:
    """(problems, the MathJax scripts found) for the built HTML folder ``site``."""
    problems, mathjax = [], set()
    for page in sorted(site.rglob("*.html")):
        parser = _Loads()
        parser.feed(page.read_text(encoding="utf-8", errors="replace"))
        rel = page.relative_to(site)
        css_urls = [u for s in parser.styles for u in CSS_URL.findall(s)]
        for what, url in parser.loads + [("inline style", u) for u in css_urls]:
            if REMOTE.match(url):
                problems.append(f"{rel}: {what} loads {url}")
        for what, url in parser.loads:
            if what == "script" and "mathjax" in url.lower():
                target = (page.parent / urlsplit(url).path).resolve()
                mathjax.add(str(target.relative_to(site.resolve())) if target.is_file() else url)
                if not target.is_file():
                    problems.append(f"{rel}: MathJax script {url} is not in the built site")
        if ('class="math' in page.read_text(encoding="utf-8", errors="replace")) and not any(
            "mathjax" in u.lower() for w, u in parser.loads if w == "script"
        ):
            problems.append(f"{rel}: has math but loads no MathJax")
    for css in sorted(site.rglob("*.css")):
        for url in CSS_URL.findall(css.read_text(encoding="utf-8", errors="replace")):
            if REMOTE.match(url):
                problems.append(f"{css.relative_to(site)}: loads {url}")
    return problems, sorted(mathjax)


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not Path(args[0]).is_dir():
        print(__doc__)
        return 2
    site = Path(args[0])
    problems, mathjax = check(site)
    pages = len(list(site.rglob("*.html")))
    for p in problems:
        print("REMOTE/MISSING", p)
    print(f"{pages} pages checked; MathJax loaded from: {', '.join(mathjax) or 'nowhere'}")
    if not mathjax:
        problems.append("no page loads MathJax")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

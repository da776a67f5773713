"""List what a reader would find cut off or scrolling sideways on the built site.

Optional, not run by CI. Needs Chromium and its driver (Debian: `apt-get install chromium
chromium-driver`) and Selenium (`pip install selenium`). Usage:

    python docs/_tools/check_layout.py docs/_build/html [--width 1280 --width 1920]
        [--page 'concepts/*'] [--screenshots DIR]

The built folder is served on 127.0.0.1, each page is loaded in headless Chromium at each
width, MathJax is allowed to finish, and then the article is inspected. PROBLEM lines:

- an element reaches past the right edge of the article column and no ancestor inside
  the article scrolls it, or a box that hides overflow is narrower than its content
  (cut off);
- a formula that MathJax could not typeset (its red "Math input error" box), or TeX it
  left as raw text;
- the page itself scrolls sideways.

With --verbose, SCROLLS lines list what is wider than its box inside a box that scrolls
(a code block, a wide formula): not an error, but worth a look on narrow pages.

The exit code is 1 if any page has a PROBLEM line.
"""

from __future__ import annotations

import argparse
import fnmatch
import functools
import http.server
import sys
import tempfile
import threading
from pathlib import Path

MEASURE = r"""
const done = arguments[arguments.length - 1];
const ready = (window.MathJax && MathJax.startup && MathJax.startup.promise)
  ? MathJax.startup.promise : Promise.resolve();
ready.then(() => document.fonts.ready).then(() => {
  const article = document.querySelector("article") || document.querySelector("main");
  const edge = article.getBoundingClientRect().right;
  const scrolls = (el) => {
    const ox = getComputedStyle(el).overflowX;
    return (ox === "auto" || ox === "scroll") && el.scrollWidth > el.clientWidth + 1;
  };
  const describe = (el) => {
    const cls = (el.getAttribute("class") || "").split(/\s+/).slice(0, 2).join(".");
    const text = (el.textContent || "").replace(/\s+/g, " ").trim().slice(0, 70);
    return `${el.tagName.toLowerCase()}${cls ? "." + cls : ""} "${text}"`;
  };
  const cut = [], scrolling = new Set();
  for (const el of article.querySelectorAll("*")) {
    const r = el.getBoundingClientRect();
    if (r.width === 0 || r.height === 0) continue;
    if (scrolls(el)) scrolling.add(el);
    const ox = getComputedStyle(el).overflowX;
    // A box that hides overflow: does a child reach past it? (MathJax's own internals
    // and its hidden copy for screen readers are not content.)
    const boxed = getComputedStyle(el).display !== "inline";
    if (boxed && (ox === "hidden" || ox === "clip") && !el.tagName.startsWith("MJX-")) {
      for (const child of el.children) {
        if (child.tagName === "MJX-ASSISTIVE-MML") continue;
        const over = child.getBoundingClientRect().right - r.right;
        if (over > 1) cut.push(`${describe(el)} hides ${Math.round(over)}px of its content`);
      }
    }
    if (r.right <= edge + 1) continue;
    let a = el.parentElement, inside = false;
    while (a && a !== article.parentElement) {
      if (scrolls(a)) { inside = true; break; }
      a = a.parentElement;
    }
    if (!inside) cut.push(`${describe(el)} reaches ${Math.round(r.right - edge)}px past the column`);
  }
  for (const err of article.querySelectorAll("mjx-merror")) {
    cut.push(`math error: ${err.getAttribute("data-mjx-error") || err.textContent}`);
  }
  // TeX that MathJax left as text (unbalanced braces, say), outside code
  const walker = document.createTreeWalker(article, NodeFilter.SHOW_TEXT);
  for (let t = walker.nextNode(); t; t = walker.nextNode()) {
    if (t.parentElement.closest("code, pre, script, style, mjx-container")) continue;
    if (/\\\(|\\\[|\$\$/.test(t.textContent)) {
      cut.push(`raw TeX: "${t.textContent.trim().slice(0, 70)}"`);
    }
  }
  const pageScroll = document.documentElement.scrollWidth - window.innerWidth;
  done({cut: [...new Set(cut)],
        scrolls: [...scrolling].map((el) => `${describe(el)}: ${el.scrollWidth}px in ${el.clientWidth}px`),
        pageScroll: pageScroll});
});
"""


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def serve(root: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def driver():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--hide-scrollbars",
        f"--user-data-dir={tempfile.mkdtemp(prefix='ghostnp-chromium-')}",
    ):
        opts.add_argument(flag)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("site", type=Path, help="the built HTML folder")
    p.add_argument("--width", type=int, action="append", help="window widths (1280, 1920)")
    p.add_argument("--page", action="append", help="glob of pages to check, e.g. 'concepts/*'")
    p.add_argument("--screenshots", type=Path, help="save a full-page PNG per page and width")
    p.add_argument("--verbose", action="store_true", help="also list what scrolls")
    args = p.parse_args(argv)
    widths = args.width or [1280, 1920]
    pages = sorted(
        str(f.relative_to(args.site))
        for f in args.site.rglob("*.html")
        if not f.relative_to(args.site).parts[0].startswith("_")
        and f.name not in ("genindex.html", "search.html", "py-modindex.html")
    )
    if args.page:
        pages = [
            pg
            for pg in pages
            if any(fnmatch.fnmatch(pg, g + ".html") or fnmatch.fnmatch(pg, g) for g in args.page)
        ]
    server, base = serve(args.site)
    browser = driver()
    browser.set_script_timeout(60)
    bad = 0
    try:
        for width in widths:
            browser.set_window_size(width, 1000)
            for page in pages:
                browser.get(base + page)
                res = browser.execute_async_script(MEASURE)
                problems = res["cut"] + (
                    [f"page scrolls sideways by {res['pageScroll']}px"]
                    if res["pageScroll"] > 0
                    else []
                )
                bad += bool(problems)
                if problems or (args.verbose and res["scrolls"]):
                    print(f"{width}px {page}")
                    for line in problems:
                        print(f"  PROBLEM  {line}")
                    for line in res["scrolls"] if args.verbose else []:
                        print(f"  SCROLLS  {line}")
                if args.screenshots:
                    args.screenshots.mkdir(parents=True, exist_ok=True)
                    height = browser.execute_script("return document.documentElement.scrollHeight")
                    browser.set_window_size(width, min(height, 16000))
                    name = page.replace("/", "_").removesuffix(".html")
                    browser.save_screenshot(str(args.screenshots / f"{name}-{width}.png"))
                    browser.set_window_size(width, 1000)
    finally:
        browser.quit()
        server.shutdown()
    print(f"{len(pages)} pages x {len(widths)} widths: {bad} with a problem")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

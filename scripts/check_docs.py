"""Check the built documentation: no broken internal link or anchor, and three pages render in a real headless
browser (Debian's chromium through chromedriver): the home page, one API page, and one page with a figure, whose
images must all have loaded.

    python scripts/check_docs.py build/docs          # exits 1 and says what is wrong, 0 when all holds

Screenshots of the three pages go to build/docs-check/.
"""
from __future__ import annotations

import functools
import http.server
import sys
import tempfile
import threading
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlparse

PAGES = {  # page: text it must show once rendered
    "index.html": "equilibrium propagation",
    "api/learning.html": "EPTrainer",
    "guide/noise.html": "critical noise level",
}


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links, self.ids = [], set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        for key in ("href", "src"):
            if attrs.get(key):
                self.links.append(attrs[key])


def parse(path: Path) -> Links:
    parser = Links()
    parser.feed(path.read_text(encoding="utf-8", errors="replace"))
    return parser


def broken_links(root: Path) -> list:
    """Internal links (``href``/``src``) whose file or anchor does not exist."""
    pages = {p: parse(p) for p in root.rglob("*.html")}
    bad = []
    for page, found in pages.items():
        for link in found.links:
            if urlparse(link).scheme in ("http", "https", "mailto", "data", "javascript") or link.startswith("//"):
                continue
            target, fragment = urldefrag(link)
            target = target.split("?", 1)[0]  # cache-busting query strings (?v=...)
            path = (page.parent / unquote(target)).resolve() if target else page
            if path.is_dir():
                path = path / "index.html"
            if not path.exists():
                bad.append(f"{page.relative_to(root)}: {link} (no such file)")
            elif fragment and path.suffix == ".html" and fragment not in pages.get(path, parse(path)).ids:
                bad.append(f"{page.relative_to(root)}: {link} (no anchor #{fragment})")
    return bad


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def serve(root: Path):
    handler = functools.partial(QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def browser_check(root: Path, shots: Path) -> list:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    profile = tempfile.mkdtemp(prefix="circuitprop-docs-chromium-")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1280,1000", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    server = serve(root)
    problems = []
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        shots.mkdir(parents=True, exist_ok=True)
        for page, text in PAGES.items():
            driver.get(f"http://127.0.0.1:{server.server_address[1]}/{page}")
            body = driver.execute_script("return document.body.innerText")
            images = driver.execute_script(
                "return Array.from(document.images).map(i => [i.getAttribute('src'), i.complete && i.naturalWidth > 0])")
            driver.save_screenshot(str(shots / (page.replace("/", "_").replace(".html", ".png"))))
            if text.lower() not in body.lower():
                problems.append(f"{page}: the rendered page does not show {text!r}")
            problems += [f"{page}: image {src} did not load" for src, ok in images if not ok]
            if page == "guide/noise.html" and not images:
                problems.append(f"{page}: no figure on the page")
            print(f"{page}: rendered, {len(body):,} characters of text, {len(images)} image(s) loaded", flush=True)
    finally:
        driver.quit()
        server.shutdown()
    return problems


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    root = Path(argv[0] if argv else "build/docs").resolve()
    if not (root / "index.html").exists():
        print(f"{root}: no built documentation (run scripts/docs.sh)", file=sys.stderr)
        return 1
    problems = broken_links(root)
    print(f"links: {len(problems)} broken in {sum(1 for _ in root.rglob('*.html'))} pages", flush=True)
    problems += browser_check(root, root.parent / "docs-check")
    for problem in problems:
        print("docs check:", problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

"""Headless Chromium for the report page tests: a screenshot and the DOM after the page's script ran.

Debian's `chromium` package (`make browser` installs it). Every call gets a fresh profile and
every background service is off, so nothing reaches the network but the page itself could.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,2000",
]


def chromium(page: Path, *args: str, fragment: str = "") -> str:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        pytest.fail("headless Chromium is missing: run `make browser` (Debian package `chromium`)")
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        result = subprocess.run(
            [binary, *FLAGS, f"--user-data-dir={profile}", *args, f"{page.resolve().as_uri()}{fragment}"],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def screenshot(page: Path, png: Path, fragment: str = "") -> Path:
    chromium(page, f"--screenshot={png}", fragment=fragment)
    return png


def dump_dom(page: Path, fragment: str = "") -> str:
    return chromium(page, "--dump-dom", fragment=fragment)


def png_size(png: Path) -> tuple[int, int]:
    header = png.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")


class RenderedPage(HTMLParser):
    """What the browser ended up with: the plot images and the sample sections (with `hidden`)."""

    def __init__(self, dom: str):
        super().__init__()
        self.images: list[dict] = []
        self.samples: list[dict] = []
        self.feed(dom)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs)
        if tag == "section" and "sample" in (attrs.get("class") or "").split():
            self.samples.append(attrs)

    def plots(self) -> list[str]:
        return [img.get("alt") for img in self.images if (img.get("src") or "").startswith("data:image/png;base64,")]

    def visible_samples(self) -> list[dict]:
        return [sample for sample in self.samples if "hidden" not in sample]

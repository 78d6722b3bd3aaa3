"""The calibration verdict block of the report: quality in words and the named checks."""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Any

_WORDS = {
    "good": "good: every consistency check passed",
    "doubtful": "DOUBTFUL: check the energy axis before trusting element lines",
    "failed": "FAILED: the energy axis is wrong; give a manual calibration",
}


def verdict_html(attrs: Mapping[str, Any]) -> str:
    """``<div data-calibration-quality=...>`` with the verdict and a list of its checks
    (empty string for a calibration without a verdict)."""
    quality = attrs.get("quality")
    if not isinstance(quality, str):
        return ""
    items = []
    for c in attrs.get("checks") or []:
        if not isinstance(c, Mapping):
            continue
        mark = "ok" if c.get("passed") else "failed"
        items.append(f'<li data-check="{escape(str(c.get("name", "")))}" data-passed="{mark}">'
                     f"[{mark}] {escape(str(c.get('name', '')))}: {escape(str(c.get('message', '')))}</li>")
    word = escape(_WORDS.get(quality, quality))
    cls = "note" if quality == "good" else "warn"
    return (f'<div data-calibration-quality="{escape(quality)}"><p class="{cls}"><b>Verdict:</b> {word}</p>'
            f'<ul class="checks">{"".join(items)}</ul></div>')

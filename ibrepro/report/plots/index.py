"""The figure index of an output directory: index.md and index.html (plus index.json).

index.json keeps every figure's caption, so plotting one cell into a directory that already
holds other figures adds to the index instead of replacing it; entries whose PNG is gone are
dropped.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from ibrepro.durable import write_file

MANIFEST = "index.json"


def write_index(out_dir: Path, captions: dict[str, str]) -> list[Path]:
    """Merge `captions` (PNG file name -> one-line caption) into the directory's index.

    Returns the index files written (index.md, index.html, index.json).
    """
    manifest = out_dir / MANIFEST
    entries = _read_manifest(manifest)
    entries.update(captions)
    entries = {name: entries[name] for name in sorted(entries) if (out_dir / name).is_file()}
    write_file(manifest, (json.dumps(entries, indent=1) + "\n").encode())
    write_file(out_dir / "index.md", _markdown(entries).encode())
    write_file(out_dir / "index.html", _html(entries).encode())
    return [out_dir / "index.md", out_dir / "index.html", manifest]


def _read_manifest(manifest: Path) -> dict[str, str]:
    """Earlier captions; an unreadable manifest is rebuilt from this run's figures."""
    try:
        entries = json.loads(manifest.read_text())
    except (OSError, ValueError):
        return {}
    return entries if isinstance(entries, dict) else {}


def _pdf(png: str) -> str:
    return png[: -len(".png")] + ".pdf"


def _markdown(entries: dict[str, str]) -> str:
    lines = ["# Figures", ""]
    lines += [f"- [{name}]({name}) ([pdf]({_pdf(name)})): {caption}"
              for name, caption in entries.items()]
    return "\n".join(lines) + "\n"


def _html(entries: dict[str, str]) -> str:
    figures = "\n".join(
        f'<figure id="{html.escape(name)}"><a href="{html.escape(_pdf(name))}">'
        f'<img src="{html.escape(name)}" alt="{html.escape(caption)}"></a>'
        f"<figcaption><code>{html.escape(name)}</code>: {html.escape(caption)}</figcaption></figure>"
        for name, caption in entries.items()
    )
    return (
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Figures</title>\n"
        "<style>body{font-family:sans-serif;max-width:60em;margin:auto}"
        "img{max-width:100%}figure{margin:2em 0}</style></head>\n"
        f"<body><h1>Figures</h1>\n{figures}\n</body></html>\n"
    )

"""The two HTML pages of an export: `index.html` inside the archive, and the `view` page.

Both follow MMR's templates (`templates/export_index.html`, `templates/view_export.html`) in
content; every value is escaped.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from html import escape

from shared.archive.format import ManifestRecord

_STYLE = (
    "body,html{margin:0;padding:0;background:#fff;color:#313131;"
    "font-family:Lato,'Helvetica Neue',Helvetica,Arial,sans-serif}"
    ".container{width:750px;margin:50px auto;padding:30px;border:3px solid #f5f5f5;border-radius:6px}"
    "table{word-break:break-word;border-collapse:collapse;width:100%}"
    "table td,table th{border:solid 1px rgba(0,52,165,.55);padding:10px}"
    "table th{border-top-width:5px;text-align:left}table tr:nth-child(2n){background:#f1f1f1}"
    ".muted{display:block;color:#626262}h1{padding:0;margin:0}"
)


def human_bytes(size: int) -> str:
    """SI units like go-humanize's `Bytes` (MMR's sizes on both pages)."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if value < 1000 or unit == "PB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"


def _unix_date(ts_ms: int) -> str:
    return time.strftime("%a %b %e %H:%M:%S UTC %Y", time.gmtime(ts_ms / 1000))


def index_html_chunks(entity: str, records: Iterable[ManifestRecord]) -> Iterator[bytes]:
    """`index.html`: a table of every item linking to its archived file."""
    title = escape(entity)
    yield (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<title>{title} media export</title>\n'
        f"<style>{_STYLE}</style>\n</head>\n<body>\n<div class=\"container\">\n"
        f"<h1>{title} media export</h1>\n<p>Please ensure each and every part of your data has been "
        "extracted before using this page.</p>\n<table>\n<thead><tr><th>File name</th><th>Size</th>"
        "<th>Upload date</th></tr></thead>\n<tbody>\n"
    ).encode()
    for record in records:
        name = escape(record.file_name) if record.file_name else "&lt;no name&gt;"
        yield (
            f'<tr><td><a href="{escape(record.archived_name)}"><code>{name}</code></a>'
            f'<span class="muted"><code>{escape(record.mxc)}</code></span></td>'
            f"<td>{human_bytes(record.size_bytes)}</td><td>{_unix_date(record.created_ts)}</td></tr>\n"
        ).encode()
    yield b"</tbody>\n</table>\n</div>\n</body>\n</html>\n"


@dataclass(frozen=True)
class PartLink:
    index: int
    file_name: str
    size_bytes: int


def view_export_html(export_id: str, entity: str, parts: Iterable[PartLink], prefix: str) -> str:
    """The `export/{id}/view` page: the parts to download and a button deleting the export."""
    title = escape(entity)
    base = f"{prefix}/export/{escape(export_id)}"
    items = "".join(
        f'<li><a href="{base}/part/{part.index}" download>{escape(part.file_name)}</a> '
        f"({human_bytes(part.size_bytes)})</li>\n"
        for part in parts
    )
    script = (
        "function deleteExport(){const x=new XMLHttpRequest();"
        f"x.open('DELETE','{base}',true);x.onreadystatechange=function(){{"
        "if(this.readyState!==4)return;const e=document.getElementById('main');"
        f"e.innerHTML='<h1>{title} media export</h1><p>'+(this.status===200?"
        "'Your export has been deleted.':'There was a problem deleting your export. Please reload the "
        "page and try again.')+'</p>';};x.send();}"
    )
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<title>{title} media export</title>\n'
        f"<style>{_STYLE}</style>\n<script>{script}</script>\n</head>\n<body>\n"
        f'<div class="container" id="main">\n<h1>{title} media export</h1>\n'
        "<p>Your media can be downloaded in parts below. Each part is a portion of your data and can be "
        "extracted using free software like 7-Zip. To see all of your data, download and extract each "
        "part then open the <code>index.html</code> file.</p>\n"
        f"<ul>\n{items}</ul>\n"
        '<p>Downloaded all your data? <a href="javascript:deleteExport()">Delete your export</a></p>\n'
        "</div>\n</body>\n</html>\n"
    )

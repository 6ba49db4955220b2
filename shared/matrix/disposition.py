"""Content-Type and Content-Disposition for served media, per the spec's inline allow-list.

The spec trusts the uploader's declared type only because the disposition is computed from it:
anything outside the list is `attachment`, so HTML or SVG can never render inline from our origin.
"""

from __future__ import annotations

from urllib.parse import quote

INLINE_CONTENT_TYPES = frozenset(
    {
        "text/css", "text/plain", "text/csv", "application/json", "application/ld+json",
        "image/jpeg", "image/gif", "image/png", "image/apng", "image/webp", "image/avif",
        "video/mp4", "video/webm", "video/ogg", "video/quicktime",
        "audio/mp4", "audio/webm", "audio/aac", "audio/mpeg", "audio/ogg", "audio/wave",
        "audio/wav", "audio/x-wav", "audio/x-pn-wav", "audio/flac", "audio/x-flac",
    }
)
DEFAULT_CONTENT_TYPE = "application/octet-stream"
CONTENT_SECURITY_POLICY = (
    "sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; "
    "style-src 'unsafe-inline'; object-src 'self';"
)
_TOKEN_SAFE = set("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def media_type(content_type: str | None) -> str:
    """`Image/PNG; charset=x` -> `image/png` ('' for none): what every type rule matches."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def served_content_type(stored: str | None) -> str:
    return stored.strip() if stored and stored.strip() else DEFAULT_CONTENT_TYPE


def is_inline(content_type: str) -> bool:
    """Matched lower-cased and without parameters (`Text/Plain; charset=utf-8` is inline)."""
    return media_type(content_type) in INLINE_CONTENT_TYPES


def clean_filename(name: str | None) -> str | None:
    """Drop control characters and path separators; None when nothing is left."""
    if not name:
        return None
    cleaned = "".join(c for c in name if c.isprintable() and c not in "/\\").strip()
    return cleaned[:255] or None


def content_disposition(content_type: str, filename: str | None) -> str:
    """`inline`/`attachment` with the filename encoded per RFC 6266 (and RFC 8187 for non-ASCII)."""
    kind = "inline" if is_inline(content_type) else "attachment"
    name = clean_filename(filename)
    if name is None:
        return kind
    if name.isascii():
        if all(c in _TOKEN_SAFE for c in name):
            return f"{kind}; filename={name}"
        escaped = name.replace("\\", "\\\\").replace('"', '\\"')
        return f'{kind}; filename="{escaped}"'
    return f"{kind}; filename*=utf-8''{quote(name, safe='')}"


def media_headers(content_type: str, filename: str | None) -> dict[str, str]:
    """The security headers every media response carries."""
    return {
        "Content-Type": content_type,
        "Content-Disposition": content_disposition(content_type, filename),
        "Content-Security-Policy": CONTENT_SECURITY_POLICY,
        "Cross-Origin-Resource-Policy": "cross-origin",
        "X-Content-Type-Options": "nosniff",
    }

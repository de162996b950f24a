"""HTML made safe to show: shared by ingest (mail) and tickets (comments written in the portal)."""

import re

import nh3

# `<img ... src="https://...">`: the source is moved to `data-remote-src`, which no browser loads.
_REMOTE_IMG_SRC = re.compile(r"(<img\b[^>]*?\s)src(\s*=\s*[\"']?\s*https?:)", re.I)
_REMOTE_URL = re.compile(r"\Ahttps?://[^\s\"'<>]+\Z", re.I)


def _block_remote_images(tag: str, attr: str, value: str) -> str | None:
    # Remote images tell the sender the mail was read: only inline (cid:) images are shown. A remote image's
    # address is kept in data-remote-src, which browsers do not load, so an agent can ask to see it.
    if tag == "img" and attr == "src" and not value.startswith("cid:"):
        return None
    if tag == "img" and attr == "data-remote-src" and not _REMOTE_URL.match(value.strip()):
        return None
    return value


def sanitise_html(html: str) -> str:
    """Return HTML safe to show in a browser: no scripts, handlers, styles that load, or remote images."""
    return nh3.clean(
        _REMOTE_IMG_SRC.sub(r"\1data-remote-src\2", html),
        tags={
            "a",
            "abbr",
            "b",
            "blockquote",
            "br",
            "code",
            "div",
            "em",
            "h1",
            "h2",
            "h3",
            "h4",
            "h5",
            "h6",
            "hr",
            "i",
            "img",
            "li",
            "ol",
            "p",
            "pre",
            "s",
            "span",
            "strong",
            "sub",
            "sup",
            "table",
            "tbody",
            "td",
            "th",
            "thead",
            "tr",
            "u",
            "ul",
        },
        attributes={
            "a": {"href", "title"},
            "img": {"src", "alt", "title", "data-remote-src"},
            "td": {"colspan", "rowspan"},
        },
        url_schemes={"http", "https", "mailto", "cid"},
        link_rel="noopener noreferrer nofollow",
        attribute_filter=_block_remote_images,
    )

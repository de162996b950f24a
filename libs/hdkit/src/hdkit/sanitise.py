"""HTML made safe to show: shared by ingest (mail) and tickets (comments written in the portal)."""

import nh3


def _block_remote_images(tag: str, attr: str, value: str) -> str | None:
    # Remote images tell the sender the mail was read; only inline (cid:) images are shown until asked.
    if tag == "img" and attr == "src" and not value.startswith("cid:"):
        return None
    return value


def sanitise_html(html: str) -> str:
    """Return HTML safe to show in a browser: no scripts, handlers, styles that load, or remote images."""
    return nh3.clean(
        html,
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
        attributes={"a": {"href", "title"}, "img": {"src", "alt", "title"}, "td": {"colspan", "rowspan"}},
        url_schemes={"http", "https", "mailto", "cid"},
        link_rel="noopener noreferrer nofollow",
        attribute_filter=_block_remote_images,
    )

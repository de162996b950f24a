"""How a stored file is served: a download with a safe name and a type that a browser never runs."""

import pytest
from ingest.app import content_disposition, download_type


@pytest.mark.parametrize(
    ("declared", "served"),
    [
        ("image/png", "image/png"),
        ("IMAGE/JPEG; name=x.jpg", "image/jpeg"),
        ("application/pdf", "application/pdf"),
        ("text/plain; charset=iso-8859-1", "text/plain"),
        ("text/html", "application/octet-stream"),
        ("image/svg+xml", "application/octet-stream"),
        ("application/xhtml+xml", "application/octet-stream"),
        ("application/javascript", "application/octet-stream"),
        ("text/javascript", "application/octet-stream"),
        ("", "application/octet-stream"),
    ],
)
def test_only_types_that_cannot_run_code_keep_their_content_type(declared: str, served: str) -> None:
    assert download_type(declared) == served


def test_a_unicode_name_gets_an_ascii_fallback_and_the_exact_name_percent_encoded() -> None:
    assert content_disposition("Offert åäö €.pdf") == (
        "attachment; filename=\"Offert aao .pdf\"; filename*=UTF-8''Offert%20%C3%A5%C3%A4%C3%B6%20%E2%82%AC.pdf"
    )


@pytest.mark.parametrize(
    "hostile",
    ['a"; filename="evil.html', "x\r\nSet-Cookie: a=b", "../../etc/passwd", "..\\..\\boot.ini", ".htaccess"],
)
def test_a_hostile_name_cannot_break_the_header_or_name_a_path(hostile: str) -> None:
    value = content_disposition(hostile)
    ascii_part, encoded = value.removeprefix('attachment; filename="').split("\"; filename*=UTF-8''")
    assert "\r" not in value and "\n" not in value
    assert '"' not in ascii_part and "/" not in ascii_part and "\\" not in ascii_part
    assert not ascii_part.startswith(".") and not encoded.startswith(".")
    assert all(ch.isalnum() or ch in "%-._~" for ch in encoded)


def test_a_file_without_a_usable_name_is_called_attachment() -> None:
    assert content_disposition("") == "attachment; filename=\"attachment\"; filename*=UTF-8''attachment"
    japanese = content_disposition("日本語")
    assert japanese == "attachment; filename=\"attachment\"; filename*=UTF-8''%E6%97%A5%E6%9C%AC%E8%AA%9E"

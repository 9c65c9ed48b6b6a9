"""app/multipart.py reads a small regular multipart body as werkzeug does, and leaves every other body to
werkzeug with the same bytes: compared on Collect's shape, odd shapes and random mutations."""
from __future__ import annotations

import random
from io import BytesIO
from typing import Any

import pytest
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Request

from app import multipart

# werkzeug's parser, refusing a body half-way, leaves its spooled part files to the garbage collector.
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning",
                                        "ignore::ResourceWarning")
B = "----OkHttpBoundary-7f3a"


def _environ(body: bytes, content_type: str = f"multipart/form-data; boundary={B}") -> dict[str, Any]:
    return {"REQUEST_METHOD": "POST", "CONTENT_TYPE": content_type, "CONTENT_LENGTH": str(len(body)),
            "wsgi.input": BytesIO(body), "SERVER_NAME": "x", "SERVER_PORT": "80", "wsgi.url_scheme": "http"}


def _part(name: str, content: bytes, filename: str | None = None, ctype: str | None = None,
          extra: str = "") -> bytes:
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
    head = f"Content-Disposition: {disposition}\r\n"
    if ctype:
        head += f"Content-Type: {ctype}\r\n"
    return (f"--{B}\r\n{head}{extra}\r\n").encode() + content + b"\r\n"


def collect_body(photo: bytes = b"\xff\xd8\xff" + bytes(range(256)) * 40) -> bytes:
    """As ODK Collect (OkHttp) sends it: parts with Content-Type and Content-Length, no preamble."""
    xml = "<data id='f'><name>卓玛</name></data>".encode()
    return (_part("xml_submission_file", xml, "submission.xml", "text/xml", f"Content-Length: {len(xml)}\r\n")
            + _part("photo.jpg", photo, "photo.jpg", "image/jpeg", f"Content-Length: {len(photo)}\r\n")
            + f"--{B}--\r\n".encode())


def _werkzeug(body: bytes, content_type: str) -> Any:
    req = Request(_environ(body, content_type))
    req.max_form_parts = 5
    return _shape(req)


def _shape(req: Request) -> Any:
    try:
        form, files = req.form, req.files
    except (HTTPException, ValueError) as exc:
        return ("error", type(exc).__name__)
    try:
        return (sorted(form.items(multi=True), key=repr),
                sorted(((n, f.filename, f.name, f.content_type, f.mimetype, sorted(f.headers.items()), f.stream.read())
                        for n, f in files.items(multi=True)), key=repr))
    finally:
        req.close()


def _ours(body: bytes, content_type: str) -> tuple[bool, Any]:
    environ = _environ(body, content_type)
    parsed = multipart.read_small(environ, 5, 500_000, None)
    if parsed is None:  # werkzeug reads what is left in wsgi.input
        req = Request(environ)
        req.max_form_parts = 5
        return False, _shape(req)
    req = Request(environ)
    req.__dict__["form"], req.__dict__["files"] = parsed
    return True, _shape(req)


CT = f"multipart/form-data; boundary={B}"
CASES = {
    "collect": (collect_body(), CT, True),
    "quoted boundary": (collect_body(), f'multipart/form-data; boundary="{B}"', True),
    "werkzeug's leading CRLF": (b"\r\n" + collect_body(), CT, True),
    "field": (_part("deviceID", "手机".encode()) + _part("f", b"x", "f.txt") + f"--{B}--".encode(), CT, True),
    "empty file name": (_part("a", b"x", "") + f"--{B}--\r\n".encode(), CT, True),
    "no parts": (f"--{B}--\r\n".encode(), CT, False),
    "LF line breaks": (collect_body().replace(b"\r\n", b"\n"), CT, False),
    "missing last boundary": (collect_body()[:-len(f"--{B}--\r\n")], CT, False),
    "truncated": (collect_body()[:300], CT, False),
    "preamble": (b"hello\r\n" + collect_body(), CT, False),
    "epilogue": (collect_body() + b"trailing words", CT, False),
    "too many parts": (b"".join(_part(f"p{i}", b"x", f"p{i}") for i in range(6)) + f"--{B}--".encode(), CT, False),
    "filename*": (f'--{B}\r\nContent-Disposition: form-data; name="a"; filename*=UTF-8\'\'%E5%8D%93\r\n\r\nx\r\n'
                  f"--{B}--".encode(), CT, False),
    "backslash in name": (_part("a", b"x", "C:\\photos\\a.jpg") + f"--{B}--".encode(), CT, False),
    "field with charset": (_part("a", "é".encode("latin-1"), None, "text/plain; charset=latin-1")
                           + f"--{B}--".encode(), CT, False),
    "folded header": (f'--{B}\r\nContent-Disposition: form-data;\r\n name="a"\r\n\r\nx\r\n--{B}--'.encode(), CT, False),
    "no disposition": (f"--{B}\r\nContent-Type: text/plain\r\n\r\nx\r\n--{B}--".encode(), CT, False),
    "other type": (collect_body(), "multipart/mixed; boundary=" + B, False),
}


@pytest.mark.parametrize("case", list(CASES))
def test_reads_as_werkzeug(case: str) -> None:
    body, ctype, fast = CASES[case]
    took, ours = _ours(body, ctype)
    assert took is fast
    assert ours == _werkzeug(body, ctype)


def test_random_mutations_read_as_werkzeug() -> None:
    rng = random.Random(20261207)
    base = collect_body(b"\xff\xd8" + bytes(range(200)))
    fast = 0
    for _ in range(2000):
        body = bytearray(base)
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(body))
            choice = rng.random()
            if choice < 0.4:
                body[i] = rng.choice(b"\r\n-\";=:abz\x00\xff \t")
            elif choice < 0.7:
                del body[i:i + rng.randint(1, 4)]
            else:
                body[i:i] = rng.choice([b"\r\n", b"--", f"--{B}".encode(), b'"', b"\r\n\r\n", b"\n", b"\r",
                                        f"\r\n--{B}--".encode(), b'; filename="x"', b"  ",
                                        b"Content-Type: text/plain\r\n"])
        took, ours = _ours(bytes(body), CT)
        fast += took
        assert ours == _werkzeug(bytes(body), CT), bytes(body)
    assert fast > 50  # many mutations (in the photo's bytes) stay regular: both readers took part


def test_short_body_is_left_to_werkzeug() -> None:
    body = collect_body()
    environ = _environ(body[:100])
    environ["CONTENT_LENGTH"] = str(len(body))  # the client said more than it sent
    assert multipart.read_small(environ, 5, 500_000, None) is None
    assert environ["wsgi.input"].read() == body[:100]

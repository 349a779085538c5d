"""The admin page at ``<admin.path>/``: one HTML file, no build step, nothing from a CDN.

The page itself holds no data, so it is served without the admin token; it asks for the token,
keeps it in the tab's ``sessionStorage`` and sends it as a bearer token to the admin API it reads
(routes, upstreams, per-route figures). Its script and style are inline, allowed by their hashes
in the Content-Security-Policy, which allows nothing else (no other script, no framing, requests
to this origin only).
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
from importlib import resources

from bff.asgi import Receive, Scope, Send

__all__ = ["AdminPage"]

_INLINE = re.compile(r"<(script|style)>(.*?)</\1>", re.S)


def _csp(page: str) -> str:
    hashes: dict[str, list[str]] = {"script": [], "style": []}
    for kind, body in _INLINE.findall(page):
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        hashes[kind].append(f"'sha256-{digest}'")
    return (
        "default-src 'none'; "
        f"script-src {' '.join(hashes['script'])}; "
        f"style-src {' '.join(hashes['style'])}; "
        "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    )


class AdminPage:
    """Pure-ASGI app answering GET and HEAD with the page for the admin API at ``admin_path``."""

    def __init__(self, admin_path: str) -> None:
        template = resources.files("bff.admin").joinpath("page.html").read_text("utf-8")
        page = template.replace("{{ADMIN_PATH}}", html.escape(admin_path, quote=True))
        self.body = page.encode()
        self.headers = [
            (b"content-type", b"text/html; charset=utf-8"),
            (b"content-length", str(len(self.body)).encode()),
            (b"content-security-policy", _csp(page).encode()),
            (b"cache-control", b"no-store"),
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"no-referrer"),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        head = scope["method"] == "HEAD"
        await send({"type": "http.response.start", "status": 200, "headers": self.headers})
        await send({"type": "http.response.body", "body": b"" if head else self.body})

"""``python -m bench.payloads``: bytes on the wire for the same products, per client.

Starts the sample services and ``bff serve`` (as the load scenarios do), asks for the same 20
products the way each client would, and prints what crossed the wire: the request body, and the
response's headers and body as received (compressed when the client accepts it). Then times the
compression itself on the web answer (the CPU it costs per response).

- web: the full product card in JSON (``description``, the original image, the price);
- mobile: the small card (no description, a 128-pixel image URL), in JSON;
- IoT: stock levels only, in CBOR (and the same in JSON for comparison).
"""

from __future__ import annotations

import argparse
import hashlib
import time
from typing import Any

import cbor2
import httpx
import orjson

from bench.runner import gateway, gateway_config, sample_services
from bff.edge.compression import BROTLI_AVAILABLE, Compression

IDS = [str(i) for i in range(1, 21)]
WEB = "{ products(limit: 20) { items { id name description imageUrl price { formatted } stock } } }"
MOBILE = "{ products(limit: 20) { items { id name imageUrl(size: SMALL) price { formatted } } } }"
IOT = "query StockLevels($ids: [ID!]!) { products(ids: $ids) { id stock } }"

CONFIG: dict[str, Any] = {
    "graphql": {
        "apps": {
            # No API key in this measurement: iot is open, and any query runs on it.
            "iot": {"path": "/graphql/iot", "encodings": ["json", "cbor"]},
            "mobile": {"path": "/graphql/mobile", "persisted_queries": "apq"},
        }
    }
}


def _wire(response: httpx.Response) -> tuple[int, int]:
    """(header bytes, body bytes) as received: the status line and headers as HTTP/1.1 sends
    them, the body before any decoding."""
    head = len(b"HTTP/1.1 200 OK\r\n") + 2
    head += sum(len(k) + len(v) + 4 for k, v in response.headers.raw)
    return head, response.num_bytes_downloaded


def _row(label: str, request: bytes, response: httpx.Response) -> list[str]:
    head, body = _wire(response)
    coding = response.headers.get("content-encoding", "identity")
    media = response.headers.get("content-type", "").split(";")[0]
    return [label, media, coding, f"{len(request):,}", f"{body:,}", f"{head + body:,}"]


def measure(url: str) -> list[list[str]]:
    rows: list[list[str]] = []
    with httpx.Client(base_url=url, headers={"accept-encoding": "identity"}) as client:

        def post(path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
            with client.stream("POST", path, content=body, headers=headers) as r:
                r.read()
                assert r.status_code == 200, r.text
                return r

        for label, path, query in (
            ("web", "/graphql/web", WEB),
            ("mobile", "/graphql/mobile", MOBILE),
        ):
            body = orjson.dumps({"query": query})
            for coding in ("identity", "gzip", *(["br"] if BROTLI_AVAILABLE else [])):
                headers = {"content-type": "application/json", "accept-encoding": coding}
                rows.append(_row(label, body, post(path, body, headers)))
        # mobile with a persisted query: the request carries a hash, not the document
        digest = hashlib.sha256(MOBILE.encode()).hexdigest()
        ext = {"persistedQuery": {"version": 1, "sha256Hash": digest}}
        post("/graphql/mobile", orjson.dumps({"query": MOBILE, "extensions": ext}), {})
        body = orjson.dumps({"extensions": ext})
        headers = {"content-type": "application/json", "accept-encoding": "gzip"}
        rows.append(_row("mobile, APQ hash", body, post("/graphql/mobile", body, headers)))
        variables = {"ids": IDS}
        body = orjson.dumps({"query": IOT, "variables": variables})
        rows.append(
            _row("iot", body, post("/graphql/iot", body, {"content-type": "application/json"}))
        )
        body = cbor2.dumps({"query": IOT, "variables": variables})
        cbor_headers = {"content-type": "application/cbor", "accept": "application/cbor"}
        rows.append(_row("iot", body, post("/graphql/iot", body, cbor_headers)))
    return rows


def compression_cost(url: str, repeats: int = 200) -> list[list[str]]:
    """CPU to compress the web answer once, per coding (the layer's cost per response)."""
    body = httpx.post(url + "/graphql/web", json={"query": WEB}).content
    out = []
    compression = Compression()
    for coding in ("gzip", *(["br"] if BROTLI_AVAILABLE else [])):
        best = float("inf")
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(repeats):
                compressed = compression.compress(body, coding)
            best = min(best, (time.perf_counter() - start) / repeats)
        out.append([coding, f"{len(body):,}", f"{len(compressed):,}", f"{best * 1e6:.0f}"])
    return out


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    argparse.ArgumentParser(prog="python -m bench.payloads", description=__doc__).parse_args()
    with sample_services(0) as urls, gateway(gateway_config(urls, CONFIG)) as gw:
        rows = measure(gw.url)
        costs = compression_cost(gw.url)
    print(
        _table(
            ["client", "answer", "coding", "request body B", "answer body B", "answer total B"],
            rows,
        )
    )
    print()
    print(_table(["coding", "web answer B", "compressed B", "CPU us per answer"], costs))


if __name__ == "__main__":
    main()

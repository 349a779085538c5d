"""The configuration examples of docs/passthrough.md and docs/resilience.md are valid."""

from __future__ import annotations

from pathlib import Path

import pytest

from bff.config import parse_config

DOCS = Path(__file__).resolve().parents[3] / "docs"
# Route fragments ("  - id: ...") are checked inside a file that defines what they refer to.
_CONTEXT = """
upstreams:
  users: {targets: ["http://127.0.0.1:9101"]}
  users_next: {targets: ["http://127.0.0.1:9201"]}
  products: {targets: ["http://127.0.0.1:9103"]}
  files: {targets: ["http://127.0.0.1:9301"]}
routes:
"""


def _blocks(name: str) -> list[str]:
    path = DOCS / name
    if not path.exists():
        pytest.skip(f"docs/{name} not present")
    return [b.split("```", 1)[0] for b in path.read_text().split("```yaml\n")[1:]]


@pytest.mark.parametrize("name", ["passthrough.md", "resilience.md"])
def test_yaml_examples_are_valid_configurations(name: str) -> None:
    blocks = _blocks(name)
    assert blocks
    for block in blocks:
        text = _CONTEXT + block if block.startswith("  - ") else block
        parse_config(text, source=f"docs/{name}", env={})

"""The documentation cites only files that are in the repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


@pytest.mark.parametrize("doc", ["docs/deviations.md", "README.md"])
def test_cited_files_exist(doc: str) -> None:
    text = (ROOT / doc).read_text()
    cited = set(re.findall(r"`((?:[\w.-]+/)+[\w.-]+\.(?:py|md|sh|toml|sql))", text))
    cited |= set(re.findall(r"\]\(((?:[\w.-]+/)*[\w.-]+\.\w+)\)", text))
    assert cited, doc
    missing = sorted(path for path in cited if not (ROOT / path).exists())
    assert not missing, f"{doc} cites files that are not in the repository: {missing}"

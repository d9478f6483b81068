"""env.example documents every variable privchat reads, and its values parse as the defaults."""

from __future__ import annotations

from pathlib import Path

from privchat import config as config_module
from privchat.config import Config, load_config

ENV_EXAMPLE = Path(__file__).parent.parent / "env.example"


def _documented() -> dict[str, str]:
    pairs = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            pairs[name] = value
    return pairs


def test_every_variable_is_documented() -> None:
    read = {name for name, _, _ in config_module._VARIABLES}
    read |= {name for name, _ in config_module._MODULE_LEVELS}
    assert read == set(_documented())


def test_documented_values_are_the_defaults() -> None:
    values = {k: v for k, v in _documented().items() if v}
    assert load_config(values) == Config()


def test_every_variable_is_explained_in_the_line_above() -> None:
    lines = ENV_EXAMPLE.read_text().splitlines()
    for number, line in enumerate(lines):
        if line and not line.startswith("#"):
            above = lines[number - 1]
            assert above.startswith("# ") and len(above) > 12, f"{line.split('=')[0]} unexplained"

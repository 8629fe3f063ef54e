"""The data set cards under datasets/ are valid YAML with the fields the apps and README rely on."""

from pathlib import Path

import pytest
import yaml

CARDS = sorted((Path(__file__).resolve().parents[2] / "datasets").glob("*.yaml"))


def test_there_are_cards():
    assert {p.name for p in CARDS} >= {"chest_xray_synth.yaml", "driving_synth.yaml"}


@pytest.mark.parametrize("path", CARDS, ids=lambda p: p.name)
def test_card_parses_and_names_its_splits(path):
    card = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(card, dict) and card["name"] == path.stem
    assert isinstance(card["source"], str) and card["source"]
    splits = card["splits"]
    assert splits and all(isinstance(s, dict) and "command" in s for s in splits.values())

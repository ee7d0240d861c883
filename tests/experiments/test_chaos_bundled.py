"""The bundled experiment files: each loads, says what it shows and how to run it; the variants load.

``experiments/`` holds chaos experiments (``meshsim chaos``) and rollout plans (``meshsim rollout``,
recognised by their ``steps``); each kind is loaded by its own reader.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from meshsim.experiments.chaos import load_experiment, load_variant
from meshsim.experiments.rollout import load_plan

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"
FILES = sorted(EXPERIMENTS.glob("*.yaml"))
VARIANTS = sorted((EXPERIMENTS / "variants").glob("*.yaml"))


def test_the_demonstrations_are_bundled():
    names = {p.stem for p in FILES}
    assert {"metastable-retries", "retry-amplification", "goodput-collapse", "zone-outage"} <= names
    assert {"retries-unbounded", "retry-budget", "retries-off"} <= {p.stem for p in VARIANTS}


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_every_experiment_loads_says_what_it_shows_and_how_to_run_it(path: Path):
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# ") and "What it shows" in text
    raw = yaml.safe_load(text)
    if "steps" in raw or "step_weight" in raw:  # a rollout plan
        load_plan(path)
        assert f"meshsim rollout experiments/{path.name}" in text
        return
    exp = load_experiment(path)
    assert exp.name == path.stem
    assert f"meshsim chaos experiments/{path.name}" in text


@pytest.mark.parametrize("path", VARIANTS, ids=[p.stem for p in VARIANTS])
def test_every_variant_loads_and_says_what_it_shows(path: Path):
    exp = load_experiment(EXPERIMENTS / "metastable-retries.yaml")
    variant = load_variant(path, exp)
    assert variant.label == path.stem
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# ") and "What it shows" in text and "meshsim chaos experiments/" in text

"""Registries, config schema and shipped configs agree (see docs/extending.md)."""
from pathlib import Path

import pytest
import yaml

from ser_pipeline import config as sp
from ser_pipeline.cli import COMMANDS

REPO = Path(__file__).resolve().parents[2]
SCHEMA = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
SHIPPED = [REPO / "config.yaml", *sorted((REPO / "config").glob("*.yaml")), REPO / "tests/workflow/toy_config.yaml"]


def _enum(*path):
    node = SCHEMA
    for key in path:
        node = node[key]
    return set(node["enum"])


def test_every_registered_model_extractor_and_loader_is_in_the_schema_and_back():
    props = SCHEMA["properties"]
    assert set(sp.registry("model")) == set(props["models"]["additionalProperties"]["properties"]["arch"]["enum"])
    assert set(sp.registry("extractor")) == set(props["features"]["additionalProperties"]["properties"]["extractor"]["enum"])
    assert set(sp.registry("loader")) == set(props["corpora"]["additionalProperties"]["properties"]["loader"]["enum"])


def test_every_registered_name_resolves_to_its_class_at_run_time():
    from ser_pipeline.corpora import demo_function, loader_function
    from ser_pipeline.features.base import extractor_class
    from ser_pipeline.models import model_class

    for name in sp.registry("model"):
        assert model_class(name).name == name
    for name in sp.registry("extractor"):
        assert extractor_class(name).name == name
    for name in sp.registry("loader"):
        assert callable(loader_function(name))
    for name in sp.registry("demo"):
        assert callable(demo_function(name))


def test_the_workflow_mirrors_of_extractor_flags_match_the_classes():
    # The workflow decides an extraction job's GPU request and cores from these sets without
    # importing the extractors; a new or edited extractor must update them.
    from ser_pipeline.features.base import extractor_class

    names = sp.registry("extractor")
    assert {n for n in names if not extractor_class(n).supports_gpu} == sp.CPU_ONLY_EXTRACTORS
    assert {n for n in names if extractor_class(n).threaded} == sp.THREADED_EXTRACTORS
    cfg = {"features": {"w": {"extractor": "wav2vec1"}, "l": {"extractor": "lld"}}}
    assert sp.feature_threads(cfg, "w") == sp.EXTRACT_THREADS > 1 and sp.feature_threads(cfg, "l") == 1
    # at most half the machine, so that on 2 cores it never waits for both to be free at once
    assert [sp.feature_threads(cfg, "w", n) for n in (1, 2, 3, 4, 64)] == [1, 1, 1, 2, sp.EXTRACT_THREADS]
    assert [sp.feature_threads(cfg, "l", n) for n in (1, 2, 64)] == [1, 1, 1]


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_configs_validate_deeply(path):
    from ser_pipeline.preflight import check_models

    cfg = sp.load_config(path)
    check_models(cfg, source=str(path))
    assert sp.all_outputs(cfg)


def test_every_cli_stage_has_a_module_with_a_command():
    import importlib

    for name, (module, _) in COMMANDS.items():
        assert importlib.import_module(f"ser_pipeline.commands.{module}").command.name == name

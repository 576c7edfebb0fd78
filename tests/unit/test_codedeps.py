"""Code digests follow the imports: a job reruns when code it can run changes, only then."""
from pathlib import Path

import pytest

from ser_pipeline import codedeps


def _pkg(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "ser_pipeline"
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root


@pytest.fixture
def pkg(tmp_path):
    codedeps.clear_caches()
    yield _pkg(tmp_path, {
        "__init__.py": "",
        "a.py": "from ser_pipeline import b\n",
        "b.py": "def f():\n    from .sub import deep  # nested and relative\n    return deep\n",
        "sub/__init__.py": "",
        "sub/deep.py": "from ser_pipeline.sub.models import (\n    thing,\n)\nNAME = 'table.yaml'\n",
        "sub/models.py": "import os\n\n@register_model(\"alpha\")\nclass A:\n    pass\n",
        "lonely.py": "x = 1\n",
        "data/table.yaml": "a: 1\n",
    })
    codedeps.clear_caches()


def test_closure_follows_nested_relative_and_multiline_imports_and_parent_packages(pkg):
    mods = codedeps.closure(["ser_pipeline.a"], root=pkg)
    assert mods == ["ser_pipeline", "ser_pipeline.a", "ser_pipeline.b", "ser_pipeline.sub",
                    "ser_pipeline.sub.deep", "ser_pipeline.sub.models"]
    assert "ser_pipeline.lonely" not in mods


def test_digest_changes_with_any_module_in_the_closure_and_its_data_only(pkg):
    d0 = codedeps.code_digest(["ser_pipeline.a"], root=pkg)
    (pkg / "lonely.py").write_text("x = 2\n")
    codedeps.clear_caches()
    assert codedeps.code_digest(["ser_pipeline.a"], root=pkg) == d0
    (pkg / "data" / "table.yaml").write_text("a: 2\n")
    codedeps.clear_caches()
    d1 = codedeps.code_digest(["ser_pipeline.a"], root=pkg)
    assert d1 != d0
    (pkg / "sub" / "models.py").write_text("import os\n# edited\n")
    codedeps.clear_caches()
    assert codedeps.code_digest(["ser_pipeline.a"], root=pkg) != d1


def test_registered_reads_decorators_without_importing(pkg):
    assert codedeps.registered("register_model", root=pkg) == {"alpha": "ser_pipeline.sub.models"}
    assert codedeps.registered("register_model", within="ser_pipeline.a", root=pkg) == {}


def test_a_name_registered_twice_is_an_error(pkg):
    (pkg / "lonely.py").write_text("@register_model('alpha')\nclass B: pass\n")
    codedeps.clear_caches()
    with pytest.raises(ValueError, match="alpha"):
        codedeps.registered("register_model", root=pkg)


def test_real_package_stage_closures_are_narrow():
    from ser_pipeline import config as sp

    train = set(codedeps.closure(sp.stage_modules("train", "ser_pipeline.models.pooling")))
    assert {"ser_pipeline.models.pooling", "ser_pipeline.training.neural", "ser_pipeline.training.classical"} <= train
    assert "ser_pipeline.models.ma_crnn" not in train
    assert not any(m.startswith("ser_pipeline.features.") for m in train if m != "ser_pipeline.features")
    assert not any(m.startswith("ser_pipeline.reporting") for m in train)
    table = set(codedeps.closure(sp.stage_modules("table")))
    assert "ser_pipeline.reporting.tables" in table and "ser_pipeline.training.loop" not in table

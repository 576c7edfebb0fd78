"""Session fixture: the toy config run end to end once, in a copy of the repository."""
import pytest

from wf_helpers import REPO, copy_repo, snakemake


@pytest.fixture(scope="session")
def toy_run(tmp_path_factory):
    root = copy_repo(tmp_path_factory.mktemp("wf") / "repo", REPO / "tests" / "workflow" / "toy_config.yaml")
    proc = snakemake(root, env={"SER_RECORD_IMPORTS": str(root / "imports")})
    return root, proc

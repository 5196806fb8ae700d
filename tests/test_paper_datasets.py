"""The paper's dataset folders: every file passes --check here, and --check says where RecBole downloads from."""

import pytest
from helpers import EXPERIMENTS

import run_exps
from utils.data import download_url


@pytest.mark.parametrize("folder, dataset", [("paper_ml1m", "ml-1m"), ("paper_amazon_cds", "amazon-cds-vinyl")])
def test_the_paper_folders_pass_check_and_name_the_download(workdir, capsys, folder, dataset):
    assert run_exps.main([str(EXPERIMENTS / folder), "--check"]) == 0
    out = capsys.readouterr().out
    files = sorted((EXPERIMENTS / folder).glob("*.yaml"))
    assert out.count("ok: ") == len(files) == 16
    assert out.count(f"RecBole will download it from {download_url(dataset)} on the first run") == len(files)
    for model in ("NeuMF", "SimpleX", "MultiVAE", "DCN", "DeepFM"):
        assert f"({model} on {dataset}," in out

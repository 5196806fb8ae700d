"""Checkpoints load with torch's safe loading on; RecBole's own pickled checkpoints are refused, not trusted."""

import copy

import pytest
import torch

from utils.errors import UserError
from utils.trainer import build_trainer, load_checkpoint


@pytest.fixture
def trainer(built, workdir):
    config, data, model = built("NeuMF")
    config["checkpoint_dir"] = str(workdir / "saved")
    return build_trainer(config, copy.deepcopy(model), "unit")


def test_checkpoint_holds_only_safe_values_and_loads_weights_only(trainer):
    trainer._save_checkpoint(3, verbose=False)
    checkpoint = torch.load(trainer.saved_model_file, weights_only=True)
    assert checkpoint["epoch"] == 3 and checkpoint["config"]["model"] == "NeuMF"
    assert set(checkpoint["state_dict"]) == set(trainer.model.state_dict())


def test_evaluate_and_resume_restore_the_saved_weights(trainer):
    trainer._save_checkpoint(1, verbose=False)
    saved = copy.deepcopy(trainer.model.state_dict())
    with torch.no_grad():
        for param in trainer.model.parameters():
            param.add_(1.0)
    trainer.resume_checkpoint(trainer.saved_model_file)
    assert trainer.start_epoch == 2
    for name, value in trainer.model.state_dict().items():
        assert torch.equal(value, saved[name]), name


def test_recbole_style_pickled_checkpoint_is_refused(trainer, workdir):
    path = workdir / "recbole.pth"
    torch.save({"config": trainer.config, "state_dict": trainer.model.state_dict()}, path, pickle_protocol=4)
    with pytest.raises(UserError, match="cannot load checkpoint .* safely"):
        load_checkpoint(path)


def test_missing_checkpoint_names_the_path(workdir):
    with pytest.raises(UserError, match="checkpoint not found: .*nope.pth"):
        load_checkpoint(workdir / "nope.pth")


def test_best_model_file_names_are_unique(built, workdir):
    config, data, model = built("NeuMF")
    names = {build_trainer(config, model, "same").saved_model_file for _ in range(3)}
    assert len(names) == 3

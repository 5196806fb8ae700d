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


def test_a_failed_checkpoint_write_leaves_nothing_behind_and_is_one_line(trainer, workdir, monkeypatch):
    import errno
    import os

    def full(obj, f, *args, **kwargs):
        with open(f, "wb") as fh:
            fh.write(b"partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(UserError, match="cannot write the checkpoint .*No space left on device"):
        trainer._save_checkpoint(1, verbose=False)
    assert list((workdir / "saved").iterdir()) == []


def test_a_read_only_checkpoint_dir_is_refused_before_training(built, workdir):
    config, data, model = built("NeuMF")
    folder = workdir / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    config = copy.copy(config)
    config.final_config_dict = dict(config.final_config_dict, checkpoint_dir=str(folder / "saved"))
    try:
        with pytest.raises(UserError, match="checkpoint_dir .* cannot be written"):
            build_trainer(config, model, "ro")
    finally:
        folder.chmod(0o755)


def test_a_checkpoint_of_another_shape_is_one_line(trainer, built, workdir):
    config, data, model = built("NeuMF")
    state = {"format": "llmkt-checkpoint/1", "state_dict": {"user_mf_embedding.weight": torch.zeros(3, 2)}}
    torch.save(state, workdir / "other.pth")
    with pytest.raises(UserError, match="does not fit this NeuMF"):
        trainer.load_weights(workdir / "other.pth")


def test_a_checkpoint_without_training_state_cannot_resume(trainer, workdir):
    torch.save({"state_dict": trainer.model.state_dict()}, workdir / "weights.pth")
    with pytest.raises(UserError, match="cannot resume training: it has no epoch"):
        trainer.resume_checkpoint(workdir / "weights.pth")


def test_resuming_never_writes_over_the_resumed_file(trainer, built, workdir):
    trainer._save_checkpoint(2, verbose=False)
    earlier = trainer.saved_model_file
    before = open(earlier, "rb").read()
    config, data, model = built("NeuMF")
    later = build_trainer(trainer.config, copy.deepcopy(model), "later")
    later.resume_checkpoint(earlier)
    assert later.saved_model_file != earlier and later.start_epoch == 3
    later._save_checkpoint(5, verbose=False)
    assert open(earlier, "rb").read() == before
    assert torch.load(later.saved_model_file, weights_only=True)["epoch"] == 5

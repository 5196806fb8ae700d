"""RecBole trainers whose checkpoints load with torch's safe (weights-only) loading.

RecBole 1.2.1 pickles its whole ``Config`` into every checkpoint with pickle protocol 4; torch >= 2.6 refuses to
load that with ``weights_only=True`` (and ``add_safe_globals`` does not help: the weights-only unpickler rejects
protocol 4's FRAME opcode). Rather than switching safe loading off, which would let a checkpoint file run code,
our checkpoints hold only tensors and plain values, saved with torch's default protocol, and every load passes
``weights_only=True`` explicitly.
"""

import logging
import os
import uuid

import torch
from recbole.utils import get_local_time, get_trainer, set_color

from .errors import UserError

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "llmkt-checkpoint/1"


def load_checkpoint(path, device="cpu"):
    """Load a checkpoint written by :class:`SafeCheckpointMixin` with ``weights_only=True``.

    Raises:
        UserError: the file is missing, or is not a checkpoint that safe loading accepts.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise UserError(f"checkpoint not found: {os.path.abspath(path)}", "check the path (relative to where you run)")
    try:
        checkpoint = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError, ... for a foreign file
        raise UserError(
            f"cannot load checkpoint {path} safely: {str(exc).splitlines()[0]}",
            "only checkpoints written by this tool load; RecBole's own .pth files pickle code and are refused",
        ) from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise UserError(f"{path} is not a model checkpoint (no state_dict)")
    return checkpoint


class SafeCheckpointMixin:
    """Mixed in front of a RecBole trainer class: checkpoints of tensors and plain values only."""

    def _save_checkpoint(self, epoch, verbose=True, **kwargs):
        if not self.config["single_spec"] and self.config["local_rank"] != 0:
            return
        saved_model_file = kwargs.pop("saved_model_file", self.saved_model_file)
        state = {
            "format": CHECKPOINT_FORMAT,
            "config": {"model": str(self.config["model"]), "dataset": str(self.config["dataset"])},
            "epoch": int(epoch),
            "cur_step": int(self.cur_step),
            "best_valid_score": float(self.best_valid_score),
            "state_dict": self.model.state_dict(),
            "other_parameter": self.model.other_parameter(),
            "optimizer": self.optimizer.state_dict(),
        }
        tmp = f"{saved_model_file}.tmp"
        torch.save(state, tmp)
        os.replace(tmp, saved_model_file)
        if verbose:
            self.logger.info(set_color("Saving current", "blue") + f": {saved_model_file}")

    def load_weights(self, checkpoint_file):
        """Load the model weights (not the optimizer) of a checkpoint into ``self.model``."""
        checkpoint = load_checkpoint(checkpoint_file, self.device)
        self.model.load_state_dict(checkpoint["state_dict"])
        self.model.load_other_parameter(checkpoint.get("other_parameter"))
        return checkpoint

    def resume_checkpoint(self, resume_file):
        resume_file = os.fspath(resume_file)
        checkpoint = self.load_weights(resume_file)
        self.saved_model_file = resume_file
        self.start_epoch = checkpoint["epoch"] + 1
        self.cur_step = checkpoint["cur_step"]
        self.best_valid_score = checkpoint["best_valid_score"]
        if checkpoint["config"]["model"].lower() != str(self.config["model"]).lower():
            self.logger.warning(
                f"checkpoint {resume_file} was written by {checkpoint['config']['model']}, "
                f"not {self.config['model']}"
            )
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.logger.info(f"Checkpoint loaded. Resume training from epoch {self.start_epoch}")

    @torch.no_grad()
    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        if load_best_model and eval_data:
            checkpoint_file = model_file or self.saved_model_file
            self.load_weights(checkpoint_file)
            self.logger.info(f"Loading model structure and parameters from {checkpoint_file}")
        return super().evaluate(eval_data, load_best_model=False, model_file=None, show_progress=show_progress)


_SAFE_CLASSES = {}


def safe_trainer_class(model_type, model_name):
    """RecBole's trainer class for this model (as ``get_trainer`` picks it), with safe checkpoints."""
    base = get_trainer(model_type, model_name)
    if base not in _SAFE_CLASSES:
        _SAFE_CLASSES[base] = type(f"Safe{base.__name__}", (SafeCheckpointMixin, base), {})
    return _SAFE_CLASSES[base]


def build_trainer(config, model, tag):
    """A trainer for ``model`` whose best-model file name is unique: ``<model>-<tag>-<time>-<rand>.pth``."""
    trainer_class = safe_trainer_class(config["MODEL_TYPE"], config["model"])
    trainer = trainer_class(config, model)
    name = f"{config['model']}-{tag}-{get_local_time()}-{uuid.uuid4().hex[:6]}.pth"
    trainer.saved_model_file = os.path.join(trainer.checkpoint_dir, name)
    return trainer

"""RecBole trainers whose checkpoints load with torch's safe (weights-only) loading.

RecBole 1.2.1 pickles its whole ``Config`` into every checkpoint with pickle protocol 4; torch >= 2.6 refuses to
load that with ``weights_only=True`` (and ``add_safe_globals`` does not help: the weights-only unpickler rejects
protocol 4's FRAME opcode). Rather than switching safe loading off, which would let a checkpoint file run code,
our checkpoints hold only tensors and plain values, saved with torch's default protocol, and every load passes
``weights_only=True`` explicitly.
"""

import contextlib
import logging
import os
import time
import uuid
from pathlib import Path

import torch
from recbole.utils import EvaluatorType, get_local_time, get_trainer, set_color

from .embeddings import torch_load_reason
from .errors import UserError
from .evaluation import StructKeepingEvaluator, per_user_metrics
from .paths import nearest_existing, writable
from .ranking import LinearCollector, compact_scores
from .sparse import build_table_optimizer

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "llmkt-checkpoint/1"
SPLIT_KEYS = ("dataset", "seed", "eval_args", "user_inter_num_interval", "item_inter_num_interval", "val_interval",
              "rm_dup_inter", "filter_inter_by_user_or_item", "threshold")  # what decides which items are test items


def split_identity(config):
    """A short hash of what decides the train/valid/test split (dataset, seed, split and filter settings): stored
    with each checkpoint, so that loading one trained on another split (whose test items it trained on) is seen."""
    import hashlib
    import json

    def get(key):
        try:
            return config[key]
        except (KeyError, TypeError):
            return None

    text = json.dumps({key: get(key) for key in SPLIT_KEYS}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


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
            f"cannot load checkpoint {path} safely: {torch_load_reason(exc)}",
            "only checkpoints written by this tool load; RecBole's own .pth files pickle code and are refused",
        ) from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise UserError(f"{path} is not a model checkpoint (no state_dict)")
    return checkpoint


class SafeCheckpointMixin:
    """Mixed in front of a RecBole trainer class: checkpoints of tensors and plain values only; a per-epoch history
    (model and distillation losses, validation metrics, times); per-user test metrics on request.

    The training loss is the model's own, or its ``distiller``'s (``utils.wrapper.Distiller``) when one is given:
    the trainer calls it as RecBole's ``loss_func`` and asks it for the epoch's parts, nothing else."""

    history = None  # list of per-epoch dicts, created by fit
    distiller = None  # utils.wrapper.Distiller given to build_trainer: the training loss and its parts

    def __init__(self, config, model):
        super().__init__(config, model)
        self.evaluator = StructKeepingEvaluator(config)  # keeps what per-user metrics are computed from
        self.eval_collector = LinearCollector(config)  # joins the batches once (RecBole's: once per batch)

    def fit(self, train_data, valid_data=None, verbose=True, saved=True, show_progress=False, callback_fn=None):
        self.history = []
        return super().fit(train_data, valid_data, verbose=verbose, saved=saved, show_progress=show_progress,
                           callback_fn=callback_fn)

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        if self.distiller is not None:
            self.distiller.start_epoch()
            loss_func = loss_func or self.distiller
        started = time.time()
        total = super()._train_epoch(train_data, epoch_idx, loss_func=loss_func, show_progress=show_progress)
        entry = {"epoch": epoch_idx, "train_time_s": round(time.time() - started, 3),
                 "loss": float(sum(total) if isinstance(total, tuple) else total), "batches": len(train_data)}
        parts = self.distiller.pop_epoch_losses() if self.distiller is not None else None
        if parts:  # distillation on: both losses, unweighted, mean per batch
            entry.update(parts)
            self.tensorboard.add_scalar("Loss/distil", entry["distil_loss"], epoch_idx)
        else:
            entry["model_loss"] = entry["combined_loss"] = entry["loss"] / max(len(train_data), 1)
            entry["distil_loss"] = None
        self.tensorboard.add_scalar("Loss/model", entry["model_loss"], epoch_idx)
        if self.history is not None:
            self.history.append(entry)
        return total

    def _valid_epoch(self, valid_data, show_progress=False):
        started = time.time()
        score, result = super()._valid_epoch(valid_data, show_progress=show_progress)
        if self.history:
            self.history[-1].update(valid_score=float(score), valid=dict(result),
                                    valid_time_s=round(time.time() - started, 3))
            for name, value in result.items():
                self.tensorboard.add_scalar(f"Valid/{name}", value, self.history[-1]["epoch"])
        return score, result

    def _full_sort_batch_eval(self, batched_data):
        if self._eval_users is not None:
            self._eval_users.append(batched_data[0][self.config["USER_ID_FIELD"]].cpu())
        return super()._full_sort_batch_eval(batched_data)

    def _neg_sample_batch_eval(self, batched_data):
        if self._eval_users is not None and batched_data[2] is not None:  # ranking (not labeled) evaluation
            interaction, row_idx, positive_u, _ = batched_data
            users = torch.zeros(int(positive_u[-1]) + 1, dtype=torch.long)
            users[row_idx.cpu()] = interaction[self.config["USER_ID_FIELD"]].cpu()
            self._eval_users.append(users)
        if self.config["eval_type"] != EvaluatorType.RANKING or not self.eval_collector.ranks_candidates_only:
            return super()._neg_sample_batch_eval(batched_data)
        return self._ranked_candidates(batched_data)

    def _ranked_candidates(self, batched_data):
        """RecBole's sampled ranking evaluation of one batch, the candidates ranked among themselves
        (``utils.ranking.compact_scores``) instead of among all items: the same metrics, ``1 + N`` columns a user
        instead of all items."""
        interaction, row_idx, positive_u, positive_i = batched_data
        if interaction.length <= self.test_batch_size:
            scores = self.model.predict(interaction.to(self.device))
        else:
            scores = self._spilt_predict(interaction, interaction.length)
        topk = self.config["topk"] if isinstance(self.config["topk"], list) else [self.config["topk"]]
        compact = compact_scores(interaction[self.config["ITEM_ID_FIELD"]].to(self.device), row_idx.to(self.device),
                                 scores, positive_u.to(self.device), positive_i.to(self.device), self.tot_item_num,
                                 width=max(topk))
        if compact is None:
            return super()._neg_sample_batch_eval(batched_data)
        return interaction, *compact

    _eval_users = None

    def _save_checkpoint(self, epoch, verbose=True, **kwargs):
        if not self.config["single_spec"] and self.config["local_rank"] != 0:
            return
        saved_model_file = kwargs.pop("saved_model_file", self.saved_model_file)
        state = {
            "format": CHECKPOINT_FORMAT,
            "config": {"model": str(self.config["model"]), "dataset": str(self.config["dataset"]),
                       "split": split_identity(self.config)},
            "epoch": int(epoch),
            "cur_step": int(self.cur_step),
            "best_valid_score": float(self.best_valid_score),
            "state_dict": self.model.state_dict(),
            "other_parameter": self.model.other_parameter(),
            "optimizer": self.optimizer.state_dict(),
        }
        write_checkpoint(state, saved_model_file)
        if verbose:
            self.logger.info(set_color("Saving current", "blue") + f": {saved_model_file}")

    def load_weights(self, checkpoint_file):
        """Load the model weights (not the optimizer) of a checkpoint into ``self.model``.

        Raises:
            UserError: the checkpoint's tensors do not fit this model (another model, other sizes, missing keys).
        """
        checkpoint = load_checkpoint(checkpoint_file, self.device)
        try:
            self.model.load_state_dict(checkpoint["state_dict"])
        except (RuntimeError, TypeError, AttributeError) as exc:
            detail = " ".join(str(exc).split())
            raise UserError(
                f"checkpoint {checkpoint_file} does not fit this {type(self.model).__name__}: {detail[:300]}",
                "it was written by another model or with other sizes; load a checkpoint of this experiment's model",
            ) from None
        self.model.load_other_parameter(checkpoint.get("other_parameter"))
        return checkpoint

    def resume_checkpoint(self, resume_file):
        """Continue training from a checkpoint: weights, optimizer, epoch and best score.

        The best model of the training that follows goes to this trainer's own file, never over ``resume_file``
        (an earlier part's best model stays as it was); that file starts as a copy of the resumed state, the best
        so far.
        """
        resume_file = os.fspath(resume_file)
        checkpoint = self.load_weights(resume_file)
        missing = [key for key in ("epoch", "cur_step", "best_valid_score", "optimizer") if key not in checkpoint]
        if missing:
            raise UserError(f"checkpoint {resume_file} cannot resume training: it has no {', '.join(missing)}",
                            "use load_from_file: {file: ..., resume: false} to load only its weights")
        self.start_epoch = int(checkpoint["epoch"]) + 1
        self.cur_step = checkpoint["cur_step"]
        self.best_valid_score = checkpoint["best_valid_score"]
        if str(checkpoint.get("config", {}).get("model", "")).lower() != str(self.config["model"]).lower():
            self.logger.warning(
                f"checkpoint {resume_file} was written by {checkpoint.get('config', {}).get('model')}, "
                f"not {self.config['model']}"
            )
        try:
            self.optimizer.load_state_dict(checkpoint["optimizer"])
        except (ValueError, KeyError, RuntimeError) as exc:
            raise UserError(f"checkpoint {resume_file}: its optimizer state does not fit this trainer: {exc}",
                            "use load_from_file: {file: ..., resume: false} to load only the weights") from None
        self._save_checkpoint(int(checkpoint["epoch"]), verbose=False)
        self.logger.info(f"Checkpoint loaded. Resume training from epoch {self.start_epoch}")

    @torch.no_grad()
    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        if load_best_model and eval_data:
            checkpoint_file = model_file or self.saved_model_file
            self.load_weights(checkpoint_file)
            self.logger.info(f"Loading model structure and parameters from {checkpoint_file}")
        forget_propagated_tables(self.model)
        return super().evaluate(eval_data, load_best_model=False, model_file=None, show_progress=show_progress)

    def evaluate_per_user(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        """:meth:`evaluate`, and each evaluated user's metrics (see :func:`utils.evaluation.per_user_metrics`).

        Returns:
            (result, per_user): per_user is None when the evaluation ranks nothing (value metrics).
        """
        self._eval_users = []
        try:
            result = self.evaluate(eval_data, load_best_model=load_best_model, model_file=model_file,
                                   show_progress=show_progress)
        finally:
            users, self._eval_users = self._eval_users, None
        struct, self.evaluator.last_struct = self.evaluator.last_struct, None
        return result, per_user_metrics(self.config, struct, users)


_SAFE_CLASSES = {}


def forget_propagated_tables(model):
    """Clear the propagated tables a RecBole graph model keeps between evaluation batches (``restore_user_e``,
    ``restore_item_e``), so that an evaluation computes them once, from the weights it evaluates."""
    for name in ("restore_user_e", "restore_item_e"):
        if getattr(model, name, None) is not None:
            setattr(model, name, None)


def use_sparse_tables(trainer):
    """``sparse_embeddings: true``: the model's embedding tables get sparse gradients and SparseAdam (configured
    lr), the rest keeps the configured optimizer (``utils.sparse.TableOptimizer``).

    Raises:
        UserError: with ``clip_grad_norm`` (the norm of a sparse gradient is not computed by torch's clipping).
    """
    if trainer.clip_grad_norm:
        raise UserError(f"sparse_embeddings: true cannot be combined with clip_grad_norm {trainer.clip_grad_norm}",
                        "remove clip_grad_norm or set sparse_embeddings: false")
    optimizer = build_table_optimizer(
        trainer.model, lambda params: trainer._build_optimizer(params=params), trainer.learning_rate,
        trainer.weight_decay, type(trainer.model).__name__)
    if optimizer is not None:
        trainer.optimizer = optimizer


def safe_trainer_class(model_type, model_name):
    """RecBole's trainer class for this model (as ``get_trainer`` picks it), with safe checkpoints."""
    base = get_trainer(model_type, model_name)
    if base not in _SAFE_CLASSES:
        _SAFE_CLASSES[base] = type(f"Safe{base.__name__}", (SafeCheckpointMixin, base), {})
    return _SAFE_CLASSES[base]


def write_checkpoint(state, path):
    """``torch.save`` through a temporary file and a rename; a failed write (disk full, folder read-only) leaves
    nothing behind and is one line.

    Raises:
        UserError: the file cannot be written.
    """
    path = os.fspath(path)
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).splitlines()[0]
        raise UserError(f"cannot write the checkpoint {path}: {reason}",
                        "checkpoint_dir must be a writable folder with free space") from None


def check_checkpoint_dir(folder):
    """Refuse, before anything trains, a ``checkpoint_dir`` that is not a folder this run can write in.

    Raises:
        UserError: naming the folder.
    """
    folder = Path(folder)
    existing = nearest_existing(folder)
    if existing.exists() and not existing.is_dir():
        raise UserError(f"checkpoint_dir {folder}: {existing} is a file, not a folder",
                        "set checkpoint_dir to a folder (default: saved)")
    if not writable(existing):
        raise UserError(f"checkpoint_dir {folder} cannot be written ({existing} is read-only)",
                        "make it writable or set checkpoint_dir to a folder you can write")


def build_trainer(config, model, tag, distiller=None):
    """A trainer for ``model`` whose best-model file name is unique: ``<model>-<tag>-<time>-<rand>.pth``.

    With a ``distiller`` (``wrap_model``'s, for this same model), it is the training loss, and each epoch's history
    holds its model and distillation parts.
    """
    trainer_class = safe_trainer_class(config["MODEL_TYPE"], config["model"])
    check_checkpoint_dir(config["checkpoint_dir"])
    try:
        # made here with exist_ok: RecBole's ensure_dir checks, then creates, and two workers starting together
        # (a Ray sweep's first experiments) race between the two ("File exists")
        os.makedirs(config["checkpoint_dir"], exist_ok=True)
        trainer = trainer_class(config, model)
    except OSError as exc:  # RecBole creates checkpoint_dir
        raise UserError(f"cannot create checkpoint_dir {config['checkpoint_dir']}: {exc.strerror}",
                        "make it writable or set checkpoint_dir to a folder you can write") from None
    trainer.distiller = distiller
    if config["sparse_embeddings"]:
        use_sparse_tables(trainer)
    name = f"{config['model']}-{tag}-{get_local_time()}-{uuid.uuid4().hex[:6]}.pth"
    trainer.saved_model_file = os.path.join(trainer.checkpoint_dir, name)
    return trainer

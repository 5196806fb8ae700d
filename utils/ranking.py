"""Sampled (uniN/popN) and full-ranking evaluation whose cost grows with the users, not faster.

RecBole 1.2.1 spends more than linear time in three places, all removed here with the same metrics (same users, same
order, same negatives drawn, same ranking; ``tests/test_ranking.py`` compares both paths on ml-100k):

- :class:`PackedEvalLoader`: RecBole sizes every sampled-evaluation batch by the most active users (the number of
  users per batch is the number that fits when the largest ones are together), so with a long-tailed activity a
  batch holds a handful of users and there are about as many batches as users. Here users are packed in order
  into batches of up to ``eval_batch_size`` rows; a user is never split.
- :func:`compact_scores`: RecBole scatters each batch's candidate scores into a ``users x all items`` matrix and
  ranks all items, ``users x items`` work for the ``1 + N`` candidates a user has. Here the candidates are ranked
  among themselves (the same order: columns in item-id order, the other items being -inf there anyway).
- :meth:`PackedEvalLoader.collate_fn`: RecBole builds a batch user by user, each user's rows indexed, repeated
  and joined with the user and item features by Python lists (``Interaction.__getitem__`` turns an index tensor
  into a list, a slow path of torch); here the negatives are drawn by the same sampler calls in the same order
  (the same random draws), and the batch is indexed, joined and labelled once, by index tensors.
- :class:`LinearCollector`: RecBole's collector appends each batch with ``torch.cat`` onto everything collected so
  far (quadratic in the number of batches); here the parts are kept and joined once.
"""

import numpy as np
import torch
from recbole.data import get_dataloader
from recbole.data.dataloader import NegSampleEvalDataLoader
from recbole.data.interaction import Interaction
from recbole.data.transform import Equal
from recbole.evaluator.collector import Collector, DataStruct

DENSE_KEYS = ("rec.items", "rec.meanrank", "rec.score")  # what needs the all-items matrix (item ids, full ranks)


def eval_loader_class(config, phase):
    """RecBole's evaluation loader class for ``phase`` (valid/test), packed when it is the sampled one."""
    loader = get_dataloader(config, phase)
    return PackedEvalLoader if loader is NegSampleEvalDataLoader else loader


def pack_users(rows, limit):
    """``[(start, end), ...]``: consecutive users whose ``rows`` sum to at most ``limit`` (one user at least)."""
    packs, start, total = [], 0, 0
    for position, count in enumerate(rows.tolist()):
        if position > start and total + count > limit:
            packs.append((start, position))
            start, total = position, 0
        total += count
    if len(rows):
        packs.append((start, len(rows)))
    return packs


class PackedEvalLoader(NegSampleEvalDataLoader):
    """RecBole's sampled-evaluation loader, its users packed into batches of up to ``eval_batch_size`` rows
    (``1 + N`` rows per test interaction) in user order; a batch is what RecBole's loader gives for those users."""

    packs = None

    def _init_batch_size_and_step(self):
        if self.neg_sample_args["distribution"] == "none" or self.neg_sample_args["sample_num"] == "none":
            return super()._init_batch_size_and_step()
        self.packs = pack_users(self.uid2items_num[self.uid_list] * self.times, self.config["eval_batch_size"])
        self.sample_size, self.step = len(self.packs), 1
        self.set_batch_size(self.config["eval_batch_size"])
        return None

    def collate_fn(self, index):
        if self.packs is None:
            return super().collate_fn(index)
        start, end = self.packs[int(np.asarray(index).reshape(-1)[0])]
        if not self.batched_collate:
            return super().collate_fn(list(range(start, end)))
        return self.collate_users(self.uid_list[start:end])

    @property
    def batched_collate(self):
        """Whether :meth:`collate_users` builds what RecBole's loader would: point-wise negatives drawn up front
        (not RecBole's model-scored ``dynamic`` ones), no data transform."""
        return (not self.neg_sample_args.get("dynamic", False) and isinstance(self.transform, Equal)
                and self.sampling_func == self._neg_sample_by_point_wise_sampling)

    def collate_users(self, uids):
        """RecBole's sampled-evaluation batch of the users ``uids``, tensor for tensor: each user's test rows then
        its negatives (``times - 1`` per row, one sampler call per user, in user order: the same draws), joined with
        the user and item features, labelled 1 then 0; the rows' user index, the positives' user index and items."""
        inter = self._dataset.inter_feat
        user_col, item_col = inter[self.uid_field], inter[self.iid_field]
        spans = [self.uid2index[uid] for uid in uids]
        positives, items, labels = [], [], []
        for span in spans:
            mine = item_col[span]
            negatives = self._sampler.sample_by_user_ids(user_col[span].numpy(), mine.numpy(), self.neg_sample_num)
            positives.append(mine)
            items += [mine, negatives]
            labels += [torch.ones(len(mine)), torch.zeros(len(negatives))]
        batch_rows = torch.from_numpy(np.concatenate([np.tile(np.arange(span.start, span.stop), self.times)
                                                      for span in spans]))
        data = {name: column[batch_rows] for name, column in inter.interaction.items()}
        data[self.iid_field] = torch.cat(items)
        for feat, field in ((self._dataset.user_feat, self.uid_field), (self._dataset.item_feat, self.iid_field)):
            if feat is not None:
                data.update({name: column[data[field]] for name, column in feat.interaction.items()})
        data[self.label_field] = torch.cat(labels)
        counts, users = torch.from_numpy(self.uid2items_num[uids]), torch.arange(len(uids))
        return (Interaction(data), users.repeat_interleave(counts * self.times), users.repeat_interleave(counts),
                torch.cat(positives))


def compact_scores(items, row_idx, scores, positive_u, positive_i, item_num, width=1):
    """The batch's candidate scores as ``users x candidates`` (item-id order, -inf padding) and the positives'
    columns in it: what RecBole's collector ranks, without the ``users x all items`` matrix.

    Args:
        items, row_idx, scores: one entry per candidate row (item id, the user's row in the batch, score).
        positive_u, positive_i: the positives' rows and item ids (RecBole's loader gives them).
        item_num: the number of items (ids are below it).
        width: the least number of columns (the largest k ranked: fewer candidates are padded with -inf).

    Returns:
        (matrix, positive_u, positive_columns), or None when a positive is not among the candidates (RecBole's
        loader never does that; the caller then ranks all items).
    """
    keys = row_idx.long() * item_num + items.long()
    unique, inverse = torch.unique(keys, return_inverse=True)  # sorted: by row, then item id; repeats once
    values = torch.empty(len(unique), dtype=scores.dtype, device=scores.device)
    values[inverse] = scores
    rows = unique // item_num
    users = int(positive_u[-1]) + 1 if len(positive_u) else int(rows.max()) + 1
    counts = torch.bincount(rows, minlength=users)
    offsets = torch.cumsum(counts, 0) - counts
    columns = torch.arange(len(unique), device=keys.device) - offsets[rows]
    matrix = torch.full((users, max(int(counts.max()), width)), -np.inf, dtype=scores.dtype, device=scores.device)
    matrix[rows, columns] = values
    wanted = positive_u.long() * item_num + positive_i.long()
    found = torch.searchsorted(unique, wanted).clamp(max=len(unique) - 1)
    if not torch.equal(unique[found], wanted):
        return None
    return matrix, positive_u, found - offsets[positive_u.long()]


class PartsDataStruct(DataStruct):
    """RecBole's ``DataStruct`` whose tensors are appended as parts and joined once, when read."""

    def __init__(self):
        super().__init__()
        self._parts = {}

    def update_tensor(self, name, value):
        if name in self._data_dict and not isinstance(self._data_dict[name], torch.Tensor):
            raise ValueError(f"{name} is not a tensor.")
        self._parts.setdefault(name, []).append(value.clone().detach())

    def join(self):
        """Join the parts onto what is held (one ``torch.cat`` per name)."""
        for name, parts in self._parts.items():
            held = [self._data_dict[name]] if name in self._data_dict else []
            self._data_dict[name] = torch.cat(held + parts, dim=0)
        self._parts = {}

    def __getitem__(self, name):
        self.join()
        return super().__getitem__(name)

    def __contains__(self, key):
        return key in self._parts or super().__contains__(key)


class LinearCollector(Collector):
    """RecBole's collector over a :class:`PartsDataStruct`; ``ranks_candidates_only`` says whether the metrics
    need nothing but each user's ranked candidates (then :func:`compact_scores` may stand for all items)."""

    def __init__(self, config):
        super().__init__(config)
        self.data_struct = PartsDataStruct()

    @property
    def ranks_candidates_only(self):
        return not any(self.register.need(key) for key in DENSE_KEYS)

    def get_data_struct(self):
        self.data_struct.join()
        return super().get_data_struct()

"""utils.data.TensorIndexed: the rows RecBole's list indexing gives, by an index tensor; the loaders use it."""

import numpy as np
import torch
from helpers import build
from recbole.data.interaction import Interaction
from recbole.utils import init_seed

from utils.data import TensorIndexed


def table():
    generator = torch.Generator().manual_seed(0)
    return {"user_id": torch.randint(0, 50, (40,), generator=generator),
            "seq": torch.randint(0, 9, (40, 5), generator=generator), "rating": torch.rand(40, generator=generator)}


def test_every_index_form_gives_recboles_rows():
    columns = table()
    ours, theirs = TensorIndexed(dict(columns)), Interaction(dict(columns))
    for index in (torch.tensor([3, 3, 0, 39, -1]), np.array([7, 1, 1]), np.array([2, 5], dtype=np.int32),
                  torch.tensor([], dtype=torch.long), torch.arange(40) % 2 == 0, np.arange(40) < 3, slice(4, 9),
                  [1, 2], 6, torch.tensor(5)):
        got, expected = ours[index], theirs[index]
        assert set(got.interaction) == set(expected.interaction)
        for name, column in expected.interaction.items():
            assert got[name].dtype == column.dtype and torch.equal(got[name], column), (index, name)
    assert torch.equal(ours["rating"], columns["rating"])


def test_the_prepared_datasets_index_by_tensors_and_the_loaders_give_the_same_batches():
    """AutoInt's loaders join user and item features: its first training and test batches, tensor for tensor,
    with the tables indexed by tensors and by RecBole's lists, from the same random state."""
    _, data, _ = build("AutoInt")
    datasets = (data.dataset, data.train_dataset, data.valid.dataset, data.test.dataset)
    assert all(type(dataset.inter_feat) is TensorIndexed for dataset in datasets)
    assert type(data.dataset.user_feat) is TensorIndexed and type(data.dataset.item_feat) is TensorIndexed
    batches = []
    for _ in range(2):
        init_seed(5, True)
        data.train_parts[0].generator.manual_seed(5)  # the loader's own shuffling generator
        batches.append([next(iter(data.train_parts[0])), next(iter(data.test))[0]])
        for dataset in datasets:  # the second time by RecBole's own indexing
            for table in (dataset.inter_feat, dataset.user_feat, dataset.item_feat):
                table.__class__ = Interaction
    for ours, theirs in zip(*batches):
        assert set(ours.interaction) == set(theirs.interaction) and len(ours) > 100
        for name, column in theirs.interaction.items():
            assert ours[name].dtype == column.dtype and torch.equal(ours[name], column), name

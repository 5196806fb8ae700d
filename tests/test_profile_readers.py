"""The two profile-JSON readers take exactly the same inputs: whatever the fast (simdjson) reader accepts, the careful
one accepts with the same ids and the same matrix; nested lists, quoted numbers, booleans, null and empty
embeddings are refused by both."""

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from utils import embeddings
from utils.errors import UserError

pytest.importorskip("simdjson")

numbers = st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(-(2**70), 2**70))
odd_values = st.one_of(st.text(max_size=4), st.sampled_from(["0.1", "1e3", "-2"]), st.booleans(), st.none(),
                       st.lists(numbers, max_size=2), st.dictionaries(st.text(max_size=2), numbers, max_size=1))
ids = st.one_of(st.integers(-(2**70), 2**70), st.text(max_size=6), st.booleans(), st.none(), st.floats(),
                st.lists(st.integers(), max_size=2))


@st.composite
def profile_lists(draw):
    """Mostly well-formed profile lists of one width, with now and then an odd id, value, width or entry."""
    width = draw(st.integers(0, 4))
    rows = []
    for _ in range(draw(st.integers(1, 5))):
        embedding = draw(st.lists(numbers, min_size=width, max_size=width))
        if draw(st.integers(0, 5)) == 0 and embedding:  # an odd value somewhere
            embedding[draw(st.integers(0, len(embedding) - 1))] = draw(odd_values)
        if draw(st.integers(0, 8)) == 0:  # another width
            embedding = draw(st.lists(numbers, max_size=5))
        entry = {"id": draw(ids) if draw(st.integers(0, 4)) == 0 else draw(st.integers(0, 10**6)),
                 "embedding": embedding, "description": draw(st.sampled_from(["", "liked [a] [[b]]", '"x"']))}
        if draw(st.integers(0, 15)) == 0:
            entry.pop(draw(st.sampled_from(["id", "embedding"])))
        rows.append(entry)
    return rows


def careful(path):
    return embeddings.stack_embeddings(embeddings.read_profiles(path), str(path))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(profile_lists())
def test_whatever_the_fast_reader_accepts_the_careful_one_accepts_alike(tmp_path, profiles):
    path = tmp_path / "profiles.json"
    path.write_text(json.dumps(profiles))
    fast = embeddings._read_with_simdjson(path)
    if fast is None:
        return  # the fast reader declined: the careful one decides (and is what read_profile_matrix then uses)
    ids, matrix = careful(path)  # must not raise
    assert ids == fast[0]
    assert matrix.dtype == fast[1].dtype and np.array_equal(matrix, fast[1])


@pytest.mark.parametrize("embedding, found", [
    ([[0.1, 0.2], [0.3, 0.4]], "[0.1, 0.2]"),
    ([0.1, [0.2]], "[0.2]"),
    (["0.1", 0.2], '"0.1"'),
    ([True, 0.2], "true"),
    ([None, 0.2], "null"),
    ("0.1, 0.2", '"0.1, 0.2"'),
])
def test_odd_embeddings_are_refused_by_both_readers(tmp_path, embedding, found):
    path = tmp_path / "profiles.json"
    path.write_text(json.dumps([{"id": 1, "embedding": [0.5, 0.5]}, {"id": 2, "embedding": embedding}]))
    assert embeddings._read_with_simdjson(path) is None
    with pytest.raises(UserError, match="must be a flat list of numbers, found " + found.replace("[", r"\[")):
        embeddings.read_profile_matrix(path)


def test_empty_embeddings_are_refused_by_both_readers(tmp_path):
    path = tmp_path / "profiles.json"
    path.write_text(json.dumps([{"id": 1, "embedding": []}, {"id": 2, "embedding": []}]))
    assert embeddings._read_with_simdjson(path) is None
    with pytest.raises(UserError, match=r"the embeddings are empty \(width 0\)"):
        embeddings.read_profile_matrix(path)

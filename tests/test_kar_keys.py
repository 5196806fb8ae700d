"""The original tool's KAR keys, read as this project's (models/_kar.py)."""

import pytest

from models._kar import translate_original_keys
from utils.errors import UserError

ORIGINAL = {
    "model": "AutoIntKAR", "dataset": "ml-100k", "embedding_size": 32, "user_kar_emb": 1536, "item_kar_emb": 1536,
    "item_kar_experts_n": 3, "output_kar_dim": 32, "user_profile_json": "user_embs.json",
    "item_profile_json": "item_embs.json",
}  # fmt: skip


def test_original_keys_map_onto_ours_with_profiles_under_the_embeddings_folder():
    translated, found = translate_original_keys(ORIGINAL, "./datasets/llm_embeddings")
    assert set(found) == {"user_kar_emb", "item_kar_emb", "item_kar_experts_n", "output_kar_dim",
                          "user_profile_json", "item_profile_json"}
    assert translated["kar_user_emb_file"] == "datasets/llm_embeddings/ml-100k/user_embs.json"
    assert translated["kar_item_emb_file"] == "datasets/llm_embeddings/ml-100k/item_embs.json"
    assert (translated["kar_user_width"], translated["kar_experts"], translated["kar_output_dim"]) == (1536, 3, 32)
    assert translated["kar_fields"] == 1 and not set(found) & set(translated)


def test_an_original_key_next_to_the_key_it_maps_onto_is_refused():
    with pytest.raises(UserError, match="both 'item_kar_experts_n'.*and 'kar_experts'"):
        translate_original_keys({**ORIGINAL, "kar_experts": 4}, "emb")


@pytest.mark.parametrize("change,message", [
    ({"kar_user_emb_file": None, "kar_item_emb_file": None}, "AutoIntKar needs kar_user_emb_file and/or kar_item"),
    ({"kar_output_dim": "wide"}, "kar_output_dim"),
    ({"kar_user_width": 0}, "kar_user_width"),
])
def test_kar_settings_are_checked_before_training(workdir, change, message):
    """The KAR keys are declared (utils/settings.RECBOLE): a KAR model without a profile file, or a width check that
    is not a width, is one line from --check, before any dataset is built."""
    import yaml
    from helpers import shrink

    from utils.experiment import check_experiment

    path = shrink("autoint_kar_ml100k/03_autoint_kar.yaml", workdir)
    raw = yaml.safe_load(path.read_text())
    raw.update(change)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    with pytest.raises(UserError, match=message):
        check_experiment(path)

"""One fast test per scenario command, through the public interface: a one- or few-step scenario is checked by
``check_scenario`` and run by ``TrainManager`` on a ``ScenarioRun`` over one tiny real NeuMF setup (ml-100k shrunk
by RecBole's own filters, 8-wide layers, one epoch), built once per session. Each test asserts the step's effect.
``test_every_command_has_a_handler_test`` fails when a command is added to ``COMMANDS`` without a test here."""

import copy
from pathlib import Path

import pytest
import torch
import yaml

from utils.data import build_dataset, prepare_data
from utils.errors import UserError
from utils.experiment import check_experiment, scenario_context
from utils.journal import JournalRecord
from utils.settings import parse_steps
from utils.tmanager import COMMANDS, ScenarioRun, TrainManager, check_scenario

COVERED = set()


def covers(*names):
    """Mark a test as the handler test of these commands."""
    def mark(test):
        COVERED.update(names)
        return test

    return mark


TINY = {
    "model": "NeuMF", "dataset": "ml-100k", "seed": 7, "reproducibility": True, "use_gpu": False,
    "logger_level": "ERROR", "show_progress": False, "epochs": 1, "stopping_step": 1,
    "train_batch_size": 8192, "eval_batch_size": 100000,
    "user_inter_num_interval": "[20,30)",
    "load_col": {"inter": ["user_id", "item_id", "rating", "timestamp"]},
    "eval_args": {"split": {"RS": [0.8, 0.1, 0.1]}, "group_by": "user", "order": "RO",
                  "mode": {"valid": "uni100", "test": "uni100"}},
    "metrics": ["Recall", "NDCG"], "topk": [10], "valid_metric": "NDCG@10",
    "mf_embedding_size": 8, "mlp_embedding_size": 8, "mlp_hidden_size": [8, 8], "dropout_prob": 0.0,
    "journal_name": "j.csv", "distil_loss_weight": 0.5, "add_train_split": [0.5, 0.5],
    "scenario": [{"init_model": None}],
}  # fmt: skip


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """The checked experiment and its prepared data (read-only for the tests), plus two user matrices."""
    root = tmp_path_factory.mktemp("commands")
    raw = copy.deepcopy(TINY)
    raw["checkpoint_dir"] = str(root / "saved")
    raw["llm_config"] = {"embeddings_path": str(root / "emb"), "use_user_emb": True, "use_item_emb": False,
                         "users_start_with_1": False}
    path = root / "tiny.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    checked = check_experiment(path)
    dataset = build_dataset(checked.config)
    data = prepare_data(checked.config, dataset, checked.settings.add_train_split, checked.settings.add_train_shuffle)
    emb = root / "emb" / "ml-100k"
    emb.mkdir(parents=True)
    generator = torch.Generator().manual_seed(0)
    torch.save(torch.randn(dataset.user_num, 8, generator=generator), emb / "u8.pt")
    torch.save(torch.randn(dataset.user_num, 32, generator=generator), emb / "u32.pt")
    return checked, data


def new_run(tiny, folder):
    """A fresh ScenarioRun: its own copy of the config and settings, the shared data, a new journal record."""
    checked, data = tiny
    config = copy.copy(checked.config)
    config.final_config_dict = copy.deepcopy(checked.config.final_config_dict)
    file = Path(folder) / "tiny.yaml"
    return ScenarioRun(file=file, config=config, settings=copy.deepcopy(checked.settings), data=data,
                       record=JournalRecord(file, ""), model_class=checked.model_class)


def execute(run, steps, start=0):
    """Check ``steps`` as a scenario (order included), then run them from ``start`` on (0-based)."""
    context = scenario_context(run.config, run.data)
    return TrainManager(run, check_scenario(parse_steps(steps), context=context)[start:]).execute()


WRAP = {"wrap_model": {"distil_loss": "NeumfUserRMSE", "users_emb_file": "u8.pt", "particular": True}}
TRAIN = [{"init_model": None}, {"init_trainer": None}, {"train": None}]


def test_every_command_has_a_handler_test():
    assert set(COMMANDS) - COVERED == set()


@covers("print")
def test_print_prints_its_text(tiny, tmp_path, capsys):
    assert execute(new_run(tiny, tmp_path), [{"print": "hello from a step"}]) == "done"
    assert "hello from a step" in capsys.readouterr().out.splitlines()


@covers("set")
def test_set_keeps_variables_and_selects_the_journal_part(tiny, tmp_path):
    run = new_run(tiny, tmp_path)
    execute(run, [{"set": {"train_part": 1, "variant": "llmkt"}}])
    assert run.variables == {"train_part": 1, "variant": "llmkt"} and run.record.train_part == 1


@covers("init_model")
def test_init_model_builds_the_configured_model_and_drops_wrapper_and_trainer(tiny, tmp_path):
    run = new_run(tiny, tmp_path)
    execute(run, [{"init_model": None}, WRAP, {"init_trainer": None}, {"init_model": None}])
    assert type(run.model).__name__ == "NeuMF" and run.model.user_mf_embedding.embedding_dim == 8
    assert run.distiller is None and run.trainer is None


@covers("wrap_model")
def test_wrap_model_wraps_with_the_loss_and_journals_it(tiny, tmp_path):
    run = new_run(tiny, tmp_path)
    execute(run, [{"init_model": None}, WRAP])
    assert run.distiller is not None and run.distiller.model is run.model and run.distiller.alpha == 0.5
    assert type(run.distiller.loss).__name__ == "NeumfUserRMSE"
    assert run.record.part_value("loss_name") == "NeumfUserRMSE" and run.record.part_value("users_emb") == "u8.pt"


@covers("reduce_dim")
def test_reduce_dim_writes_the_reduced_matrix_and_journals_it(tiny, tmp_path):
    run = new_run(tiny, tmp_path)
    execute(run, [{"reduce_dim": {"file_in": "u32.pt", "file_out": f"u4_{tmp_path.name}.pt", "dimension": 4,
                                  "method": "pca"}}])
    reduced = torch.load(run.embedding_path(f"u4_{tmp_path.name}.pt"), weights_only=True)
    assert tuple(reduced.shape) == (tiny[1].dataset.user_num, 4)
    (entry,) = run.record.part_value("reduce_dim")
    assert entry["method"] == "pca" and entry["dimension"] == 4


@covers("set_config")
def test_set_config_changes_the_config_and_the_distillers_weight_not_the_files(tiny, tmp_path, capsys):
    run = new_run(tiny, tmp_path)
    execute(run, [{"init_model": None}, WRAP, {"set_config": {"epochs": 3, "distil_loss_weight": 0.2}}])
    assert run.config["epochs"] == 3 and run.distiller.alpha == 0.2
    assert run.settings.distil_loss_weight == 0.5  # the file's value: settings are read-only once loaded
    out = capsys.readouterr().out
    assert "config[distil_loss_weight]: 0.5 -> 0.2" in out and "config[epochs]: 1 -> 3" in out  # before -> after
    assert tiny[0].config["epochs"] == 1  # the run's own copy changed
    with pytest.raises(UserError, match="unknown key 'epoch'; did you mean 'epochs'"):
        execute(run, [{"set_config": {"epoch": 3}}])


def test_set_config_of_the_weight_before_wrap_model_is_refused_by_the_check(tiny, tmp_path):
    with pytest.raises(UserError, match="needs wrap_model before it") as info:
        execute(new_run(tiny, tmp_path), [{"init_model": None}, {"set_config": {"distil_loss_weight": 0.2}}, WRAP])
    assert info.value.step == 2


def test_the_weight_set_after_wrap_model_is_the_one_trained_with_and_journaled(tiny, tmp_path):
    """The trainer's own epoch loss (RecBole's sum of the losses the Distiller returned) is the 0.2-weighted mix of
    the two losses, not the file's 0.5 one; the part's journal column and the row's say 0.2."""
    run = new_run(tiny, tmp_path)
    execute(run, [{"init_model": None}, WRAP, {"set_outputs": [9]}, {"set_config": {"distil_loss_weight": 0.2}},
                  {"init_trainer": None}, {"train": None}])
    (epoch,) = run.history[0]["trains"][0]["epochs"]
    mean = epoch["loss"] / len(run.data.train_parts[0])
    assert epoch["distil_loss"] > 0 and abs(epoch["model_loss"] - epoch["distil_loss"]) > 1e-3
    assert mean == pytest.approx(0.8 * epoch["model_loss"] + 0.2 * epoch["distil_loss"], rel=1e-4)
    assert mean != pytest.approx(0.5 * epoch["model_loss"] + 0.5 * epoch["distil_loss"], rel=1e-4)
    assert run.record.part_value("dist_loss_w") == 0.2 and run.record.values["dist_loss_w"] == 0.2


@covers("init_trainer")
def test_init_trainer_builds_a_trainer_of_the_model_with_the_distiller(tiny, tmp_path):
    run = new_run(tiny, tmp_path)
    execute(run, [{"init_model": None}, WRAP, {"set_config": {"epochs": 2}}, {"init_trainer": None}])
    assert run.trainer.model is run.model and run.trainer.distiller is run.distiller and run.trainer.epochs == 2


@covers("info")
def test_info_prints_counts_and_the_layer_table(tiny, tmp_path, capsys):
    run = new_run(tiny, tmp_path)
    execute(run, [{"init_model": None}, {"info": 0}])
    plain = capsys.readouterr().out
    assert "total_params" in plain and "mlp_layers.mlp_layers.1" not in plain
    execute(run, [{"init_model": None}, {"info": 2}])
    assert "mlp_layers.mlp_layers.1" in capsys.readouterr().out


@covers("set_train_dataset")
def test_set_train_dataset_selects_the_part_train_uses(tiny, tmp_path):
    run = new_run(tiny, tmp_path)
    execute(run, [{"set_train_dataset": 1}])
    assert run.train_ds == 1 and run.record.part_value("train_ds_ind") == 1
    with pytest.raises(UserError, match=r"training-part index .* got 3: there are 3 \(0-2\)"):
        execute(run, [{"set_train_dataset": 3}])


@covers("set_outputs", "remove_outputs")
def test_set_outputs_hooks_the_layer_and_remove_outputs_unhooks_it(tiny, tmp_path):
    run = new_run(tiny, tmp_path)
    execute(run, [{"init_model": None}, WRAP, {"set_outputs": [9]}])
    assert run.distiller.hooks.paths == ["mlp_layers.mlp_layers.1"]
    assert run.model.mlp_layers.mlp_layers[1]._forward_hooks
    assert run.record.part_value("set_outputs") == [9]
    execute(run, [{"init_model": None}, WRAP, {"set_outputs": [9]}, {"remove_outputs": None}])
    assert run.distiller.hooks.paths == [] and not run.model.mlp_layers.mlp_layers[1]._forward_hooks


@covers("set_trainable")
def test_set_trainable_changes_requires_grad_of_the_named_layers_only(tiny, tmp_path):
    run = new_run(tiny, tmp_path)
    execute(run, [{"init_model": None}, {"set_trainable": [["user_mf_embedding"], False]}])
    assert not run.model.user_mf_embedding.weight.requires_grad and run.model.item_mf_embedding.weight.requires_grad
    assert run.record.part_value("set_trainable") == [[["user_mf_embedding"], False]]
    freeze_all_but_the_last = [{"set_trainable": [["*"], False]}, {"set_trainable": [["predict_layer"], True]}]
    execute(run, [{"init_model": None}, *freeze_all_but_the_last], start=1)
    assert [n for n, p in run.model.named_parameters() if p.requires_grad] == ["predict_layer.weight",
                                                                                 "predict_layer.bias"]


@covers("train", "test_eval")
def test_train_fits_saves_and_journals_then_test_eval_journals_test_metrics(tiny, tmp_path):
    run = new_run(tiny, tmp_path)
    execute(run, [{"init_model": None}, WRAP, {"set_outputs": [9]}, {"set_train_dataset": 0}, {"init_trainer": None},
                  {"train": None}, {"test_eval": None}, {"test_eval": {"mode": "full", "metrics": ["Hit"]}}])
    assert Path(run.trained_file).is_file() and run.record.part_value("bestmodel_file") == run.trained_file
    assert run.record.part_value("epochs_run") == 1 and run.record.part_value("best_val_score") > 0
    (trained,) = run.history[0]["trains"]
    assert trained["train_ds"] == 0 and len(trained["epochs"]) == 1
    assert trained["epochs"][0]["distil_loss"] is not None  # the distillation loss ran in that epoch
    test = run.record.part_value("best_test_res")
    assert 0 <= test["ndcg@10"] <= 1 and 0 <= test["recall@10"] <= 1  # test_eval (uni100)
    assert 0 <= test["full:hit@10"] <= 1  # test_eval with params (full ranking): joins the same result, under
    assert "hit@10" not in test  # its protocol's name, so that it cannot overwrite the experiment's own metrics
    assert run.record.part_value("best_epoch") == 0
    assert len(run.history[0]["test_per_user"]["user"]) == len(run.history[0]["test_per_user"]["activity"]) > 0


@covers("load_from_file")
def test_load_from_file_restores_the_best_weights_or_resumes_the_checkpoint(tiny, tmp_path):
    run = new_run(tiny, tmp_path)
    execute(run, TRAIN)
    best = {k: v.clone() for k, v in run.model.state_dict().items()}
    with torch.no_grad():
        for param in run.model.parameters():
            param.add_(1.0)
    assert not any(torch.equal(best[k], v) for k, v in run.model.state_dict().items())
    execute(run, TRAIN + [{"load_from_file": {"file": "best", "resume": False}}], start=3)
    assert all(torch.equal(best[k], v) for k, v in run.model.state_dict().items())
    execute(run, TRAIN + [{"load_from_file": {"file": run.trained_file, "resume": True}}], start=3)
    assert run.trainer.start_epoch == 1
    with pytest.raises(UserError, match="train would run no epoch"):
        execute(run, TRAIN, start=2)


@covers("save_datasets")
def test_save_datasets_writes_every_split_next_to_the_experiment(tiny, tmp_path):
    execute(new_run(tiny, tmp_path), [{"save_datasets": None}])
    written = sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".tsv")
    assert len(written) == 5 and any("test" in name for name in written) and any("valid" in name for name in written)
    manifest = [p.name for p in tmp_path.iterdir() if p.suffix != ".tsv"]  # the splits it owns (issue 24)
    assert len(manifest) == 1 and manifest[0].endswith(".splits.json")
    test_split = next(p for p in tmp_path.iterdir() if "test" in p.name)
    assert len(test_split.read_text().splitlines()) - 1 == len(tiny[1].test.dataset)


@covers("debug_model")
def test_debug_model_prints_the_layers_parameters(tiny, tmp_path, capsys):
    execute(new_run(tiny, tmp_path), [{"init_model": None}, {"debug_model": "predict_layer"}])
    out = capsys.readouterr().out
    assert "parameters of" in out and "predict_layer" in out
    assert "weight: (1, 16) requires_grad=True" in out and "bias: (1,)" in out


@covers("break")
def test_break_stops_the_scenario_before_the_next_step(tiny, tmp_path):
    run = new_run(tiny, tmp_path)
    assert execute(run, [{"set": {"a": 1}}, {"break": None}, {"set": {"b": 2}}]) == "stopped"
    assert run.variables == {"a": 1}

"""One declaration per param: every command and every loss option is declared in the Schema language of
``utils/params.py``, ``--check`` (``check_experiment``) refuses a wrong value by that declaration's words, the
reference in docs/REFERENCE.md is what the declarations give, and the project's imports form no cycle."""

import ast
import sys

import pytest
import yaml
from helpers import ROOT, shrink

import models.losses as losses
from utils.errors import UserError
from utils.experiment import check_experiment
from utils.params import Kind, Schema
from utils.tmanager import COMMANDS

PREFIX = [{"init_model": None}, {"wrap_model": {"distil_loss": "NeumfUserRMSE", "users_emb_file": "u.pt"}},
          {"init_trainer": None}]
UNKNOWN = {"bogus_key": 1}
# A value each command's declaration refuses: a Kind's words or, for a mapping, the unknown-key line must follow.
BAD = {
    "set": {"train_part": -1}, "init_model": 5, "reduce_dim": UNKNOWN,
    "wrap_model": {"distil_loss": "NeumfUserRMSE", **UNKNOWN}, "set_config": UNKNOWN, "init_trainer": 5,
    "info": 7, "break": 5, "set_train_dataset": -1, "set_outputs": [], "set_trainable": [["*"], "no"], "train": 5,
    "test_eval": UNKNOWN, "remove_outputs": 5, "load_from_file": 5, "save_datasets": 5, "debug_model": 0,
}  # fmt: skip
TAKES_ANYTHING = {"print"}  # its params are any text


def experiment_with(folder, step):
    """A small NeuMF experiment whose scenario ends in ``step``."""
    path = shrink("neumf/neumf_ml100k.yaml", folder)
    raw = yaml.safe_load(path.read_text())
    raw["llm_config"] = {"embeddings_path": str(folder / "emb")}
    raw["scenario"] = PREFIX + [step]
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def refusal(folder, step):
    with pytest.raises(UserError) as info:
        check_experiment(experiment_with(folder, step), outputs=False)
    return info.value


def expected_words(declaration, value):
    """What the declaration's error must say about ``value``: a Kind's words; for a mapping, the unknown key, or
    (an open mapping, ``set``) the words of the one key given."""
    if isinstance(declaration, Schema):
        if declaration.open_ is True:
            (key,) = value
            return declaration.params[declaration.names.index(key)].kind.words
        return "unknown key 'bogus_key'"
    return declaration.words


def test_every_command_is_declared_and_has_a_value_its_declaration_refuses():
    assert set(BAD) | TAKES_ANYTHING == set(COMMANDS)
    for name, command in COMMANDS.items():
        assert isinstance(command.params, (Kind, Schema)), name
    assert COMMANDS["print"].params.check({"any": ["thing"]}) == "{'any': ['thing']}"


@pytest.mark.parametrize("name", sorted(BAD))
def test_check_refuses_each_commands_bad_params_in_its_declarations_words(tmp_path, name):
    err = refusal(tmp_path, {name: BAD[name]})
    assert err.step == len(PREFIX) + 1 and err.command == name
    assert expected_words(COMMANDS[name].params, BAD[name]) in err.message, err.line()
    if isinstance(COMMANDS[name].params, Schema) and name not in ("set", "set_config"):
        assert all(key in err.hint for key in COMMANDS[name].params.names), err.hint  # the keys it takes


LOSSES = losses.registered_losses()


def refused_value(kind):
    """A value ``kind`` refuses."""
    return next(value for value in (-5, "no-such-value", [], {}, 1.5) if not kind.accepts(value))


@pytest.mark.parametrize("loss", LOSSES)
def test_check_refuses_an_option_a_loss_does_not_declare_naming_the_loss_and_its_options(tmp_path, loss):
    err = refusal(tmp_path, {"wrap_model": {"distil_loss": loss, "users_emb_file": "u.pt", **UNKNOWN}})
    assert "unknown key 'bogus_key'" in err.message and f"{loss} takes no others" in err.hint
    assert all(param.name in err.hint for param in losses.find_loss(loss).options)


OPTIONS = [(loss, param) for loss in LOSSES for param in losses.find_loss(loss).options]


@pytest.mark.parametrize("loss,param", OPTIONS, ids=[f"{loss}.{param.name}" for loss, param in OPTIONS])
def test_check_refuses_a_bad_loss_option_by_its_declaration(tmp_path, loss, param):
    value = refused_value(param.kind)
    err = refusal(tmp_path, {"wrap_model": {"distil_loss": loss, "users_emb_file": "u.pt", param.name: value}})
    assert f"{param.name} must be {param.kind.words}, got {value!r}" in err.message


sys.path.insert(0, str(ROOT / "tools"))
import reference  # noqa: E402  (tools/ is no package)

MODEL_SETTINGS = [(title.split()[1], schema, param) for title, schema in reference.model_settings()
                  for param in schema.params]


def model_experiment(folder, model, settings):
    """A small experiment of ``model`` that only builds it, with ``settings`` added to its RecBole part."""
    path = experiment_with(folder, {"init_model": None})
    raw = yaml.safe_load(path.read_text())
    raw.update({"model": model, "scenario": [{"init_model": None}], **settings})
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def test_the_models_that_declare_settings_are_found():
    assert {model for model, _, _ in MODEL_SETTINGS} == {"NeuMF", "HybridNeuMF", "ItemReference"}
    assert {"neumf_full_sort", "item_text_mode", "candidate_items", "item_reference"} <= {
        param.name for _, _, param in MODEL_SETTINGS}


@pytest.mark.parametrize("model,schema,param", MODEL_SETTINGS, ids=[f"{m}.{p.name}" for m, _, p in MODEL_SETTINGS])
def test_check_refuses_a_bad_model_setting_by_its_declaration(tmp_path, model, schema, param):
    value = refused_value(param.kind)
    with pytest.raises(UserError) as info:
        check_experiment(model_experiment(tmp_path, model, {param.name: value}), outputs=False)
    assert f"{param.name} must be {param.kind.words}, got {value!r}" in info.value.message, info.value.line()


def test_check_refuses_sparse_candidates_with_the_pair_scorer_by_the_declared_rule(tmp_path):
    path = model_experiment(tmp_path, "HybridNeuMF", {"candidate_items": "sparse", "neumf_full_sort": "pairs"})
    with pytest.raises(UserError) as info:
        check_experiment(path, outputs=False)
    assert info.value.message == "candidate_items: sparse needs neumf_full_sort: parts, got 'pairs'"
    assert "neumf_full_sort: parts" in info.value.hint
    path = model_experiment(tmp_path, "HybridNeuMF", {"candidate_items": "sparse", "neumf_full_sort": "parts"})
    assert check_experiment(path, outputs=False).model_class.__name__ == "HybridNeuMF"


def test_the_reference_is_what_the_declarations_give():
    assert (ROOT / "docs" / "REFERENCE.md").read_text(encoding="utf-8") == reference.reference_text(), \
        "docs/REFERENCE.md is stale: run python tools/reference.py"
    text = reference.reference_text()
    assert all(f"| `{name}` |" in text for name in COMMANDS) and all(f"| `{name}` |" in text for name in LOSSES)


def test_the_reference_states_every_rule_across_keys_as_its_error_line():
    """Rules across keys are declarations too: each schema's rules are listed under its table, as the error line
    they give without the quoted value."""
    from models.hybridneumf import SETTINGS as HYBRID
    from utils.evaluation import TEST_EVAL
    from utils.params import rule_text
    from utils.profiles import PROFILE_SPEC
    from utils.settings import COLD_START, PREPROCESS_RANDOM, RECBOLE

    text = reference.reference_text()
    schemas = (HYBRID, TEST_EVAL, PROFILE_SPEC, COLD_START, RECBOLE, PREPROCESS_RANDOM)
    rules = [rule for schema in schemas for rule in schema.rules]
    assert len(rules) >= 6 and all(f"- {rule_text(rule)}" in text for rule in rules)
    assert "<model> needs kar_user_emb_file and/or kar_item_emb_file" in text and "{value" not in text


# --- the import graph ---------------------------------------------------------------------------------------------

PACKAGES = ("utils", "models")


def module_name(path):
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path, modules):
    """The project modules ``path`` imports, at the top or inside a function (both make a cycle at run time)."""
    own = module_name(path)
    package = own if path.name == "__init__.py" else own.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name in modules and name != own}


def find_cycle(graph):
    """One cycle of ``graph`` (module -> imported modules) as a list, or None."""
    state = {}

    def visit(node, path):
        state[node] = "open"
        for child in sorted(graph[node]):
            if state.get(child) == "open":
                return path[path.index(child):] + [child]
            if child not in state:
                cycle = visit(child, path + [child])
                if cycle:
                    return cycle
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state:
            cycle = visit(start, [start])
            if cycle:
                return cycle
    return None


def test_find_cycle_finds_a_cycle_and_only_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_projects_import_graph_has_no_cycle():
    paths = [path for package in PACKAGES for path in (ROOT / package).rglob("*.py")]
    modules = {module_name(path) for path in paths}
    graph = {module_name(path): imports_of(path, modules) for path in paths}
    assert graph["models.losses"] and "utils.params" in graph["models.losses"]  # the walk sees imports at all
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_reference_check_mode_says_current(capsys):
    """``tools/reference.py --check``, in this process (its exit status is main's return value)."""
    assert reference.main(["--check"]) == 0
    assert capsys.readouterr().out == "docs/REFERENCE.md is current\n"


def test_check_refuses_value_metrics_without_labeled_mode_by_the_declared_rule(tmp_path):
    err = refusal(tmp_path, {"test_eval": {"metrics": ["AUC"]}})  # the experiment's test mode is full
    assert err.command == "test_eval" and err.message.startswith("value metrics (AUC, LogLoss, ...) need mode: labeled")
    path = experiment_with(tmp_path, {"test_eval": {"metrics": ["AUC", "LogLoss"], "mode": "labeled"}})
    assert check_experiment(path, outputs=False).steps[-1][2] == {"metrics": ["AUC", "LogLoss"], "mode": "labeled"}

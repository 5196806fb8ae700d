"""The device an experiment trains on: chosen from use_gpu / gpu_id and the GPUs present, said in the header, and
every tensor of the wrapper, losses and KAR models follows the model's device.

No GPU is needed: the CUDA queries are faked for the choice, and the ``meta`` device stands in for a GPU when a
training loss is computed (like CUDA, it refuses to mix with a CPU tensor that is not a scalar or an index).
"""

import copy

import pytest
import torch
import yaml
from helpers import build

from models import losses
from utils import device as dev
from utils import wrapper as wrap
from utils.config_loading import ExperimentConfig
from utils.embeddings import pca_torch
from utils.registry import get_model_class

META = torch.device("meta")


@pytest.fixture
def gpus(monkeypatch):
    """Pretend this machine has ``n`` CUDA devices (0: none); RecBole's CUDA_VISIBLE_DEVICES is restored after."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")

    def fake(n):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: n > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: n)
        monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: "Fake GPU")

    return fake


def test_a_gpu_is_used_by_default_when_present(gpus):
    gpus(1)
    assert dev.choose_device() == torch.device("cuda")
    assert dev.choose_device(None, "0") == torch.device("cuda")
    assert dev.describe_device(dev.choose_device()) == "cuda:0 (Fake GPU)"


def test_without_a_gpu_the_cpu_is_used_and_said_why(gpus):
    gpus(0)
    assert dev.choose_device() == torch.device("cpu")
    assert dev.describe_device("cpu") == "cpu (no CUDA device)"


def test_use_gpu_false_and_an_empty_gpu_id_keep_the_cpu_even_with_a_gpu(gpus):
    gpus(2)
    assert dev.choose_device(False, "0") == torch.device("cpu")
    assert dev.describe_device("cpu", use_gpu=False) == "cpu (use_gpu: False)"
    assert dev.choose_device(True, "") == torch.device("cpu")


@pytest.mark.parametrize("use_gpu, expected", [(None, "cuda"), (True, "cuda"), (False, "cpu")])
def test_the_experiment_config_honours_use_gpu_which_recbole_ignores(gpus, use_gpu, expected):
    gpus(1)
    settings = {"state": "ERROR"} if use_gpu is None else {"state": "ERROR", "use_gpu": use_gpu}
    config = ExperimentConfig(model=get_model_class("NeuMF"), dataset="ml-100k", config_dict=settings)
    assert config["device"].type == expected


# ------------------------------------------------------------------ no tensor left on the CPU


def ours(module):
    return type(module).__module__.split(".")[0] in ("utils", "models")


def plain_tensors(module):
    """(module, attribute) pairs of tensors kept as plain attributes, not parameters or buffers."""
    for sub in module.modules():
        for attr, value in vars(sub).items():
            if isinstance(value, torch.Tensor) and not isinstance(value, torch.nn.Parameter):
                yield sub, attr


def stray_tensors(module):
    """Plain tensor attributes of our own modules: ``.to(device)`` would leave them behind."""
    return [f"{type(sub).__name__}.{attr}" for sub, attr in plain_tensors(module) if ours(sub)]


def on_meta(model):
    """The model moved to the meta device as RecBole would place it on a GPU: RecBole's models create some tensors
    as plain attributes on ``config['device']`` and read ``self.device`` per batch; those follow too."""
    model = model.to(META)
    for sub, attr in list(plain_tensors(model)):
        setattr(sub, attr, getattr(sub, attr).to(META))
    for sub in model.modules():
        if isinstance(getattr(sub, "device", None), torch.device):
            sub.device = META
    return model


CASES = [
    ("NeuMF", "NeumfUserRMSE", "mlp_layers.mlp_layers.1", {}),
    ("NeuMF", "NeumfUserCosine", "user_mf_embedding", {}),
    ("SimpleX", "SimpleXUserRMSE", "dropout", {}),
    ("MultiVAE", "HiddenDistil", "decoder.0", {"source": "input", "rows": "batch", "distance": "cosine"}),
]


@pytest.mark.parametrize("model_name, loss_name, layer, options", CASES)
def test_the_combined_training_loss_stays_on_the_models_device(built, model_name, loss_name, layer, options):
    _, data, model = built(model_name)
    model = copy.deepcopy(model)
    profiles = torch.randn(data.dataset.user_num, 8)
    loss = getattr(losses, loss_name)(model, data.train_dataset, user_emb=profiles, particular=True, **options)
    distiller = wrap.Distiller(model, loss, alpha=0.5)
    distiller.set_outputs([layer])
    assert stray_tensors(model) == [] and stray_tensors(loss) == []
    on_meta(model), on_meta(loss)  # in place: the distiller and its hooks keep these same objects
    assert {t.device for t in list(model.parameters()) + list(model.buffers()) + list(loss.buffers())} == {META}
    model.train()
    combined = distiller(next(iter(data.train_parts[0])).to(META))
    assert combined.device == META and combined.dim() == 0


def test_kar_profile_inputs_follow_the_models_device(tmp_path):
    user_file = tmp_path / "kar_user.pt"
    config, data, _ = build("AutoInt")
    torch.save(torch.randn(data.dataset.user_num - 1, 6), user_file)
    _, data, model = build("AutoIntKar", kar_user_emb_file=str(user_file), load_col=config["load_col"],
                           eval_args=config["eval_args"])
    assert stray_tensors(model) == []
    model = on_meta(model)
    assert model.kar_user_emb.device == META
    loss = model.calculate_loss(next(iter(data.train_parts[0])).to(META))
    assert loss.device == META


# ------------------------------------------------------------------ profile encoding and reduce_dim


def test_pca_on_torch_as_on_a_gpu_gives_scikit_learns_result():
    from sklearn.decomposition import PCA

    matrix = torch.randn(300, 40, generator=torch.Generator().manual_seed(3)) @ torch.randn(40, 40)
    expected = PCA(n_components=8, svd_solver="full").fit_transform(matrix.double().numpy())
    reduced = pca_torch(matrix, 8, torch.device("cpu"))
    assert reduced.shape == (300, 8)
    assert torch.allclose(reduced, torch.from_numpy(expected), atol=1e-6)


def test_reduce_dim_names_the_gpu_it_ran_on(gpus, monkeypatch):
    from utils import embeddings

    gpus(1)
    ran_on = []
    monkeypatch.setattr(embeddings, "pca_torch", lambda m, d, device: ran_on.append(device) or pca_torch(m, d, "cpu"))
    reduced, used = embeddings.reduce_matrix(torch.randn(50, 12), 4, "pca", device=torch.device("cuda"))
    assert (reduced.shape, used, ran_on) == ((50, 4), "pca on cuda", [torch.device("cuda")])
    assert embeddings.reduce_matrix(torch.randn(50, 12), 4, "pca", device=torch.device("cpu"))[1] == "pca"


def test_minilm_encodes_on_the_gpu_when_present(gpus, monkeypatch):
    from utils import encoders

    gpus(1)
    asked = []

    class Recorder:
        def encode(self, texts, **kwargs):
            return [[0.0, 1.0] for _ in texts]

    monkeypatch.setattr(encoders, "load_minilm", lambda device: asked.append(device) or Recorder())
    encoders.encode(["a", "b"], "minilm", progress=False)
    encoders.encode(["a"], "minilm", progress=False, device=torch.device("cpu"))
    assert asked == ["cuda", "cpu"]


def test_no_ready_scenario_forces_the_cpu():
    from helpers import EXPERIMENTS

    files = sorted(EXPERIMENTS.rglob("*.yaml"))
    assert len(files) > 100
    # only a file that names the key can set it (parsing all of them, a thousand sweep files, took 20 s)
    naming = [f for f in files if "use_gpu" in f.read_text()]
    forcing = [str(f.relative_to(EXPERIMENTS)) for f in naming if yaml.safe_load(f.read_text()).get("use_gpu") is False]
    assert forcing == []

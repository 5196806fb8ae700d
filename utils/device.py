"""Which device an experiment trains on, and how that is said in the run's header.

RecBole 1.2.1 picks ``cuda`` whenever CUDA is available and ``gpu_id`` is not empty, and ignores ``use_gpu`` for
that choice (it only reads it for memory reports). Here ``use_gpu: False`` keeps an experiment on the CPU, and
leaving it out means RecBole's default: the GPU when there is one, else the CPU.
"""

import torch


def choose_device(use_gpu=True, gpu_id="0"):
    """The training device for these settings on this machine.

    Args:
        use_gpu: the experiment's ``use_gpu`` (None or missing counts as RecBole's default, True).
        gpu_id: RecBole's ``gpu_id`` ('' means no GPU); RecBole has already set ``CUDA_VISIBLE_DEVICES`` from it.

    Returns:
        torch.device: ``cuda`` (the first visible GPU) or ``cpu``.
    """
    if use_gpu is False or not str(gpu_id if gpu_id is not None else "").strip():
        return torch.device("cpu")
    if not torch.cuda.is_available() or torch.cuda.device_count() < 1:
        return torch.device("cpu")
    return torch.device("cuda")


def describe_device(device, use_gpu=True):
    """One phrase for the header line, e.g. 'cuda:0 (NVIDIA H200)', 'cpu (no CUDA device)'."""
    device = torch.device(device)
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    if device.type == "cpu":
        if use_gpu is False:
            return "cpu (use_gpu: False)"
        return "cpu (no CUDA device)" if not torch.cuda.is_available() else "cpu (gpu_id is empty)"
    return str(device)


def default_device():
    """For work outside an experiment's config (encoding profiles, reducing matrices): the GPU when present."""
    return choose_device(True, "0")

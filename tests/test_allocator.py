"""Freed tensor memory stays in the process: a repeated step does not page-fault its buffers back in.

Each case runs in a fresh interpreter (malloc's settings are per process); page faults are counted, not time,
step by step: the heap may still grow during the first few steps (how many depends on the machine), so the median
step is what is compared.
"""

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

STEPS = """
import json, resource, sys
sys.path.insert(0, {root!r})
import torch
from utils.allocator import keep_freed_memory
applied = keep_freed_memory()
def step():  # the shape of an optimizer step: a few 4 MiB temporaries, allocated and freed
    x = torch.ones(1 << 20)
    y = x.sqrt().add_(1)
    return float(y.addcdiv(x, y).sum())
step()
faults = []
for _ in range(50):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    step()
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps({{"applied": applied, "faults": faults}}))
"""


def run_steps(**env):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    done = subprocess.run([sys.executable, "-c", STEPS.format(root=str(ROOT))], env={**clean, **env},
                          capture_output=True, text=True, timeout=120, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


PAGES_PER_STEP = 3 * (4 << 20) // 4096  # three 4 MiB buffers, if each were faulted in again


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_repeated_steps_reuse_their_memory_without_page_faults():
    result = run_steps()
    assert result["applied"]
    assert statistics.median(result["faults"]) < 0.05 * PAGES_PER_STEP


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_a_malloc_tunable_in_the_environment_is_left_alone():
    # the settings this would override are the user's: and with them every step faults its pages in again
    result = run_steps(MALLOC_TRIM_THRESHOLD_="0", MALLOC_MMAP_THRESHOLD_="131072")
    assert not result["applied"]
    assert statistics.median(result["faults"]) > 0.5 * PAGES_PER_STEP

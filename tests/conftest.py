"""Shared fixtures: tiny LLaDA- and Dream-format checkpoints and tokenizers, built offline."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

from trl_lift import load_diffusion_model  # noqa: E402
from trl_lift.testing import make_tiny_dream, make_tiny_llada, make_tiny_tokenizer, sharpen_weights  # noqa: E402

try:  # quiet progress bars in test logs
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
except ImportError:  # pragma: no cover
    pass

# One thread: on a busy 2-core machine two threads made each tiny matmul ~80x slower.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def llada_tokenizer():
    return make_tiny_tokenizer("llada")


@pytest.fixture(scope="session")
def dream_tokenizer():
    return make_tiny_tokenizer("dream")


@pytest.fixture(scope="session")
def llada_checkpoint(tmp_path_factory, llada_tokenizer):
    """(path, native model with the same weights) of a tiny LLaDA-format checkpoint."""
    path = str(tmp_path_factory.mktemp("llada"))
    return path, make_tiny_llada(path, llada_tokenizer)


@pytest.fixture(scope="session")
def dream_checkpoint(tmp_path_factory, dream_tokenizer):
    """(path, native model with the same weights) of a tiny Dream-format checkpoint."""
    path = str(tmp_path_factory.mktemp("dream"))
    return path, make_tiny_dream(path, dream_tokenizer)


@pytest.fixture(scope="module")
def llada(llada_checkpoint):
    """Tiny LLaDA loaded natively, re-drawn so its predictions depend on context and are confident.

    One per test module: some sampler tests reshape its head.
    """
    return sharpen_weights(load_diffusion_model(llada_checkpoint[0]))


@pytest.fixture(scope="module")
def dream(dream_checkpoint):
    """Tiny Dream, sharpened like ``llada``."""
    return sharpen_weights(load_diffusion_model(dream_checkpoint[0]))


def pytest_configure(config):
    data = os.environ.get("TRL_LIFT_DATA_DIR")
    if data and not os.path.isdir(os.path.expanduser(data)):  # a typo would otherwise skip every data test
        raise pytest.UsageError(f"TRL_LIFT_DATA_DIR={data} is no folder: point it at the benchmark data "
                                "(e.g. ../shared/data), or unset it.")


def pytest_report_header(config):
    from test_tasks_lm_eval import DATA_DIR

    state = "found" if DATA_DIR.is_dir() else "ABSENT: the tests that need it skip (set TRL_LIFT_DATA_DIR)"
    return f"benchmark data: {DATA_DIR} ({state})"

"""Loading the models prints nothing: no per-load progress bars, no third-party deprecation warnings."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import pytest

from r2r_agent.progress import quiet_loading


def test_quiet_loading_restores_the_callers_progress_bar_setting() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.enable_progress_bar()
    with quiet_loading():
        assert not hf_logging.is_progress_bar_enabled()
        with quiet_loading():  # nested loads (a student loading its scorer) keep them off until the last one ends
            pass
        assert not hf_logging.is_progress_bar_enabled()
    assert hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    with quiet_loading():
        pass
    assert not hf_logging.is_progress_bar_enabled()  # a caller who turned them off keeps them off
    hf_logging.enable_progress_bar()


def test_quiet_loading_hides_only_the_known_warning() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with quiet_loading():
            warnings.warn("`is_gradient_checkpointing` is deprecated and will be removed in v6.", FutureWarning,
                          stacklevel=1)
            warnings.warn("something else is deprecated", FutureWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["something else is deprecated"]


@pytest.mark.slow
def test_loading_and_using_the_default_models_prints_nothing_to_stderr() -> None:
    script = ("from r2r_agent import Reranker\n"
              "ranking = Reranker().rerank('how long do fleas live', ['Adult fleas live 2-3 months.', "
              "'Cats sleep a lot.'], explain='full', explain_top=1)\n"
              "print(ranking[0].verdict)\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("R2R_TRACE_PATH", None)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() in {"relevant", "partial", "not_relevant"}
    assert done.stderr == ""

"""Run by ``accelerate launch`` in test_accelerate.py: one trainer on the tiny models, config from argv (JSON)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # conftest's keyword teacher

from conftest import keyword_reply  # noqa: E402

from r2r_agent.training import (  # noqa: E402
    AnnotationRequest,
    DatasetConfig,
    DistillConfig,
    EncoderDistillConfig,
    ScriptedTeacher,
    annotate,
    build_dataset,
    distill,
    distill_encoder,
)


def tiny_dataset():
    """The keyword teacher's dataset of test_distill.py: it ranks by the "score N" in each passage."""
    teacher = ScriptedTeacher(default=keyword_reply, name="keyword")
    requests = [AnnotationRequest(str(q), f"how long do fleas live {q}",
                                  [f"fleas live score {(3 * q + 5 * i) % 10} days on a cat" for i in range(4)])
                for q in range(12)]
    return build_dataset(annotate(teacher, requests).annotations, DatasetConfig(validation_fraction=0.25,
                                                                                 explain_top=2))


def main() -> None:
    trainer, model_dir, output_dir, settings = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
    if trainer == "lm":
        distill(model_dir, tiny_dataset(), output_dir, DistillConfig(**settings))
    else:
        distill_encoder(model_dir, tiny_dataset(), output_dir, EncoderDistillConfig(**settings))


if __name__ == "__main__":
    main()

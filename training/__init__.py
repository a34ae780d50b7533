"""r2r_agent.training: teacher annotation, dataset building and distillation of the student.

Teachers: an OpenAI-compatible endpoint, a local ``transformers`` model, a LangChain or LlamaIndex model, or a
scripted fake; :class:`TeacherSettings` picks one by name (``openai:MODEL``, ``transformers:PATH``).

Heavy or optional dependencies (httpx, LangChain, LlamaIndex, torch, peft) load only when the part that needs them
is used.
"""

from __future__ import annotations

from .annotate import AnnotationConfig, AnnotationRequest, annotate_query, annotate_window
from .annotation_run import AnnotationInterrupted, AnnotationRun, AnnotationStop, annotate
from .cache import AnnotationCache
from .dataset import (
    DatasetConfig,
    DatasetSplit,
    DistillationDataset,
    ExplanationExample,
    RankingExample,
    build_dataset,
    split_query_ids,
)
from .distill import Distiller, DistillResult, distill
from .distill_config import DistillConfig
from .encoder_config import EncoderDistillConfig
from .encoder_distill import EncoderDistiller, EncoderDistillResult, distill_encoder
from .errors import (
    AnnotationFormatError,
    CacheError,
    CheckpointError,
    DamagedCheckpointError,
    DistillError,
    ParseError,
    SplitLeakageError,
    TeacherError,
    UnsafeCheckpointError,
)
from .framework_teachers import LangChainTeacher, LlamaIndexTeacher
from .http_teacher import OpenAIChatTeacher
from .local_teacher import TransformersTeacher
from .loop_config import LoopConfig
from .losses import listnet_loss, ranking_targets, ranknet_loss
from .parsing import parse_teacher_answer
from .r2r_import import load_r2r_annotations, r2r_row_to_annotation
from .records import QueryAnnotation, WindowAnnotation
from .teacher import ScriptedTeacher, Teacher, TeacherAnswer
from .teacher_choice import TeacherSettings, parse_teacher_spec
from .windows import sliding_windows, window_hash

__all__ = [
    "AnnotationCache",
    "AnnotationConfig",
    "AnnotationFormatError",
    "AnnotationInterrupted",
    "AnnotationRequest",
    "AnnotationRun",
    "AnnotationStop",
    "CacheError",
    "CheckpointError",
    "DamagedCheckpointError",
    "DatasetConfig",
    "DistillConfig",
    "DistillError",
    "DistillResult",
    "DatasetSplit",
    "DistillationDataset",
    "Distiller",
    "EncoderDistillConfig",
    "EncoderDistillResult",
    "EncoderDistiller",
    "ExplanationExample",
    "LangChainTeacher",
    "LlamaIndexTeacher",
    "LoopConfig",
    "OpenAIChatTeacher",
    "ParseError",
    "QueryAnnotation",
    "RankingExample",
    "ScriptedTeacher",
    "SplitLeakageError",
    "Teacher",
    "TeacherAnswer",
    "TeacherError",
    "TeacherSettings",
    "TransformersTeacher",
    "UnsafeCheckpointError",
    "WindowAnnotation",
    "annotate",
    "annotate_query",
    "annotate_window",
    "build_dataset",
    "distill",
    "distill_encoder",
    "listnet_loss",
    "load_r2r_annotations",
    "parse_teacher_answer",
    "parse_teacher_spec",
    "r2r_row_to_annotation",
    "ranking_targets",
    "ranknet_loss",
    "sliding_windows",
    "split_query_ids",
    "window_hash",
]

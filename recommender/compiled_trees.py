"""A LightGBM model's trees compiled to machine code (lleaves, through LLVM) for scoring.

Scoring every story's candidates is most of a train's time on a large catalog, and most of
that is walking 300 trees for each pair in LightGBM's own predictor. Compiled, each tree is
a chain of compare-and-branch instructions: the same scores (LightGBM's raw scores to the
last bits of a double, and identical once squashed to the float32 that answers carry), in a
fraction of the time (docs/scaling.md, "Where a full train's time goes"). Compiling takes
seconds, so `RelatedModel` does it only for catalogs large enough to win them back
(`compile_min_stories`).

The code is compiled for a generic CPU of this machine's architecture, not for its exact
model, so that a model trained here runs on any serving or cluster machine of the same
architecture. It travels inside the pickled model as the object file's bytes; a process
loads it on first use. Where it cannot run (another architecture, or lleaves not
installed), scores come from LightGBM's predictor, with one warning.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


class CompiledTrees:
    """The compiled trees of one LightGBM model: `raw_scores(X)` as `Booster.predict`."""

    def __init__(self, model_text: str) -> None:
        import llvmlite.binding as llvm

        self._model, self.object_code = _lleaves_model(model_text, None)
        self.model_text = model_text
        self.triple = llvm.get_process_triple()
        self._lock = threading.Lock()

    def __getstate__(self) -> dict:
        return {"model_text": self.model_text, "object_code": self.object_code,
                "triple": self.triple}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._model = None  # loaded on first use, in the process that scores
        self._lock = threading.Lock()

    def raw_scores(self, X: np.ndarray) -> np.ndarray | None:
        """LightGBM's raw scores for the rows of `X`, or None where this process cannot run
        the compiled code (the caller then asks LightGBM)."""
        model = self._model if self._model is not None else self._load()
        if model is False:
            return None
        return model.predict(np.ascontiguousarray(X, dtype=np.float64), n_jobs=1)

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                self._model = _loaded(self.model_text, self.object_code, self.triple)
        return self._model


def _loaded(model_text: str, object_code: bytes, triple: str) -> Any:
    """The lleaves model over the kept object code, or False when it cannot run here."""
    try:
        import llvmlite.binding as llvm

        here = llvm.get_process_triple()
        if here == triple:
            return _lleaves_model(model_text, object_code)[0]
        why = f"compiled for {triple}, this is {here}"
    except ImportError as exc:
        why = str(exc)
    log.warning("compiled trees not used (%s): scoring with LightGBM's predictor", why)
    return False


def _lleaves_model(model_text: str, object_code: bytes | None) -> tuple[Any, bytes]:
    """(lleaves model, its object code): compiled now when `object_code` is None, else
    loaded from it (lleaves reads a cache file it finds instead of compiling)."""
    import lleaves

    with tempfile.TemporaryDirectory(prefix="recommender-trees-") as tmp:
        source, code = Path(tmp) / "model.txt", Path(tmp) / "model.o"
        source.write_text(model_text)
        if object_code is not None:
            code.write_bytes(object_code)
        model = lleaves.Model(model_file=str(source))
        model.compile(cache=str(code), target_cpu="generic", target_cpu_features="")
        return model, code.read_bytes()

"""zoft from Python: the engine of the `zoft` CLI, loaded in-process (docs/python.md).

    import zoft
    m = zoft.Model.load("models/smollm2-135m")
    print(m.generate("The capital of France is", max_new_tokens=8))

Everything computes in the C++ engine (zoft._core) with the GIL released; results that are
arrays (logits, per-token losses) are NumPy views of memory the engine owns, handed to PyTorch
without a copy by DLPack (torch.from_dlpack). Errors are zoft.Error (a RuntimeError) with the
message the CLI prints after "zoft: error: ".
"""

from __future__ import annotations

import atexit
import codecs
import json
import os
import queue
import tempfile
import threading
import weakref
from dataclasses import dataclass, field
from typing import Callable, Iterator, Mapping, Optional, Sequence, Union

import numpy as np

from . import _core
from ._core import Error, HostArray

Error.__module__ = "zoft"  # shown as zoft.Error in tracebacks

__all__ = ["Error", "Model", "Tokenizer", "TrainResult", "evaluate", "train"]
__version__ = "0.1.0"


def _engine_array(handle: HostArray) -> np.ndarray:
    """A NumPy view of an engine-owned buffer (no copy; the view keeps the buffer alive)."""
    return np.asarray(handle)


def _batch(ids, attention_mask=None):
    """ids as a C-contiguous int32 [batch, seq] array (a 1-D sequence is one row) and its mask."""
    ids = np.asarray(ids)
    single = ids.ndim == 1
    if single:
        ids = ids[None, :]
    if ids.ndim != 2 or ids.shape[1] == 0:
        raise Error(f"ids must be a non-empty 1-D or 2-D array of token ids, got shape {ids.shape}")
    if not np.issubdtype(ids.dtype, np.integer):
        raise Error(f"ids must be integers, got {ids.dtype}")
    if attention_mask is None:
        mask = np.ones(ids.shape, dtype=np.uint8)
    else:
        mask = np.asarray(attention_mask)
        mask = mask[None, :] if mask.ndim == 1 else mask
        if mask.shape != ids.shape:
            raise Error(f"attention_mask has shape {mask.shape}, ids {ids.shape}")
        mask = np.ascontiguousarray(mask != 0, dtype=np.uint8)
    return np.ascontiguousarray(ids, dtype=np.int32), mask, single


class Tokenizer:
    """The model's tokenizer: ids equal those of the `tokenizers` package."""

    def __init__(self, core: _core.Tokenizer):
        self._core = core

    @staticmethod
    def from_file(path: str) -> "Tokenizer":
        return Tokenizer(_core.Tokenizer.from_file(os.fspath(path)))

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return self._core.encode(text, add_special_tokens)

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        return self._core.decode([int(i) for i in ids], skip_special_tokens)

    def token_bytes(self, id: int) -> bytes:
        """The bytes token `id` stands for ('' for special tokens is up to the caller)."""
        return self._core.token_bytes(int(id))

    def is_special(self, id: int) -> bool:
        return self._core.is_special(int(id))

    @property
    def bos_id(self) -> int:
        return self._core.bos_id

    @property
    def eos_id(self) -> int:
        return self._core.eos_id

    @property
    def pad_id(self) -> int:
        return self._core.pad_id

    @property
    def vocab_size(self) -> int:
        return self._core.vocab_size


class Model:
    """A decoder loaded by the engine: an HF directory or a .gguf file."""

    def __init__(self, core: _core.Model, device: str = "cpu", max_memory: str = "",
                 offload_dir: str = "", prefetch: int = 2):
        self._core = core
        self._tokenizer = Tokenizer(core.tokenizer) if core.has_tokenizer else None
        self._device = device
        self._max_memory = max_memory
        self._offload_dir = offload_dir
        self._prefetch = prefetch

    @staticmethod
    def load(
        path: Union[str, os.PathLike],
        dtype: str = "bf16",
        device: str = "cpu",
        max_memory: Optional[str] = None,
        offload_dir: Optional[str] = None,
        threads: Optional[int] = None,
        prefetch: int = 2,
    ) -> "Model":
        """Loads MODEL as `zoft generate --model MODEL --dtype DTYPE ...` does.

        dtype: compute dtype, "bf16" or "f32"; device: "cpu", or "cuda" (as --device cuda: the
        weights uploaded once; a build with ZOFT_CUDA and a GPU, else zoft.Error saying why);
        max_memory / offload_dir: stream the layers that do not fit (e.g. max_memory="cpu=2GiB");
        threads: CPU threads (None or 0: all cores). The same checks and messages as the CLI's
        --dtype / --device / --max-memory / --offload-dir / --threads / --prefetch.
        """
        core = _core.Model(
            os.fspath(path), dtype, device, max_memory or "", offload_dir or "", threads or 0,
            prefetch,
        )
        return Model(core, device, max_memory or "", offload_dir or "", prefetch)

    @property
    def path(self) -> str:
        return self._core.path

    @property
    def dtype(self) -> str:
        return self._core.dtype

    @property
    def device(self) -> str:
        return self._device

    @property
    def config(self) -> dict:
        """The architecture, with config.json's key names."""
        return self._core.config

    @property
    def tokenizer(self) -> Tokenizer:
        if self._tokenizer is None:
            self._core.tokenizer  # raises zoft.Error saying why there is none
        return self._tokenizer

    def _ids(self, ids_or_text):
        if isinstance(ids_or_text, str):
            return self.tokenizer.encode(ids_or_text)
        return ids_or_text

    def logits(self, ids, attention_mask=None) -> np.ndarray:
        """float32 logits [batch, seq, vocab] ([seq, vocab] for one sequence; text is encoded).

        The array views memory the engine owns (no copy); torch.from_dlpack takes it as is.
        Padded positions (attention_mask 0) hold unspecified values.
        """
        ids, mask, single = _batch(self._ids(ids), attention_mask)
        out = _engine_array(self._core.logits(ids, mask))
        return out[0] if single else out

    def token_losses(self, ids, labels=None, attention_mask=None) -> np.ndarray:
        """Per-token negative log-likelihoods (nats), float32 [batch, seq - 1].

        labels follow Hugging Face's convention: shaped like ids, shifted inside, -100 (any
        negative) ignored; None = ids where the mask is 1. out[b, t] = -log p(labels[b, t + 1] |
        ids[b, :t + 1]), 0 where the label is ignored. A view of engine memory, as logits().
        """
        ids, mask, single = _batch(self._ids(ids), attention_mask)
        if labels is None:
            labels = np.where(mask != 0, ids, -100)
        labels = np.asarray(labels)
        labels = labels[None, :] if labels.ndim == 1 else labels
        if labels.shape != ids.shape:
            raise Error(f"labels have shape {labels.shape}, ids {ids.shape}")
        targets = np.full(ids.shape, -1, dtype=np.int32)
        targets[:, :-1] = np.where(labels[:, 1:] < 0, -1, labels[:, 1:])
        out = _engine_array(self._core.token_losses(ids, mask, targets))[:, :-1]
        return out[0] if single else out

    def perplexity(
        self, text_or_path: Union[str, os.PathLike], window: int = 0, stride: int = 0,
        max_tokens: int = 0, text_field: str = "text",
    ) -> dict:
        """Perplexity of a text, or of a file as `zoft eval --data FILE` reads it (.txt, .jsonl,
        optionally .xz): the same sliding window (default min(positions, 1024), stride half)."""
        is_path = not isinstance(text_or_path, str) or os.path.isfile(text_or_path)
        return self._core.perplexity_of(
            os.fspath(text_or_path), is_path, window, stride, max_tokens, text_field,
        )

    def generate(
        self,
        prompt: str,
        max_new_tokens: int = 64,
        temperature: float = 0.0,
        top_k: int = 0,
        top_p: float = 1.0,
        repetition_penalty: float = 1.0,
        seed: int = 0,
        ignore_eos: bool = False,
    ) -> str:
        """The continuation of `prompt`, the text `zoft generate` prints with these settings."""
        ids = self._generate_ids(prompt, max_new_tokens, temperature, top_k, top_p,
                                 repetition_penalty, seed, ignore_eos, None)["ids"]
        return self._text(ids)

    def stream(
        self,
        prompt: str,
        max_new_tokens: int = 64,
        temperature: float = 0.0,
        top_k: int = 0,
        top_p: float = 1.0,
        repetition_penalty: float = 1.0,
        seed: int = 0,
        ignore_eos: bool = False,
    ) -> Iterator[str]:
        """generate() as an iterator of text pieces, one per token (a piece may be empty while a
        multi-byte character is incomplete). Leaving the loop early stops generation."""
        return _Stream(self, prompt, (max_new_tokens, temperature, top_k, top_p,
                                      repetition_penalty, seed, ignore_eos))

    def _generate_ids(self, prompt, max_new_tokens, temperature, top_k, top_p,
                      repetition_penalty, seed, ignore_eos, on_token) -> dict:
        ids = self.tokenizer.encode(prompt) if isinstance(prompt, str) else [int(i) for i in prompt]
        return self._core.generate(ids, max_new_tokens, temperature, top_k, top_p,
                                   repetition_penalty, seed, ignore_eos, on_token)

    def _text(self, ids: Sequence[int]) -> str:
        """What the CLI writes: the bytes of every non-special token, as UTF-8."""
        tok = self.tokenizer
        data = b"".join(tok.token_bytes(i) for i in ids if not tok.is_special(i))
        return data.decode("utf-8", errors="replace")


class _Stop(Exception):
    """Raised in the engine's token callback when the consumer of a stream has gone."""


class _StreamState:
    """What a stream's worker shares with its consumer. The worker holds this, not the _Stream,
    so that dropping the _Stream (a loop left by break or Ctrl-C) reaches __del__ and stops it."""

    def __init__(self):
        self.tokens: queue.Queue = queue.Queue()
        self.closed = threading.Event()
        self.error: Optional[BaseException] = None


def _stream_worker(model: Model, prompt, options, state: _StreamState) -> None:
    def on_token(id: int) -> None:
        if state.closed.is_set():
            raise _Stop()
        state.tokens.put(id)

    try:
        model._generate_ids(prompt, *options, on_token)
    except _Stop:
        pass
    except BaseException as e:  # handed to the consumer
        state.error = e
    finally:
        state.tokens.put(_Stream._DONE)


class _Stream:
    """Runs generate() on a worker thread (the GIL released while it computes) and hands its
    tokens over a queue, so that the caller's loop sees each one as soon as it is made. close()
    (also on garbage collection and at exit) stops the worker and waits for it: a worker left
    running would use the model beside the caller's next call, and one still inside the engine
    when the interpreter shuts down aborts the process."""

    _DONE = object()
    _live: "weakref.WeakSet[_Stream]" = weakref.WeakSet()

    def __init__(self, model: Model, prompt, options):
        self._model = model
        self._state = _StreamState()
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._worker = threading.Thread(target=_stream_worker,
                                        args=(model, prompt, options, self._state), daemon=True)
        self._worker.start()
        _Stream._live.add(self)

    def __iter__(self):
        return self

    def __next__(self) -> str:
        try:
            id = self._state.tokens.get()
        except BaseException:  # Ctrl-C while waiting: stop the worker too
            self.close()
            raise
        if id is self._DONE:
            self._worker.join()
            if self._state.error is not None:
                raise self._state.error
            tail = self._utf8.decode(b"", final=True)
            if tail:
                self._state.tokens.put(self._DONE)
                return tail
            raise StopIteration
        tok = self._model.tokenizer
        return "" if tok.is_special(id) else self._utf8.decode(tok.token_bytes(id))

    def close(self) -> None:
        """Stops generation at the next token and waits for the worker."""
        self._state.closed.set()
        if self._worker.is_alive() and self._worker is not threading.current_thread():
            self._worker.join()

    def __del__(self):
        self.close()


@atexit.register
def _close_streams() -> None:
    for stream in list(_Stream._live):
        stream.close()


@dataclass
class TrainResult:
    """What `zoft train --json` reports, plus `stopped` (Ctrl-C) and the logged rows."""

    steps: int
    resumed_from: int
    final_train_loss: float
    checkpoint: str
    seconds: float
    stopped: bool
    skipped_steps: int = 0
    accuracy_before: float = -1.0
    accuracy_after: float = -1.0
    eval_before: dict = field(default_factory=dict)
    eval_after: dict = field(default_factory=dict)
    history: list = field(default_factory=list)  # (step, {metric: value}) as logged


def _override_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def train(
    recipe: Union[str, os.PathLike, Mapping],
    on_log: Optional[Callable[[int, dict], None]] = None,
    overrides: Optional[Mapping[str, object]] = None,
    **kwargs,
) -> TrainResult:
    """Runs `zoft train RECIPE` in this process and returns its summary.

    recipe: a YAML path or a dict with the recipe's sections. overrides: dotted keys as on the
    command line ({"optim.lr": 1e-5}); keyword arguments too, "__" standing for the dot
    (optim__lr=1e-5). on_log(step, metrics) sees every row written to metrics.jsonl. Ctrl-C stops
    after the current step with a checkpoint saved (result.stopped is True); running the same
    recipe again resumes from it.
    """
    pairs = [(k, _override_value(v)) for k, v in (overrides or {}).items()]
    pairs += [(k.replace("__", "."), _override_value(v)) for k, v in kwargs.items()]
    history: list = []

    def log(step, metrics):
        history.append((step, dict(metrics)))
        if on_log is not None:
            on_log(step, dict(metrics))

    if isinstance(recipe, Mapping):
        # JSON is YAML: the recipe reader takes the dict as it takes a file.
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix="zoft-recipe-",
                                         delete=False) as f:
            json.dump(recipe, f)
        try:
            summary = _core.train(f.name, pairs, log)
        finally:
            os.unlink(f.name)
    else:
        summary = _core.train(os.fspath(recipe), pairs, log)
    return TrainResult(history=history, **summary)


def evaluate(
    model: Union[Model, str, os.PathLike],
    data: Union[str, os.PathLike],
    task: Optional[str] = None,
    max_examples: int = 0,
    batch_size: int = 16,
    window: int = 0,
    dtype: Optional[str] = None,
    text_field: str = "text",
) -> dict:
    """`zoft eval`: task accuracy ({"accuracy": a}) with task=, else the perplexity of data."""
    if task is None:
        m = model if isinstance(model, Model) else Model.load(model, dtype=dtype or "bf16")
        return m.perplexity(data, window=window, text_field=text_field)
    # The task scorer loads its own model with the Model's placement, as `zoft eval --task`.
    if isinstance(model, Model):
        path, dt = model.path, dtype or model.dtype
        placement = (model.device, model._max_memory, model._offload_dir, model._prefetch)
    else:
        path, dt = os.fspath(model), dtype or "bf16"
        placement = ("cpu", "", "", 2)
    accuracy = _core.evaluate_task(path, task, os.fspath(data), max_examples,
                                   window if window > 0 else 2048, batch_size, dt, *placement)
    return {"accuracy": accuracy}

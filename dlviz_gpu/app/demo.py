"""The embedded default model of ``dlviz demo``: a small GPT, its data and its trainer.

>>> from dlviz_gpu.app.demo import build_model, Trainer
>>> model = build_model(seed=0)                 # ~5.0 M parameters, in well under a second
>>> with Trainer(model, steps=300).start() as t:    # trains in a daemon thread
...     ...                                     # read t.state(), t.history, t.snapshot()
>>> t.error                                     # None, or why the loop stopped

Three parts:

- :func:`build_model` -- a GPT-like decoder (:class:`TinyGPT`) with readable
  module names (``blocks.3.attn.qkv.weight``, ``blocks.3.mlp.fc.weight``,
  ``lm_head.weight``), initialised from a local :class:`torch.Generator` so
  the same seed gives bit-identical weights whatever the global RNG state.
- :class:`MarkovTask` / :func:`batches` -- synthetic data: token sequences
  drawn from a fixed random *sparse* Markov chain over the vocabulary (every
  token has ``branching`` possible successors with random probabilities).
  A fresh model predicts ~uniformly (loss ~ ln(vocab)); a model that has
  learnt the chain reaches the chain's conditional entropy
  (:meth:`MarkovTask.entropy`, at most ln(branching)), so the loss falls
  clearly within a few hundred steps, and the embedding, attention and MLP
  weights stop looking like noise.
- :class:`Trainer` -- AdamW with linear warmup then cosine decay (or a
  constant rate when training forever) in a daemon background thread, with a
  lock around each ``optimizer.step()`` so a reader can snapshot consistent
  weights, a history of (step, loss, lr), and errors kept, never swallowed.

Importing this module imports torch (it is only imported by the demo).
"""

from __future__ import annotations

import math
import numbers
import threading
import time
from collections import deque
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["TinyGPT", "build_model", "demo_input", "MarkovTask", "batches", "Trainer",
           "DEFAULTS"]

#: the default architecture of :func:`build_model` (5,017,600 parameters)
DEFAULTS = dict(vocab=512, d_model=256, n_layers=6, n_heads=8, seq_len=64)


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an int >= {minimum}; got {type(value).__name__} "
                        f"{value!r}")
    if value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}; got {value!r}")
    return int(value)


# --------------------------------------------------------------------------
# the model
# --------------------------------------------------------------------------

class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention: one ``qkv`` projection, one output ``proj``.

    ``qkv.weight`` is (3 * d_model, d_model): rows [0, d) make the queries,
    [d, 2d) the keys, [2d, 3d) the values, each split into ``n_heads`` heads of
    ``d_model // n_heads`` consecutive rows.
    """

    def __init__(self, d_model: int, n_heads: int):
        super().__init__()
        self.n_heads = n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=-1)
        # (b, t, d) -> (b, heads, t, d / heads)
        q, k, v = (z.view(b, t, self.n_heads, d // self.n_heads).transpose(1, 2)
                   for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(b, t, d))


class MLP(nn.Module):
    """``fc`` (d -> 4d), GELU, ``proj`` (4d -> d)."""

    def __init__(self, d_model: int):
        super().__init__()
        self.fc = nn.Linear(d_model, 4 * d_model)
        self.proj = nn.Linear(4 * d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(F.gelu(self.fc(x)))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(ln1(x))``, then ``x + mlp(ln2(x))``."""

    def __init__(self, d_model: int, n_heads: int):
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model)
        self.attn = CausalSelfAttention(d_model, n_heads)
        self.ln2 = nn.LayerNorm(d_model)
        self.mlp = MLP(d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class TinyGPT(nn.Module):
    """A small GPT-2-style decoder; build it with :func:`build_model`.

    Architecture (module names as they appear in the tensor tree)::

        tok_emb    Embedding(vocab, d)               token embeddings
        pos_emb    Embedding(seq_len, d)             learned positions
        blocks.i   for i in range(n_layers), pre-norm:
          ln1        LayerNorm(d)
          attn.qkv   Linear(d, 3d)                   queries, keys, values
          attn.proj  Linear(d, d)                    causal multi-head attention out
          ln2        LayerNorm(d)
          mlp.fc     Linear(d, 4d), GELU
          mlp.proj   Linear(4d, d)
        ln_f       LayerNorm(d)
        lm_head    Linear(d, vocab, bias=False)      untied from tok_emb

    Parameters: ``2 * vocab * d + seq_len * d + n_layers * (12 d^2 + 13 d) + 2 d``.

    Attributes
    ----------
    vocab, d_model, n_layers, n_heads, seq_len : int
        The architecture.
    config : dict
        The same as a dict (with ``seed``).
    """

    def __init__(self, vocab: int, d_model: int, n_layers: int, n_heads: int, seq_len: int):
        super().__init__()
        self.vocab, self.d_model, self.n_layers = vocab, d_model, n_layers
        self.n_heads, self.seq_len = n_heads, seq_len
        self.tok_emb = nn.Embedding(vocab, d_model)
        self.pos_emb = nn.Embedding(seq_len, d_model)
        self.blocks = nn.ModuleList(Block(d_model, n_heads) for _ in range(n_layers))
        self.ln_f = nn.LayerNorm(d_model)
        self.lm_head = nn.Linear(d_model, vocab, bias=False)
        self.config: dict = dict(vocab=vocab, d_model=d_model, n_layers=n_layers,
                                 n_heads=n_heads, seq_len=seq_len)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Next-token logits.

        Parameters
        ----------
        tokens : (batch, seq) int64 tensor
            Token ids in ``[0, vocab)``, ``seq <= seq_len``.

        Returns
        -------
        (batch, seq, vocab) float tensor
            Logits for the token after each position (causal: position t sees
            tokens 0..t only).
        """
        if tokens.ndim != 2:
            raise ValueError(f"tokens: expected a (batch, seq) tensor; got shape "
                             f"{tuple(tokens.shape)}")
        if tokens.shape[1] > self.seq_len:
            raise ValueError(f"tokens: expected at most seq_len={self.seq_len} positions; got "
                             f"{tokens.shape[1]}")
        pos = torch.arange(tokens.shape[1], device=tokens.device)
        x = self.tok_emb(tokens) + self.pos_emb(pos)
        for block in self.blocks:
            x = block(x)
        return self.lm_head(self.ln_f(x))


def build_model(seed: int = 0, *, vocab: int = DEFAULTS["vocab"],
                d_model: int = DEFAULTS["d_model"], n_layers: int = DEFAULTS["n_layers"],
                n_heads: int = DEFAULTS["n_heads"], seq_len: int = DEFAULTS["seq_len"]
                ) -> TinyGPT:
    """Build the demo's GPT-like decoder, deterministically initialised.

    See :class:`TinyGPT` for the architecture.  The defaults (vocab 512,
    d_model 256, 6 layers of 8 heads, 64 positions) give 5,017,600 parameters.

    Initialisation (GPT-2's): every Linear weight and embedding ~ N(0, 0.02),
    the residual output projections (``attn.proj``, ``mlp.proj``) ~
    N(0, 0.02 / sqrt(2 n_layers)), biases 0, LayerNorm weight 1 and bias 0.
    The draws come from a local ``torch.Generator`` seeded with ``seed``, in
    parameter order: the same arguments give bit-identical weights, and the
    global RNG state is left as it was (torch's default initialisation, which
    is overwritten, runs inside ``torch.random.fork_rng``).

    Parameters
    ----------
    seed : int
        The initialisation seed.
    vocab, d_model, n_layers, n_heads, seq_len : int
        Vocabulary size, width, depth, heads (``d_model % n_heads == 0``) and
        the longest sequence (positions).

    Returns
    -------
    TinyGPT
        On the CPU, float32, in training mode, ``config["seed"] == seed``.

    Raises
    ------
    TypeError, ValueError
        An argument is not an int or out of range.
    """
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed: expected an int; got {type(seed).__name__} {seed!r}")
    vocab = _check_int("vocab", vocab, 2)
    d_model = _check_int("d_model", d_model, 1)
    n_layers = _check_int("n_layers", n_layers, 1)
    n_heads = _check_int("n_heads", n_heads, 1)
    seq_len = _check_int("seq_len", seq_len, 1)
    if d_model % n_heads:
        raise ValueError(f"n_heads: expected a divisor of d_model={d_model}; got {n_heads}")
    # torch's default initialisation draws from the global RNG; fork it so the
    # caller's random state is left as it was (the draws are overwritten below).
    # (Building on the meta device instead would import torch._dynamo: 1.5 s.)
    with torch.random.fork_rng(devices=[]):
        model = TinyGPT(vocab, d_model, n_layers, n_heads, seq_len)
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    std, resid_std = 0.02, 0.02 / math.sqrt(2 * n_layers)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(".bias"):
                p.zero_()
            elif ".ln" in name or name.startswith("ln_f"):
                p.fill_(1.0)
            else:
                p.normal_(0.0, resid_std if name.endswith("proj.weight") else std,
                          generator=gen)
    model.config["seed"] = int(seed)
    return model


def demo_input(model: TinyGPT) -> tuple[tuple[int, int], torch.dtype]:
    """The input shape and dtype of one forward pass, for the model summary.

    Returns
    -------
    ((1, seq_len), torch.long)
    """
    return (1, int(model.seq_len)), torch.long


# --------------------------------------------------------------------------
# the data
# --------------------------------------------------------------------------

class MarkovTask:
    """A fixed random sparse Markov chain over ``vocab`` tokens.

    Every token ``s`` has ``branching`` distinct successors ``succ[s]`` with
    probabilities ``probs[s]`` drawn from a flat Dirichlet; the first token of
    a sequence is uniform.  The best possible next-token loss is the chain's
    conditional entropy (:meth:`entropy`), at most ``ln(branching)``, against
    ``ln(vocab)`` for a uniform guess.

    Parameters
    ----------
    vocab : int
        Number of tokens (>= 2).
    seed : int
        Fixes the chain (not the sampling stream; see :meth:`sample`).
    branching : int
        Successors per token, ``1 <= branching <= vocab``.

    Attributes
    ----------
    succ : (vocab, branching) int64 tensor
    probs : (vocab, branching) float64 tensor
        Rows sum to 1.
    """

    def __init__(self, vocab: int, seed: int = 0, branching: int = 4):
        self.vocab = _check_int("vocab", vocab, 2)
        branching = _check_int("branching", branching, 1)
        if branching > vocab:
            raise ValueError(f"branching: expected at most vocab={vocab}; got {branching}")
        self.branching = branching
        gen = torch.Generator().manual_seed(int(seed))
        # distinct successors: the first `branching` of a random permutation per token
        self.succ = torch.argsort(torch.rand(vocab, vocab, generator=gen), dim=1)[:, :branching]
        w = -torch.log1p(-torch.rand(vocab, branching, generator=gen, dtype=torch.float64))
        self.probs = w / w.sum(dim=1, keepdim=True)  # Dirichlet(1, ..., 1)
        self._cum = torch.cumsum(self.probs, dim=1)
        self._cum[:, -1] = 1.0 + 1e-9  # u < 1 always picks a successor

    def sample(self, batch: int, length: int, generator: torch.Generator) -> torch.Tensor:
        """``batch`` sequences of ``length`` tokens.

        Returns
        -------
        (batch, length) int64 tensor
        """
        out = torch.empty(batch, length, dtype=torch.long)
        tok = torch.randint(self.vocab, (batch,), generator=generator)
        u = torch.rand(batch, max(length - 1, 0), generator=generator, dtype=torch.float64)
        out[:, 0] = tok
        for t in range(1, length):
            choice = (u[:, t - 1, None] >= self._cum[tok]).sum(dim=1)
            tok = self.succ[tok, choice]
            out[:, t] = tok
        return out

    def entropy(self, positions: int | None = None) -> float:
        """The lowest achievable mean next-token loss (nats).

        Parameters
        ----------
        positions : int, optional
            Mean over the predictions of tokens 1..positions of a sequence
            (whose first token is uniform), i.e. exactly the training loss
            floor for inputs of ``positions`` tokens.  None: the limit of long
            sequences, ``sum_s pi(s) H(probs[s])`` under the chain's long-run
            distribution (estimated by 2000 steps of the chain from uniform).
        """
        probs = self.probs.numpy()
        succ = self.succ.numpy()
        h = -(probs * np.log(probs, where=probs > 0, out=np.zeros_like(probs))).sum(axis=1)
        n = 2000 if positions is None else _check_int("positions", positions, 1)
        p = np.full(self.vocab, 1.0 / self.vocab)
        total = 0.0
        for _ in range(n):
            total += float(p @ h)
            nxt = np.zeros_like(p)
            np.add.at(nxt, succ, p[:, None] * probs)
            p = nxt
        return float(p @ h) if positions is None else total / n


def batches(seed: int, batch: int, seq_len: int, vocab: int, *, branching: int = 4
            ) -> Iterator[torch.Tensor]:
    """An endless deterministic stream of training batches from :class:`MarkovTask`.

    Parameters
    ----------
    seed : int
        Fixes both the chain (``MarkovTask(vocab, seed)``) and the sampling
        stream: the same arguments give the same batches.
    batch, seq_len, vocab, branching : int
        Sequences per batch, model input length, vocabulary, successors per
        token.

    Yields
    ------
    (batch, seq_len + 1) int64 tensor
        ``x[:, :-1]`` is the input, ``x[:, 1:]`` the targets.
    """
    batch = _check_int("batch", batch, 1)
    seq_len = _check_int("seq_len", seq_len, 1)
    task = MarkovTask(vocab, seed, branching)
    gen = torch.Generator().manual_seed(int(seed) + 0x5EED)
    while True:
        yield task.sample(batch, seq_len + 1, gen)


# --------------------------------------------------------------------------
# the trainer
# --------------------------------------------------------------------------

class Trainer:
    """Train a token model on :func:`batches` in a daemon background thread.

    Parameters
    ----------
    model : torch.nn.Module
        Maps (batch, seq) int64 tokens to (batch, seq, vocab) logits; without
        ``data``, it must have ``vocab`` and ``seq_len`` attributes (as
        :class:`TinyGPT` has).  Trained in place.
    steps : int, optional
        Optimizer steps to take; None trains until :meth:`stop`.
    batch : int
        Sequences per step.
    lr : float
        Peak learning rate of AdamW (betas 0.9, 0.95; weight decay 0.1 on
        matrices and embeddings, none on biases and LayerNorms).
    warmup : int
        Steps of linear warmup: step ``k`` (1-based) uses ``lr * k / warmup``.
        After it, a cosine decay to ``lr / 10`` at step ``steps``, or ``lr``
        constant when ``steps`` is None.
    seed : int
        The data seed (the chain and the sampling stream).
    threads : int
        ``torch.set_num_threads(threads)`` when the training thread starts.
        Treat that setting as process-wide: torch documents it so, MKL's
        part of it is global, and threads started later inherit it (with
        torch's OpenMP backend the thread that calls it -- here the training
        thread -- keeps its own copy, so threads already running keep theirs).
        The previous value is set back when the loop ends.  1 leaves the
        other core of a 2-core machine to the dashboard's server.
    data : iterator of (batch, seq + 1) int64 tensors, optional
        Overrides the synthetic data (then ``seed`` is unused).
    clip : float
        Gradients are clipped to this global norm.
    watch : dict, optional
        Arguments of :func:`dlviz_gpu.watch` (``store=`` at least): every step
        is then logged to that run (loss, learning rate, the gradient norm
        before clipping, and the tensors at its recorded steps).  The run is
        closed by :meth:`close`, or when ``steps`` are done.

    Attributes
    ----------
    step : int
        Optimizer steps done.
    history : list of (int, float, float)
        ``(step, loss, lr)`` after each step (step 1 first); the loss is the
        batch's before the update.  Appended by the training thread only.
    error : BaseException or None
        Why the loop stopped early: the exception it raised, or a
        ``FloatingPointError`` for a non-finite loss (that step is recorded
        in ``history`` but the weights are not updated).
    lock : threading.Lock
        Held during every ``optimizer.step()`` (and only then): take it to
        read weights that are not half-updated (see :meth:`snapshot`).

    Examples
    --------
    >>> with Trainer(build_model(), steps=200).start() as t:
    ...     while t.running:
    ...         time.sleep(1); print(t.state())
    """

    def __init__(self, model: nn.Module, *, steps: int | None = None, batch: int = 16,
                 lr: float = 3e-3, warmup: int = 50, seed: int = 0, threads: int = 1,
                 data: Iterator[torch.Tensor] | None = None, clip: float = 1.0,
                 watch: dict | None = None):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model: expected a torch.nn.Module; got {type(model).__name__}")
        if steps is not None:
            steps = _check_int("steps", steps, 1)
        batch = _check_int("batch", batch, 1)
        warmup = _check_int("warmup", warmup, 0)
        threads = _check_int("threads", threads, 1)
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
            raise TypeError(f"seed: expected an int; got {type(seed).__name__} {seed!r}")
        for name, value in (("lr", lr), ("clip", clip)):
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise TypeError(f"{name}: expected a positive float; got "
                                f"{type(value).__name__} {value!r}")
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name}: expected a positive finite float; got {value!r}")
        if data is None:
            vocab, seq_len = getattr(model, "vocab", None), getattr(model, "seq_len", None)
            if not (isinstance(vocab, int) and isinstance(seq_len, int)):
                raise ValueError("model: without data=, expected a model with int `vocab` and "
                                 f"`seq_len` attributes (like TinyGPT); {type(model).__name__} "
                                 f"has vocab={vocab!r}, seq_len={seq_len!r}")
            data = batches(int(seed), batch, seq_len, vocab)
        self.model = model
        self.steps, self.batch, self.lr, self.warmup = steps, batch, float(lr), warmup
        self.seed, self.threads, self.clip = int(seed), threads, float(clip)
        self.data = data
        self.step = 0
        self.history: list[tuple[int, float, float]] = []
        self.error: BaseException | None = None
        self.lock = threading.Lock()
        decay = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim >= 2]
        other = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim < 2]
        groups = [{"params": decay, "weight_decay": 0.1}, {"params": other, "weight_decay": 0.0}]
        self.optimizer = torch.optim.AdamW([g for g in groups if g["params"]], lr=self.lr,
                                           betas=(0.9, 0.95))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._times: deque = deque(maxlen=21)  # (time, step) of the last steps, for steps/s
        if watch is not None and not isinstance(watch, dict):
            raise TypeError(f"watch: expected a dict of dv.watch arguments or None; got "
                            f"{type(watch).__name__}")
        self.watch = None
        if watch is not None:
            from ..watch.recorder import watch as start_watch

            self.watch = start_watch(model, self.optimizer, **watch)

    # -- schedule -----------------------------------------------------------------------
    def lr_at(self, step: int) -> float:
        """The learning rate of step ``step`` (1-based)."""
        if step <= self.warmup:
            return self.lr * step / self.warmup
        if self.steps is None or self.steps <= self.warmup:
            return self.lr
        frac = min(1.0, (step - self.warmup) / (self.steps - self.warmup))
        return self.lr * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * frac)))

    # -- control ------------------------------------------------------------------------
    def start(self) -> "Trainer":
        """Start (or resume, after :meth:`stop`) the training thread; returns self.

        Raises
        ------
        RuntimeError
            It is already running, or an earlier run failed (``error``).
        """
        if self.running:
            raise RuntimeError("Trainer.start: already running")
        if self.error is not None:
            raise RuntimeError(f"Trainer.start: the last run failed ({self._error_text()})")
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="dlviz-demo-trainer",
                                        daemon=True)
        self._thread.start()
        return self

    def run_steps(self, n: int) -> None:
        """Train ``n`` steps in the calling thread (not while :meth:`start` runs)."""
        n = _check_int("n", n, 1)
        if self.running:
            raise RuntimeError("Trainer.run_steps: the training thread is running")
        for _ in range(n):
            self._one_step()

    def close(self) -> None:
        """Stop the training and close its run store, if it has one (idempotent)."""
        self.stop()
        if self.watch is not None:
            self.watch.close()

    def stop(self, timeout: float = 5.0) -> bool:
        """Ask the loop to stop after the current step and wait up to ``timeout`` seconds.

        Returns
        -------
        bool
            True when the thread has ended (or never started).
        """
        self._stop.set()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def running(self) -> bool:
        """Whether the training thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> "Trainer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- reading --------------------------------------------------------------------------
    def snapshot(self) -> dict[str, torch.Tensor]:
        """A consistent copy of the model's state dict, taken under :attr:`lock`."""
        with self.lock:
            return {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def _error_text(self) -> str | None:
        if self.error is None:
            return None
        return f"{type(self.error).__name__}: {self.error}"

    def state(self) -> dict:
        """The status line's facts.

        Returns
        -------
        dict
            ``step`` (int), ``steps`` (int or None), ``loss`` and ``lr`` (of the
            last step, None before the first), ``steps_per_second`` (over the
            last 20 steps, 0.0 before two), ``running`` (bool), ``error``
            (``"Type: message"`` or None).
        """
        last = self.history[-1] if self.history else None
        times = list(self._times)
        sps = 0.0
        if len(times) >= 2 and times[-1][0] > times[0][0]:
            sps = (times[-1][1] - times[0][1]) / (times[-1][0] - times[0][0])
        return {"step": self.step, "steps": self.steps,
                "loss": None if last is None else last[1],
                "lr": None if last is None else last[2],
                "steps_per_second": sps, "running": self.running, "error": self._error_text()}

    # -- the loop -------------------------------------------------------------------------
    def _run(self) -> None:
        previous = torch.get_num_threads()
        try:
            torch.set_num_threads(self.threads)
            self._times.append((time.perf_counter(), self.step))
            self.model.train()
            while not self._stop.is_set() and (self.steps is None or self.step < self.steps):
                self._one_step()
            if self.watch is not None and self.steps is not None and self.step >= self.steps:
                self.watch.close()          # finished: the run is marked closed
        except BaseException as err:  # kept for the caller; the thread never dies silently
            self.error = err
        finally:
            torch.set_num_threads(previous)
            if self.watch is not None and not self.watch.closed:
                try:
                    self.watch.flush()
                except RuntimeError as err:
                    self.error = self.error or err

    def _one_step(self) -> None:
        step = self.step + 1
        lr = self.lr_at(step)
        tokens = next(self.data)
        logits = self.model(tokens[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                               tokens[:, 1:].reshape(-1))
        value = float(loss.detach())
        if not math.isfinite(value):
            self.history.append((step, value, lr))
            self.step = step
            if self.watch is not None:
                self.watch.log(step, loss=value, lr=lr)
            raise FloatingPointError(f"the loss became {value} at step {step} (learning rate "
                                     f"{lr:.3g}); training stopped, the weights are those "
                                     f"after step {step - 1}")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        with self.lock:
            self.optimizer.step()
        if self.watch is not None:
            self.watch.log(step, loss=value, grad_norm=float(grad_norm))
        self.step = step
        self.history.append((step, value, lr))
        self._times.append((time.perf_counter(), step))

"""``dv.watch``: record weights, gradients, updates, loss and learning rate while a model trains.

>>> run = dv.watch(model, optimizer, store="runs/exp1", every=1, histograms=True, bins=64)
>>> for step, batch in enumerate(loader):
...     loss = loss_fn(model(batch.x), batch.y)
...     optimizer.zero_grad(); loss.backward(); optimizer.step()
...     run.log(step, loss=loss)          # any scalars; lr read from the optimizer
>>> run.close()                           # or: with dv.watch(...) as run:

What one recorded step stores, per parameter (:mod:`dlviz_gpu.watch.store`):
the weight's and the gradient's element count, mean, std, Frobenius norm,
min, max, max |v|, exact zeros, NaN, +inf and -inf counts; the update norm
``||w_t - w_(t-1)||`` and the update ratio ``||w_t - w_(t-1)|| / ||w_t||``;
the number of dead units (rows of a weight matrix whose gradient was all
zeros on each of the last ``dead_after`` recorded steps; an alert is stored
when that number grows); with
``histograms=True``, exact ``bins``-bin histograms of the weight and of the
gradient over their own finite range.  Every ``snapshot_every`` logged steps,
a raster of each weight matrix (``snapshot_size`` pixels a side at most;
mean and extremum) for the dashboard's animation.  Every logged step stores
its scalars (the loss, the learning rate of each parameter group, anything
passed to :meth:`Watch.log`).  Parameters without ``requires_grad`` are
recorded as frozen (weights only); a parameter without a gradient at a step
has no gradient row there.  Non-finite losses and NaN/inf in weights or
gradients are stored as alerts, never raised.

Where the time goes
    The numbers are computed where the parameters live (:mod:`.probes`): on
    the CPU by the Numba kernels, reading the tensors in place; on a GPU by
    torch reductions queued on the device, copied to the host by a
    background thread, so a training step never waits for them.  The
    background thread also writes SQLite, a batch of steps per transaction.
    Nothing is recorded between recorded steps except the scalars.

The previous weights
    The update ratio needs ``w_(t-1)``: before a recorded step's optimizer
    step (an optimizer step pre-hook; without an optimizer, a hook that runs
    when a parameter's gradient is ready) the watch copies the trainable
    weights into buffers it keeps (as much memory as the trainable weights,
    on their device).  ``updates=False`` skips that copy and the update
    columns.

"Recorded steps" are counted in :meth:`Watch.log` calls: the first call and
every ``every``-th after it record tensors, whatever step numbers are passed.

When the store cannot be written
    Recording never stops a training loop.  Once a write to the run fails
    (the disk or a quota is full: SQLite's "database or disk is full",
    ENOSPC, EDQUOT, EFBIG under a file-size limit; an I/O error; a file
    made read-only; or any other failure of the background writer), the
    watch stops recording: the steps committed before the failure stay in
    the run, which stays readable (the failed transaction is rolled back
    whole; a batch of several steps is retried one step at a time, so every
    step that fits is kept); it stores a ``'recording_stopped'`` alert at the
    first step not recorded where the file still takes one (after folding its
    WAL in, which frees room under a file-size limit); and it warns once,
    with :class:`RecordingStoppedWarning` (through :mod:`warnings`, and the
    ``dlviz_gpu.watch`` logger when logging is configured), saying where
    and why, and that training continues unrecorded.  From then on
    :meth:`Watch.log` only checks its arguments (no tensor is measured,
    nothing is queued, the hooks are removed and the copies of the weights
    freed), and :meth:`Watch.log`, :meth:`Watch.flush` and :meth:`Watch.close`
    return normally; :attr:`Watch.stopped_at` and :attr:`Watch.stop_reason`
    say what happened.  :meth:`Watch.close` marks the run closed when the
    file still takes that write; otherwise the run stays ``'running'``
    with no writer, like a killed one.  Errors in the arguments of
    :meth:`Watch.log` (a step that does not increase, a loss that is not a
    number) are still raised: they are the caller's, not the disk's.
"""

from __future__ import annotations

import atexit
import logging
import math
import numbers
import queue
import threading
import time
import warnings
import weakref

import numpy as np

from ..checks import check_flag
from .store import ParamInfo, RunWriteError, RunWriter, StepRecord, STAT_NAMES

__all__ = ["watch", "Watch", "RecordingStoppedWarning"]

_log = logging.getLogger("dlviz_gpu.watch")


class RecordingStoppedWarning(RuntimeWarning):
    """The watch stopped recording (the store could not be written); training goes on."""

_STOP = object()
_MAXABS = STAT_NAMES.index("maxabs")
_NAN = STAT_NAMES.index("nan")
_PINF = STAT_NAMES.index("posinf")
_NINF = STAT_NAMES.index("neginf")
_NORM = STAT_NAMES.index("norm")


def _positive_int(value, name: str, allow_none: bool = False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected a positive int{' or None' if allow_none else ''}; "
                        f"got {value!r} ({type(value).__name__})")
    if value < 1:
        raise ValueError(f"{name}: expected a positive int; got {value!r}")
    return int(value)


def _check_model(model):
    try:
        import torch
    except ImportError as e:                                   # pragma: no cover
        raise ImportError("dv.watch needs torch: pip install torch") from e
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module; got {type(model).__name__}")
    params = list(model.named_parameters())
    if not params:
        raise ValueError(f"model: {type(model).__name__} has no parameters to watch")
    return params


def _check_optimizer(optimizer):
    if optimizer is None:
        return None
    if not (hasattr(optimizer, "param_groups") and hasattr(optimizer, "register_step_pre_hook")):
        raise TypeError(f"optimizer: expected a torch.optim.Optimizer or None; got "
                        f"{type(optimizer).__name__}")
    return optimizer


def _scalar(name: str, value):
    """A float, or a detached one-element tensor left on its device."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, np.ndarray) and value.size == 1:
        return float(value.reshape(()))
    if type(value).__module__.startswith("torch") and hasattr(value, "numel"):
        if value.numel() != 1:
            raise ValueError(f"{name}: expected a scalar (one-element tensor); got a tensor of "
                             f"shape {tuple(value.shape)}")
        v = value.detach().reshape(())
        if v.device.type == "cpu":
            return float(v)
        return v.to(dtype=value.dtype if value.is_floating_point() else None).clone()
    raise TypeError(f"{name}: expected a number or a one-element tensor; got "
                    f"{type(value).__name__}")


def _host(x):
    """NumPy view of a probe result (device tensors copied by the writer thread)."""
    if x is None or isinstance(x, (np.ndarray, float)):
        return x
    if hasattr(x, "detach"):
        return x.detach().cpu().numpy()
    return x


def _matrix_shape(p):
    from ..tensors import as_matrix

    if p.dim() < 2:
        return None, None
    try:
        r, c = as_matrix(p.detach()).shape
    except (TypeError, ValueError):
        return None, None
    return int(r), int(c)


class Watch:
    """A training run being recorded; made by :func:`watch` (see the module docstring).

    Attributes
    ----------
    path : pathlib.Path
        The run's SQLite file.
    logged, recorded : int
        :meth:`log` calls so far, and how many of them recorded tensors.
    stopped_at : int or None
        The first step that was not recorded because the store could not be
        written (see the module docstring), None while recording works.
    stop_reason : str or None
        Why, in one line (what SQLite or the operating system said).
    """

    def __init__(self, model, optimizer=None, store="runs/run", *, every: int = 1,
                 histograms: bool = True, bins: int = 64, snapshot_every: int | None = 100,
                 snapshot_size: int = 256, dead_after: int = 20, updates: bool = True,
                 mode: str = "new", config: dict | None = None, max_pending: int = 256):
        params = _check_model(model)
        self.optimizer = _check_optimizer(optimizer)
        self.every = _positive_int(every, "every")
        self.bins = _positive_int(bins, "bins")
        self.snapshot_every = _positive_int(snapshot_every, "snapshot_every", allow_none=True)
        self.snapshot_size = _positive_int(snapshot_size, "snapshot_size")
        self.dead_after = _positive_int(dead_after, "dead_after")
        check_flag(histograms, "histograms")
        check_flag(updates, "updates")
        if config is not None and not isinstance(config, dict):
            raise TypeError(f"config: expected a dict or None; got {type(config).__name__}")
        self.histograms = bool(histograms)
        self.updates = bool(updates)
        self.model = model

        from ..checkpoints.catalog import layer_of

        self.names = [n for n, _ in params]
        self.params = [p for _, p in params]
        self.trainable = [bool(p.requires_grad) for p in self.params]
        # the 2-D view of each parameter (snapshots, dead units), or (None, None)
        self._shapes = [_matrix_shape(p) for p in self.params]
        infos = []
        for (name, p), (rows, cols) in zip(params, self._shapes):
            module = name.rsplit(".", 1)[0] if "." in name else ""
            infos.append(ParamInfo(name=name, shape=tuple(int(s) for s in p.shape),
                                   dtype=str(p.dtype).replace("torch.", ""), numel=p.numel(),
                                   layer=layer_of(module), frozen=not p.requires_grad,
                                   rows=rows, cols=cols))
        self._rows = [r for r, _ in self._shapes]
        cfg = {"every": self.every, "bins": self.bins, "histograms": self.histograms,
               "snapshot_every": self.snapshot_every, "snapshot_size": self.snapshot_size,
               "dead_after": self.dead_after, "updates": self.updates,
               "model": type(model).__name__,
               "optimizer": type(optimizer).__name__ if optimizer is not None else None,
               "parameters": int(sum(p.numel() for p in self.params)),
               "device": str(self.params[0].device)}
        cfg.update(config or {})
        # the store checks the path, the schema version and the lock before anything is hooked
        self._writer = RunWriter(store, config=cfg, mode=mode)
        self.path = self._writer.path
        try:
            self._writer.define_params(infos)
        except RunWriteError as e:         # a full disk before training: refused, as a bad path
            try:
                self._writer.close()
            except RunWriteError:
                pass
            raise ValueError(f"store: cannot write run file {self.path}: {e.problem}") from None

        self.logged = 0
        self.recorded = 0
        self._last_step = None
        self._prev = [None] * len(self.params)
        self._prev_ready = [False] * len(self.params)
        self._streak = [None] * len(self.params)       # writer thread only
        self._dead = [0] * len(self.params)             # writer thread only
        # (first step not recorded, reason): set once, by the writer thread (or _put)
        self._stop: tuple | None = None
        self._warned = False
        self._closed = False
        self._hooks = []
        if self.updates:
            if self.optimizer is not None:
                self._hooks.append(self.optimizer.register_step_pre_hook(self._before_step))
            else:
                for i, p in enumerate(self.params):
                    if p.requires_grad:
                        self._hooks.append(p.register_post_accumulate_grad_hook(
                            self._grad_ready_hook(i)))
        self._queue: queue.Queue = queue.Queue(maxsize=max_pending)
        self._thread = threading.Thread(target=self._write_loop, name="dlviz-watch-writer",
                                        daemon=True)
        self._thread.start()
        ref = weakref.ref(self)
        self._atexit = lambda: (ref() is not None and ref().close())
        atexit.register(self._atexit)

    # ------------------------------------------------------------------
    # hooks: copy w_(t-1) before a recorded step's update
    # ------------------------------------------------------------------

    def _next_records(self) -> bool:
        return self.logged % self.every == 0

    def _copy_prev(self, i: int) -> None:
        import torch

        p = self.params[i]
        with torch.no_grad():
            if self._prev[i] is None or self._prev[i].shape != p.shape:
                self._prev[i] = torch.empty_like(p, memory_format=torch.contiguous_format)
            self._prev[i].copy_(p.detach())
        self._prev_ready[i] = True

    def _before_step(self, optimizer, args, kwargs) -> None:
        if self._closed or self._stop is not None or not self._next_records():
            return
        for i, p in enumerate(self.params):
            if self.trainable[i] and not self._prev_ready[i]:
                self._copy_prev(i)

    def _grad_ready_hook(self, i: int):
        ref = weakref.ref(self)

        def hook(param) -> None:
            w = ref()
            if (w is not None and not w._closed and w._stop is None and w._next_records()
                    and not w._prev_ready[i]):
                w._copy_prev(i)
        return hook

    # ------------------------------------------------------------------
    # logging
    # ------------------------------------------------------------------

    def _device_groups(self, grads) -> list:
        """``[(indices, probe), ...]``: the parameters by device, each with the probe that
        reads all its tensors where they are (chosen at every recorded step, so a model
        moved to another device, or a gradient the CPU kernels cannot view in place,
        is measured all the same)."""
        from .probes import probe_for

        by_dev: dict = {}
        for i, p in enumerate(self.params):
            by_dev.setdefault(str(p.device), []).append(i)
        groups = []
        for idx in by_dev.values():
            tensors = [self.params[i] for i in idx]
            tensors += [grads[i] for i in idx if grads[i] is not None]
            tensors += [self._prev[i] for i in idx if self._prev_ready[i]]
            groups.append((idx, probe_for(tensors, self.bins)))
        return groups

    def _check_step(self, step) -> int:
        if isinstance(step, bool) or not isinstance(step, numbers.Integral):
            raise TypeError(f"step: expected an int; got {step!r} ({type(step).__name__})")
        step = int(step)
        if step < 0:
            raise ValueError(f"step: expected a non-negative int; got {step}")
        if self._last_step is not None and step <= self._last_step:
            raise ValueError(f"step: expected steps to increase; got {step} after "
                             f"{self._last_step}")
        return step

    def _learning_rates(self) -> dict:
        if self.optimizer is None:
            return {}
        out = {}
        for k, group in enumerate(self.optimizer.param_groups):
            lr = group.get("lr")
            if lr is None:
                continue
            out["lr" if k == 0 else f"lr/{k}"] = lr
        return out

    def log(self, step, **scalars) -> None:
        """Log one training step.

        Parameters
        ----------
        step : int
            The step number (non-negative, increasing from call to call).
        **scalars : number or one-element tensor
            ``loss=...`` and any other scalars.  Tensors on a GPU are not
            read here (no synchronisation); the writer thread copies them.
            ``lr`` (and ``lr/1``, ... for further parameter groups) is taken
            from the optimizer unless given.

        The first call and every ``every``-th after it also record the
        tensors (see the module docstring).  A store that cannot be written
        (a full disk) stops the recording with one warning, never an
        exception; errors in the arguments are raised.
        """
        self._report_stop(stacklevel=3)
        if self._closed:
            raise RuntimeError(f"this watch of {self.path} is closed")
        step = self._check_step(step)
        values = {name: _scalar(name, v) for name, v in self._learning_rates().items()}
        values.update({name: _scalar(name, v) for name, v in scalars.items()})
        if self._stop is not None:          # not recording any more: the arguments are checked
            self.logged += 1
            self._last_step = step
            return
        record = self._next_records()
        item = {"step": step, "time": time.time(), "scalars": values, "recorded": record}
        if record:
            item.update(self._measure())
            self.recorded += 1
        if self.snapshot_every and self.logged % self.snapshot_every == 0:
            item["snapshots"] = self._snapshots()
        self.logged += 1
        self._last_step = step
        self._put(item)

    def _measure(self) -> dict:
        import torch

        P = len(self.params)
        parts = []
        all_grads = [p.grad if t else None for p, t in zip(self.params, self.trainable)]
        with torch.no_grad():
            for idx, probe in self._device_groups(all_grads):
                weights = [self.params[i] for i in idx]
                grads = [all_grads[i] for i in idx]
                prevs = [self._prev[i] if self._prev_ready[i] else None for i in idx]
                rows = [self._rows[i] is not None and grads[k] is not None
                        for k, i in enumerate(idx)]
                parts.append((idx, probe.measure(weights, grads, prevs, rows, self.histograms)))
        self._prev_ready = [False] * P
        return {"parts": parts}

    def _snapshots(self) -> list:
        from ..aggregate import rasterize

        out = []
        S = self.snapshot_size
        for i, p in enumerate(self.params):
            r, c = self._shapes[i]
            if r is None:
                continue
            ras = rasterize(p.detach(), width=min(c, S), height=min(r, S),
                            stats=("mean", "extremum"))
            out.append((i, "mean", np.asarray(ras["mean"], np.float32)))
            out.append((i, "extremum", np.asarray(ras["extremum"], np.float32)))
        return out

    def _put(self, item) -> None:
        while True:
            try:
                self._queue.put(item, timeout=0.5)
                return
            except queue.Full:
                if self._stop is not None:      # the writer drops what is queued: nothing to add
                    return
                if not self._thread.is_alive():
                    self._stop = (item["step"], "the watch's writer thread ended")
                    return

    @property
    def stopped_at(self) -> int | None:
        return None if self._stop is None else self._stop[0]

    @property
    def stop_reason(self) -> str | None:
        return None if self._stop is None else self._stop[1]

    def _report_stop(self, stacklevel: int) -> None:
        """On the training thread, once: warn that recording stopped, unhook, free the copies."""
        if self._stop is None or self._warned:
            return
        self._warned = True
        for h in self._hooks:
            h.remove()
        self._hooks = []
        self._prev = [None] * len(self.params)
        self._prev_ready = [False] * len(self.params)
        step, reason = self._stop
        msg = (f"dv.watch: recording to {self.path} stopped at step {step}: {reason}. Training "
               f"continues unrecorded; the steps logged before it are in the run, which stays "
               f"readable.")
        warnings.warn(msg, RecordingStoppedWarning, stacklevel=stacklevel + 1)
        if _log.hasHandlers():             # where logging is set up, the log says it too
            _log.warning(msg)

    # ------------------------------------------------------------------
    # the writer thread
    # ------------------------------------------------------------------

    def _write_loop(self) -> None:
        while True:
            item = self._queue.get()
            batch = [item]
            while item is not _STOP and len(batch) < 512:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                batch.append(item)
            stop = batch[-1] is _STOP
            work = [b for b in batch if b is not _STOP]
            try:
                if work and self._stop is None:
                    self._write_items(work)
            except BaseException as e:      # recording must never end in the training loop
                if self._stop is None:
                    self._fail(work[0]["step"], e)
            finally:
                for _ in batch:
                    self._queue.task_done()
            if stop:
                return

    def _write_items(self, work) -> None:
        """Turn queued steps into records and commit them; the first failure stops recording."""
        records = []
        for item in work:
            try:
                records.append(self._record(item))
            except Exception as e:          # a failed device copy, a bug: keep what came before
                if self._commit(records):
                    self._fail(item["step"], e)
                return
        self._commit(records)

    def _commit(self, records) -> bool:
        """Write records as one transaction, or, if that fails, one step at a time up to the
        first that cannot be written (which stops recording); True when all were written."""
        if not records:
            return True
        try:
            self._writer.write(records)
            return True
        except Exception as e:
            if len(records) == 1:
                self._fail(records[0].step, e)
                return False
        for rec in records:                 # keep every step that still fits
            try:
                self._writer.write([rec])
            except Exception as e:
                self._fail(rec.step, e)
                return False
        return True

    def _fail(self, step: int, err: BaseException) -> None:
        """Stop recording at ``step`` (writer thread); say so in the run if it takes a row."""
        if isinstance(err, RunWriteError):
            reason = err.problem
        else:
            reason = " ".join(f"{type(err).__name__}: {err}".split())
        self._stop = (step, reason)         # log() stops measuring from its next call
        message = (f"recording stopped at step {step}: {reason}; training continued "
                   f"unrecorded")
        for attempt in range(2):
            try:
                self._writer.write_alert(step, "recording_stopped", message)
                return
            except Exception:
                # folding the WAL in lets it start again from its beginning: room for one row
                # under a file-size limit (on a full disk the fold itself finds no room)
                if attempt or not self._writer.checkpoint():
                    return

    def _record(self, item) -> StepRecord:
        P = len(self.params)
        rec = StepRecord(step=item["step"], time=item["time"], recorded=item["recorded"])
        alerts = []
        for name, v in item["scalars"].items():
            v = float(_host(v)) if not isinstance(v, float) else v
            rec.scalars[name] = v
            if not math.isfinite(v):
                alerts.append((None, "nonfinite_scalar", f"{name} is {v} at step {rec.step}"))
        if item["recorded"]:
            stats = np.full((P, 3, len(STAT_NAMES)), np.nan)
            updates = np.full((P, 3), np.nan)
            hc = np.zeros((P, 2, self.bins), np.int64) if self.histograms else None
            hr = np.full((P, 2, 2), np.nan) if self.histograms else None
            for idx, part in item["parts"]:
                s = _host(part["stats"])
                stats[idx, :2] = s
                d = _host(part["diffsq"])
                if self.histograms:
                    hc[idx] = _host(part["hist_counts"])
                    hr[idx] = _host(part["hist_range"])
                for k, i in enumerate(idx):
                    if not math.isnan(d[k]):
                        norm = math.sqrt(d[k])
                        wn = s[k, 0, _NORM]
                        updates[i, 0] = norm
                        updates[i, 1] = norm / wn if wn > 0 else (0.0 if norm == 0 else math.inf)
                    rm = part["rowmax"][k]
                    if rm is not None:
                        before = self._dead[i]
                        updates[i, 2] = self._dead[i] = self._dead_units(i, _host(rm))
                        if self._dead[i] > before:
                            alerts.append((i, "dead_units",
                                           f"{self._dead[i]} of {len(rm)} units of "
                                           f"{self.names[i]} had an all-zero gradient on the "
                                           f"last {self.dead_after} recorded steps (step "
                                           f"{rec.step})"))
            rec.stats, rec.updates = stats, updates
            rec.hist_counts, rec.hist_range = hc, hr
            for i in range(P):
                for k, kind in ((0, "weight"), (1, "grad")):
                    bad = stats[i, k, [_NAN, _PINF, _NINF]]
                    if np.nansum(bad) > 0:
                        alerts.append((i, f"nonfinite_{kind}",
                                       f"{kind} of {self.names[i]} has {int(bad[0])} NaN, "
                                       f"{int(bad[1])} +inf, {int(bad[2])} -inf at step "
                                       f"{rec.step}"))
        rec.snapshots = item.get("snapshots", [])
        rec.alerts = alerts
        return rec

    def _dead_units(self, i: int, rowmax: np.ndarray) -> int:
        zero = rowmax == 0
        s = self._streak[i]
        if s is None or s.shape != zero.shape:
            s = np.zeros(zero.shape, np.int64)
        s = np.where(zero, s + 1, 0)
        self._streak[i] = s
        return int((s >= self.dead_after).sum())

    # ------------------------------------------------------------------
    # lifetime
    # ------------------------------------------------------------------

    def flush(self) -> None:
        """Wait until every logged step is committed to the store (or recording stopped)."""
        if not self._closed:
            self._queue.join()
        self._report_stop(stacklevel=2)

    def close(self) -> None:
        """Flush, mark the run closed, release the store and remove the hooks (idempotent).

        Returns normally when the store cannot be written (a full disk): the
        run keeps what was committed, and one warning says so.
        """
        if self._closed:
            return
        self._closed = True
        for h in self._hooks:
            h.remove()
        self._hooks = []
        closing_problem = None
        try:
            self._queue.put(_STOP)
            self._thread.join()
        finally:
            try:
                self._writer.close()
            except Exception as e:          # RunWriteError: the 'closed' mark did not fit
                closing_problem = e.problem if isinstance(e, RunWriteError) else \
                    " ".join(f"{type(e).__name__}: {e}".split())
            atexit.unregister(self._atexit)
            self._prev = [None] * len(self.params)
        self._report_stop(stacklevel=2)
        if closing_problem is not None and self._stop is None:
            msg = (f"dv.watch: every step logged to {self.path} was recorded, but the run could "
                   f"not be marked closed: {closing_problem}. It reads as a run that stopped "
                   f"without closing.")
            warnings.warn(msg, RecordingStoppedWarning, stacklevel=2)
            if _log.hasHandlers():
                _log.warning(msg)

    @property
    def closed(self) -> bool:
        return self._closed

    def open(self):
        """A reader of this run (:class:`dlviz_gpu.watch.Run`); it sees steps as they commit."""
        from .store import open_run

        return open_run(self.path)

    def __enter__(self) -> "Watch":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "recording"
        return (f"<dlviz_gpu.watch.Watch {state} {self.path}: {len(self.params)} parameters, "
                f"{self.logged} steps logged, {self.recorded} recorded, every={self.every}>")


def watch(model, optimizer=None, store="runs/run", *, every: int = 1, histograms: bool = True,
          bins: int = 64, snapshot_every: int | None = 100, snapshot_size: int = 256,
          dead_after: int = 20, updates: bool = True, mode: str = "new",
          config: dict | None = None) -> Watch:
    """Record a model's training into a run store; the dashboard follows it live.

    Parameters
    ----------
    model : torch.nn.Module
        Its parameters are recorded (shared parameters once).
    optimizer : torch.optim.Optimizer, optional
        Gives the learning rate of each parameter group, and the moment just
        before each update (for the update ratio).
    store : str or os.PathLike
        A run directory (the file is ``<store>/run.sqlite``) or a
        ``.sqlite`` / ``.db`` file.  Checked before training starts: a path
        that cannot be written, a run another process is writing, or a store
        from a newer dlviz_gpu are refused here.
    every : int
        Record tensors at the first :meth:`Watch.log` call and every
        ``every``-th call after it (scalars are stored at every call).
    histograms : bool
        Store exact weight and gradient histograms at recorded steps.
    bins : int
        Histogram bins (over each tensor's own finite range).
    snapshot_every : int or None
        Store a raster of every weight matrix each ``snapshot_every`` logged
        steps (None: never).
    snapshot_size : int
        Largest side, in pixels, of those rasters.
    dead_after : int
        A unit is dead when its gradient row was all zeros on this many
        recorded steps in a row.
    updates : bool
        Record update norms and ratios (keeps a copy of the trainable weights).
    mode : {"new", "append", "overwrite"}
        What to do when the store already holds steps: refuse, add to it,
        or start it afresh.
    config : dict, optional
        Extra JSON-able values stored with the run (hyper-parameters).

    Returns
    -------
    Watch
        Call ``.log(step, loss=...)`` after each step, ``.close()`` at the
        end (or use it as a context manager).

    Raises
    ------
    TypeError, ValueError
        Bad arguments (each names its parameter), a model without
        parameters, a store path that cannot be written.
    dlviz_gpu.watch.RunLockedError
        Another writer holds the run.
    dlviz_gpu.watch.SchemaVersionError
        The store was written by a newer dlviz_gpu.
    """
    return Watch(model, optimizer, store, every=every, histograms=histograms, bins=bins,
                 snapshot_every=snapshot_every, snapshot_size=snapshot_size,
                 dead_after=dead_after, updates=updates, mode=mode, config=config)

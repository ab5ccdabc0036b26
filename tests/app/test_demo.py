"""The demo's model, synthetic data and background trainer (dlviz_gpu.app.demo)."""

import math
import threading
import time

import numpy as np
import pytest
import torch

from dlviz_gpu.app.demo import DEFAULTS, MarkovTask, Trainer, batches, build_model, demo_input

SMALL = dict(vocab=64, d_model=64, n_layers=2, n_heads=4, seq_len=32)


def small(seed=0):
    return build_model(seed, **SMALL)


def wait_for(cond, timeout=30.0):
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError("timed out waiting for the trainer")
        time.sleep(0.01)


def finish(trainer, timeout=60.0):
    trainer._thread.join(timeout)
    assert not trainer.running


# -- the model -----------------------------------------------------------------------------

def test_default_parameter_count_matches_the_architecture():
    m = build_model()
    n = sum(p.numel() for p in m.parameters())
    v, d, L, s = DEFAULTS["vocab"], DEFAULTS["d_model"], DEFAULTS["n_layers"], DEFAULTS["seq_len"]
    # embeddings + lm_head, positions, per block (qkv, proj, fc, proj, 2 LayerNorms), ln_f
    per_block = (3 * d * d + 3 * d) + (d * d + d) + (4 * d * d + 4 * d) + (4 * d * d + d) + 4 * d
    assert n == 2 * v * d + s * d + L * per_block + 2 * d
    assert 4_000_000 <= n <= 8_000_000


def test_module_names_and_shapes_are_the_readable_ones():
    m = build_model()
    shapes = {k: tuple(v.shape) for k, v in m.state_dict().items()}
    d, v = DEFAULTS["d_model"], DEFAULTS["vocab"]
    assert shapes["blocks.3.attn.qkv.weight"] == (3 * d, d)
    assert shapes["blocks.3.attn.proj.weight"] == (d, d)
    assert shapes["blocks.3.mlp.fc.weight"] == (4 * d, d)
    assert shapes["blocks.3.mlp.proj.weight"] == (d, 4 * d)
    assert shapes["tok_emb.weight"] == (v, d) and shapes["lm_head.weight"] == (v, d)
    assert f"blocks.{DEFAULTS['n_layers'] - 1}.ln2.bias" in shapes and "ln_f.weight" in shapes
    assert "lm_head.bias" not in shapes
    assert m.lm_head.weight.data_ptr() != m.tok_emb.weight.data_ptr()  # untied
    assert demo_input(m) == ((1, DEFAULTS["seq_len"]), torch.long)


def test_same_seed_same_weights_other_seed_other_weights_global_rng_untouched():
    before = torch.get_rng_state()
    a, b, c = build_model(0), build_model(0), build_model(1)
    assert torch.equal(before, torch.get_rng_state())
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    for k in sa:
        if k.endswith("weight") and sa[k].ndim == 2:
            assert not torch.equal(sa[k], sc[k]), k
    # the documented initialisation
    assert torch.all(sa["blocks.0.ln1.weight"] == 1) and torch.all(sa["blocks.0.attn.qkv.bias"] == 0)
    assert sa["blocks.0.mlp.fc.weight"].std().item() == pytest.approx(0.02, rel=0.05)
    resid = 0.02 / math.sqrt(2 * DEFAULTS["n_layers"])
    assert sa["blocks.0.mlp.proj.weight"].std().item() == pytest.approx(resid, rel=0.05)


def test_forward_shape_and_causality():
    m = small()
    tokens = torch.randint(SMALL["vocab"], (3, 20), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = m(tokens)
        changed = tokens.clone()
        changed[:, 12] = (changed[:, 12] + 1) % SMALL["vocab"]
        out2 = m(changed)
    assert out.shape == (3, 20, SMALL["vocab"]) and out.dtype == torch.float32
    assert torch.equal(out[:, :12], out2[:, :12])  # the past does not see the future
    assert not torch.allclose(out[:, 12:], out2[:, 12:])


def test_forward_and_build_reject_bad_input():
    m = small()
    with pytest.raises(ValueError, match="at most seq_len=32"):
        m(torch.zeros(1, 33, dtype=torch.long))
    with pytest.raises(ValueError, match=r"tokens: expected a \(batch, seq\)"):
        m(torch.zeros(33, dtype=torch.long))
    with pytest.raises(ValueError, match="n_heads: expected a divisor of d_model=64; got 5"):
        build_model(0, **{**SMALL, "n_heads": 5})
    with pytest.raises(ValueError, match="n_layers: expected an int >= 1; got 0"):
        build_model(0, **{**SMALL, "n_layers": 0})
    with pytest.raises(TypeError, match="seed: expected an int"):
        build_model(0.5)


# -- the data ------------------------------------------------------------------------------

def test_batches_are_deterministic_walks_of_the_chain():
    task = MarkovTask(SMALL["vocab"], seed=3)
    g1, g2 = batches(3, 8, 16, SMALL["vocab"]), batches(3, 8, 16, SMALL["vocab"])
    x = next(g1)
    assert x.shape == (8, 17) and x.dtype == torch.long
    assert torch.equal(x, next(g2)) and not torch.equal(x, next(g1))
    assert not torch.equal(x, next(batches(4, 8, 16, SMALL["vocab"])))
    succ = task.succ.numpy()
    xs = x.numpy()
    for row in xs:
        for a, b in zip(row[:-1], row[1:]):
            assert b in succ[a]
    assert np.allclose(task.probs.sum(dim=1).numpy(), 1.0)
    assert all(len(set(r)) == task.branching for r in succ)  # distinct successors


def test_entropy_is_the_mean_loss_of_the_true_chain():
    vocab, seq = 16, 12
    task = MarkovTask(vocab, seed=5)
    x = torch.cat([t for _, t in zip(range(40), batches(5, 256, seq, vocab))]).numpy()
    # independent: the empirical mean of -log p(next | prev) under the true chain
    p = np.zeros((vocab, vocab))
    np.add.at(p, (np.arange(vocab)[:, None].repeat(task.branching, 1), task.succ.numpy()),
              task.probs.numpy())
    nll = -np.log(p[x[:, :-1], x[:, 1:]])
    assert task.entropy(seq) == pytest.approx(nll.mean(), abs=0.01)
    assert task.entropy(seq) < math.log(task.branching) < math.log(vocab)


# -- the trainer ---------------------------------------------------------------------------

def test_the_model_learns_the_chain():
    m = small()
    floor = MarkovTask(SMALL["vocab"], seed=0).entropy(SMALL["seq_len"])
    chance = math.log(SMALL["vocab"])
    t = Trainer(m, steps=100, batch=8, lr=1e-2, warmup=10, seed=0).start()
    finish(t)
    assert t.error is None and t.step == 100 and len(t.history) == 100
    loss = np.array([h[1] for h in t.history])
    assert loss[0] == pytest.approx(chance, abs=0.15)  # a fresh model guesses uniformly
    gap = chance - floor  # about 3 nats: what there is to learn
    assert loss[-10:].mean() < loss[:10].mean() - 0.5 * gap
    assert loss[-10:].mean() > floor - 0.2  # nobody beats the chain's entropy by much
    st = t.state()
    assert st["step"] == 100 and st["running"] is False and st["error"] is None
    assert st["loss"] == loss[-1] and st["steps_per_second"] > 0


def test_training_is_deterministic():
    runs = []
    for _ in range(2):
        m = small()
        t = Trainer(m, steps=5, batch=4, seed=7).start()
        finish(t)
        runs.append((t.history, m.state_dict()))
    assert runs[0][0] == runs[1][0]
    assert all(torch.equal(runs[0][1][k], runs[1][1][k]) for k in runs[0][1])


def test_lr_schedule_warmup_then_cosine():
    lr, warmup, steps = 0.01, 10, 30
    t = Trainer(small(), steps=steps, batch=2, lr=lr, warmup=warmup).start()
    finish(t)
    got = [h[2] for h in t.history]
    assert [h[0] for h in t.history] == list(range(1, steps + 1))
    expected = [lr * k / warmup if k <= warmup else
                lr * (0.1 + 0.45 * (1 + math.cos(math.pi * (k - warmup) / (steps - warmup))))
                for k in range(1, steps + 1)]
    assert got == pytest.approx(expected, rel=1e-12)
    assert np.all(np.diff(got[:warmup]) > 0) and np.all(np.diff(got[warmup:]) < 0)
    assert got[-1] == pytest.approx(lr / 10)
    # the optimizer really used it
    assert t.optimizer.param_groups[0]["lr"] == got[-1]
    forever = Trainer(small(), lr=lr, warmup=warmup)
    assert [forever.lr_at(k) for k in (5, 10, 11, 10_000)] == pytest.approx([lr / 2, lr, lr, lr])
    assert Trainer(small(), lr=lr, warmup=0).lr_at(1) == lr


def test_stop_returns_promptly_and_the_thread_ends():
    with Trainer(small(), batch=2).start() as t:
        wait_for(lambda: t.step >= 2)
        assert t.running and t.state()["running"]
        assert t.stop(timeout=5.0) is True
        assert not t.running and not t._thread.is_alive()
        done = t.step
        time.sleep(0.2)
        assert t.step == done == len(t.history)
        # resume continues the count
        t.start()
        wait_for(lambda: t.step >= done + 1)
    assert not t.running and t.error is None
    assert [h[0] for h in t.history] == list(range(1, t.step + 1))
    assert Trainer(small()).stop() is True  # never started


def test_lock_is_held_while_the_weights_change():
    m = small()
    t = Trainer(m, batch=2).start()
    try:
        wait_for(lambda: t.step >= 1)
        with t.lock:
            frozen = {k: v.clone() for k, v in m.state_dict().items()}
            step = t.step
            time.sleep(0.3)  # the loop reaches optimizer.step() and waits there
            # at most the step whose update finished just before we took the lock
            assert t.step <= step + 1
            assert all(torch.equal(frozen[k], v) for k, v in m.state_dict().items())
        wait_for(lambda: t.step >= step + 2)
        snap = t.snapshot()
        assert set(snap) == set(m.state_dict())
        assert not all(torch.equal(frozen[k], snap[k]) for k in snap)
    finally:
        assert t.stop()


def test_threads_is_set_during_training_and_restored():
    seen = []
    source = batches(0, 2, SMALL["seq_len"], SMALL["vocab"])

    def data():
        while True:
            seen.append(torch.get_num_threads())
            yield next(source)

    original = torch.get_num_threads()
    torch.set_num_threads(2)  # so that "restored" differs from what training sets
    try:
        t = Trainer(small(), steps=3, threads=1, data=data()).start()
        finish(t)
        # torch's setting reaches threads started later (with the OpenMP backend
        # the calling thread keeps its own), so look from a fresh thread
        after = []
        probe = threading.Thread(target=lambda: after.append(torch.get_num_threads()))
        probe.start()
        probe.join()
    finally:
        torch.set_num_threads(original)
    assert t.error is None and seen and set(seen) == {1}
    assert after == [2]


class Broken(torch.nn.Module):
    vocab, seq_len = 8, 4

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, tokens):
        raise RuntimeError("boom in forward")


def test_an_error_in_the_loop_is_kept_and_the_loop_ends():
    t = Trainer(Broken(), batch=2).start()
    finish(t, timeout=10)
    assert isinstance(t.error, RuntimeError) and "boom in forward" in str(t.error)
    assert t.running is False and t.step == 0
    assert t.state()["error"] == "RuntimeError: boom in forward"
    with pytest.raises(RuntimeError, match="last run failed"):
        t.start()


def test_a_non_finite_loss_stops_the_loop_without_touching_the_weights():
    m = small()
    with torch.no_grad():
        m.lm_head.weight[0, 0] = float("nan")
    before = {k: v.clone() for k, v in m.state_dict().items()}
    t = Trainer(m, batch=2).start()
    finish(t, timeout=20)
    assert isinstance(t.error, FloatingPointError)
    assert "loss became nan at step 1" in str(t.error)
    assert len(t.history) == 1 and math.isnan(t.history[0][1])
    after = m.state_dict()
    assert all(torch.allclose(before[k], after[k], rtol=0, atol=0, equal_nan=True)
               for k in before)
    assert t.state()["error"].startswith("FloatingPointError: the loss became nan")


@pytest.mark.parametrize("kwargs, match", [
    (dict(batch=0), "batch: expected an int >= 1; got 0"),
    (dict(lr=-1), "lr: expected a positive finite float; got -1"),
    (dict(lr=float("nan")), "lr: expected a positive finite float; got nan"),
    (dict(threads=0), "threads: expected an int >= 1; got 0"),
    (dict(steps=0), "steps: expected an int >= 1; got 0"),
    (dict(warmup=-1), "warmup: expected an int >= 0; got -1"),
    (dict(clip=0.0), "clip: expected a positive finite float; got 0.0"),
])
def test_bad_arguments_raise_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Trainer(small(), **kwargs)


def test_bad_types_and_models_without_vocab():
    with pytest.raises(TypeError, match="model: expected a torch.nn.Module; got dict"):
        Trainer({})
    with pytest.raises(TypeError, match="batch: expected an int >= 1; got float 2.0"):
        Trainer(small(), batch=2.0)
    with pytest.raises(ValueError, match="without data=, expected a model with int `vocab`"):
        Trainer(torch.nn.Linear(2, 2))


def test_running_trainer_refuses_a_second_start():
    t = Trainer(small(), batch=2).start()
    try:
        with pytest.raises(RuntimeError, match="already running"):
            t.start()
    finally:
        assert t.stop()
    assert not t.running

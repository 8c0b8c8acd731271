"""Bring your own network (Flax): record each layer's activations with `capture_intermediates`,
write them with `ibrepro.write_run`, then run ibrepro's pipeline on the file.

    python examples/flax_own_network.py OUT_DIR [--epochs 300] [--seeds 3]

then `ibrepro analyze OUT_DIR/flax_mlp.h5`, `ibrepro claims ...`, `ibrepro plot ...`,
`ibrepro report ...` (or the Python calls at the end of this file).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

import ibrepro


class Tanh(nn.Module):
    """tanh as a module, so that `capture_intermediates` records its output."""

    def __call__(self, x):
        return jnp.tanh(x)


class MLP(nn.Module):
    hidden: tuple[int, ...] = (8, 6, 4)

    @nn.compact
    def __call__(self, x):
        for width in self.hidden:
            x = Tanh()(nn.Dense(width)(x))
        return nn.softmax(nn.Dense(2)(x))


def toy_data() -> tuple[np.ndarray, np.ndarray]:
    """All 10-bit patterns, labelled by a fixed rule (a stand-in for your data)."""
    x = ((np.arange(1024)[:, None] >> np.arange(10)) & 1).astype(np.float32) * 2 - 1
    y = (x @ np.linspace(-1, 1.5, 10) + 0.3 * x[:, 0] * x[:, 1] > 0.2).astype(np.int32)
    return x, y


def layer_outputs(model: MLP, params, x) -> dict[str, np.ndarray]:
    """{layer: (N, width)}: every Tanh output, then the softmax output."""
    probs, state = model.apply({"params": params}, x, capture_intermediates=lambda m, _: isinstance(m, Tanh))
    tanh = state["intermediates"]
    return {**{f"hidden{k + 1}": np.asarray(tanh[name]["__call__"][0]) for k, name in enumerate(sorted(tanh))},
            "output": np.asarray(probs)}


def train_one(seed: int, x, y, epochs: list[int]):
    """Full-batch Adam; returns {layer: (E, N, width)} and the train loss at the logged epochs."""
    model = MLP()
    params = model.init(jax.random.PRNGKey(seed), x)["params"]
    optimizer = optax.adam(3e-3)
    opt_state = optimizer.init(params)

    def loss_fn(p):
        return -jnp.mean(jnp.log(model.apply({"params": p}, x)[jnp.arange(len(y)), y] + 1e-9))

    @jax.jit
    def step(p, s):
        loss, grads = jax.value_and_grad(loss_fn)(p)
        updates, s = optimizer.update(grads, s)
        return optax.apply_updates(p, updates), s, loss

    recorded, losses = [], []
    for epoch in range(epochs[-1] + 1):
        if epoch in epochs:  # before this epoch's update: epoch 0 is the initial network
            recorded.append(layer_outputs(model, params, x))
            losses.append(float(loss_fn(params)))
        params, opt_state, _ = step(params, opt_state)
    return {k: np.stack([r[k] for r in recorded]) for k in recorded[0]}, np.array(losses)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    x, y = toy_data()
    epochs = sorted({int(e) for e in np.geomspace(1, args.epochs + 1, 40) - 1})
    runs = [train_one(seed, x, y, epochs) for seed in range(args.seeds)]
    activations = {k: np.stack([acts[k] for acts, _ in runs]) for k in runs[0][0]}  # (S, E, N, width)
    path = ibrepro.write_run(args.out / "flax_mlp.h5", x=x, y=y, activations=activations, epochs=epochs,
                             metrics={"train_loss": np.stack([loss for _, loss in runs])}, overwrite=True)
    print(f"wrote {path}; next: ibrepro analyze {path}")


if __name__ == "__main__":
    main()

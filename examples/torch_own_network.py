"""Bring your own network (PyTorch): record each layer's activations with forward hooks, write
them with `ibrepro.write_run`, then run ibrepro's pipeline on the file.

    pip install 'ibrepro[torch]'
    python examples/torch_own_network.py OUT_DIR [--epochs 300] [--seeds 3]

then `ibrepro analyze OUT_DIR/torch_mlp.h5`, `ibrepro claims ...`, `ibrepro plot ...`,
`ibrepro report ...`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from torch import nn

import ibrepro


def toy_data() -> tuple[np.ndarray, np.ndarray]:
    """All 10-bit patterns, labelled by a fixed rule (a stand-in for your data)."""
    x = ((np.arange(1024)[:, None] >> np.arange(10)) & 1).astype(np.float32) * 2 - 1
    y = (x @ np.linspace(-1, 1.5, 10) + 0.3 * x[:, 0] * x[:, 1] > 0.2).astype(np.int64)
    return x, y


def make_model(hidden=(8, 6, 4)) -> nn.Sequential:
    layers, width = [], 10
    for out in hidden:
        layers += [nn.Linear(width, out), nn.Tanh()]
        width = out
    return nn.Sequential(*layers, nn.Linear(width, 2), nn.Softmax(dim=1))


def train_one(seed: int, x, y, epochs: list[int]):
    """Full-batch Adam; returns {layer: (E, N, width)} and the train loss at the logged epochs."""
    torch.manual_seed(seed)
    model = make_model()
    watched = {f"hidden{k + 1}": m for k, m in enumerate(m for m in model if isinstance(m, nn.Tanh))}
    watched["output"] = model[-1]
    seen: dict[str, torch.Tensor] = {}
    for name, module in watched.items():  # each hook keeps its module's latest output
        module.register_forward_hook(lambda _m, _inputs, output, name=name: seen.__setitem__(name, output.detach()))
    xs, ys = torch.from_numpy(x), torch.from_numpy(y)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    recorded, losses = {name: [] for name in watched}, []
    for epoch in range(epochs[-1] + 1):
        if epoch in epochs:  # before this epoch's update: epoch 0 is the initial network
            with torch.no_grad():
                probs = model(xs)
            for name in watched:
                recorded[name].append(seen[name].numpy().copy())
            losses.append(float(nn.functional.nll_loss(torch.log(probs + 1e-9), ys)))
        optimizer.zero_grad()
        loss = nn.functional.nll_loss(torch.log(model(xs) + 1e-9), ys)
        loss.backward()
        optimizer.step()
    return {name: np.stack(values) for name, values in recorded.items()}, np.array(losses)


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
    path = ibrepro.write_run(args.out / "torch_mlp.h5", x=x, y=y, activations=activations, epochs=epochs,
                             metrics={"train_loss": np.stack([loss for _, loss in runs])}, overwrite=True)
    print(f"wrote {path}; next: ibrepro analyze {path}")


if __name__ == "__main__":
    main()

"""Train ``shufflenet_v2_digits`` on scikit-learn's digits and write its weights with their metadata.

    python benchmarks/train_digits.py [--epochs 40] [--output edgekit/models/shufflenet_v2_digits.pt]

Deterministic (seed 0, fixed split from ``edgekit.data.digits``); about two minutes on 2 cores. The file is
``{"state_dict": ..., "metadata": {...}}``: edgekit's weights loader takes the state dict, and the
metadata records how the weights were made and their fp32 top-1 accuracy on the held-out split.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
from torch import nn

from edgekit.data import preprocess
from edgekit.data.digits import HELDOUT_IMAGES, SPLIT_SEED, digits_images
from edgekit.models.digits import DIGITS_INPUT_SHAPE, DIGITS_MEAN, DIGITS_STD, DIGITS_WEIGHTS
from edgekit.models.registry import build_architecture
from edgekit.models.weights import state_dict_sha256

SEED = 0


def shifted(x: torch.Tensor, generator: torch.Generator, max_shift: int = 4) -> torch.Tensor:
    """Random translation by up to ``max_shift`` pixels (zero fill = background), one per image."""
    n, _, h, w = x.shape
    padded = nn.functional.pad(x, (max_shift,) * 4, value=float(x.min()))
    dy = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator)
    return torch.stack([padded[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(n)])


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(x[i : i + 256]).argmax(1) for i in range(0, len(x), 256)])
    return float((pred == y).float().mean())


def train_on_digits(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int, lr: float,
                    report: Callable[[int, float], None] | None = None) -> nn.Module:
    """Train ``model`` in place on preprocessed digits ``x`` (labels ``y``): SGD with Nesterov momentum, a
    one-cycle schedule peaking at ``lr``, label smoothing and random shifts, seeded; ``report(epoch, mean
    loss)`` after each epoch. Returns the model in eval mode. Seed torch before building ``model`` (dropout
    draws from torch's global generator; the batches and shifts from their own, seeded here)."""
    generator = torch.Generator().manual_seed(SEED)
    batch = 64
    steps = epochs * ((len(x) + batch - 1) // batch)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=4e-5, nesterov=True)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=0.15)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.05)
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(x), generator=generator)
        total = 0.0
        for i in range(0, len(order), batch):
            idx = order[i : i + batch]
            loss = loss_fn(model(shifted(x[idx], generator)), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += float(loss.detach()) * len(idx)
        if report is not None:
            report(epoch, total / len(x))
    return model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--output", default=str(DIGITS_WEIGHTS))
    args = parser.parse_args()

    torch.manual_seed(SEED)
    torch.set_num_threads(2)
    size = DIGITS_INPUT_SHAPE[2:]
    train_images, train_labels = digits_images("train", size)
    held_images, held_labels = digits_images("heldout", size)
    x_train = torch.from_numpy(preprocess(train_images, DIGITS_MEAN, DIGITS_STD, 3))
    y_train = torch.from_numpy(train_labels)
    x_held = torch.from_numpy(preprocess(held_images, DIGITS_MEAN, DIGITS_STD, 3))
    y_held = torch.from_numpy(held_labels)

    model = build_architecture("shufflenet_v2_digits")
    start = time.perf_counter()

    def report(epoch: int, loss: float) -> None:
        if epoch % 5 == 4 or epoch == args.epochs - 1:
            print(f"epoch {epoch + 1}: loss {loss:.4f}, held-out top-1 "
                  f"{accuracy(model, x_held, y_held):.4f} ({time.perf_counter() - start:.0f} s)")

    train_on_digits(model, x_train, y_train, epochs=args.epochs, lr=0.2, report=report)  # leaves it in eval mode
    heldout_top1 = accuracy(model, x_held, y_held)
    train_top1 = accuracy(model, x_train, y_train)
    metadata = {
        "model": "shufflenet_v2_digits",
        "dataset": "sklearn.datasets.load_digits, upsampled bilinearly to 64x64, grey in 3 channels",
        "split": f"fixed permutation seed {SPLIT_SEED}: {HELDOUT_IMAGES} held out, {len(x_train)} train",
        "heldout_top1": round(heldout_top1 * 100, 2),
        "train_top1": round(train_top1 * 100, 2),
        "epochs": args.epochs,
        "seed": SEED,
        "mean": list(DIGITS_MEAN),
        "std": list(DIGITS_STD),
        "script": "benchmarks/train_digits.py",
    }
    state = {k: v.clone() for k, v in model.state_dict().items()}
    torch.save({"state_dict": state, "metadata": metadata}, args.output)
    print(f"wrote {args.output}: held-out top-1 {heldout_top1:.4f}, train {train_top1:.4f}, "
          f"sha256 {state_dict_sha256(model)[:12]}")


if __name__ == "__main__":
    main()

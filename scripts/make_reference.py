#!/usr/bin/env python3
"""Generates tests/data/softmax_reference.json with PyTorch (Debian's python3-torch), run once
by hand: /usr/bin/python3 scripts/make_reference.py

Softmax regression (x @ W + b, cross-entropy with integer labels, mean over the batch) trained for
a few SGD steps from a deterministic start on deterministic data; Kiln's JIT path must reproduce
the losses and final parameters (tests/compiler/reference_test.cc builds the same data with the
same formulas).
"""
import json
import math
import os

import torch

IN, OUT, BATCH, STEPS, LR = 32, 10, 8, 5, 0.1


def init_weight():
    return [[0.05 * math.sin(i * 10 + j) for j in range(OUT)] for i in range(IN)]


def init_bias():
    return [0.01 * j for j in range(OUT)]


def batch(step):
    xs, ys = [], []
    for r in range(BATCH):
        n = step * BATCH + r
        xs.append([((n * 37 + k * 11) % 256) / 255.0 for k in range(IN)])
        ys.append((n * 7) % OUT)
    return xs, ys


OPTIMIZERS = {
    "sgd": (0.1, lambda p, lr: torch.optim.SGD(p, lr=lr)),
    "momentum": (0.1, lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.9)),
    "nesterov": (0.1, lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.9, nesterov=True)),
    "adagrad": (0.1, lambda p, lr: torch.optim.Adagrad(p, lr=lr, eps=1e-10)),
    "rmsprop": (0.01, lambda p, lr: torch.optim.RMSprop(p, lr=lr, alpha=0.99, eps=1e-8)),
    "adam": (0.01, lambda p, lr: torch.optim.Adam(p, lr=lr)),
    "adamw": (0.01, lambda p, lr: torch.optim.AdamW(p, lr=lr, weight_decay=0.01)),
}


def train(make, lr):
    w = torch.tensor(init_weight(), dtype=torch.float32, requires_grad=True)
    b = torch.tensor(init_bias(), dtype=torch.float32, requires_grad=True)
    opt = make([w, b], lr)
    losses = []
    for step in range(STEPS):
        xs, ys = batch(step)
        x = torch.tensor(xs, dtype=torch.float32)
        y = torch.tensor(ys, dtype=torch.int64)
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(x @ w + b, y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return {"lr": lr, "losses": losses, "weight": [v for row in w.detach().tolist() for v in row],
            "bias": b.detach().tolist()}


def main():
    torch.manual_seed(0)
    runs = {name: train(make, lr) for name, (lr, make) in OPTIMIZERS.items()}
    sgd = runs["sgd"]
    losses, w_list, b_list = sgd["losses"], sgd["weight"], sgd["bias"]
    out = {
        "generator": f"PyTorch {torch.__version__}, torch.optim, float32",
        "in": IN, "out": OUT, "batch": BATCH, "steps": STEPS, "lr": LR,
        "losses": losses,
        "weight": w_list,
        "bias": b_list,
        "optimizers": runs,
    }
    path = os.path.join(os.path.dirname(__file__), "..", "tests", "data", "softmax_reference.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
    print("wrote", os.path.normpath(path), "losses", losses)


if __name__ == "__main__":
    main()

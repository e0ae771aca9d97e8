#!/usr/bin/env python3
"""PyTorch peer of the GPU check (scripts/gpu_check.sh): the tutorial CNN (conv 1->20 k5 p2, ReLU,
max-pool 2, conv 20->20 k5 p2, ReLU, max-pool 2, fc 980->10), Adam, eager mode, float32 (TF32 off
for convolutions and matmuls), the training and test sets preloaded on the device, each batch
gathered through a per-epoch permutation on the device - the same work Kiln's resident GPU
training does. Prints one JSON line.

  python3 bench/pytorch_gpu_peer.py DATA_DIR [--device cuda] [--batch 256] [--epochs 3]
      [--lr 2e-3] [--target 0.99] [--target_lr 4e-3] [--horizon 5] [--max_steps N]

Training images/s: median over the timed epochs after one warm-up epoch. Evaluation images/s: the
10,000 test images in batches of 1000, median of 3. Time to target: a fresh model trained with
Adam at --target_lr decayed by a cosine to 0 over --horizon epochs (per step, as Kiln's
`--lr_schedule=cosine`), the test set checked after every epoch, stopped when its accuracy reaches
--target; training time only.
--max_steps limits every epoch (a dry run on the CPU).
"""
import argparse
import gzip
import json
import math
import os
import statistics
import time

import numpy as np
import torch


def idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    if not os.path.exists(path) and os.path.exists(path + ".gz"):
        path, opener = path + ".gz", gzip.open
    with opener(path, "rb") as f:
        data = f.read()
    rank = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(rank)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * rank).reshape(dims)


def cnn():
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 20, 5, padding=2), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(20, 20, 5, padding=2), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(980, 10))


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def train_epoch(net, opt, x, y, batch, max_steps, device, sched=None):
    perm = torch.randperm(x.shape[0], device=device)
    steps = x.shape[0] // batch
    if max_steps:
        steps = min(steps, max_steps)
    for b in range(steps):
        i = perm[b * batch:(b + 1) * batch]
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(net(x[i]), y[i])
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
    sync(device)
    return steps * batch


def accuracy(net, xt, yt):
    with torch.no_grad():
        correct = 0
        for b in range(0, xt.shape[0], 1000):
            correct += int((net(xt[b:b + 1000]).argmax(1) == yt[b:b + 1000]).sum())
    return correct / xt.shape[0]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("data_dir")
    p.add_argument("--device", default="cuda")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--target", type=float, default=0.99)
    p.add_argument("--target_lr", type=float, default=4e-3)
    p.add_argument("--horizon", type=int, default=5)
    p.add_argument("--max_steps", type=int, default=0)
    a = p.parse_args()
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    device = torch.device(a.device)
    load = lambda n: idx(os.path.join(a.data_dir, n))
    x = torch.from_numpy(load("train-images-idx3-ubyte").astype(np.float32) / 255.0)
    x = x.reshape(-1, 1, 28, 28).to(device)
    y = torch.from_numpy(load("train-labels-idx1-ubyte").astype(np.int64)).to(device)
    xt = torch.from_numpy(load("t10k-images-idx3-ubyte").astype(np.float32) / 255.0)
    xt = xt.reshape(-1, 1, 28, 28).to(device)
    yt = torch.from_numpy(load("t10k-labels-idx1-ubyte").astype(np.int64)).to(device)

    torch.manual_seed(1)
    net = cnn().to(device)
    opt = torch.optim.Adam(net.parameters(), lr=a.lr)
    train_epoch(net, opt, x, y, a.batch, a.max_steps, device)  # warm-up (cuDNN autotuning)
    rates = []
    for _ in range(a.epochs):
        t0 = time.perf_counter()
        n = train_epoch(net, opt, x, y, a.batch, a.max_steps, device)
        rates.append(n / (time.perf_counter() - t0))
    eval_rates = []
    for _ in range(3):
        t0 = time.perf_counter()
        acc = accuracy(net, xt, yt)
        sync(device)
        eval_rates.append(xt.shape[0] / (time.perf_counter() - t0))

    torch.manual_seed(2)
    net = cnn().to(device)
    opt = torch.optim.Adam(net.parameters(), lr=a.target_lr)
    total = a.horizon * (x.shape[0] // a.batch)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda t: 0.5 * (1 + math.cos(math.pi * min(t, total) / total)))
    trained, reached, epochs, final = 0.0, False, 0, 0.0
    while epochs < a.horizon and not reached:
        t0 = time.perf_counter()
        train_epoch(net, opt, x, y, a.batch, a.max_steps, device, sched)
        trained += time.perf_counter() - t0
        epochs += 1
        final = accuracy(net, xt, yt)
        reached = final >= a.target
    name = torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu"
    print(json.dumps({
        "peer": "pytorch", "device": name, "batch": a.batch,
        "train_images_per_s": statistics.median(rates), "epochs_timed": a.epochs,
        "eval_images_per_s": statistics.median(eval_rates), "test_accuracy": acc,
        "time_to_target_s": trained if reached else None, "epochs_to_target": epochs,
        "target": a.target, "accuracy_at_stop": final,
        "config": f"PyTorch {torch.__version__}, eager, float32 (TF32 off), cuDNN "
                  f"{torch.backends.cudnn.version() if device.type == 'cuda' else '-'}, "
                  f"Adam lr {a.lr} (throughput), {a.target_lr} cosine over {a.horizon} "
                  f"epochs (time to target)"}), flush=True)


if __name__ == "__main__":
    main()

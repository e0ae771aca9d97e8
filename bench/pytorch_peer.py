#!/usr/bin/env python3
"""PyTorch peer for bench/run.sh: the same models, batch sizes, data and thread count as
bench/kiln_bench.cc. Data is preloaded as float tensors (no DataLoader); each step gathers its
batch through a per-epoch permutation, as Kiln's feeder does. Prints one JSON line per model.

usage: /usr/bin/python3 bench/pytorch_peer.py DATA_DIR EPOCHS
"""
import json
import os
import resource
import statistics
import sys
import time

import numpy as np
import torch


def idx(path):
    with open(path, "rb") as f:
        data = f.read()
    rank = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(rank)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * rank).reshape(dims)


def model(name):
    if name == "linear":
        return torch.nn.Linear(784, 1), 16, 0.001
    if name == "softmax":
        return torch.nn.Linear(784, 10), 64, 0.2
    if name == "mlp":
        return torch.nn.Sequential(torch.nn.Linear(784, 128), torch.nn.ReLU(),
                                   torch.nn.Linear(128, 10)), 64, 0.1
    if name == "cnn":
        return torch.nn.Sequential(
            torch.nn.Unflatten(1, (1, 28, 28)),
            torch.nn.Conv2d(1, 20, 5, padding=2), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(20, 20, 5, padding=2), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Flatten(), torch.nn.Linear(980, 10)), 64, 0.01
    if name == "lenet5":
        return torch.nn.Sequential(
            torch.nn.Unflatten(1, (1, 28, 28)),
            torch.nn.Conv2d(1, 6, 5, padding=2), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(6, 16, 5), torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Flatten(),
            torch.nn.Linear(400, 120), torch.nn.ReLU(), torch.nn.Linear(120, 84), torch.nn.ReLU(),
            torch.nn.Linear(84, 10)), 64, 0.01
    raise ValueError(name)


def evaluate(net, xt, yt):
    """Images/s of the forward pass over the test set in batches of 1000 (median of 3), accuracy."""
    rates = []
    with torch.no_grad():
        for _ in range(3):
            t0 = time.perf_counter()
            correct = 0
            for b in range(0, xt.shape[0], 1000):
                correct += int((net(xt[b:b + 1000]).argmax(1) == yt[b:b + 1000]).sum())
            rates.append(xt.shape[0] / (time.perf_counter() - t0))
    return statistics.median(rates), correct / xt.shape[0]


def run(name, x, y, xt, yt, epochs):
    torch.manual_seed(1)
    net, batch, lr = model(name)
    opt = torch.optim.SGD(net.parameters(), lr=lr)
    yf = y.float().unsqueeze(1)
    steps = x.shape[0] // batch

    def epoch(limit=None):
        perm = torch.randperm(x.shape[0])
        n = steps if limit is None else limit
        for b in range(n):
            i = perm[b * batch:(b + 1) * batch]
            opt.zero_grad(set_to_none=True)
            out = net(x[i])
            if name == "linear":
                loss = torch.mean((out - yf[i]) ** 2)
            else:
                loss = torch.nn.functional.cross_entropy(out, y[i])
            loss.backward()
            opt.step()
        return n * batch

    epoch(limit=200)  # warm-up
    rates = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        images = epoch()
        rates.append(images / (time.perf_counter() - t0))
    eval_rate, accuracy = evaluate(net, xt, yt) if name != "linear" else (None, None)
    if name == "linear":  # the regression's prediction is its rounded output
        with torch.no_grad():
            t0 = time.perf_counter()
            pred = torch.round(net(xt)).squeeze(1)
            eval_rate = xt.shape[0] / (time.perf_counter() - t0)
            accuracy = float((pred == yt.float()).float().mean())
    return {"peer": "pytorch", "model": name, "batch": batch,
            "train_images_per_s": statistics.median(rates), "epochs_timed": epochs,
            "eval_images_per_s": eval_rate, "test_accuracy": accuracy,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "config": f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads, "
                      f"oneDNN {torch.backends.mkldnn.is_available()}, OPENBLAS_CORETYPE="
                      f"{os.environ.get('OPENBLAS_CORETYPE', 'auto')}, BLAS "
                      + os.path.basename(os.path.dirname(os.path.realpath(
                          "/usr/lib/x86_64-linux-gnu/libblas.so.3")))}


def main():
    data_dir, epochs = sys.argv[1], int(sys.argv[2])
    torch.set_num_threads(2)
    x = torch.from_numpy(idx(f"{data_dir}/train-images-idx3-ubyte").reshape(-1, 784).astype(np.float32) / 255.0)
    y = torch.from_numpy(idx(f"{data_dir}/train-labels-idx1-ubyte").astype(np.int64))
    xt = torch.from_numpy(idx(f"{data_dir}/t10k-images-idx3-ubyte").reshape(-1, 784).astype(np.float32) / 255.0)
    yt = torch.from_numpy(idx(f"{data_dir}/t10k-labels-idx1-ubyte").astype(np.int64))
    for name in sys.argv[3:] or ["linear", "softmax", "mlp", "cnn", "lenet5"]:
        print(json.dumps(run(name, x, y, xt, yt, epochs)), flush=True)


if __name__ == "__main__":
    main()

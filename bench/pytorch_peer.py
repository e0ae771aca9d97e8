#!/usr/bin/env python3
"""PyTorch peer for bench/run.sh: the same models, batch sizes, data and thread count as
bench/kiln_bench.cc. Data is preloaded as float tensors (no DataLoader); each step gathers its
batch through a per-epoch permutation, as Kiln's feeder does. Prints one JSON line per model.

usage: /usr/bin/python3 bench/pytorch_peer.py DATA_DIR EPOCHS [model ...]
Models as kiln_bench's, including the scaling table's cnn-b<batch>-w<width>. The convolutional
models run twice, in PyTorch's default (NCHW) and channels-last memory formats; the faster counts
and both rates are in the line. BENCH_STEPS=N: rounds of N steps (at most 200 of warm-up),
training only.
"""
import json
import os
import resource
import statistics
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
import make_vit_reference  # noqa: E402  (the ViT model)


def idx(path):
    with open(path, "rb") as f:
        data = f.read()
    rank = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(rank)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * rank).reshape(dims)


class Normalize(torch.nn.Module):
    """MNIST's mean and standard deviation, as Kiln's ResNet and ViT normalize their pixels."""

    def forward(self, x):
        return (x - 0.1307) * (1 / 0.3081)


def conv_bn(cin, cout, kernel, stride):
    return torch.nn.Sequential(
        torch.nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False),
        torch.nn.BatchNorm2d(cout))


class BasicBlock(torch.nn.Module):
    """examples/models.cc's BasicBlock: relu(bn(conv(relu(bn(conv(x))))) + shortcut(x))."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.a, self.b = conv_bn(cin, cout, 3, stride), conv_bn(cout, cout, 3, 1)
        self.down = conv_bn(cin, cout, 1, stride) if stride != 1 or cin != cout else None

    def forward(self, x):
        y = self.b(torch.relu(self.a(x)))
        return torch.relu(y + (x if self.down is None else self.down(x)))


class RawPixels(torch.nn.Module):
    """The reference ViT reads raw pixel values (it divides by 255 itself)."""

    def forward(self, x):
        return x * 255.0


def optimizer(name, net, lr):
    """The optimizer of each model's Kiln recipe: SGD, Adam for the ResNet, AdamW for the ViT
    (decay 0.05 on weights only: not biases, norms or embeddings)."""
    if name == "resnet":
        return torch.optim.Adam(net.parameters(), lr=lr)
    if name == "vit":
        decay = [p for n, p in net.named_parameters()
                 if n.endswith(".weight") and "norm" not in n]
        rest = [p for n, p in net.named_parameters()
                if not (n.endswith(".weight") and "norm" not in n)]
        return torch.optim.AdamW([{"params": decay, "weight_decay": 0.05},
                                  {"params": rest, "weight_decay": 0.0}], lr=lr)
    return torch.optim.SGD(net.parameters(), lr=lr)


def scaled_cnn(name):
    """'cnn-b<batch>-w<width>' (either part optional: batch 64, width 20) -> (batch, width)."""
    batch, width = 64, 20
    for part in name[4:].split("-"):
        if len(part) < 2 or part[0] not in "bw" or not part[1:].isdigit() or int(part[1:]) < 1:
            raise ValueError(f"{name}: expected cnn-b<batch>-w<width>, got part '{part}'")
        if part[0] == "b":
            batch = int(part[1:])
        else:
            width = int(part[1:])
    return batch, width


class ChannelsLast(torch.nn.Module):
    """The image batch in channels-last order, so every convolution after it runs NHWC."""

    def forward(self, x):
        return x.contiguous(memory_format=torch.channels_last)


def model(name):
    if name.startswith("cnn-"):
        batch, w = scaled_cnn(name)
        return torch.nn.Sequential(
            torch.nn.Unflatten(1, (1, 28, 28)),
            torch.nn.Conv2d(1, w, 5, padding=2), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(w, w, 5, padding=2), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Flatten(), torch.nn.Linear(w * 49, 10)), batch, 0.01
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
    if name == "resnet":
        return torch.nn.Sequential(
            Normalize(), torch.nn.Unflatten(1, (1, 28, 28)), conv_bn(1, 16, 3, 1), torch.nn.ReLU(),
            BasicBlock(16, 16, 1), BasicBlock(16, 32, 2), BasicBlock(32, 64, 2),
            torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(64, 10)), 64, 2e-3
    if name == "vit":
        # The ViT of the gradient check (scripts/make_vit_reference.py), as PyTorch users write
        # it: separate Q, K, V projections, LayerNorm(eps=1e-5), GELU(approximate='tanh').
        return torch.nn.Sequential(RawPixels(), make_vit_reference.Vit()), 64, 1e-3
    raise ValueError(name)


def layernorm_probe(rows=1088, reps=2000):
    """torch.nn.functional.layer_norm forward + backward on [rows, 64], median us per call."""
    x = torch.randn(rows, 64, requires_grad=True)
    w = torch.ones(64, requires_grad=True)
    b = torch.zeros(64, requires_grad=True)
    r = torch.randn(rows, 64)
    times = []
    for k in range(50 + reps):
        t0 = time.perf_counter()
        x.grad = w.grad = b.grad = None
        torch.nn.functional.layer_norm(x, (64,), w, b, 1e-5).backward(r)
        if k >= 50:
            times.append(1e6 * (time.perf_counter() - t0))
    return {"peer": "pytorch", "probe": "layernorm", "rows": rows,
            "median_us": statistics.median(times)}


def evaluate(net, xt, yt):
    """Images/s of the forward pass over the test set in batches of 1000 (median of 3), accuracy."""
    rates = []
    net.eval()  # batch norm from its running statistics
    with torch.no_grad():
        for _ in range(3):
            t0 = time.perf_counter()
            correct = 0
            for b in range(0, xt.shape[0], 1000):
                correct += int((net(xt[b:b + 1000]).argmax(1) == yt[b:b + 1000]).sum())
            rates.append(xt.shape[0] / (time.perf_counter() - t0))
    return statistics.median(rates), correct / xt.shape[0]


def run(name, x, y, xt, yt, epochs, round_steps=0, channels_last=False):
    torch.manual_seed(1)
    net, batch, lr = model(name)
    if channels_last:  # after the Unflatten to [B, 1, 28, 28]
        i = next(k for k, m in enumerate(net) if isinstance(m, torch.nn.Unflatten)) + 1
        net = torch.nn.Sequential(*net[:i], ChannelsLast(), *net[i:]).to(
            memory_format=torch.channels_last)
    opt = optimizer(name, net, lr)
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

    epoch(limit=min(round_steps, 200) if round_steps else 200)  # warm-up
    rates = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        images = epoch(limit=round_steps or None)
        rates.append(images / (time.perf_counter() - t0))
    if round_steps:
        eval_rate, accuracy = None, None
    elif name != "linear":
        eval_rate, accuracy = evaluate(net, xt, yt)
    else:  # the regression's prediction is its rounded output
        with torch.no_grad():
            t0 = time.perf_counter()
            pred = torch.round(net(xt)).squeeze(1)
            eval_rate = xt.shape[0] / (time.perf_counter() - t0)
            accuracy = float((pred == yt.float()).float().mean())
    return {"peer": "pytorch", "model": name, "batch": batch,
            "train_images_per_s": statistics.median(rates), "epochs_timed": epochs,
            "steps": round_steps, "memory_format": "channels_last" if channels_last else "contiguous",
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
        if name == "layernorm":
            print(json.dumps(layernorm_probe()), flush=True)
            continue
        steps = int(os.environ.get("BENCH_STEPS", "0"))
        r = run(name, x, y, xt, yt, epochs, steps)
        if name in ("cnn", "lenet5", "resnet") or name.startswith("cnn-"):
            c = run(name, x, y, xt, yt, epochs, steps, channels_last=True)
            rates = {f["memory_format"]: round(f["train_images_per_s"]) for f in (r, c)}
            r = max(r, c, key=lambda f: f["train_images_per_s"])
            r["train_images_per_s_by_format"] = rates
        print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()

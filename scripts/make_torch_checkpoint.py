#!/usr/bin/env python3
"""Writes tests/data/torch_cnn.safetensors: the tutorial CNN trained for one epoch by PyTorch, in
the safetensors format (written with NumPy: Debian's PyTorch has no safetensors package), with
PyTorch's own parameter names, plus tests/data/torch_cnn.json (PyTorch's test accuracy and the
predictions' checksum) and tests/data/torch_cnn.map (the name map a Kiln user writes: Kiln name,
file name, and `transpose` where PyTorch's Linear stores [out, in] and Kiln's [in, out]).

usage: /usr/bin/python3 scripts/make_torch_checkpoint.py [DATA_DIR]
"""
import json
import struct
import sys

import numpy as np
import torch


def idx(path):
    with open(path, "rb") as f:
        data = f.read()
    rank = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(rank)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * rank).reshape(dims)


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(1, 20, 5, padding=2), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(20, 20, 5, padding=2), torch.nn.ReLU(), torch.nn.MaxPool2d(2))
        self.classifier = torch.nn.Linear(980, 10)

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x.view(-1, 1, 28, 28)), 1))


def save_safetensors(path, tensors, metadata):
    header, offset, blobs = {"__metadata__": metadata}, 0, []
    for name, t in tensors.items():
        a = np.ascontiguousarray(t.detach().numpy().astype("<f4"))
        header[name] = {"dtype": "F32", "shape": list(a.shape),
                        "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
        blobs.append(a.tobytes())
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def main():
    data = sys.argv[1] if len(sys.argv) > 1 else "data/mnist"
    torch.manual_seed(0)
    torch.set_num_threads(2)
    x = torch.from_numpy(idx(f"{data}/train-images-idx3-ubyte").reshape(-1, 784).astype(np.float32) / 255)
    y = torch.from_numpy(idx(f"{data}/train-labels-idx1-ubyte").astype(np.int64))
    xt = torch.from_numpy(idx(f"{data}/t10k-images-idx3-ubyte").reshape(-1, 784).astype(np.float32) / 255)
    yt = torch.from_numpy(idx(f"{data}/t10k-labels-idx1-ubyte").astype(np.int64))
    net = Net()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    perm = torch.randperm(x.shape[0])
    for b in range(x.shape[0] // 64):
        i = perm[b * 64:(b + 1) * 64]
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x[i]), y[i]).backward()
        opt.step()
    with torch.no_grad():
        pred = net(xt).argmax(1)
    acc = float((pred == yt).float().mean())
    save_safetensors("tests/data/torch_cnn.safetensors", dict(net.named_parameters()),
                     {"written_by": "scripts/make_torch_checkpoint.py", "torch": torch.__version__})
    with open("tests/data/torch_cnn.json", "w") as f:
        json.dump({"test_accuracy": acc, "correct": int((pred == yt).sum())}, f)
        f.write("\n")
    with open("tests/data/torch_cnn.map", "w") as f:
        f.write("# Kiln parameter      PyTorch tensor        [transpose]\n"
                "conv1.weight          features.0.weight\n"
                "conv1.bias            features.0.bias\n"
                "conv2.weight          features.3.weight\n"
                "conv2.bias            features.3.bias\n"
                "fc.weight             classifier.weight     transpose\n"
                "fc.bias               classifier.bias\n")
    print(f"PyTorch test accuracy {acc:.4f}; wrote tests/data/torch_cnn.{{safetensors,json,map}}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Writes tests/data/vit_reference.safetensors: one training step of the MNIST vision transformer
(examples/models.h, MnistVit) computed by PyTorch in float64, for tests/compiler/vit_reference_test.cc.

The file holds, under Kiln's parameter names and layouts (a Linear's weight as [in, out]):
  - "param/<name>": the initial parameters (float32), drawn by PyTorch: weights and embeddings
    truncated normal (deviation 0.02, cut at two deviations), biases zero, norms one and zero;
  - "input/image" (uint8 [8, 784]) and "input/label" (int32 [8]): the first 8 training examples;
  - "grad/<name>": the gradient of the mean softmax cross-entropy of that batch, computed in
    float64 and stored rounded to float32 (6e-8 relative, far inside the test's 1e-4);
  - "loss" (float64 [1]).
PyTorch computes from the float32 parameters promoted to float64. The model is built from
torch.nn pieces the way a PyTorch user writes it: separate query, key and value projections (not
nn.MultiheadAttention's packed weight), LayerNorm(eps=1e-5), GELU(approximate='tanh').

usage: /usr/bin/python3 scripts/make_vit_reference.py [DATA_DIR]
"""
import json
import math
import struct
import sys

import numpy as np
import torch

from make_torch_checkpoint import idx  # the IDX reader (same directory)

WIDTH, HEADS, BLOCKS, HIDDEN, TOKENS, BATCH = 64, 4, 4, 128, 16, 8


class Attention(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.q, self.k, self.v, self.out = (torch.nn.Linear(WIDTH, WIDTH) for _ in range(4))

    def forward(self, x):
        b, t, _ = x.shape
        d = WIDTH // HEADS

        def heads(y):
            return y.view(b, t, HEADS, d).transpose(1, 2)

        q, k, v = heads(self.q(x)), heads(self.k(x)), heads(self.v(x))
        a = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(d), dim=-1)
        return self.out((a @ v).transpose(1, 2).reshape(b, t, WIDTH))


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.norm1 = torch.nn.LayerNorm(WIDTH, eps=1e-5)
        self.attn = Attention()
        self.norm2 = torch.nn.LayerNorm(WIDTH, eps=1e-5)
        self.fc1 = torch.nn.Linear(WIDTH, HIDDEN)
        self.fc2 = torch.nn.Linear(HIDDEN, WIDTH)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.fc2(torch.nn.functional.gelu(self.fc1(self.norm2(x)), approximate="tanh"))


class Vit(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.patch_embed = torch.nn.Linear(49, WIDTH)
        self.cls_token = torch.nn.Parameter(torch.zeros(1, 1, WIDTH))
        self.pos_embed = torch.nn.Parameter(torch.zeros(1, TOKENS + 1, WIDTH))
        self.block = torch.nn.ModuleList(Block() for _ in range(BLOCKS))
        self.norm = torch.nn.LayerNorm(WIDTH, eps=1e-5)
        self.head = torch.nn.Linear(WIDTH, 10)

    def forward(self, pixels):
        b = pixels.shape[0]
        x = (pixels / 255.0 - 0.1307) / 0.3081
        patches = x.view(b, 4, 7, 4, 7).permute(0, 1, 3, 2, 4).reshape(b, TOKENS, 49)
        h = torch.cat([self.cls_token.expand(b, 1, WIDTH), self.patch_embed(patches)], dim=1)
        h = h + self.pos_embed
        for blk in self.block:
            h = blk(h)
        return self.head(self.norm(h)[:, 0])


def kiln_name(name):
    # "block.0.attn.q.weight" -> "block0.attn.q.weight"
    parts = name.split(".")
    if parts[0] == "block":
        parts = ["block" + parts[1]] + parts[2:]
    return ".".join(parts)


def to_kiln(name, t):
    # PyTorch's Linear stores [out, in]; Kiln's [in, out].
    if name.endswith(".weight") and t.dim() == 2:
        return t.t().contiguous()
    return t


def save_safetensors(path, tensors, metadata):
    header, offset, blobs = {"__metadata__": metadata}, 0, []
    for name, arr in tensors.items():
        raw = np.ascontiguousarray(arr).tobytes()
        dtype = {np.float32: "F32", np.float64: "F64", np.int32: "I32", np.uint8: "U8"}[arr.dtype.type]
        header[name] = {"dtype": dtype, "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        blobs.append(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def main():
    data_dir = sys.argv[1] if len(sys.argv) > 1 else "data/mnist"
    torch.manual_seed(0)
    model = Vit()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(".bias"):
                p.zero_()
            elif "norm" in name:
                p.fill_(1.0)
            else:
                torch.nn.init.trunc_normal_(p, std=0.02, a=-0.04, b=0.04)
    # Float32 parameters, as Kiln holds them; PyTorch computes from them in float64.
    params32 = {n: p.detach().float().clone() for n, p in model.named_parameters()}
    model = model.double()
    with torch.no_grad():
        for n, p in model.named_parameters():
            p.copy_(params32[n].double())
    images = idx(f"{data_dir}/train-images-idx3-ubyte")[:BATCH].reshape(BATCH, 784)
    labels = idx(f"{data_dir}/train-labels-idx1-ubyte")[:BATCH].astype(np.int32)
    logits = model(torch.from_numpy(images.astype(np.float64)))
    loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(labels).long())
    loss.backward()

    out = {"input/image": images.copy(), "input/label": labels, "loss": np.array([loss.item()])}
    for n, p in model.named_parameters():
        out["param/" + kiln_name(n)] = to_kiln(n, params32[n]).numpy()
        out["grad/" + kiln_name(n)] = to_kiln(n, p.grad.detach()).float().numpy()
    save_safetensors("tests/data/vit_reference.safetensors", out,
                     {"generator": f"PyTorch {torch.__version__}, float64",
                      "model": "examples/models.h MnistVit", "batch": str(BATCH)})
    print(f"loss {loss.item():.12f}, {sum(p.numel() for p in model.parameters())} parameters")


if __name__ == "__main__":
    main()

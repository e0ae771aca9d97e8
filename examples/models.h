// The MNIST models of the tutorial, shared by the examples and the end-to-end tests.
//
//   kiln::Graph g;
//   kiln::ModelDef m = kiln::examples::MnistSoftmax(g, /*batch=*/64);
#pragma once

#include <cstdint>
#include <string>

#include "compiler/model.h"

namespace kiln::examples {

// The head every classifier here shares: inputs {image, label}, mean softmax cross-entropy,
// a "correct" count metric and an int32 "prediction" for evaluation.
ModelDef Classifier(Value image, Value label, Value logits);

// The tutorial's regression: Linear(784 -> 1) predicting the digit value, square error cost.
// Evaluation rounds the output to a digit (the tutorial's homework).
ModelDef MnistLinear(Graph& g, int64_t batch);

// Softmax regression: Linear(784 -> 10), softmax cross-entropy on int32 labels.
ModelDef MnistSoftmax(Graph& g, int64_t batch);

// The tutorial's CNN: conv(1->20, k5, pad 2) + ReLU + max-pool 2 -> conv(20->20, k5, pad 2) +
// ReLU + max-pool 2 -> fc(980 -> 10), softmax cross-entropy.
ModelDef MnistCnn(Graph& g, int64_t batch);
// The same network with `width` channels in both convolutions (fc(width * 49 -> 10)): the
// benchmark's scaling table.
ModelDef MnistCnnOfWidth(Graph& g, int64_t batch, int64_t width);

// LeNet-5 on 28x28 input padded to 32x32: conv(1->6, k5) + ReLU + max-pool 2 -> conv(6->16, k5) +
// ReLU + max-pool 2 -> fc(400->120) + ReLU -> fc(120->84) + ReLU -> fc(84->10).
ModelDef MnistLeNet5(Graph& g, int64_t batch);

// The tutorial CNN with batch normalization after each convolution and dropout (0.25) before
// the classifier: the configuration aimed at 99.4%.
ModelDef MnistCnnBn(Graph& g, int64_t batch);

// Multilayer perceptron 784-128-64-10 with ReLU (109,386 parameters), softmax cross-entropy.
ModelDef MnistMlp(Graph& g, int64_t batch);

// A small residual network: conv(1->16, k3) + BN + ReLU, then one basic block per stage
// (16, 32 and 64 channels at 28x28, 14x14 and 7x7; two 3x3 conv + BN per block, the second
// stage's and third's entered at stride 2 with a 1x1 conv + BN shortcut), global average pooling
// and fc(64 -> 10): 77,850 parameters. Pixels normalized with MNIST's mean and deviation.
ModelDef MnistResNet(Graph& g, int64_t batch);

// A small vision transformer: 7x7 patches -> 16 tokens embedded to width 64, a class token and
// learned position embeddings (17 tokens), 4 pre-norm blocks (LayerNorm -> 4-head self-attention
// -> residual; LayerNorm -> fc(64 -> 128) -> GELU (tanh) -> fc(128 -> 64) -> residual), a final
// LayerNorm and fc(64 -> 10) on the class token. Weights and embeddings truncated-normal with
// deviation 0.02, biases zero, norms one and zero: 140,746 parameters.
ModelDef MnistVit(Graph& g, int64_t batch);
// The ViT's weight-decay filter: weights decay; biases, norms and the embeddings (class token,
// position embedding) do not.
bool VitDecays(const std::string& param);

}  // namespace kiln::examples

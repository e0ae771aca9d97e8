// The MNIST models of the tutorial, shared by the examples and the end-to-end tests.
//
//   kiln::Graph g;
//   kiln::ModelDef m = kiln::examples::MnistSoftmax(g, /*batch=*/64);
#pragma once

#include <cstdint>

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

// LeNet-5 on 28x28 input padded to 32x32: conv(1->6, k5) + ReLU + max-pool 2 -> conv(6->16, k5) +
// ReLU + max-pool 2 -> fc(400->120) + ReLU -> fc(120->84) + ReLU -> fc(84->10).
ModelDef MnistLeNet5(Graph& g, int64_t batch);

// The tutorial CNN with batch normalization after each convolution and dropout (0.25) before
// the classifier: the configuration aimed at 99.4%.
ModelDef MnistCnnBn(Graph& g, int64_t batch);

// Multilayer perceptron 784-128-64-10 with ReLU (109,386 parameters), softmax cross-entropy.
ModelDef MnistMlp(Graph& g, int64_t batch);

}  // namespace kiln::examples

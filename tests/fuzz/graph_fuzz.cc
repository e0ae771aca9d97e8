// libFuzzer target: graph construction from random op and shape sequences. Bytes choose an input
// shape, then ops and their attributes applied to values built so far; shape errors must come
// back through Graph::status() (never a crash or an abort), and a graph that builds must also go
// through autodiff and the graph passes. Chains go on through failed ops (layers and losses too):
// every result keeps its graph, and an invalid one means the graph holds an error. No Halide code
// runs here (lowering is tested elsewhere).
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "compiler/autodiff.h"
#include "compiler/passes.h"
#include "dsl/api.h"

namespace {

struct Bytes {
  const uint8_t* p;
  size_t n;
  uint8_t Next() { return n ? (--n, *p++) : 0; }
  int64_t Small(int64_t hi) { return static_cast<int64_t>(Next() % (hi + 1)); }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kiln;
  Bytes b{data, size};
  Graph g(b.Next() % 2 ? Mode::kTrain : Mode::kEval);
  std::vector<Value> vals;
  const int rank = static_cast<int>(b.Small(4));
  Shape s;
  for (int i = 0; i < rank; ++i) s.push_back(b.Small(6));  // zero extents are invalid input too
  vals.push_back(g.Input("x", s));
  vals.push_back(g.Parameter("w", s, Initializer::Zeros()));
  vals.push_back(g.Input("labels", {b.Small(5)}, DType::kInt32));
  for (int step = 0; step < 24 && b.n > 0; ++step) {
    Value a = vals[b.Next() % vals.size()];
    Value c = vals[b.Next() % vals.size()];
    const int64_t k = b.Small(5) - 1, m = b.Small(5) - 1;
    Value r;
    switch (b.Next() % 28) {
      case 0:
        r = a + c;
        break;
      case 1:
        r = a * c;
        break;
      case 2:
        r = a / c;
        break;
      case 3:
        r = Relu(a);
        break;
      case 4:
        r = Exp(a);
        break;
      case 5:
        r = Sum(a, {k}, b.Next() % 2);
        break;
      case 6:
        r = Max(a, k);
        break;
      case 7:
        r = ArgMax(a, k);
        break;
      case 8:
        r = MatMul(a, c);
        break;
      case 9:
        r = Reshape(a, {k, m});
        break;
      case 10:
        r = Transpose(a);
        break;
      case 11:
        r = BroadcastTo(a, {k + 1, m + 1, 2});
        break;
      case 12:
        r = Slice(a, k, m, b.Small(4));
        break;
      case 13:
        r = Pad(a, {k, m});
        break;
      case 14:
        r = Concat({a, c}, k);
        break;
      case 15:
        r = Conv2d(a, c, {});
        break;
      case 16:
        r = MaxPool2d(a, k + 1, m, b.Small(2));
        break;
      case 17:
        r = AvgPool2d(a, k + 1, m);
        break;
      case 18:
        r = Softmax(a, k);
        break;
      case 19:
        r = SoftmaxCrossEntropy(a, c);
        break;
      case 20:
        r = OneHot(a, k);
        break;
      case 21:
        r = ToFloat(a);
        break;
      case 22:
        r = Dropout(a, 0.1 * b.Small(12), k);
        break;
      case 23:
        r = Flatten(a, k);
        break;
      case 24:
        r = Linear(g, "fc" + std::to_string(step), k + 1, m + 1)(a);
        break;
      case 25:
        r = AccuracyCount(a, c);
        break;
      case 26:
        r = a - Value();  // an empty operand is an error, not a crash
        break;
      case 27:
        r = BatchNorm(g, "bn" + std::to_string(step), k + 1)(a);
        break;
    }
    if (r.graph() != &g) __builtin_trap();  // an invalid Value keeps its graph
    if (!r.valid() && g.status().ok()) __builtin_trap();
    vals.push_back(r);
  }
  if (!g.status().ok()) return 0;  // the first shape error is kept; nothing else may be built on it
  for (const Value& v : vals) (void)v.shape();
  Value last = vals.back();
  if (last.dtype() == DType::kFloat) {
    Value loss = Sum(last);
    if (g.status().ok()) {
      auto grads = Gradients(loss, {vals[1]});
      std::vector<int> roots = {loss.id()};
      if (grads.ok()) {
        for (const Value& gr : *grads) roots.push_back(gr.id());
      }
      RunPasses(g, roots, false);
    }
  }
  return 0;
}

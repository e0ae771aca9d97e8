// Typed attributes of the ops: one struct per op family (as TVM's Conv2DAttrs), held by a node in
// `Attrs`. Op code reads named fields; the DSL functions and VJPs construct them by name.
//
//   kiln::Conv2dAttrs c = kiln::Conv2dAttrs::Same(/*stride=*/1, /*pad=*/2);
//   kiln::Value y = g.AddNode(kiln::OpKind::kConv2D, {x, w}, kiln::Attrs{c});
//   const kiln::Conv2dAttrs& a = node.attrs.Get<kiln::Conv2dAttrs>();  // in the op's code
//
// Every struct lists its fields once, in `Fields(visit)`: node equality, CSE, the compile cache's
// fingerprint (Graph::Fingerprint) and Graph::Dump all read that list, so none of them can miss a
// field. An op defined outside the library carries named values in CustomAttrs.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <variant>
#include <vector>

#include "base/types.h"

namespace kiln {

// Ops without attributes (arithmetic, matmul, sources).
struct NoAttrs {
  static constexpr const char* kName = "NoAttrs";
  template <typename Visit>
  void Fields(Visit&&) const {}
};

// constant: a tensor of `shape` filled with `value`.
struct ConstantAttrs {
  static constexpr const char* kName = "ConstantAttrs";
  double value = 0;
  Shape shape;
  template <typename Visit>
  void Fields(Visit&& visit) const {
    visit("value", value);
    visit("shape", shape);
  }
};

// reshape and broadcast_to: the output shape.
struct ShapeAttrs {
  static constexpr const char* kName = "ShapeAttrs";
  Shape shape;
  template <typename Visit>
  void Fields(Visit&& visit) const {
    visit("shape", shape);
  }
};

// transpose: output axis i is input axis perm[i].
struct TransposeAttrs {
  static constexpr const char* kName = "TransposeAttrs";
  std::vector<int64_t> perm;
  template <typename Visit>
  void Fields(Visit&& visit) const {
    visit("perm", perm);
  }
};

// sum, max, argmax: the reduced axes (non-negative, increasing) and whether they stay as size 1.
struct ReduceAttrs {
  static constexpr const char* kName = "ReduceAttrs";
  std::vector<int64_t> axes;
  bool keepdims = false;
  template <typename Visit>
  void Fields(Visit&& visit) const {
    visit("axes", axes);
    visit("keepdims", keepdims);
  }
};

// conv2d, NCHW: stride, zero padding and dilation per spatial axis.
struct Conv2dAttrs {
  static constexpr const char* kName = "Conv2dAttrs";
  int64_t stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0, dilation_h = 1, dilation_w = 1;
  static Conv2dAttrs Same(int64_t stride, int64_t pad, int64_t dilation = 1) {
    return {stride, stride, pad, pad, dilation, dilation};
  }
  template <typename Visit>
  void Fields(Visit&& visit) const {
    visit("stride_h", stride_h);
    visit("stride_w", stride_w);
    visit("pad_h", pad_h);
    visit("pad_w", pad_w);
    visit("dilation_h", dilation_h);
    visit("dilation_w", dilation_w);
  }
};

// conv2d_backward_input: the forward convolution and its input's spatial size.
struct Conv2dBackwardInputAttrs {
  static constexpr const char* kName = "Conv2dBackwardInputAttrs";
  Conv2dAttrs conv;
  int64_t input_h = 0, input_w = 0;
  template <typename Visit>
  void Fields(Visit&& visit) const {
    conv.Fields(visit);
    visit("input_h", input_h);
    visit("input_w", input_w);
  }
};

// conv2d_backward_weight: the forward convolution and its kernel's spatial size.
struct Conv2dBackwardWeightAttrs {
  static constexpr const char* kName = "Conv2dBackwardWeightAttrs";
  Conv2dAttrs conv;
  int64_t kernel_h = 0, kernel_w = 0;
  template <typename Visit>
  void Fields(Visit&& visit) const {
    conv.Fields(visit);
    visit("kernel_h", kernel_h);
    visit("kernel_w", kernel_w);
  }
};

// max_pool2d_argmax, max_pool2d_gather, avg_pool2d: a square window, its stride and padding.
// `relu` (max_pool2d_gather only): the output is max(gathered, 0), max_pool2d(relu(x)) computed
// as relu(max_pool2d(x)) with the argmax taken over x (compiler/passes.h FuseReluIntoMaxPool).
struct Pool2dAttrs {
  static constexpr const char* kName = "Pool2dAttrs";
  int64_t kernel = 1, stride = 1, padding = 0;
  bool relu = false;
  template <typename Visit>
  void Fields(Visit&& visit) const {
    visit("kernel", kernel);
    visit("stride", stride);
    visit("padding", padding);
    visit("relu", relu);
  }
};

// max_pool2d_scatter, avg_pool2d_backward: the forward pooling and its input's spatial size.
struct Pool2dBackwardAttrs {
  static constexpr const char* kName = "Pool2dBackwardAttrs";
  Pool2dAttrs pool;
  int64_t input_h = 0, input_w = 0;
  template <typename Visit>
  void Fields(Visit&& visit) const {
    pool.Fields(visit);
    visit("input_h", input_h);
    visit("input_w", input_w);
  }
};

// round_to_int: the result is clamped to [lo, hi].
struct RoundToIntAttrs {
  static constexpr const char* kName = "RoundToIntAttrs";
  int64_t lo = 0, hi = 0;
  template <typename Visit>
  void Fields(Visit&& visit) const {
    visit("lo", lo);
    visit("hi", hi);
  }
};

// one_hot: the number of classes.
struct OneHotAttrs {
  static constexpr const char* kName = "OneHotAttrs";
  int64_t depth = 0;
  template <typename Visit>
  void Fields(Visit&& visit) const {
    visit("depth", depth);
  }
};

// slice: elements [start, start + size) of `axis`.
struct SliceAttrs {
  static constexpr const char* kName = "SliceAttrs";
  int64_t axis = 0, start = 0, size = 0;
  template <typename Visit>
  void Fields(Visit&& visit) const {
    visit("axis", axis);
    visit("start", start);
    visit("size", size);
  }
};

// pad: before[i] and after[i] elements of `value` around axis i.
struct PadAttrs {
  static constexpr const char* kName = "PadAttrs";
  std::vector<int64_t> before, after;
  double value = 0;
  template <typename Visit>
  void Fields(Visit&& visit) const {
    visit("before", before);
    visit("after", after);
    visit("value", value);
  }
};

// concat: the axis the inputs are joined along.
struct ConcatAttrs {
  static constexpr const char* kName = "ConcatAttrs";
  int64_t axis = 0;
  template <typename Visit>
  void Fields(Visit&& visit) const {
    visit("axis", axis);
  }
};

// clip: the bounds, lo < hi.
struct ClipAttrs {
  static constexpr const char* kName = "ClipAttrs";
  double lo = 0, hi = 0;
  template <typename Visit>
  void Fields(Visit&& visit) const {
    visit("lo", lo);
    visit("hi", hi);
  }
};

// dropout: the rate in [0, 1) and the seed of its mask.
struct DropoutAttrs {
  static constexpr const char* kName = "DropoutAttrs";
  double rate = 0;
  int64_t seed = 0;
  template <typename Visit>
  void Fields(Visit&& visit) const {
    visit("rate", rate);
    visit("seed", seed);
  }
};

// Attributes of an op defined outside the library (docs/CUSTOM_OPS.md), by name. The op's shape
// rule checks the names it needs; its VJP and lowering then read them with at():
//
//   kiln::CustomAttrs a;
//   a.reals["beta"] = 2;
//   g.AddCustomNode(def, {x}, kiln::Attrs{a});
//   double beta = n.attrs.Get<kiln::CustomAttrs>().reals.at("beta");
struct CustomAttrs {
  static constexpr const char* kName = "CustomAttrs";
  std::map<std::string, int64_t> ints;
  std::map<std::string, double> reals;
  template <typename Visit>
  void Fields(Visit&& visit) const {
    for (const auto& [name, v] : ints) visit(name, v);
    for (const auto& [name, v] : reals) visit(name, v);
  }
};

using OpAttrs =
    std::variant<NoAttrs, ConstantAttrs, ShapeAttrs, TransposeAttrs, ReduceAttrs, Conv2dAttrs,
                 Conv2dBackwardInputAttrs, Conv2dBackwardWeightAttrs, Pool2dAttrs,
                 Pool2dBackwardAttrs, RoundToIntAttrs, OneHotAttrs, SliceAttrs, PadAttrs,
                 ConcatAttrs, ClipAttrs, DropoutAttrs, CustomAttrs>;

// Attributes of a node: the op's typed attributes and, for parameters and buffers, the
// initializer (which decides no code, so it is not part of equality or the fingerprint).
struct Attrs {
  OpAttrs op;
  Initializer init;

  // The op's attributes as T. Op code calls it after the shape rule has checked the type (a
  // mismatch throws std::bad_variant_access); the shape rule uses Find().
  template <typename T>
  const T& Get() const {
    return std::get<T>(op);
  }
  // The op's attributes as T, or null when they are of another type.
  template <typename T>
  const T* Find() const {
    return std::get_if<T>(&op);
  }
  // The name of the attribute struct, e.g. "Conv2dAttrs".
  const char* TypeName() const;
  // Every field with reals exact (hexadecimal), e.g. "Pool2dAttrs{kernel=2,stride=2,padding=0}":
  // what node equality, CSE and the compile cache's fingerprint compare.
  std::string Key() const;
  // The fields for a graph dump, e.g. " kernel=2 stride=2 padding=0" (empty without fields).
  std::string ToString() const;
  bool operator==(const Attrs& o) const { return Key() == o.Key(); }
  bool operator!=(const Attrs& o) const { return !(*this == o); }
};

}  // namespace kiln

#include "tests/ops/op_check.h"

#include <cmath>
#include <fstream>
#include <iterator>

#include "absl/strings/str_cat.h"
#include "compiler/model.h"
#include "runtime/dataset.h"

namespace kiln::testing {

Nd Nd::Zeros(Shape s) {
  Nd n;
  n.v.assign(static_cast<size_t>(NumElements(s)), 0.0);
  n.shape = std::move(s);
  return n;
}

int64_t Nd::Offset(const std::vector<int64_t>& idx) const {
  int64_t off = 0;
  for (size_t i = 0; i < shape.size(); ++i) off = off * shape[i] + idx[i];
  return off;
}

void ForEachIndex(const Shape& shape, const std::function<void(const std::vector<int64_t>&)>& fn) {
  std::vector<int64_t> idx(shape.size(), 0);
  for (int64_t n = 0; n < NumElements(shape); ++n) {
    fn(idx);
    for (int d = static_cast<int>(shape.size()) - 1; d >= 0; --d) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
}

Nd Map(const Nd& x, const std::function<double(double)>& f) {
  Nd y = x;
  for (double& e : y.v) e = f(e);
  return y;
}

Nd Zip(const Nd& a, const Nd& b, const std::function<double(double, double)>& f) {
  size_t r = std::max(a.shape.size(), b.shape.size());
  Shape s(r);
  for (size_t i = 0; i < r; ++i) {
    int64_t da = i < r - a.shape.size() ? 1 : a.shape[i - (r - a.shape.size())];
    int64_t db = i < r - b.shape.size() ? 1 : b.shape[i - (r - b.shape.size())];
    s[i] = std::max(da, db);
  }
  Nd y = Nd::Zeros(s);
  auto pick = [&](const Nd& x, const std::vector<int64_t>& idx) {
    std::vector<int64_t> j;
    for (size_t i = r - x.shape.size(); i < r; ++i) {
      j.push_back(x.shape[i - (r - x.shape.size())] == 1 ? 0 : idx[i]);
    }
    return x[j];
  };
  ForEachIndex(s, [&](const std::vector<int64_t>& idx) { y[idx] = f(pick(a, idx), pick(b, idx)); });
  return y;
}

Nd ReduceRef(const Nd& x, std::vector<int64_t> axes, bool keepdims, double init,
             const std::function<double(double, double)>& f) {
  int rank = static_cast<int>(x.shape.size());
  if (axes.empty()) {
    for (int i = 0; i < rank; ++i) axes.push_back(i);
  }
  for (int64_t& a : axes) a = a < 0 ? a + rank : a;
  auto reduced = [&](int i) { return std::find(axes.begin(), axes.end(), i) != axes.end(); };
  Shape keep = x.shape;
  for (int64_t a : axes) keep[a] = 1;
  Nd k = Nd::Zeros(keep);
  for (double& e : k.v) e = init;
  ForEachIndex(x.shape, [&](const std::vector<int64_t>& idx) {
    std::vector<int64_t> j = idx;
    for (int i = 0; i < rank; ++i) {
      if (reduced(i)) j[i] = 0;
    }
    k[j] = f(k[j], x[idx]);
  });
  if (keepdims) return k;
  Shape out;
  for (int i = 0; i < rank; ++i) {
    if (!reduced(i)) out.push_back(x.shape[i]);
  }
  k.shape = out;
  return k;
}

Nd TransposedRef(const Nd& x, const std::vector<int64_t>& perm) {
  Shape s;
  for (int64_t p : perm) s.push_back(x.shape[p]);
  Nd y = Nd::Zeros(s);
  ForEachIndex(s, [&](const std::vector<int64_t>& idx) {
    std::vector<int64_t> j(idx.size());
    for (size_t i = 0; i < idx.size(); ++i) j[perm[i]] = idx[i];
    y[idx] = x[j];
  });
  return y;
}

Nd MatMulRef(const Nd& a, const Nd& b) {
  // [..., M, K] x [..., K, N] over equal leading axes.
  const size_t r = a.shape.size();
  const int64_t m = a.shape[r - 2], k = a.shape[r - 1], n = b.shape[r - 1];
  Shape out(a.shape.begin(), a.shape.end() - 2);
  const int64_t batch = NumElements(out);
  out.push_back(m);
  out.push_back(n);
  Nd c = Nd::Zeros(out);
  for (int64_t bi = 0; bi < batch; ++bi) {
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t j = 0; j < n; ++j) {
        double s = 0;
        for (int64_t q = 0; q < k; ++q) s += a.v[(bi * m + i) * k + q] * b.v[(bi * k + q) * n + j];
        c.v[(bi * m + i) * n + j] = s;
      }
    }
  }
  return c;
}

namespace {

struct Built {
  std::unique_ptr<Graph> g = std::make_unique<Graph>();
  std::vector<Value> inputs;
  Value out;
  bool halide_asan = true;  // OpCase::without_halide_asan is empty
};

Built Build(const OpCase& c) {
  Built b;
  for (size_t i = 0; i < c.inputs.size(); ++i) {
    const InputSpec& s = c.inputs[i];
    std::string name = absl::StrCat("x", i);
    b.inputs.push_back(s.parameter ? b.g->Parameter(name, s.shape, Initializer::Zeros())
                                   : b.g->Input(name, s.shape, s.dtype));
  }
  b.out = c.build(b.inputs);
  b.halide_asan = c.without_halide_asan.empty();
  return b;
}

// Deterministic inputs for case `c` (seeded by its name).
std::vector<Nd> MakeInputs(const OpCase& c, uint64_t salt = 0) {
  Rng rng(std::hash<std::string>()(c.name) + salt);
  std::vector<Nd> xs;
  for (const InputSpec& s : c.inputs) {
    Nd x = Nd::Zeros(s.shape);
    for (double& e : x.v) {
      double u = s.lo + (s.hi - s.lo) * rng.Uniform();
      e = s.dtype == DType::kInt32 ? std::floor(u) : u;
    }
    xs.push_back(std::move(x));
  }
  return xs;
}

ScalarType TypeFor(DType t, bool f64) {
  if (t == DType::kInt32) return ScalarType::kI32;
  return f64 ? ScalarType::kF64 : ScalarType::kF32;
}

Tensor ToTensor(const Nd& x, ScalarType t) {
  Tensor out(t, x.shape);
  for (size_t i = 0; i < x.v.size(); ++i) {
    switch (t) {
      case ScalarType::kF64:
        out.data<double>()[i] = x.v[i];
        break;
      case ScalarType::kF32:
        out.data<float>()[i] = static_cast<float>(x.v[i]);
        break;
      case ScalarType::kI32:
        out.data<int32_t>()[i] = static_cast<int32_t>(x.v[i]);
        break;
      case ScalarType::kU8:
        out.data<uint8_t>()[i] = static_cast<uint8_t>(x.v[i]);
        break;
    }
  }
  return out;
}

Nd FromTensor(const Tensor& t) {
  Nd x = Nd::Zeros(t.shape());
  for (size_t i = 0; i < x.v.size(); ++i) {
    switch (t.type()) {
      case ScalarType::kF64:
        x.v[i] = t.data<double>()[i];
        break;
      case ScalarType::kF32:
        x.v[i] = t.data<float>()[i];
        break;
      case ScalarType::kI32:
        x.v[i] = t.data<int32_t>()[i];
        break;
      case ScalarType::kU8:
        x.v[i] = t.data<uint8_t>()[i];
        break;
    }
  }
  return x;
}

// The program computing `outputs` of b.g with all inputs of b (plus `extra`) as arguments.
StepProgram MakeProgram(Built& b, const std::vector<Value>& extra,
                        const std::vector<Value>& outputs, bool f64) {
  StepProgram p;
  std::vector<Value> args = b.inputs;
  args.insert(args.end(), extra.begin(), extra.end());
  // Parameters and buffers a layer made for itself come last, fed from their (constant)
  // initializers by Run.
  std::vector<int> roots;
  for (const Value& v : outputs) roots.push_back(v.id());
  for (int id : b.g->Reachable(roots)) {
    const Node& n = b.g->node(id);
    bool listed = false;
    for (const Value& a : args) listed |= a.id() == id;
    if (!listed && (n.op == OpKind::kParameter || n.op == OpKind::kBuffer)) {
      args.push_back(b.g->value(id));
    }
  }
  for (const Value& v : args) {
    p.inputs.push_back({v.id(), ArgSpec{v.name(), ArgRole::kData, TypeFor(v.dtype(), f64),
                                        v.shape(), v.node().attrs.init}});
  }
  for (size_t i = 0; i < outputs.size(); ++i) {
    const Value& v = outputs[i];
    p.outputs.push_back(
        {v.id(),
         ArgSpec{absl::StrCat("y", i), ArgRole::kOutput, TypeFor(v.dtype(), f64), v.shape(), {}}});
  }
  return p;
}

absl::StatusOr<std::unique_ptr<Executable>> Compile(Built& b, const std::vector<Value>& extra,
                                                    const std::vector<Value>& outputs, bool f64,
                                                    bool plain,
                                                    LayoutChoice layout = LayoutChoice::kAuto) {
  CompileOptions o;
  o.float64 = f64;
  o.plain_schedule = plain;
  o.layout = layout;
  o.target.halide_asan = b.halide_asan;
  o.target.halide_asserts = true;  // a read outside an input's bounds fails the case
  return CompileProgram(*b.g, MakeProgram(b, extra, outputs, f64), o);
}

absl::StatusOr<std::vector<Nd>> Run(Executable& exe, const std::vector<Nd>& xs) {
  const Signature& sig = exe.signature();
  std::vector<Tensor> in, out;
  std::vector<TensorRef> in_refs, out_refs;
  for (size_t i = 0; i < sig.inputs.size(); ++i) {
    if (i < xs.size()) {
      in.push_back(ToTensor(xs[i], sig.inputs[i].type));
      continue;
    }
    const Initializer& init = sig.inputs[i].init;
    if (init.kind != Initializer::Kind::kZeros && init.kind != Initializer::Kind::kConstant) {
      return absl::InvalidArgumentError(
          "op tests feed layer parameters from constant initializers");
    }
    Nd fill = Nd::Zeros(sig.inputs[i].shape);
    for (double& e : fill.v) e = init.a;
    in.push_back(ToTensor(fill, sig.inputs[i].type));
  }
  for (const ArgSpec& a : sig.outputs) out.emplace_back(a.type, a.shape);
  for (Tensor& t : in) in_refs.push_back(t.ref());
  for (Tensor& t : out) out_refs.push_back(t.ref());
  absl::Status s = exe.Run(in_refs, out_refs);
  if (!s.ok()) return s;
  std::vector<Nd> ys;
  for (const Tensor& t : out) ys.push_back(FromTensor(t));
  return ys;
}

::testing::AssertionResult Near(const Nd& got, const Nd& want, double rtol, double atol,
                                const std::string& what) {
  if (got.shape != want.shape) {
    return ::testing::AssertionFailure() << what << ": shape " << ShapeString(got.shape)
                                         << ", expected " << ShapeString(want.shape);
  }
  for (size_t i = 0; i < got.v.size(); ++i) {
    double tol = atol + rtol * std::fabs(want.v[i]);
    if (!(std::fabs(got.v[i] - want.v[i]) <= tol)) {
      return ::testing::AssertionFailure()
             << what << ": element " << i << " is " << got.v[i] << ", expected " << want.v[i]
             << " (tolerance " << tol << ")";
    }
  }
  return ::testing::AssertionSuccess();
}

}  // namespace

::testing::AssertionResult CheckShapeRule(const OpCase& c) {
  Built b = Build(c);
  if (!b.g->status().ok()) {
    return ::testing::AssertionFailure() << "building failed: " << b.g->status();
  }
  Nd want = c.reference(MakeInputs(c));
  if (b.out.shape() != want.shape) {
    return ::testing::AssertionFailure() << "shape rule gave " << ShapeString(b.out.shape())
                                         << ", reference " << ShapeString(want.shape);
  }
  if (c.bad) {
    Graph g;
    Value v = c.bad(g);
    if (v.valid() || g.status().ok()) {
      return ::testing::AssertionFailure() << "the bad graph was accepted";
    }
    if (g.status().code() != absl::StatusCode::kInvalidArgument ||
        g.status().message().find(c.error) == std::string::npos) {
      return ::testing::AssertionFailure()
             << "error " << g.status() << " lacks \"" << c.error << "\"";
    }
  }
  return ::testing::AssertionSuccess();
}

bool ReadsLayout(const OpCase& c) {
  Built b = Build(c);
  if (!b.g->status().ok()) return false;
  for (int id : b.g->Reachable({b.out.id()})) {
    if (DefOf(b.g->node(id)).batch_activation) return true;
  }
  return false;
}

::testing::AssertionResult CheckForward(const OpCase& c, LayoutChoice layout) {
  std::vector<Nd> xs = MakeInputs(c);
  Nd want = c.reference(xs);
  for (bool f64 : {true, false}) {
    Built b = Build(c);
    auto exe = Compile(b, {}, {b.out}, f64, /*plain=*/false, layout);
    if (!exe.ok()) return ::testing::AssertionFailure() << exe.status();
    auto ys = Run(**exe, xs);
    if (!ys.ok()) return ::testing::AssertionFailure() << ys.status();
    auto r = f64 ? Near((*ys)[0], want, 1e-12, 1e-12, "float64 forward")
                 : Near((*ys)[0], want, c.float32_rtol, c.float32_atol, "float32 forward");
    if (!r) return r;
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult CheckScheduleMatchesPlain(const OpCase& c) {
  std::vector<Nd> xs = MakeInputs(c);
  std::vector<Nd> results;
  for (bool plain : {false, true}) {
    Built b = Build(c);
    auto exe = Compile(b, {}, {b.out}, /*f64=*/false, plain);
    if (!exe.ok()) return ::testing::AssertionFailure() << exe.status();
    auto ys = Run(**exe, xs);
    if (!ys.ok()) return ::testing::AssertionFailure() << ys.status();
    results.push_back((*ys)[0]);
  }
  // Same summation order; only FMA contraction in vector code differs (float32 rounding).
  return Near(results[0], results[1], 1e-5, 1e-5, "scheduled vs plain (float32)");
}

::testing::AssertionResult CheckGradient(const OpCase& c, const VjpOverrides* overrides,
                                         LayoutChoice layout) {
  Built b = Build(c);
  if (b.out.dtype() != DType::kFloat) {
    return ::testing::AssertionFailure() << "output is not float: no gradient to check";
  }
  // L = sum(y * probe): its gradient exercises the VJP with a generic dy.
  Value probe = b.g->Input("probe", b.out.shape());
  Value loss = Sum(b.out * probe);
  std::vector<Value> wrt;
  std::vector<size_t> wrt_index;
  for (size_t i = 0; i < b.inputs.size(); ++i) {
    if (b.inputs[i].dtype() == DType::kFloat) {
      wrt.push_back(b.inputs[i]);
      wrt_index.push_back(i);
    }
  }
  auto grads = Gradients(loss, wrt, overrides);
  if (!grads.ok()) return ::testing::AssertionFailure() << grads.status();
  std::vector<Value> outputs = {loss};
  outputs.insert(outputs.end(), grads->begin(), grads->end());
  auto exe = Compile(b, {probe}, outputs, /*f64=*/true, /*plain=*/false, layout);
  if (!exe.ok()) return ::testing::AssertionFailure() << exe.status();

  std::vector<Nd> xs = MakeInputs(c);
  Nd p = Nd::Zeros(b.out.shape());
  Rng rng(7);
  for (double& e : p.v) e = rng.Normal();
  xs.push_back(p);
  auto base = Run(**exe, xs);
  if (!base.ok()) return ::testing::AssertionFailure() << base.status();
  const double eps = 1e-6;
  for (int dir = 0; dir < 3; ++dir) {
    std::vector<Nd> plus = xs, minus = xs;
    double analytic = 0;
    for (size_t k = 0; k < wrt_index.size(); ++k) {
      size_t i = wrt_index[k];
      const Nd& g = (*base)[1 + k];
      for (size_t e = 0; e < xs[i].v.size(); ++e) {
        double d = rng.Normal();
        plus[i].v[e] += eps * d;
        minus[i].v[e] -= eps * d;
        analytic += g.v[e] * d;
      }
    }
    auto lp = Run(**exe, plus);
    auto lm = Run(**exe, minus);
    if (!lp.ok() || !lm.ok()) return ::testing::AssertionFailure() << "evaluation failed";
    double numeric = ((*lp)[0].v[0] - (*lm)[0].v[0]) / (2 * eps);
    double tol = 1e-6 * std::max(1.0, std::fabs(numeric));
    if (!(std::fabs(numeric - analytic) <= tol)) {
      return ::testing::AssertionFailure()
             << "direction " << dir << ": finite difference " << numeric << ", VJP " << analytic
             << " (tolerance " << tol << ")";
    }
  }
  return ::testing::AssertionSuccess();
}

}  // namespace kiln::testing

namespace kiln::testing {

absl::StatusOr<Signature> EmitOpCase(const OpCase& c, const TargetSpec& target,
                                     const std::string& prefix, const std::string& function) {
  Built b = Build(c);
  std::vector<Value> outputs = {b.out};
  std::vector<Value> extra;
  if (c.no_gradient.empty() && b.out.dtype() == DType::kFloat) {
    // The backward ops too: the gradient of sum(y * probe) with respect to every float input.
    Value probe = b.g->Input("probe", b.out.shape());
    extra.push_back(probe);
    std::vector<Value> wrt;
    for (const Value& x : b.inputs) {
      if (x.dtype() == DType::kFloat) wrt.push_back(x);
    }
    auto grads = Gradients(Sum(b.out * probe), wrt);
    if (!grads.ok()) return grads.status();
    outputs.insert(outputs.end(), grads->begin(), grads->end());
  }
  CompileOptions o;
  o.target = target;
  o.target.halide_asan = b.halide_asan;
  o.target.halide_asserts = true;  // a read outside an input's bounds fails the case
  return EmitProgram(*b.g, MakeProgram(b, extra, outputs, /*f64=*/false), o, prefix, function);
}

::testing::AssertionResult CheckGpuCompiles(const OpCase& c, const std::string& dir) {
  TargetSpec cuda;
  cuda.device = Device::kCuda;
  const std::string prefix = dir + "/" + c.name;
  auto sig = EmitOpCase(c, cuda, prefix, "step");
  if (!sig.ok()) return ::testing::AssertionFailure() << sig.status();
  PtxKernels ptx = ReadPtxKernels(prefix + ".a", "sm_70");
  if (ptx.kernels <= 0 || !ptx.has_target) {
    return ::testing::AssertionFailure() << prefix << ".a holds no PTX kernel for sm_70";
  }
  return ::testing::AssertionSuccess() << ptx.kernels << " kernels";
}

PtxKernels ReadPtxKernels(const std::string& archive, const std::string& sm) {
  PtxKernels out;
  std::ifstream f(archive, std::ios::binary);
  if (!f) return out;
  // The kernels are embedded as PTX text for the chosen capability.
  std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  out.kernels = 0;
  for (size_t at = bytes.find(".entry"); at != std::string::npos;
       at = bytes.find(".entry", at + 1)) {
    ++out.kernels;
  }
  out.has_target = bytes.find(".target " + sm) != std::string::npos;
  return out;
}

}  // namespace kiln::testing

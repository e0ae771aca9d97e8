#include "compiler/model.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iostream>
#include <iterator>
#include <map>
#include <optional>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/status.h"
#include "compiler/autodiff.h"
#include "compiler/cache.h"
#include "compiler/jit.h"
#include "compiler/lower.h"
#include "compiler/passes.h"
#include "dsl/api.h"
#include "runtime/segmented_step.h"
#include "runtime/two_phase_step.h"

namespace kiln {
namespace {

ScalarType ScalarOf(DType t, bool float64) {
  switch (t) {
    case DType::kFloat:
      return float64 ? ScalarType::kF64 : ScalarType::kF32;
    case DType::kInt32:
      return ScalarType::kI32;
    case DType::kUInt8:
      return ScalarType::kU8;
  }
  return ScalarType::kF32;
}

ArgSpec Spec(const Node& n, ArgRole role, const std::string& name, bool float64) {
  ArgSpec s;
  s.name = name;
  s.role = role;
  s.type = ScalarOf(n.dtype, float64);
  s.shape = n.shape;
  s.init = n.attrs.init;
  return s;
}

// The rewrites made in the model's graph before it is differentiated (compiler/passes.h); each
// keeps every value the model names.
void RewriteModel(Graph& g, const ModelDef& m, const CompileOptions& options) {
  if (!options.fuse_relu_pool) return;
  std::vector<int> external;
  for (const Value& v : m.inputs) external.push_back(v.id());
  for (const Value& v : {m.example, m.target, m.loss}) external.push_back(v.id());
  for (const auto& named : m.metrics) external.push_back(named.second.id());
  for (const auto& named : m.eval_outputs) external.push_back(named.second.id());
  for (const auto& [buffer, update] : g.buffer_updates()) external.push_back(update);
  const int fused = FuseReluIntoMaxPool(g, external);
  if (options.dump_graphs) std::fprintf(stderr, "== fuse_relu_pool: %d pools ==\n", fused);
}

// Every Value of the model is a node of `g` (an invalid one passes on the error of the op that
// made it); inputs come from Graph::Input.
absl::Status CheckModel(const Graph& g, const ModelDef& m) {
  if (!g.status().ok()) return g.status();
  auto check = [&g](const Value& v, const std::string& what) -> absl::Status {
    if (v.graph() != nullptr && !v.graph()->status().ok()) return v.graph()->status();
    if (!v.valid()) {
      return absl::InvalidArgumentError(
          absl::StrCat("ModelDef.", what, " is an empty (default-constructed) Value"));
    }
    if (v.graph() != &g) {
      return absl::InvalidArgumentError(
          absl::StrCat("ModelDef.", what, " '", v.name(), "' belongs to another graph"));
    }
    return absl::OkStatus();
  };
  if (m.inputs.empty()) {
    return absl::InvalidArgumentError(
        "ModelDef.inputs is empty: a model needs its per-batch inputs (Graph::Input values)");
  }
  for (size_t i = 0; i < m.inputs.size(); ++i) {
    KILN_RETURN_IF_ERROR(check(m.inputs[i], absl::StrCat("inputs[", i, "]")));
    if (m.inputs[i].node().op != OpKind::kInput) {
      return absl::InvalidArgumentError("ModelDef.inputs must be values made by Graph::Input");
    }
  }
  for (const auto& [role, v] :
       {std::pair<const char*, Value>{"example", m.example}, {"target", m.target}}) {
    if (v.graph() == nullptr) continue;  // unset: by position
    KILN_RETURN_IF_ERROR(check(v, role));
    bool found = false;
    for (const Value& in : m.inputs) found |= in.id() == v.id();
    if (!found) {
      return absl::InvalidArgumentError(
          absl::StrCat("ModelDef.", role, " '", v.name(), "' is not one of ModelDef.inputs"));
    }
  }
  if (m.loss.graph() != nullptr) KILN_RETURN_IF_ERROR(check(m.loss, "loss"));
  for (const auto& [name, v] : m.metrics) KILN_RETURN_IF_ERROR(check(v, "metrics." + name));
  for (const auto& [name, v] : m.eval_outputs) {
    KILN_RETURN_IF_ERROR(check(v, "eval_outputs." + name));
  }
  return absl::OkStatus();
}

// What a per-batch input is to the runtime: ModelDef::example and ::target, or by position.
ArgKind DataKind(const ModelDef& m, const Value& v) {
  const Value example = m.example.valid() ? m.example : m.inputs[0];
  const Value target = m.target.valid() ? m.target : m.inputs.size() > 1 ? m.inputs[1] : Value();
  if (v.id() == example.id()) return ArgKind::kExample;
  if (target.valid() && v.id() == target.id()) return ArgKind::kTarget;
  return ArgKind::kNone;
}

// A per-example eval output's or a metric's meaning, from the name ModelDef documents.
ArgKind OutputKind(ArgRole role, const std::string& name) {
  if (role == ArgRole::kMetric && name == kCorrectMetric) return ArgKind::kCorrectCount;
  if (role == ArgRole::kOutput && name == kPredictionOutput) return ArgKind::kPrediction;
  if (role == ArgRole::kOutput && name == kLossOutput) return ArgKind::kExampleLoss;
  return ArgKind::kNone;
}

// While a program is built, ArgSpec::param and ::updates hold node ids (the parameter a state
// belongs to, the input an output replaces); this turns them into indices into p.inputs.
void LinkByIndex(StepProgram& p) {
  std::map<int, int> input_of;  // node id -> index in p.inputs
  for (size_t i = 0; i < p.inputs.size(); ++i) input_of[p.inputs[i].first] = static_cast<int>(i);
  for (auto& in : p.inputs) {
    if (in.second.param >= 0) in.second.param = input_of.at(in.second.param);
  }
  for (auto& out : p.outputs) {
    if (out.second.updates >= 0) out.second.updates = input_of.at(out.second.updates);
    if (out.second.param >= 0) out.second.param = input_of.at(out.second.param);
  }
}

// Source nodes of one kind (parameters or buffers) the given roots depend on, in creation order.
std::vector<int> Used(const Graph& g, const std::vector<int>& roots, OpKind kind) {
  std::vector<int> out;
  for (int id : g.Reachable(roots)) {
    if (g.node(id).op == kind) out.push_back(id);
  }
  return out;
}
std::vector<int> UsedParameters(const Graph& g, const std::vector<int>& roots) {
  return Used(g, roots, OpKind::kParameter);
}

bool HasOp(const Graph& g, const std::vector<int>& roots, OpKind op) {
  for (int id : g.Reachable(roots)) {
    if (g.node(id).op == op) return true;
  }
  return false;
}

}  // namespace

namespace {

// The memory a step may need: its arguments, plus (an upper bound) every intermediate the
// schedules materialize - reductions, matmuls, convolutions and pooling, the elementwise producers
// of their operands, and a padded copy of each convolution input - as if all were live at once.
absl::Status CheckMemory(const Graph& g, const std::vector<int>& roots, const StepProgram& p,
                         const CompileOptions& options) {
  const int64_t fsize = options.float64 ? 8 : 4;
  auto bytes = [&](const Node& n) {
    return NumElements(n.shape) * (n.dtype == DType::kUInt8   ? 1
                                   : n.dtype == DType::kInt32 ? 4
                                                              : fsize);
  };
  int64_t args = 0, inter = 0;
  for (const auto* list : {&p.inputs, &p.outputs}) {
    for (const auto& [id, spec] : *list) args += NumElements(spec.shape) * ScalarSize(spec.type);
  }
  for (int id : g.Reachable(roots)) {
    const Node& n = g.node(id);
    const Pattern pat = DefOf(n).pattern;
    if (pat != Pattern::kReduction && pat != Pattern::kComplex) continue;
    inter += bytes(n);
    for (int in : n.inputs) inter += bytes(g.node(in));  // operand copies, padded inputs
  }
  const int64_t total = args + inter;
  if (total <= options.memory_limit_bytes) return absl::OkStatus();
  auto mib = [](int64_t b) { return absl::StrFormat("%.1f MiB", b / 1048576.0); };
  return absl::ResourceExhaustedError(absl::StrCat(
      "the step would need about ", mib(total), " (arguments ", mib(args), ", intermediates ",
      mib(inter), "), over the memory limit of ", mib(options.memory_limit_bytes),
      ": use a smaller batch size or raise the limit"));
}

// A step program lowered to one Halide pipeline, ready to be compiled in memory or to a library.
struct Prepared {
  LoweredStep lowered;
  Signature sig;
  Halide::Target target;
  std::string key_material;  // the compile cache's description of the step
};

// Runs the graph passes over the program's outputs; the strict nodes go through them with the
// outputs, so CSE remaps them too.
void RunProgramPasses(Graph& g, StepProgram& program, bool dump) {
  std::vector<int> roots;
  for (const auto& o : program.outputs) roots.push_back(o.first);
  const size_t outputs = roots.size();
  roots.insert(roots.end(), program.strict.begin(), program.strict.end());
  RunPasses(g, roots, dump);
  program.strict.assign(roots.begin() + static_cast<std::ptrdiff_t>(outputs), roots.end());
  roots.resize(outputs);
  for (size_t i = 0; i < roots.size(); ++i) program.outputs[i].first = roots[i];
}

LayoutPlan PlanProgramLayouts(const Graph& g, const StepProgram& program, LayoutChoice choice,
                              const LowerCtx& ctx) {
  std::set<int> arguments;
  for (const auto& in : program.inputs) arguments.insert(in.first);
  return PlanLayouts(g, ProgramNodes(g, program), arguments, choice, ctx);
}

// `passes_done`: the caller ran RunProgramPasses (a segment of a program split after them).
// `lower` false: everything but the lowering (the signature, the target, the cache key).
absl::StatusOr<Prepared> PrepareProgram(Graph& g, StepProgram program,
                                        const CompileOptions& options, bool passes_done = false,
                                        bool lower = true) {
  if (!g.status().ok()) return g.status();
  Prepared out;
  KILN_ASSIGN_OR_RETURN(out.target, ToHalideTarget(options.target));
  if (!passes_done) RunProgramPasses(g, program, options.dump_graphs);
  std::vector<int> roots;
  for (const auto& o : program.outputs) roots.push_back(o.first);
  // Every source the outputs need must be an argument.
  std::set<int> args;
  for (const auto& in : program.inputs) args.insert(in.first);
  for (int id : ProgramNodes(g, program)) {
    const Node& n = g.node(id);
    if ((n.op == OpKind::kInput || n.op == OpKind::kParameter || n.op == OpKind::kBuffer) &&
        !args.count(id)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "'", n.name, "' is needed by the step's outputs but is not one of its inputs"));
    }
  }
  if (!options.dot_path.empty()) {
    std::ofstream(options.dot_path) << g.ToDot(roots);
  }
  if (options.memory_limit_bytes > 0) {
    KILN_RETURN_IF_ERROR(CheckMemory(g, roots, program, options));
  }
  for (const auto& in : program.inputs) out.sig.inputs.push_back(in.second);
  for (const auto& o : program.outputs) out.sig.outputs.push_back(o.second);
  out.sig.resident_batch = program.resident_batch;
  out.sig.gradient_elements = program.gradient_elements;
  if (absl::Status st = out.sig.Validate(); !st.ok()) {
    return absl::InternalError(
        absl::StrCat("the step's signature is inconsistent: ", st.message()));
  }
  out.key_material =
      absl::StrCat("target=", out.target.to_string(), " f64=", options.float64,
                   " plain=", options.plain_schedule, " layout=", LayoutChoiceName(options.layout),
                   " example_blocks=", options.example_blocks, "\n");
  for (const auto* list : {&program.inputs, &program.outputs}) {
    for (const auto& [id, spec] : *list) {
      absl::StrAppend(&out.key_material, "arg ", id, " ", spec.name, " ", ArgRoleName(spec.role),
                      " ", ScalarTypeName(spec.type), ShapeString(spec.shape), "\n");
    }
  }
  absl::StrAppend(&out.key_material, g.Fingerprint(roots));
  LayoutPlan plan;  // a segment's: the whole program's plan, restricted to the segment's nodes
  if (program.layouts) {
    absl::StrAppend(&out.key_material, "planned batch-inner:");
    for (int id : ProgramNodes(g, program)) {
      auto it = program.layouts->find(id);
      if (it == program.layouts->end()) continue;
      plan.insert(*it);
      absl::StrAppend(&out.key_material, " ", id, program.batch_inner_args.count(id) ? "*" : "");
    }
    absl::StrAppend(&out.key_material, "\n");
  }
  if (!lower) return out;
  LowerCtx ctx(options.float64 ? Halide::Float(64) : Halide::Float(32), out.target);
  if (!options.plain_schedule) {
    if (!program.layouts) plan = PlanProgramLayouts(g, program, options.layout, ctx);
    if (options.dump_graphs) std::cerr << LayoutPlanString(g, plan, ctx);
    ctx.set_layouts(std::move(plan));
    if (options.dump_graphs && options.example_blocks) {
      if (const int64_t block = ExampleBlock(g, program, ctx); block > 0) {
        std::cerr << "computed in blocks of " << block << " examples\n";
      }
    }
  }
  KILN_ASSIGN_OR_RETURN(out.lowered,
                        LowerStep(g, program, ctx, options.plain_schedule, options.example_blocks));
  if (!options.stmt_path.empty()) {
    try {
      out.lowered.pipeline.compile_to_lowered_stmt(
          options.stmt_path, out.lowered.pipeline.infer_arguments(), Halide::Text, out.target);
    } catch (const Halide::Error& e) {
      return absl::InternalError(absl::StrCat("writing the loop nest failed: ", e.what()));
    }
  }
  return out;
}

}  // namespace

namespace {

absl::StatusOr<std::unique_ptr<Executable>> CompileOne(Graph& g, StepProgram program,
                                                       const CompileOptions& options,
                                                       bool passes_done) {
  std::optional<JitRuntimeWarmup> warmup;
  if (options.cache_dir.empty()) {
    if (absl::StatusOr<Halide::Target> t = ToHalideTarget(options.target); t.ok()) {
      warmup.emplace(*t);
    }
  }
  if (!passes_done) RunProgramPasses(g, program, options.dump_graphs);
  if (!options.cache_dir.empty() && options.stmt_path.empty()) {
    // A cache hit needs no lowering (lowering took 0.06 s of the ResNet's 0.33 s cache hit).
    KILN_ASSIGN_OR_RETURN(Prepared key, PrepareProgram(g, program, options, true, false));
    if (std::unique_ptr<Executable> hit =
            LoadCachedIfPresent(key.sig, key.target, options.cache_dir, CacheKey(key.key_material),
                                /*report=*/false)) {
      return hit;
    }
  }
  KILN_ASSIGN_OR_RETURN(Prepared p, PrepareProgram(g, std::move(program), options, true));
  if (options.cache_dir.empty()) {
    return JitCompile(std::move(p.lowered), std::move(p.sig), p.target);
  }
  KILN_ASSIGN_OR_RETURN(CacheResult cached,
                        CompileCached(std::move(p.lowered), std::move(p.sig), p.target,
                                      options.cache_dir, CacheKey(p.key_material)));
  return std::move(cached.executable);
}

// CompileOptions::max_pipeline_stages: measured on this machine (2026-12-02), the 4-block vision
// transformer's training step (620 Halide stages) took over 10 minutes to compile as one pipeline,
// 95 s as 11; the small ResNet's 176 s as one, 81 s as 2 and 47 s as 5; the batch-norm CNN's
// (110 stages) 7 s as one. A matmul or convolution counts two stages (its accumulator).
struct SplitPrograms {
  std::vector<StepProgram> parts;
  SegmentPlan plan;  // empty parts: one pipeline
};

// Splits a program (after its passes) into segments in topological order. Every node that a later
// segment reads becomes an intermediate: an output of its segment, an input of the readers'.
// Sources and constants belong to no segment (each segment reads or makes its own). GPU steps,
// resident data sets and running sums stay one pipeline.
SplitPrograms SplitProgram(const Graph& g, const StepProgram& p, const CompileOptions& options) {
  SplitPrograms s;
  const int64_t budget = options.max_pipeline_stages;
  bool can = budget > 0 && options.target.device != Device::kCuda && !options.plain_schedule;
  for (const auto& [id, spec] : p.inputs) can &= spec.role != ArgRole::kDataset;
  for (const auto& [id, spec] : p.outputs) can &= spec.sums < 0;
  const std::vector<int> order = ProgramNodes(g, p);
  std::map<int, int64_t> weight;
  int64_t total = 0;
  for (int id : order) {
    const Pattern pat = DefOf(g.node(id)).pattern;
    weight[id] = pat == Pattern::kComplex ? 2 : pat == Pattern::kReduction ? 1 : 0;
  }
  for (const auto& [id, spec] : p.outputs) ++weight[id];
  for (const auto& [id, w] : weight) total += w;
  const int64_t half = std::max<int64_t>(1, budget / 2);
  const int64_t n = can && total > budget ? (total + half - 1) / half : 1;
  if (n <= 1) {
    s.parts = {p};
    return s;
  }
  std::map<int, int64_t> seg;
  int64_t done = 0;
  for (int id : order) {
    if (DefOf(g.node(id)).pattern == Pattern::kSource) continue;
    seg[id] = std::min<int64_t>(n - 1, done * n / total);
    done += weight[id];
  }
  auto segment_of = [&](int id) { return seg.count(id) ? seg[id] : n - 1; };
  // The whole program's layout plan, which every segment lowers by: a batch-inner intermediate
  // crosses between segments batch-inner (BatchLastShape), not transposed to row-major by its
  // writer and back by its readers (the small ResNet's forward segment spent 13 of its 25 ms in
  // those transposing copies, 2026-12-03).
  LayoutPlan plan;
  if (absl::StatusOr<Halide::Target> t = ToHalideTarget(options.target); t.ok()) {
    plan =
        PlanProgramLayouts(g, p, options.layout,
                           LowerCtx(options.float64 ? Halide::Float(64) : Halide::Float(32), *t));
  }
  std::set<int> carried;
  std::map<int, int> inter;  // node -> intermediate index
  std::vector<std::set<int>> reads(static_cast<size_t>(n));
  for (int id : order) {
    if (!seg.count(id)) continue;
    for (int in : g.node(id).inputs) {
      if (!seg.count(in) || seg[in] >= seg[id]) continue;
      if (!inter.count(in)) {
        const int m = static_cast<int>(s.plan.intermediates.size());
        inter[in] = m;
        ArgSpec a = Spec(g.node(in), ArgRole::kData, absl::StrCat("segment_", in), options.float64);
        a.init = Initializer();
        auto planned = plan.find(in);
        if (planned != plan.end() && planned->second == Layout::kBatchInner &&
            a.shape.size() == 4) {
          a.shape = BatchLastShape(a.shape);
          carried.insert(in);
        }
        s.plan.intermediates.push_back(a);
      }
      reads[static_cast<size_t>(seg[id])].insert(in);
    }
  }
  for (int64_t k = 0; k < n; ++k) {
    StepProgram part;
    SegmentPlan::Part route;
    part.inputs = p.inputs;
    part.layouts = plan;
    for (int id : reads[static_cast<size_t>(k)]) {
      part.inputs.push_back({id, s.plan.intermediates[inter[id]]});
      route.reads.push_back(inter[id]);
      if (carried.count(id)) part.batch_inner_args.insert(id);
    }
    for (size_t r = 0; r < p.outputs.size(); ++r) {
      if (segment_of(p.outputs[r].first) != k) continue;
      part.outputs.push_back(p.outputs[r]);
      route.writes.push_back(static_cast<int>(r));
    }
    for (const auto& [id, m] : inter) {
      if (seg[id] != k) continue;
      ArgSpec a = s.plan.intermediates[m];
      a.role = ArgRole::kOutput;
      part.outputs.push_back({id, a});
      route.writes.push_back(-1 - m);
      if (carried.count(id)) part.batch_inner_args.insert(id);
    }
    if (part.outputs.empty()) continue;  // a segment the weights left empty
    for (int id : p.strict) {
      if (segment_of(id) == k) part.strict.push_back(id);
    }
    part.resident_batch = p.resident_batch;
    part.gradient_elements = p.gradient_elements;
    s.parts.push_back(std::move(part));
    s.plan.parts.push_back(std::move(route));
  }
  return s;
}

}  // namespace

namespace {

// CompileOptions::compile_threads resolved: 0 is one per core.
int CompileThreads(const CompileOptions& options) {
  if (options.compile_threads > 0) return options.compile_threads;
  return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
}

// Runs job(0) ... job(n - 1) on up to `threads` threads (this one among them), each index once.
// The first failure in index order; jobs not yet started when one fails are skipped.
absl::Status RunConcurrently(size_t n, int threads,
                             const std::function<absl::Status(size_t)>& job) {
  std::vector<absl::Status> status(n);
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  auto work = [&] {
    for (size_t k = next++; k < n && !failed; k = next++) {
      status[k] = job(k);
      if (!status[k].ok()) failed = true;
    }
  };
  std::vector<std::thread> helpers;
  for (int t = 1; t < threads && static_cast<size_t>(t) < n; ++t) helpers.emplace_back(work);
  work();
  for (std::thread& t : helpers) t.join();
  for (const absl::Status& st : status) {
    if (!st.ok()) return st;
  }
  return absl::OkStatus();
}

// A program split into segments (more than one), each to be compiled by `compile(k, part, options)`
// with its part options: what PrepareProgram checks and writes for one pipeline, done once for the
// whole program. The segments compile concurrently on CompileThreads(options) threads (`compile`
// writes only what belongs to segment k); one after the other when graphs are dumped or loop
// nests written (their loop nests go into options.stmt_path in order). On 2 cores the ViT's
// training step (11 segments) compiled in 23.4 s instead of 38.1 s, the ResNet's (5) in 7.9 s
// instead of 17.8 s (2026-12-03).
absl::StatusOr<Signature> ForEachSegment(
    Graph& g, const StepProgram& program, SplitPrograms& split, const CompileOptions& options,
    const std::function<absl::Status(size_t, StepProgram, const CompileOptions&)>& compile) {
  std::vector<int> roots;
  for (const auto& o : program.outputs) roots.push_back(o.first);
  if (!options.dot_path.empty()) std::ofstream(options.dot_path) << g.ToDot(roots);
  if (options.memory_limit_bytes > 0) {
    KILN_RETURN_IF_ERROR(CheckMemory(g, roots, program, options));
  }
  Signature sig;
  for (const auto& in : program.inputs) sig.inputs.push_back(in.second);
  for (const auto& o : program.outputs) sig.outputs.push_back(o.second);
  sig.resident_batch = program.resident_batch;
  sig.gradient_elements = program.gradient_elements;
  CompileOptions part_options = options;
  part_options.dot_path.clear();
  part_options.memory_limit_bytes = 0;
  // The segments are independent pipelines, each lowered to Funcs of its own from the graph
  // (which nothing changes after the passes).
  if (!options.dump_graphs && options.stmt_path.empty()) {
    KILN_RETURN_IF_ERROR(RunConcurrently(
        split.parts.size(), CompileThreads(options),
        [&](size_t k) { return compile(k, std::move(split.parts[k]), part_options); }));
    return sig;
  }
  std::string stmt;
  for (size_t k = 0; k < split.parts.size(); ++k) {
    if (!options.stmt_path.empty())
      part_options.stmt_path = absl::StrCat(options.stmt_path, ".", k);
    KILN_RETURN_IF_ERROR(compile(k, std::move(split.parts[k]), part_options));
    if (!options.stmt_path.empty()) {
      std::ifstream in(part_options.stmt_path);
      absl::StrAppend(&stmt, "// segment ", k + 1, " of ", split.parts.size(), "\n",
                      std::string(std::istreambuf_iterator<char>(in), {}));
      std::remove(part_options.stmt_path.c_str());
    }
  }
  if (!options.stmt_path.empty()) std::ofstream(options.stmt_path) << stmt;
  return sig;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Executable>> CompileProgram(Graph& g, StepProgram program,
                                                           const CompileOptions& options) {
  if (!g.status().ok()) return g.status();
  RunProgramPasses(g, program, options.dump_graphs);
  SplitPrograms split = SplitProgram(g, program, options);
  if (split.parts.size() == 1) return CompileOne(g, std::move(program), options, true);
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::unique_ptr<Executable>> steps(split.parts.size());
  KILN_ASSIGN_OR_RETURN(
      Signature sig,
      ForEachSegment(g, program, split, options,
                     [&](size_t k, StepProgram part, const CompileOptions& o) -> absl::Status {
                       KILN_ASSIGN_OR_RETURN(steps[k], CompileOne(g, std::move(part), o, true));
                       return absl::OkStatus();
                     }));
  bool compiled = false;  // a segment compiled, not loaded from the cache
  for (const auto& s : steps) compiled |= s->compile_seconds() > 0;
  KILN_ASSIGN_OR_RETURN(
      std::unique_ptr<SegmentedStep> step,
      SegmentedStep::Make(std::move(sig), std::move(split.plan), std::move(steps)));
  if (compiled) {
    step->set_compile_seconds(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return std::unique_ptr<Executable>(std::move(step));
}

absl::StatusOr<Signature> EmitProgram(Graph& g, StepProgram program, const CompileOptions& options,
                                      const std::string& prefix, const std::string& function,
                                      SegmentPlan* segments) {
  if (!g.status().ok()) return g.status();
  RunProgramPasses(g, program, options.dump_graphs);
  SplitPrograms split;
  if (segments != nullptr) split = SplitProgram(g, program, options);
  if (split.parts.size() <= 1) {
    if (segments != nullptr) *segments = SegmentPlan();
    KILN_ASSIGN_OR_RETURN(Prepared p, PrepareProgram(g, std::move(program), options, true));
    std::vector<Halide::Argument> args = p.lowered.arguments();
    try {
      p.lowered.pipeline.compile_to_static_library(
          prefix, args, function,
          p.target.without_feature(Halide::Target::JIT).with_feature(Halide::Target::NoRuntime));
    } catch (const Halide::Error& e) {
      return absl::InternalError(absl::StrCat("Halide compilation failed: ", e.what()));
    }
    return p.sig;
  }
  // One static library holding every segment as its own object file (entry points
  // <function>_s<k>), each compiled exactly as the compile cache compiles it.
  const size_t n = split.parts.size();
  std::vector<std::string> objects(n), headers(n);
  KILN_ASSIGN_OR_RETURN(Halide::Target target, ToHalideTarget(options.target));
  target = target.without_feature(Halide::Target::JIT).with_feature(Halide::Target::NoRuntime);
  auto emit = [&](size_t k, StepProgram part, const CompileOptions& o) -> absl::Status {
    KILN_ASSIGN_OR_RETURN(Prepared p, PrepareProgram(g, std::move(part), o, true));
    const std::string part_prefix = absl::StrCat(prefix, "_s", k);
    try {
      p.lowered.pipeline
          .compile_to_module(p.lowered.arguments(), absl::StrCat(function, "_s", k), target)
          .compile({{Halide::OutputFileType::object, part_prefix + ".o"},
                    {Halide::OutputFileType::c_header, part_prefix + ".h"}});
    } catch (const Halide::Error& e) {
      return absl::InternalError(absl::StrCat("Halide compilation failed: ", e.what()));
    }
    objects[k] = part_prefix + ".o";
    std::ifstream in(part_prefix + ".h");
    headers[k] = std::string(std::istreambuf_iterator<char>(in), {});
    std::remove((part_prefix + ".h").c_str());
    return absl::OkStatus();
  };
  KILN_ASSIGN_OR_RETURN(Signature sig, ForEachSegment(g, program, split, options, emit));
  std::string header;
  for (const std::string& h : headers) header += h;
  try {
    Halide::create_static_library(objects, target, prefix + ".a");
  } catch (const Halide::Error& e) {
    return absl::InternalError(absl::StrCat("writing ", prefix, ".a failed: ", e.what()));
  }
  for (const std::string& o : objects) std::remove(o.c_str());
  std::ofstream(prefix + ".h") << header;
  *segments = std::move(split.plan);
  return sig;
}

namespace {

// The pieces of a training program both step forms share, built in `g`.
struct TrainParts {
  std::vector<int> params;   // the parameters the loss depends on, in creation order
  std::vector<Value> grads;  // d loss / d params[i]
  std::vector<std::pair<int, ArgSpec>> data;                  // per-batch (or resident) inputs
  std::vector<std::pair<int, ArgSpec>> scalars;               // loss and metrics
  std::vector<std::pair<int, ArgSpec>> buffers, new_buffers;  // batch-norm statistics
  std::vector<std::pair<int, ArgSpec>> sums, new_sums;        // resident running sums
  int64_t resident_batch = 0;
  bool dropout = false;  // the forward pass reads the step number
};

absl::StatusOr<TrainParts> BuildTrainParts(Graph& g, const ModelDef& model,
                                           const CompileOptions& options) {
  KILN_RETURN_IF_ERROR(CheckModel(g, model));
  if (!model.loss.valid()) return absl::InvalidArgumentError("the model has no loss");
  RewriteModel(g, model, options);
  TrainParts t;
  t.params = UsedParameters(g, {model.loss.id()});
  if (t.params.empty()) return absl::InvalidArgumentError("the loss depends on no parameter");
  std::vector<Value> wrt;
  for (int id : t.params) wrt.push_back(g.value(id));
  KILN_ASSIGN_OR_RETURN(t.grads, Gradients(model.loss, wrt));
  t.dropout = HasOp(g, {model.loss.id()}, OpKind::kDropout);

  const bool f64 = options.float64;
  const int64_t resident = options.resident_examples;
  for (const Value& v : model.inputs) {
    ArgSpec s = Spec(v.node(), resident > 0 ? ArgRole::kDataset : ArgRole::kData, v.name(), f64);
    s.kind = DataKind(model, v);
    if (resident > 0) {
      if (s.shape.empty() || s.shape[0] > resident) {
        return absl::InvalidArgumentError(
            absl::StrCat("resident training: input '", v.name(), "' ", ShapeString(s.shape),
                         " needs a batch axis no longer than the ", resident, " examples"));
      }
      s.shape[0] = resident;
    }
    t.data.push_back({v.id(), s});
  }
  if (resident > 0) {
    Value order = g.Input(kOrderInput, {resident}, DType::kInt32);
    Value start = g.Input(kBatchStartHyper, {}, DType::kInt32);
    ArgSpec o = Spec(order.node(), ArgRole::kDataset, kOrderInput, f64);
    o.kind = ArgKind::kOrder;
    t.data.push_back({order.id(), o});
    ArgSpec s = Spec(start.node(), ArgRole::kHyper, kBatchStartHyper, f64);
    s.init = Initializer::Constant(0);
    s.kind = ArgKind::kBatchStart;
    t.data.push_back({start.id(), s});
    t.resident_batch = model.inputs[0].shape()[0];
  }

  // Buffers (e.g. batch-norm running statistics) are state the model updates itself; one without
  // an update is passed through so both buffer sets stay current.
  std::vector<int> roots = {model.loss.id()};
  for (const auto& [b, v] : g.buffer_updates()) roots.push_back(v);
  for (int b : Used(g, roots, OpKind::kBuffer)) {
    const Node bn = g.node(b);
    t.buffers.push_back({b, Spec(bn, ArgRole::kState, bn.name, f64)});
    int update = b;
    for (const auto& [buf, v] : g.buffer_updates()) {
      if (buf == b) update = v;
    }
    ArgSpec ns = Spec(bn, ArgRole::kNewState, bn.name, f64);
    ns.updates = b;
    t.new_buffers.push_back({update, ns});
  }

  t.scalars.push_back({model.loss.id(), Spec(model.loss.node(), ArgRole::kLoss, "loss", f64)});
  for (const auto& [name, v] : model.metrics) {
    if (!v.valid())
      return g.status().ok() ? absl::InvalidArgumentError("invalid metric") : g.status();
    if (!v.shape().empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("metric '", name, "' must be a scalar, got ", ShapeString(v.shape())));
    }
    ArgSpec m = Spec(v.node(), ArgRole::kMetric, name, f64);
    m.kind = OutputKind(ArgRole::kMetric, name);
    t.scalars.push_back({v.id(), m});
  }
  if (resident > 0) {  // per-epoch sums of the loss and metrics, kept on the device
    for (size_t k = 0; k < t.scalars.size(); ++k) {
      const auto& [id, spec] = t.scalars[k];
      // Float sums (counts stay exact below 2^24 per epoch).
      Value sum = g.Input(kSumPrefix + spec.name, {});
      Value x = g.value(id);
      Value next = sum + (x.dtype() == DType::kFloat ? x : ToFloat(x));
      if (!next.valid()) return g.status();
      ArgSpec st = Spec(sum.node(), ArgRole::kState, sum.name(), f64);
      st.kind = ArgKind::kRunningSum;
      st.sums = static_cast<int>(k);  // scalars come first among the outputs
      t.sums.push_back({sum.id(), st});
      ArgSpec ns = Spec(next.node(), ArgRole::kNewState, sum.name(), f64);
      ns.kind = ArgKind::kRunningSum;
      ns.sums = static_cast<int>(k);
      ns.updates = sum.id();
      t.new_sums.push_back({next.id(), ns});
    }
    if (!g.status().ok()) return g.status();
  }
  return t;
}

// The optimizer's part of a step: its hyperparameter inputs (plus the step number when
// `need_step`), then per parameter: the parameter input, its state inputs, clipping and weight
// decay, the update rule, and the new parameter and state outputs. `grads` are the gradients the
// update reads.
struct OptimizerPart {
  std::vector<std::pair<int, ArgSpec>> hypers, params, states, new_params, new_states;
  std::vector<int> nodes;  // every node it made (StepProgram::strict)
};

absl::StatusOr<OptimizerPart> BuildOptimizerPart(Graph& g, const Optimizer& optimizer,
                                                 const std::vector<int>& params,
                                                 std::vector<Value> grads, bool need_step,
                                                 bool grad_scale, bool float64) {
  OptimizerPart o;
  const int first_node = g.size();
  g.set_name_scope(optimizer.name() + "/");
  std::vector<Value> hyper;
  std::vector<HyperParam> hypers = optimizer.Hyperparameters();
  bool has_step = false;
  for (const HyperParam& h : hypers) has_step |= h.kind == ArgKind::kStep;
  if (!has_step && need_step) hypers.push_back({kStepHyper, 1, ArgKind::kStep});
  if (grad_scale) hypers.push_back({kGradScaleHyper, 1, ArgKind::kGradScale});
  Value lr, scale;
  for (const HyperParam& hp : hypers) {
    Value h = g.Input(hp.name, {});
    if (hp.kind != ArgKind::kGradScale) hyper.push_back(h);  // Apply() reads its own only
    if (hp.kind == ArgKind::kLearningRate) lr = h;
    if (hp.kind == ArgKind::kGradScale) scale = h;
    ArgSpec s = Spec(h.node(), ArgRole::kHyper, hp.name, float64);
    s.init = Initializer::Constant(hp.value);
    s.kind = hp.kind;
    o.hypers.push_back({h.id(), s});
  }
  if (scale.valid()) {
    for (Value& gr : grads) gr = gr * scale;
  }
  if (const double c = optimizer.clip_global_norm(); c > 0) {
    // g <- g * min(1, c / ||g||) with ||g|| over all gradients; min(1, c / n) = c / (c + relu(n -
    // c)).
    Value sq;
    for (const Value& gr : grads) sq = sq.valid() ? sq + Sum(Square(gr)) : Sum(Square(gr));
    Value clip = c / (c + Relu(Sqrt(sq) - c));
    for (Value& gr : grads) gr = gr * clip;
  }
  for (size_t i = 0; i < params.size(); ++i) {
    const Node pn = g.node(params[i]);  // a copy: nodes are appended below
    const std::string pname = pn.name;
    o.params.push_back({params[i], Spec(pn, ArgRole::kParam, pname, float64)});
    std::vector<Value> state;
    const size_t first_state = o.states.size();
    for (const std::string& slot : optimizer.StateSlots()) {
      Value s = g.Input(pname + "/" + slot, pn.shape);
      state.push_back(s);
      ArgSpec spec = Spec(s.node(), ArgRole::kState, s.name(), float64);
      spec.param = params[i];  // a node id until LinkByIndex
      o.states.push_back({s.id(), spec});
    }
    Value p_i = g.value(params[i]);
    Value grad = grads[i];
    const bool decay = optimizer.weight_decay() > 0 && optimizer.Decays(pname);
    if (decay && !optimizer.decoupled_decay()) grad = grad + p_i * optimizer.weight_decay();
    Optimizer::Update u = optimizer.Apply(p_i, grad, state, hyper);
    if (decay && optimizer.decoupled_decay()) {
      u.param = u.param - lr * (p_i * optimizer.weight_decay());
    }
    if (!g.status().ok()) return g.status();
    ArgSpec np = Spec(u.param.node(), ArgRole::kNewParam, pname, float64);
    np.updates = params[i];
    o.new_params.push_back({u.param.id(), np});
    for (size_t k = 0; k < u.state.size(); ++k) {
      const auto& [state_id, state_spec] = o.states[first_state + k];
      ArgSpec ns = Spec(u.state[k].node(), ArgRole::kNewState, state_spec.name, float64);
      ns.updates = state_id;
      o.new_states.push_back({u.state[k].id(), ns});
    }
  }
  g.set_name_scope("");
  for (int id = first_node; id < g.size(); ++id) o.nodes.push_back(id);
  return o;
}

template <typename T>
void Append(std::vector<T>& to, const std::vector<T>& from) {
  to.insert(to.end(), from.begin(), from.end());
}

}  // namespace

absl::StatusOr<StepProgram> BuildTrainProgram(Graph& g, const ModelDef& model,
                                              const Optimizer& optimizer,
                                              const CompileOptions& options) {
  KILN_RETURN_IF_ERROR(optimizer.Validate());
  KILN_ASSIGN_OR_RETURN(TrainParts t, BuildTrainParts(g, model, options));
  KILN_ASSIGN_OR_RETURN(OptimizerPart o,
                        BuildOptimizerPart(g, optimizer, t.params, t.grads, t.dropout,
                                           /*grad_scale=*/false, options.float64));
  StepProgram p;
  p.resident_batch = t.resident_batch;
  // Inputs: data, hyperparameters, parameters, optimizer state, buffers, sums.
  Append(p.inputs, t.data);
  Append(p.inputs, o.hypers);
  Append(p.inputs, o.params);
  Append(p.inputs, o.states);
  Append(p.inputs, t.buffers);
  Append(p.inputs, t.sums);
  // Outputs: loss and metrics, new parameters, new optimizer state, buffers, sums.
  Append(p.outputs, t.scalars);
  Append(p.outputs, o.new_params);
  Append(p.outputs, o.new_states);
  Append(p.outputs, t.new_buffers);
  Append(p.outputs, t.new_sums);
  p.strict = o.nodes;
  LinkByIndex(p);
  return p;
}

absl::StatusOr<TwoPhasePrograms> BuildTwoPhasePrograms(Graph& g, const ModelDef& model,
                                                       const Optimizer& optimizer,
                                                       const CompileOptions& options) {
  KILN_RETURN_IF_ERROR(optimizer.Validate());
  KILN_ASSIGN_OR_RETURN(TrainParts t, BuildTrainParts(g, model, options));
  const bool f64 = options.float64;
  TwoPhasePrograms out;
  // The gradient phase: data, (the step number for dropout), parameters, buffers and sums in;
  // loss, metrics, gradients, buffers and sums out.
  StepProgram& gp = out.gradient;
  gp.resident_batch = t.resident_batch;
  Append(gp.inputs, t.data);
  if (t.dropout) {
    Value step = g.Input(kStepHyper, {});
    ArgSpec s = Spec(step.node(), ArgRole::kHyper, kStepHyper, f64);
    s.init = Initializer::Constant(1);
    s.kind = ArgKind::kStep;
    gp.inputs.push_back({step.id(), s});
    // Data-parallel ranks hash their examples' global positions.
    Value offset = g.Input(kExampleOffsetHyper, {});
    ArgSpec o = Spec(offset.node(), ArgRole::kHyper, kExampleOffsetHyper, f64);
    o.init = Initializer::Constant(0);
    o.kind = ArgKind::kExampleOffset;
    gp.inputs.push_back({offset.id(), o});
  }
  for (int id : t.params)
    gp.inputs.push_back({id, Spec(g.node(id), ArgRole::kParam, g.node(id).name, f64)});
  Append(gp.inputs, t.buffers);
  Append(gp.inputs, t.sums);
  Append(gp.outputs, t.scalars);
  // The update phase reads each gradient from an input of its own.
  const int64_t align = kGradientAlignBytes / (f64 ? 8 : 4);
  int64_t offset = 0;
  std::vector<Value> grad_inputs;
  std::vector<std::pair<int, ArgSpec>> grad_specs;
  for (size_t i = 0; i < t.params.size(); ++i) {
    const Node& pn = g.node(t.params[i]);
    ArgSpec a = Spec(pn, ArgRole::kGradient, "grad/" + pn.name, f64);
    a.init = Initializer();
    a.param = t.params[i];  // a node id until LinkByIndex
    a.offset = offset;
    offset += (NumElements(pn.shape) + align - 1) / align * align;
    gp.outputs.push_back({t.grads[i].id(), a});
    Value in = g.Input(a.name, pn.shape);
    grad_inputs.push_back(in);
    grad_specs.push_back({in.id(), a});
  }
  gp.gradient_elements = offset;
  Append(gp.outputs, t.new_buffers);
  Append(gp.outputs, t.new_sums);
  // Sums link to the scalars by output index: the scalars come first in both forms.
  LinkByIndex(gp);

  KILN_ASSIGN_OR_RETURN(OptimizerPart o,
                        BuildOptimizerPart(g, optimizer, t.params, grad_inputs,
                                           /*need_step=*/false, /*grad_scale=*/true, f64));
  StepProgram& up = out.update;
  Append(up.inputs, o.hypers);
  Append(up.inputs, o.params);
  Append(up.inputs, o.states);
  Append(up.inputs, grad_specs);
  Append(up.outputs, o.new_params);
  Append(up.outputs, o.new_states);
  up.gradient_elements = offset;
  up.strict = o.nodes;
  LinkByIndex(up);
  return out;
}

absl::StatusOr<std::unique_ptr<Executable>> CompileTrainStep(Graph& g, const ModelDef& model,
                                                             const Optimizer& optimizer,
                                                             const CompileOptions& options) {
  if (!options.two_phase) {
    KILN_ASSIGN_OR_RETURN(StepProgram p, BuildTrainProgram(g, model, optimizer, options));
    return CompileProgram(g, std::move(p), options);
  }
  KILN_ASSIGN_OR_RETURN(TwoPhasePrograms p, BuildTwoPhasePrograms(g, model, optimizer, options));
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<Executable> gradient,
                        CompileProgram(g, std::move(p.gradient), options));
  CompileOptions update_options = options;  // dumps of the update phase go next to the first
  if (!options.dot_path.empty()) update_options.dot_path += ".update";
  if (!options.stmt_path.empty()) update_options.stmt_path += ".update";
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<Executable> update,
                        CompileProgram(g, std::move(p.update), update_options));
  return MakeTwoPhaseStep(std::move(gradient), std::move(update));
}

absl::StatusOr<StepProgram> BuildEvalProgram(Graph& g, const ModelDef& model,
                                             const CompileOptions& options) {
  KILN_RETURN_IF_ERROR(CheckModel(g, model));
  if (model.eval_outputs.empty()) {
    return absl::InvalidArgumentError("the model has no eval outputs");
  }
  if (g.training() && g.mode_dependent()) {
    return absl::FailedPreconditionError(
        "the evaluation step needs a graph built for evaluation (Graph(Mode::kEval)): this model "
        "has layers (dropout, batch norm) that behave differently in training");
  }
  RewriteModel(g, model, options);
  const bool f64 = options.float64;
  StepProgram p;
  std::vector<int> roots;
  for (const auto& [name, v] : model.eval_outputs) {
    if (!v.valid()) return absl::InvalidArgumentError(absl::StrCat("invalid eval output ", name));
    if (v.shape().empty() || v.shape()[0] != model.inputs[0].shape()[0]) {
      return absl::InvalidArgumentError(
          absl::StrCat("eval output '", name, "' must be per example with the batch first, got ",
                       ShapeString(v.shape())));
    }
    roots.push_back(v.id());
    ArgSpec out = Spec(v.node(), ArgRole::kOutput, name, f64);
    out.kind = OutputKind(ArgRole::kOutput, name);
    p.outputs.push_back({v.id(), out});
  }
  std::set<int> needed;
  for (int id : g.Reachable(roots)) needed.insert(id);
  for (const Value& v : model.inputs) {
    if (!needed.count(v.id())) continue;
    ArgSpec in = Spec(v.node(), ArgRole::kData, v.name(), f64);
    in.kind = DataKind(model, v);
    p.inputs.push_back({v.id(), in});
  }
  for (int id : UsedParameters(g, roots)) {
    p.inputs.push_back({id, Spec(g.node(id), ArgRole::kParam, g.node(id).name, f64)});
  }
  for (int id : Used(g, roots, OpKind::kBuffer)) {
    p.inputs.push_back({id, Spec(g.node(id), ArgRole::kState, g.node(id).name, f64)});
  }
  return p;
}

absl::StatusOr<std::unique_ptr<Executable>> CompileEvalStep(Graph& g, const ModelDef& model,
                                                            const CompileOptions& options) {
  KILN_ASSIGN_OR_RETURN(StepProgram p, BuildEvalProgram(g, model, options));
  return CompileProgram(g, std::move(p), options);
}

absl::StatusOr<TrainAndEvalSteps> CompileTrainAndEvalSteps(
    Graph& train_graph, const ModelDef& train_model, const Optimizer& optimizer,
    const CompileOptions& train_options, Graph& eval_graph, const ModelDef& eval_model,
    const CompileOptions& eval_options) {
  std::optional<absl::StatusOr<std::unique_ptr<Executable>>> eval;
  std::thread eval_compile;
  if (train_options.target.device == Device::kCpu && eval_options.target.device == Device::kCpu &&
      !train_options.dump_graphs && !eval_options.dump_graphs &&
      (eval_options.stmt_path.empty() || eval_options.stmt_path != train_options.stmt_path)) {
    eval_compile =
        std::thread([&] { eval.emplace(CompileEvalStep(eval_graph, eval_model, eval_options)); });
  }
  absl::StatusOr<std::unique_ptr<Executable>> train =
      CompileTrainStep(train_graph, train_model, optimizer, train_options);
  if (eval_compile.joinable()) eval_compile.join();
  if (!train.ok()) return train.status();
  if (!eval) eval.emplace(CompileEvalStep(eval_graph, eval_model, eval_options));
  if (!eval->ok()) return eval->status();
  return TrainAndEvalSteps{std::move(*train), std::move(**eval)};
}

}  // namespace kiln

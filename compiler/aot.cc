#include "compiler/aot.h"

#include <cctype>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "base/status.h"
#include "runtime/manifest.h"

namespace kiln {
namespace {

std::string Identifier(const std::string& name) {
  std::string out = "kiln_aot_";
  for (char c : name) out += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  return out;
}

absl::Status WriteText(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary);
    f << text;
    f.close();
    if (!f) return absl::InternalError(absl::StrCat(tmp, ": cannot write"));
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot rename ", tmp, " to ", path));
  return absl::OkStatus();
}

}  // namespace

absl::Status EmitTrainingProgram(const AotModel& model, const AotOptions& o) {
  if (!model.build) return absl::InvalidArgumentError("the AOT model has no build function");
  if (o.name.empty() || o.batch <= 0 || o.eval_batch <= 0) {
    return absl::InvalidArgumentError("a program name and positive batch sizes are required");
  }
  std::error_code ec;
  std::filesystem::create_directories(o.out_dir, ec);
  const std::string base = absl::StrCat(o.out_dir, "/", o.name);
  const std::string id = Identifier(o.name);
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<Optimizer> optimizer,
                        MakeOptimizer(model.optimizer, model.defaults.lr));
  if (model.weight_decay > 0) {
    optimizer->WithWeightDecay(model.weight_decay).WithDecayFilter(model.decays);
  }
  CompileOptions options;
  options.target = o.target;
  AotManifest m;
  m.name = o.name;
  m.optimizer = optimizer->name();
  m.batch = o.batch;
  m.eval_batch = o.eval_batch;
  m.defaults = model.defaults;
  m.defaults.name = o.name;
  // Each step as a static library; a large one as several pipelines (its segments in the
  // manifest, one entry point per segment).
  auto emit = [&](Graph& g, StepProgram p, const char* key, const char* suffix,
                  Signature* sig) -> absl::Status {
    SegmentPlan plan;
    KILN_ASSIGN_OR_RETURN(*sig,
                          EmitProgram(g, std::move(p), options, base + suffix, id + suffix, &plan));
    if (!plan.parts.empty()) m.segments[key] = std::move(plan);
    return absl::OkStatus();
  };
  {
    Graph g(Mode::kTrain);
    ModelDef def = model.build(g, o.batch);
    CompileOptions train_options = options;
    if (o.target.device == Device::kCuda) train_options.resident_examples = o.train_examples;
    if (o.two_phase) {
      KILN_ASSIGN_OR_RETURN(TwoPhasePrograms p,
                            BuildTwoPhasePrograms(g, def, *optimizer, train_options));
      m.two_phase = true;
      KILN_RETURN_IF_ERROR(
          emit(g, std::move(p.gradient), "train_gradient", "_train", &m.train_gradient));
      KILN_RETURN_IF_ERROR(
          emit(g, std::move(p.update), "train_update", "_update", &m.train_update));
    } else {
      KILN_ASSIGN_OR_RETURN(StepProgram p, BuildTrainProgram(g, def, *optimizer, train_options));
      KILN_RETURN_IF_ERROR(emit(g, std::move(p), "train", "_train", &m.train));
    }
  }
  {
    Graph g(Mode::kEval);
    ModelDef def = model.build(g, o.eval_batch);
    KILN_ASSIGN_OR_RETURN(StepProgram p, BuildEvalProgram(g, def, options));
    KILN_RETURN_IF_ERROR(emit(g, std::move(p), "eval", "_eval", &m.eval));
  }
  KILN_ASSIGN_OR_RETURN(Halide::Target target, ToHalideTarget(o.target));
  target = target.without_feature(Halide::Target::JIT);
  m.target = target.to_string();
  try {
    Halide::compile_standalone_runtime(base + "_runtime.o", target);
  } catch (const Halide::Error& e) {
    return absl::InternalError(absl::StrCat("Halide runtime compilation failed: ", e.what()));
  }
  const std::string json = ManifestToJson(m);
  KILN_RETURN_IF_ERROR(WriteText(base + "_manifest.json", json));
  // The entry points' declarations and, per step, the table of its entry points.
  std::string entries, tables;
  auto table = [&](const std::string& suffix, const std::string& key) {
    auto it = m.segments.find(key);  // a segmented step: one entry point per segment
    const int count = it == m.segments.end() ? 1 : static_cast<int>(it->second.parts.size());
    const std::string name = absl::StrCat(id, suffix, "_entries");
    absl::StrAppend(&tables, "static const kiln::AotEntry ", name, "[] = {\n");
    for (int k = 0; k < count; ++k) {
      const std::string fn = count == 1 ? id + suffix : absl::StrCat(id, suffix, "_s", k);
      absl::StrAppend(&entries, "extern \"C\" int ", fn, "_argv(void**);\n",
                      "extern \"C\" const halide_filter_metadata_t* ", fn, "_metadata();\n");
      absl::StrAppend(&tables, "    {&", fn, "_argv, &", fn, "_metadata},\n");
    }
    absl::StrAppend(&tables, "};\n");
    return absl::StrCat("{", name, ", ", count, "}");
  };
  const std::string train_entries = table("_train", o.two_phase ? "train_gradient" : "train");
  const std::string eval_entries = table("_eval", "eval");
  const std::string update_entries = o.two_phase ? table("_update", "train_update") : "{}";
  std::string program =
      absl::StrCat("// Generated by the Kiln AOT generator for '", o.name, "'; do not edit.\n",
                   "#include \"runtime/aot_program.h\"\n\n", entries, "\n", tables, "\n",
                   "static const char kManifest[] = R\"kiln_manifest(", json,
                   ")kiln_manifest\";\n\n", "const kiln::AotProgram kKilnAotProgram = {kManifest, ",
                   train_entries, ", ", eval_entries, ", ", update_entries, "};\n");
  KILN_RETURN_IF_ERROR(WriteText(base + "_program.cc", program));

  // The evaluation step's entry points alone, for the inference library.
  entries.clear();
  tables.clear();
  table("_eval", "eval");
  const std::string eval_declarations = entries, eval_table = tables;

  // Inference export: a C API over the evaluation step (NAME_inference.h/.cc) and the main() of
  // a small predict executable. The C names use the program name as a C identifier.
  std::string c_name = id.substr(std::string("kiln_aot_").size());
  KILN_RETURN_IF_ERROR(WriteText(
      base + "_inference.h",
      absl::StrCat(
          "// Generated by the Kiln AOT generator for '", o.name, "'; do not edit.\n",
          "// Inference with the model compiled ahead of time: forward pass only, parameters from "
          "a\n",
          "// Kiln checkpoint (safetensors) read at run time. Link lib", o.name,
          "_inference_all.a\n// (and -lpthread -ldl -lm). Thread-compatible: one model per "
          "thread.\n",
          "#pragma once\n#include <stddef.h>\n\n#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n",
          "// Raw pixels (uint8) per example.\n#define ", c_name, "_EXAMPLE_SIZE ",
          NumElements(m.eval.inputs[0].shape) / m.eval.inputs[0].shape[0], "\n\n",
          "typedef struct ", c_name, "_model ", c_name, "_model;\n\n",
          "// Opens the model with the parameters of `checkpoint`. NULL on error, with a message "
          "in\n",
          "// error[0, error_size).\n", c_name, "_model* ", c_name,
          "_open(const char* checkpoint, char* error, size_t error_size);\n\n",
          "// Classifies `count` examples of ", c_name, "_EXAMPLE_SIZE pixels each into\n",
          "// predictions[0, count). 0 on success.\n", "int ", c_name, "_predict(", c_name,
          "_model* model, const unsigned char* pixels, long count, int* predictions);\n\n", "void ",
          c_name, "_close(", c_name, "_model* model);\n\n",
          "#ifdef __cplusplus\n}  // extern \"C\"\n#endif\n")));
  KILN_RETURN_IF_ERROR(WriteText(
      base + "_inference.cc",
      absl::StrCat(
          "// Generated by the Kiln AOT generator for '", o.name, "'; do not edit.\n",
          "#include \"", o.name, "_inference.h\"\n\n#include <cstring>\n\n",
          "#include \"runtime/inference.h\"\n\n", eval_declarations, "\n", eval_table, "\n",
          "static const char kManifest[] = R\"kiln_manifest(", json, ")kiln_manifest\";\n\n",
          "const kiln::AotProgram& ", id, "_inference_program() {\n",
          "  static const kiln::AotProgram p = {kManifest, {}, ", eval_entries,
          ", {}};\n  return p;\n}\n\n", "struct ", c_name,
          "_model {\n  std::unique_ptr<kiln::InferenceSession> session;\n};\n\n", "extern \"C\" ",
          c_name, "_model* ", c_name,
          "_open(const char* checkpoint, char* error, size_t error_size) {\n",
          "  auto s = kiln::InferenceSession::Create(", id, "_inference_program(),\n",
          "                                          checkpoint ? checkpoint : \"\");\n",
          "  if (!s.ok()) {\n", "    if (error && error_size) {\n",
          "      std::strncpy(error, std::string(s.status().ToString()).c_str(), error_size - "
          "1);\n",
          "      error[error_size - 1] = 0;\n    }\n    return nullptr;\n  }\n", "  return new ",
          c_name, "_model{std::move(*s)};\n}\n\n", "extern \"C\" int ", c_name, "_predict(", c_name,
          "_model* m, const unsigned char* pixels, long count, int* predictions) {\n",
          "  if (m == nullptr || predictions == nullptr) return 1;\n",
          "  auto p = m->session->Predict(pixels, count);\n  if (!p.ok()) return 1;\n",
          "  std::memcpy(predictions, p->data(), p->size() * sizeof(int));\n  return 0;\n}\n\n",
          "extern \"C\" void ", c_name, "_close(", c_name, "_model* m) { delete m; }\n")));
  return WriteText(base + "_predict.cc",
                   absl::StrCat("// Generated by the Kiln AOT generator for '", o.name,
                                "'; do not edit.\n#include \"runtime/inference.h\"\n\n",
                                "const kiln::AotProgram& ", id, "_inference_program();\n\n",
                                "int main(int argc, char** argv) {\n",
                                "  return kiln::RunPredictMain(argc, argv, ", id,
                                "_inference_program());\n}\n"));
}

}  // namespace kiln

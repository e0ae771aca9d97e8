#include "runtime/manifest.h"

#include <limits>
#include <set>
#include <type_traits>

#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "nlohmann/json.hpp"

namespace kiln {
namespace {

using Json = nlohmann::json;

constexpr ArgRole kRoles[] = {ArgRole::kData,     ArgRole::kHyper,    ArgRole::kParam,
                              ArgRole::kState,    ArgRole::kLoss,     ArgRole::kMetric,
                              ArgRole::kNewParam, ArgRole::kNewState, ArgRole::kOutput,
                              ArgRole::kDataset,  ArgRole::kGradient};
constexpr ArgKind kKinds[] = {ArgKind::kNone,         ArgKind::kLearningRate, ArgKind::kStep,
                              ArgKind::kBatchStart,   ArgKind::kExample,      ArgKind::kTarget,
                              ArgKind::kOrder,        ArgKind::kCorrectCount, ArgKind::kPrediction,
                              ArgKind::kExampleLoss,  ArgKind::kRunningSum,   ArgKind::kGradScale,
                              ArgKind::kExampleOffset};
constexpr ScalarType kTypes[] = {ScalarType::kF32, ScalarType::kF64, ScalarType::kI32,
                                 ScalarType::kU8};
constexpr Initializer::Kind kInits[] = {
    Initializer::Kind::kZeros,          Initializer::Kind::kConstant,
    Initializer::Kind::kUniform,        Initializer::Kind::kNormal,
    Initializer::Kind::kXavierUniform,  Initializer::Kind::kXavierNormal,
    Initializer::Kind::kKaimingUniform, Initializer::Kind::kKaimingNormal,
    Initializer::Kind::kTruncatedNormal};

Json ArgsToJson(const std::vector<ArgSpec>& args) {
  Json out = Json::array();
  for (const ArgSpec& a : args) {
    out.push_back(
        {{"name", a.name},
         {"role", ArgRoleName(a.role)},
         {"kind", ArgKindName(a.kind)},
         {"param", a.param},
         {"updates", a.updates},
         {"sums", a.sums},
         {"offset", a.offset},
         {"dtype", ScalarTypeName(a.type)},
         {"shape", a.shape},
         {"init", {{"kind", static_cast<int>(a.init.kind)}, {"a", a.init.a}, {"b", a.init.b}}}});
  }
  return out;
}

Json SignatureToJson(const Signature& s, const SegmentPlan* plan) {
  Json j = {{"inputs", ArgsToJson(s.inputs)}, {"outputs", ArgsToJson(s.outputs)}};
  if (s.gradient_elements > 0) j["gradient_elements"] = s.gradient_elements;
  if (plan != nullptr && !plan->parts.empty()) {
    Json parts = Json::array();
    for (const SegmentPlan::Part& p : plan->parts) {
      parts.push_back({{"reads", p.reads}, {"writes", p.writes}});
    }
    j["segments"] = {{"intermediates", ArgsToJson(plan->intermediates)}, {"parts", parts}};
  }
  return j;
}

// Field access that reports the path of what is missing or mistyped. Numbers are checked before
// conversion: nlohmann's get<int>() of 1e27 is undefined behaviour (found by the manifest fuzz
// target), so integers must be JSON integers within the type's range.
template <typename T>
bool Convert(const Json& v, T* out) {
  if constexpr (std::is_same_v<T, std::string>) {
    if (!v.is_string()) return false;
    *out = v.get<std::string>();
  } else if constexpr (std::is_floating_point_v<T>) {
    if (!v.is_number()) return false;
    *out = v.get<T>();
  } else if constexpr (std::is_integral_v<T>) {
    if (v.is_number_unsigned()) {
      const uint64_t u = v.get<uint64_t>();
      if (u > static_cast<uint64_t>(std::numeric_limits<T>::max())) return false;
      *out = static_cast<T>(u);
    } else if (v.is_number_integer()) {
      const int64_t i = v.get<int64_t>();
      if (i < static_cast<int64_t>(std::numeric_limits<T>::min()) ||
          i > static_cast<int64_t>(std::numeric_limits<T>::max())) {
        return false;
      }
      *out = static_cast<T>(i);
    } else {
      return false;
    }
  } else {  // std::vector<int64_t>
    if (!v.is_array()) return false;
    out->clear();
    for (const Json& e : v) {
      int64_t x;
      if (!Convert(e, &x)) return false;
      out->push_back(x);
    }
  }
  return true;
}

template <typename T>
absl::StatusOr<T> Get(const Json& j, const char* key, const std::string& where) {
  if (!j.is_object() || !j.contains(key)) {
    return absl::InvalidArgumentError(absl::StrCat("manifest: ", where, ".", key, " is missing"));
  }
  T out{};
  if (!Convert(j.at(key), &out)) {
    return absl::InvalidArgumentError(
        absl::StrCat("manifest: ", where, ".", key, " has the wrong type or is out of range"));
  }
  return out;
}

absl::StatusOr<std::vector<ArgSpec>> ArgsFromJson(const Json& j, const std::string& where) {
  if (!j.is_array())
    return absl::InvalidArgumentError(absl::StrCat("manifest: ", where, " must be a list"));
  std::vector<ArgSpec> out;
  std::set<std::string> names;
  for (size_t i = 0; i < j.size(); ++i) {
    const std::string at = absl::StrCat(where, "[", i, "]");
    ArgSpec a;
    KILN_ASSIGN_OR_RETURN(a.name, Get<std::string>(j[i], "name", at));
    KILN_ASSIGN_OR_RETURN(std::string role, Get<std::string>(j[i], "role", at));
    KILN_ASSIGN_OR_RETURN(std::string dtype, Get<std::string>(j[i], "dtype", at));
    KILN_ASSIGN_OR_RETURN(a.shape, Get<std::vector<int64_t>>(j[i], "shape", at));
    bool found = false;
    for (ArgRole r : kRoles) {
      if (role == ArgRoleName(r)) a.role = r, found = true;
    }
    if (!found)
      return absl::InvalidArgumentError(
          absl::StrCat("manifest: ", at, ".role '", role, "' is unknown"));
    KILN_ASSIGN_OR_RETURN(std::string kind, Get<std::string>(j[i], "kind", at));
    found = false;
    for (ArgKind k : kKinds) {
      if (kind == ArgKindName(k)) a.kind = k, found = true;
    }
    if (!found) {
      return absl::InvalidArgumentError(
          absl::StrCat("manifest: ", at, ".kind '", kind, "' is unknown"));
    }
    KILN_ASSIGN_OR_RETURN(a.param, Get<int>(j[i], "param", at));
    KILN_ASSIGN_OR_RETURN(a.updates, Get<int>(j[i], "updates", at));
    KILN_ASSIGN_OR_RETURN(a.sums, Get<int>(j[i], "sums", at));
    if (j[i].contains("offset")) {
      KILN_ASSIGN_OR_RETURN(a.offset, Get<int64_t>(j[i], "offset", at));
    }
    found = false;
    for (ScalarType t : kTypes) {
      if (dtype == ScalarTypeName(t)) a.type = t, found = true;
    }
    if (!found)
      return absl::InvalidArgumentError(
          absl::StrCat("manifest: ", at, ".dtype '", dtype, "' is unknown"));
    if (a.shape.size() > 8)
      return absl::InvalidArgumentError(
          absl::StrCat("manifest: ", at, ".shape has rank ", a.shape.size(), " (at most 8)"));
    int64_t elems = 1;
    for (int64_t d : a.shape) {
      if (d <= 0 || d > (int64_t{1} << 31) || elems > (int64_t{1} << 34) / d) {
        return absl::InvalidArgumentError(
            absl::StrCat("manifest: ", at, ".shape ", ShapeString(a.shape),
                         " is not a valid tensor shape (positive extents, at most 2^34 elements)"));
      }
      elems *= d;
    }
    if (j[i].contains("init")) {
      const Json& init = j[i]["init"];
      KILN_ASSIGN_OR_RETURN(int kind, Get<int>(init, "kind", at + ".init"));
      if (kind < 0 || kind >= static_cast<int>(std::size(kInits))) {
        return absl::InvalidArgumentError(
            absl::StrCat("manifest: ", at, ".init.kind ", kind, " is unknown"));
      }
      a.init.kind = kInits[kind];
      KILN_ASSIGN_OR_RETURN(a.init.a, Get<double>(init, "a", at + ".init"));
      KILN_ASSIGN_OR_RETURN(a.init.b, Get<double>(init, "b", at + ".init"));
    }
    if (!names.insert(absl::StrCat(role, "/", a.name)).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("manifest: ", at, " duplicates ", role, " '", a.name, "'"));
    }
    out.push_back(std::move(a));
  }
  return out;
}

absl::StatusOr<std::vector<int>> IndicesFromJson(const Json& j, const char* key,
                                                 const std::string& where) {
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> v, Get<std::vector<int64_t>>(j, key, where));
  std::vector<int> out;
  for (int64_t x : v) {
    if (x < -(int64_t{1} << 20) || x > (int64_t{1} << 20)) {
      return absl::InvalidArgumentError(
          absl::StrCat("manifest: ", where, ".", key, " holds ", x, ", out of range"));
    }
    out.push_back(static_cast<int>(x));
  }
  return out;
}

// A step's "segments": its intermediates (data arguments) and each part's routes, checked
// against the step's signature.
absl::StatusOr<SegmentPlan> SegmentsFromJson(const Json& j, const Signature& sig,
                                             const std::string& where) {
  SegmentPlan plan;
  if (!j.is_object() || !j.contains("intermediates") || !j.contains("parts") ||
      !j["parts"].is_array() || j["parts"].empty() || j["parts"].size() > 4096) {
    return absl::InvalidArgumentError(absl::StrCat(
        "manifest: ", where,
        " must hold \"intermediates\" and 1 to 4096 \"parts\" (each with reads and writes)"));
  }
  KILN_ASSIGN_OR_RETURN(plan.intermediates,
                        ArgsFromJson(j["intermediates"], where + ".intermediates"));
  for (size_t m = 0; m < plan.intermediates.size(); ++m) {
    if (plan.intermediates[m].role != ArgRole::kData) {
      return absl::InvalidArgumentError(
          absl::StrCat("manifest: ", where, ".intermediates[", m, "] must have role data"));
    }
  }
  for (size_t k = 0; k < j["parts"].size(); ++k) {
    const std::string at = absl::StrCat(where, ".parts[", k, "]");
    SegmentPlan::Part part;
    KILN_ASSIGN_OR_RETURN(part.reads, IndicesFromJson(j["parts"][k], "reads", at));
    KILN_ASSIGN_OR_RETURN(part.writes, IndicesFromJson(j["parts"][k], "writes", at));
    plan.parts.push_back(std::move(part));
  }
  if (absl::Status st = ValidateSegmentPlan(sig, plan); !st.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("manifest: ", where, ": ", st.message()));
  }
  return plan;
}

absl::Status CheckBatch(const std::vector<ArgSpec>& in, int64_t batch, const char* step) {
  for (const ArgSpec& a : in) {
    if (a.role == ArgRole::kData && (a.shape.empty() || a.shape[0] != batch)) {
      return absl::InvalidArgumentError(absl::StrCat("manifest: ", step, " data input '", a.name,
                                                     "' has shape ", ShapeString(a.shape),
                                                     ", expected batch ", batch, " first"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

namespace {

const SegmentPlan* Plan(const AotManifest& m, const std::string& key) {
  auto it = m.segments.find(key);
  return it == m.segments.end() ? nullptr : &it->second;
}

}  // namespace

std::string ManifestToJson(const AotManifest& m) {
  Json j = {{"version", m.version},
            {"name", m.name},
            {"target", m.target},
            {"optimizer", m.optimizer},
            {"batch", m.batch},
            {"eval_batch", m.eval_batch},
            {"defaults",
             {{"epochs", m.defaults.epochs},
              {"lr", m.defaults.lr},
              {"lr_schedule", m.defaults.lr_schedule},
              {"random_shift", m.defaults.random_shift},
              {"log_every", m.defaults.log_every}}},
            {"eval", SignatureToJson(m.eval, Plan(m, "eval"))}};
  if (m.two_phase) {
    j["step_form"] = "two_phase";
    j["train_gradient"] = SignatureToJson(m.train_gradient, Plan(m, "train_gradient"));
    j["train_update"] = SignatureToJson(m.train_update, Plan(m, "train_update"));
  } else {
    j["step_form"] = "one_pipeline";
    j["train"] = SignatureToJson(m.train, Plan(m, "train"));
  }
  return j.dump(1);
}

absl::StatusOr<AotManifest> ParseManifest(absl::string_view text) {
  if (text.size() > (1u << 20)) {
    return absl::InvalidArgumentError(
        absl::StrCat("manifest: ", text.size(), " bytes (at most 1 MiB)"));
  }
  Json j = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object())
    return absl::InvalidArgumentError("manifest: not a JSON object");
  AotManifest m;
  KILN_ASSIGN_OR_RETURN(m.version, Get<int>(j, "version", "manifest"));
  if (m.version != kManifestVersion) {
    return absl::InvalidArgumentError(absl::StrCat(
        "manifest: version ", m.version, ", this runtime reads version ", kManifestVersion,
        m.version == 1 ? " (version 1, from before arguments carried their kind and links: "
                         "rebuild the binary with kiln-aot or kiln_add_training_binary)"
                       : ""));
  }
  KILN_ASSIGN_OR_RETURN(m.name, Get<std::string>(j, "name", "manifest"));
  KILN_ASSIGN_OR_RETURN(m.target, Get<std::string>(j, "target", "manifest"));
  KILN_ASSIGN_OR_RETURN(m.optimizer, Get<std::string>(j, "optimizer", "manifest"));
  KILN_ASSIGN_OR_RETURN(m.batch, Get<int64_t>(j, "batch", "manifest"));
  KILN_ASSIGN_OR_RETURN(m.eval_batch, Get<int64_t>(j, "eval_batch", "manifest"));
  if (m.batch <= 0 || m.eval_batch <= 0)
    return absl::InvalidArgumentError("manifest: batch sizes must be positive");
  if (!j.contains("defaults"))
    return absl::InvalidArgumentError("manifest: manifest.defaults is missing");
  const Json& d = j["defaults"];
  m.defaults.name = m.name;
  KILN_ASSIGN_OR_RETURN(m.defaults.epochs, Get<int>(d, "epochs", "defaults"));
  KILN_ASSIGN_OR_RETURN(m.defaults.lr, Get<double>(d, "lr", "defaults"));
  KILN_ASSIGN_OR_RETURN(m.defaults.lr_schedule, Get<std::string>(d, "lr_schedule", "defaults"));
  KILN_ASSIGN_OR_RETURN(m.defaults.random_shift, Get<int>(d, "random_shift", "defaults"));
  KILN_ASSIGN_OR_RETURN(m.defaults.log_every, Get<int64_t>(d, "log_every", "defaults"));
  std::string form = "one_pipeline";
  if (j.contains("step_form")) {
    KILN_ASSIGN_OR_RETURN(form, Get<std::string>(j, "step_form", "manifest"));
  }
  if (form != "one_pipeline" && form != "two_phase") {
    return absl::InvalidArgumentError(
        absl::StrCat("manifest: step_form '", form, "' is unknown (one_pipeline or two_phase)"));
  }
  m.two_phase = form == "two_phase";
  std::vector<std::pair<const char*, Signature*>> sigs = {{"eval", &m.eval}};
  if (m.two_phase) {
    sigs.push_back({"train_gradient", &m.train_gradient});
    sigs.push_back({"train_update", &m.train_update});
  } else {
    sigs.push_back({"train", &m.train});
  }
  for (auto [key, sig] : sigs) {
    if (!j.contains(key) || !j[key].is_object())
      return absl::InvalidArgumentError(absl::StrCat("manifest: ", key, " is missing"));
    if (!j[key].contains("inputs") || !j[key].contains("outputs"))
      return absl::InvalidArgumentError(
          absl::StrCat("manifest: ", key, ".inputs/outputs is missing"));
    KILN_ASSIGN_OR_RETURN(sig->inputs,
                          ArgsFromJson(j[key]["inputs"], absl::StrCat(key, ".inputs")));
    KILN_ASSIGN_OR_RETURN(sig->outputs,
                          ArgsFromJson(j[key]["outputs"], absl::StrCat(key, ".outputs")));
    if (j[key].contains("gradient_elements")) {
      KILN_ASSIGN_OR_RETURN(sig->gradient_elements, Get<int64_t>(j[key], "gradient_elements", key));
      if (sig->gradient_elements < 0 || sig->gradient_elements > (int64_t{1} << 34)) {
        return absl::InvalidArgumentError(absl::StrCat("manifest: ", key, ".gradient_elements ",
                                                       sig->gradient_elements, " is out of range"));
      }
    }
    for (const ArgSpec& a : sig->inputs) {
      if (a.role == ArgRole::kDataset) sig->resident_batch = m.batch;
    }
    if (absl::Status st = sig->Validate(); !st.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("manifest: ", key, ": ", st.message()));
    }
    if (j[key].contains("segments")) {
      KILN_ASSIGN_OR_RETURN(m.segments[key], SegmentsFromJson(j[key]["segments"], *sig,
                                                              absl::StrCat(key, ".segments")));
    }
  }
  const Signature& first = m.two_phase ? m.train_gradient : m.train;
  KILN_RETURN_IF_ERROR(CheckBatch(first.inputs, m.batch, "train"));
  KILN_RETURN_IF_ERROR(CheckBatch(m.eval.inputs, m.eval_batch, "eval"));
  return m;
}

}  // namespace kiln

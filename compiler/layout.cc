#include "compiler/layout.h"

#include "absl/strings/str_cat.h"

namespace kiln {

absl::StatusOr<LayoutChoice> ParseLayoutChoice(const std::string& name) {
  if (name == "auto") return LayoutChoice::kAuto;
  if (name == "row_major") return LayoutChoice::kRowMajor;
  if (name == "batch_inner") return LayoutChoice::kBatchInner;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown layout '", name, "': expected auto, row_major or batch_inner"));
}

std::string LayoutChoiceName(LayoutChoice c) {
  switch (c) {
    case LayoutChoice::kAuto:
      return "auto";
    case LayoutChoice::kRowMajor:
      return "row_major";
    case LayoutChoice::kBatchInner:
      return "batch_inner";
  }
  return "auto";
}

LayoutPlan PlanLayouts(const Graph& g, const std::vector<int>& nodes,
                       const std::set<int>& arguments, LayoutChoice choice, const LowerCtx& ctx) {
  LayoutPlan plan;
  if (choice == LayoutChoice::kRowMajor || ctx.gpu()) return plan;
  // A batch of 1000 (evaluation) on AVX-512 fills 8 of 16 lanes: still batch-inner, with
  // half-width vectors; a batch of 1 (inference) or 12 stays row-major.
  auto fills = [&](int64_t batch) {
    return choice == LayoutChoice::kBatchInner || 2 * ctx.BatchLanes(batch) >= ctx.vector_width();
  };
  for (int id : nodes) {
    const Node& n = g.node(id);
    if (arguments.count(id) || n.shape.size() != 4 || !fills(n.shape[0])) continue;
    const OpDef& def = DefOf(n);
    bool batch_inner = def.batch_activation;
    // An elementwise node of a planned activation's shape (a bias add, a ReLU, its gradient's
    // mask) keeps the activation's layout.
    if (def.pattern == Pattern::kElementwise) {
      for (int in : n.inputs) {
        batch_inner |= plan.count(in) && g.node(in).shape == n.shape;
      }
    }
    if (batch_inner) plan[id] = Layout::kBatchInner;
  }
  return plan;
}

Shape BatchLastShape(const Shape& logical) {
  Shape s(logical.begin() + 1, logical.end());
  s.push_back(logical.front());
  return s;
}

std::string LayoutPlanString(const Graph& g, const LayoutPlan& plan, const LowerCtx& ctx) {
  std::string s = absl::StrCat("layout plan: ", plan.size(),
                               " intermediates batch-inner, the rest row-major\n");
  for (const auto& [id, layout] : plan) {
    const Node& n = g.node(id);
    absl::StrAppend(&s, "  ", n.name, " ", ShapeString(n.shape), " ", DefOf(n).name,
                    ": batch-inner, ", ctx.BatchLanes(n.shape[0]), " lanes\n");
  }
  return s;
}

}  // namespace kiln

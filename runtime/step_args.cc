#include "runtime/step_args.h"

#include "absl/strings/str_cat.h"
#include "base/status.h"

namespace kiln {
namespace {

absl::StatusOr<ParameterStore::Slot*> SlotOf(ParameterStore& store, const ArgSpec& a) {
  ParameterStore::Slot* s = store.Find(a.name);
  if (s == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("the step reads ", ArgRoleName(a.role), " '", a.name,
                     "', which the model's parameters and state do not hold"));
  }
  return s;
}

}  // namespace

absl::StatusOr<StepArgs> BindStepArgs(const Signature& sig, ParameterStore& store, int parity,
                                      const FeedFn& feed) {
  StepArgs args;
  for (const ArgSpec& a : sig.inputs) {
    if (a.role == ArgRole::kParam || a.role == ArgRole::kState) {
      KILN_ASSIGN_OR_RETURN(ParameterStore::Slot * s, SlotOf(store, a));
      args.in.push_back(s->buf[parity].ref());
    } else {
      KILN_ASSIGN_OR_RETURN(TensorRef t, feed(a));
      args.in.push_back(t);
    }
  }
  for (const ArgSpec& a : sig.outputs) {
    if (a.role == ArgRole::kNewParam || a.role == ArgRole::kNewState) {
      KILN_ASSIGN_OR_RETURN(ParameterStore::Slot * s, SlotOf(store, sig.inputs.at(a.updates)));
      args.out.push_back(s->buf[1 - parity].ref());
    } else {
      KILN_ASSIGN_OR_RETURN(TensorRef t, feed(a));
      args.out.push_back(t);
    }
  }
  return args;
}

}  // namespace kiln

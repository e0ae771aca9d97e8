// The op registry: maps the closed list in dsl/ops.def to the OpDefs in dsl/ops/*.cc. Explicit
// references, no self-registration (static libraries would drop self-registering objects).
#include "dsl/op_def.h"

namespace kiln {

#define KILN_OP(Name, str) extern const OpDef k##Name##Op;
#include "dsl/ops.def"
#undef KILN_OP

const OpDef& GetOpDef(OpKind op) {
  static const OpDef* const kDefs[] = {
#define KILN_OP(Name, str) &k##Name##Op,
#include "dsl/ops.def"
#undef KILN_OP
  };
  return *kDefs[static_cast<int>(op)];
}

const OpDef& DefOf(const Node& n) { return n.custom != nullptr ? *n.custom : GetOpDef(n.op); }

}  // namespace kiln

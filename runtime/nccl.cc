#include "runtime/nccl.h"

#include <dlfcn.h>
#include <glob.h>

#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status.h"
#include "runtime/cuda_device.h"

namespace kiln {
namespace {

// NCCL's C interface (nccl.h, 2.x), by value: the library is loaded, never linked.
using ncclResult_t = int;
using ncclComm_t = void*;
struct ncclUniqueId {
  char internal[128];
};
constexpr int kNcclFloat32 = 7, kNcclFloat64 = 8, kNcclSum = 0;

std::vector<std::string> Candidates() {
  std::vector<std::string> out;
  if (const char* e = std::getenv("KILN_NCCL_LIBRARY"); e != nullptr && *e) return {e};
  out.push_back("libnccl.so.2");
  for (const char* pattern :
       {"/usr/local/cuda/lib*/libnccl.so.2", "/usr/local/cuda-*/lib*/libnccl.so.2",
        "/usr/local/cuda-*/targets/*/lib/libnccl.so.2"}) {
    glob_t g;
    if (glob(pattern, 0, nullptr, &g) == 0) {
      for (size_t i = 0; i < g.gl_pathc; ++i) out.push_back(g.gl_pathv[i]);
    }
    globfree(&g);
  }
  return out;
}

}  // namespace

struct NcclCommunicator::Api {
  std::string path;
  ncclResult_t (*get_version)(int*);
  ncclResult_t (*get_unique_id)(ncclUniqueId*);
  ncclResult_t (*comm_init_rank)(ncclComm_t*, int, ncclUniqueId, int);
  ncclResult_t (*all_reduce)(const void*, void*, size_t, int, int, ncclComm_t, void*);
  ncclResult_t (*group_start)();
  ncclResult_t (*group_end)();
  ncclResult_t (*comm_destroy)(ncclComm_t);
  ncclResult_t (*comm_abort)(ncclComm_t);
  const char* (*error_string)(ncclResult_t);

  absl::Status Check(ncclResult_t r, const char* what) const {
    if (r == 0) return absl::OkStatus();
    return absl::InternalError(
        absl::StrCat(what, " failed: ", error_string ? error_string(r) : "?", " (", r, ")"));
  }

  static absl::StatusOr<std::unique_ptr<Api>> Load() {
    std::vector<std::string> tried;
    for (const std::string& c : Candidates()) {
      void* h = dlopen(c.c_str(), RTLD_NOW | RTLD_LOCAL);  // never closed, like libcuda
      if (h == nullptr) {
        const char* err = dlerror();
        tried.push_back(absl::StrCat(c, " (", err ? err : "not found", ")"));
        continue;
      }
      auto a = std::make_unique<Api>();
      a->path = c;
      auto sym = [&](auto& fn, const char* name) {
        fn = reinterpret_cast<std::decay_t<decltype(fn)>>(dlsym(h, name));
        return fn != nullptr;
      };
      if (!(sym(a->get_version, "ncclGetVersion") && sym(a->get_unique_id, "ncclGetUniqueId") &&
            sym(a->comm_init_rank, "ncclCommInitRank") && sym(a->all_reduce, "ncclAllReduce") &&
            sym(a->group_start, "ncclGroupStart") && sym(a->group_end, "ncclGroupEnd") &&
            sym(a->comm_destroy, "ncclCommDestroy") && sym(a->comm_abort, "ncclCommAbort") &&
            sym(a->error_string, "ncclGetErrorString"))) {
        tried.push_back(absl::StrCat(c, " (not NCCL 2: an entry point is missing)"));
        continue;
      }
      return a;
    }
    return absl::UnavailableError(absl::StrCat("NCCL is unavailable: tried ",
                                               absl::StrJoin(tried, "; "),
                                               " (set KILN_NCCL_LIBRARY to libnccl.so.2's path)"));
  }
};

absl::StatusOr<NcclLibrary> LoadNccl() {
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<NcclCommunicator::Api> api, NcclCommunicator::Api::Load());
  NcclLibrary lib;
  lib.path = api->path;
  KILN_RETURN_IF_ERROR(api->Check(api->get_version(&lib.version), "ncclGetVersion"));
  return lib;
}

absl::StatusOr<std::unique_ptr<NcclCommunicator>> NcclCommunicator::Create(Communicator& host,
                                                                           int device) {
  // Every rank reports whether it can take part before any waits in NCCL's initialization.
  absl::StatusOr<std::unique_ptr<Api>> api = Api::Load();
  absl::StatusOr<void*> ctx = api.ok() ? RetainPrimaryContext(device) : absl::StatusOr<void*>();
  const absl::Status mine = !api.ok() ? api.status() : ctx.status();
  std::vector<char> ok(host.size());
  const char me = mine.ok() ? 1 : 0;
  KILN_RETURN_IF_ERROR(host.AllGather(&me, 1, ok.data()));
  if (!mine.ok()) return mine;
  for (int r = 0; r < host.size(); ++r) {
    if (!ok[r]) {
      return absl::UnavailableError(
          absl::StrCat("rank ", r, " cannot use NCCL or its GPU (its error says why)"));
    }
  }
  auto c = std::unique_ptr<NcclCommunicator>(new NcclCommunicator(host, std::move(*api)));
  c->device_ = device;
  SetSharedCudaContext(*ctx);  // Halide's runtimes acquire this context from now on
  ncclUniqueId id;
  std::memset(&id, 0, sizeof id);
  if (host.rank() == 0) {
    KILN_RETURN_IF_ERROR(c->api_->Check(c->api_->get_unique_id(&id), "ncclGetUniqueId"));
  }
  KILN_RETURN_IF_ERROR(host.Broadcast(&id, sizeof id, 0));
  ncclComm_t comm = nullptr;
  KILN_RETURN_IF_ERROR(c->api_->Check(c->api_->comm_init_rank(&comm, host.size(), id, host.rank()),
                                      "ncclCommInitRank"));
  c->comm_ = comm;
  return c;
}

NcclCommunicator::NcclCommunicator(Communicator& host, std::unique_ptr<Api> api)
    : host_(host), api_(std::move(api)) {}

NcclCommunicator::~NcclCommunicator() {
  if (comm_ != nullptr) api_->comm_destroy(comm_);
}

std::string NcclCommunicator::backend() const {
  int v = 0;
  api_->get_version(&v);
  return absl::StrCat("NCCL ", v / 10000, ".", v / 100 % 100, ".", v % 100, " on GPU ", device_);
}

absl::Status NcclCommunicator::AllReduceSum(void* data, int64_t n, ScalarType type) {
  return AllReduceSumMany({{data, n, type}});
}

absl::Status NcclCommunicator::AllReduceSumMany(const std::vector<Span>& spans) {
  KILN_RETURN_IF_ERROR(api_->Check(api_->group_start(), "ncclGroupStart"));
  absl::Status st = absl::OkStatus();
  for (const Span& s : spans) {
    if (s.type != ScalarType::kF32 && s.type != ScalarType::kF64) {
      st = absl::InvalidArgumentError(
          absl::StrCat("NCCL sums F32 or F64 values, got ", ScalarTypeName(s.type)));
      break;
    }
    // On the default stream, as Halide's kernels are: ordered after the gradient phase.
    st = api_->Check(api_->all_reduce(s.data, s.data, static_cast<size_t>(s.count),
                                      s.type == ScalarType::kF64 ? kNcclFloat64 : kNcclFloat32,
                                      kNcclSum, comm_, nullptr),
                     "ncclAllReduce");
    if (!st.ok()) break;
  }
  absl::Status end = api_->Check(api_->group_end(), "ncclGroupEnd");
  KILN_RETURN_IF_ERROR(st);
  KILN_RETURN_IF_ERROR(end);
  return SynchronizeCudaContext();
}

absl::Status NcclCommunicator::Broadcast(void*, int64_t, int) {
  return absl::UnimplementedError(
      "NcclCommunicator sums device buffers only; broadcast on the host");
}

absl::Status NcclCommunicator::AllGather(const void*, int64_t, void*) {
  return absl::UnimplementedError("NcclCommunicator sums device buffers only; gather on the host");
}

}  // namespace kiln

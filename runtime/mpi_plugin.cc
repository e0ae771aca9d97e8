// libkiln_mpi.so: Kiln's MPI calls (the C interface in runtime/mpi_plugin.h), the only code that
// includes mpi.h. Large buffers go in pieces of at most INT_MAX elements (MPI counts are int).
#include "runtime/mpi_plugin.h"

// C only: the C++ bindings would need libmpi_cxx.
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <climits>
#include <cstdio>
#include <cstring>

namespace {

int Fail(int code, const char* what, char* err, int errlen) {
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(code, msg, &len) != MPI_SUCCESS) std::snprintf(msg, sizeof msg, "?");
  std::snprintf(err, static_cast<size_t>(errlen), "%s failed: %s", what, msg);
  return code == 0 ? 1 : code;
}

int Init(int* rank, int* size, char* version, int versionlen, char* err, int errlen) {
  int provided = 0;
  int rc = MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
  if (rc != MPI_SUCCESS) return Fail(rc, "MPI_Init_thread", err, errlen);
  // Errors come back as codes (the default handler would abort without a word from Kiln).
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  MPI_Comm_rank(MPI_COMM_WORLD, rank);
  MPI_Comm_size(MPI_COMM_WORLD, size);
  char v[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0;
  MPI_Get_library_version(v, &len);
  // The first line, e.g. "Open MPI v4.1.4, package: Debian OpenMPI, ..." up to the first comma.
  const char* end = std::strpbrk(v, ",\n");
  const int n = end ? static_cast<int>(end - v) : len;
  std::snprintf(version, static_cast<size_t>(versionlen), "%.*s", n, v);
  return 0;
}

int AllReduceSum(void* data, int64_t n, int f64, char* err, int errlen) {
  const int64_t elem = f64 ? 8 : 4;
  char* p = static_cast<char*>(data);
  while (n > 0) {
    const int count = n > INT_MAX ? INT_MAX : static_cast<int>(n);
    int rc = MPI_Allreduce(MPI_IN_PLACE, p, count, f64 ? MPI_DOUBLE : MPI_FLOAT, MPI_SUM,
                           MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) return Fail(rc, "MPI_Allreduce", err, errlen);
    p += count * elem;
    n -= count;
  }
  return 0;
}

int Broadcast(void* data, int64_t bytes, int root, char* err, int errlen) {
  char* p = static_cast<char*>(data);
  while (bytes > 0) {
    const int count = bytes > INT_MAX ? INT_MAX : static_cast<int>(bytes);
    int rc = MPI_Bcast(p, count, MPI_BYTE, root, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) return Fail(rc, "MPI_Bcast", err, errlen);
    p += count;
    bytes -= count;
  }
  return 0;
}

int AllGather(const void* in, int64_t bytes, void* out, char* err, int errlen) {
  if (bytes > INT_MAX) {
    std::snprintf(err, static_cast<size_t>(errlen),
                  "MPI_Allgather of %lld bytes per rank: at most %d", static_cast<long long>(bytes),
                  INT_MAX);
    return 1;
  }
  int rc = MPI_Allgather(in, static_cast<int>(bytes), MPI_BYTE, out, static_cast<int>(bytes),
                         MPI_BYTE, MPI_COMM_WORLD);
  return rc == MPI_SUCCESS ? 0 : Fail(rc, "MPI_Allgather", err, errlen);
}

void Finalize() {
  int done = 0;
  MPI_Finalized(&done);
  if (!done) MPI_Finalize();
}

const KilnMpiApi kApi = {KILN_MPI_PLUGIN_ABI, Init, AllReduceSum, Broadcast, AllGather, Finalize};

}  // namespace

extern "C" __attribute__((visibility("default"))) const KilnMpiApi* kiln_mpi_api(void) {
  return &kApi;
}

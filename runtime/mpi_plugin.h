// The C interface of libkiln_mpi.so, the MPI plugin (runtime/mpi_plugin.cc). The runtime loads it
// with dlopen only when Open MPI's mpirun started the process, so nothing else needs MPI; plain C
// types only, because an AOT binary links its own copy of Abseil.
#pragma once

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KILN_MPI_PLUGIN_ABI 1

// Every call returns 0 on success, or an MPI error code with a message in `err` (NUL-terminated,
// at most `errlen` bytes).
typedef struct KilnMpiApi {
  int abi;  // KILN_MPI_PLUGIN_ABI
  // MPI_Init_thread (MPI_THREAD_FUNNELED); the world's rank and size; the library's version.
  int (*init)(int* rank, int* size, char* version, int versionlen, char* err, int errlen);
  // In-place sum of n values (f64: double, else float) over MPI_COMM_WORLD.
  int (*allreduce_sum)(void* data, int64_t n, int f64, char* err, int errlen);
  int (*broadcast)(void* data, int64_t bytes, int root, char* err, int errlen);
  int (*allgather)(const void* in, int64_t bytes, void* out, char* err, int errlen);
  void (*finalize)(void);
} KilnMpiApi;

// The plugin's one exported symbol.
const KilnMpiApi* kiln_mpi_api(void);

#ifdef __cplusplus
}
#endif

// The table gpu_ops_generator writes: each op case compiled for portable x86-64 and for CUDA.
#pragma once

#include <vector>

#include "HalideRuntime.h"
#include "base/tensor.h"

struct GpuOpArg {
  const char* name;
  bool output;
  kiln::ScalarType type;
  std::vector<int64_t> shape;
  double lo, hi;  // inputs: values uniform in [lo, hi) (integers: floored; lo == hi: constant)
};

struct GpuOpCase {
  const char* name;
  int (*cpu)(void**);
  const halide_filter_metadata_t* (*cpu_metadata)();
  int (*gpu)(void**);
  const halide_filter_metadata_t* (*gpu_metadata)();
  std::vector<GpuOpArg> args;
};

const std::vector<GpuOpCase>& GpuOpCases();

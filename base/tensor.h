// Dense host tensors shared by the runtime and the compiler's executables (no Halide here).
//
//   kiln::Tensor t(kiln::ScalarType::kF32, {16, 784});
//   float* p = t.data<float>();
//   kiln::TensorRef r = t.ref();   // non-owning view passed to an Executable
#pragma once

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "base/types.h"

namespace kiln {

// Concrete element type of a buffer in memory.
enum class ScalarType { kF32, kF64, kI32, kU8 };

inline int ScalarSize(ScalarType t) {
  switch (t) {
    case ScalarType::kF32:
      return 4;
    case ScalarType::kF64:
      return 8;
    case ScalarType::kI32:
      return 4;
    case ScalarType::kU8:
      return 1;
  }
  return 0;
}
const char* ScalarTypeName(ScalarType t);  // "F32", "F64", "I32", "U8" (safetensors spelling)

// A non-owning view of a dense, row-major (outermost-first) buffer.
struct TensorRef {
  void* data = nullptr;
  ScalarType type = ScalarType::kF32;
  Shape shape;
  int64_t bytes() const { return NumElements(shape) * ScalarSize(type); }
};

// An owning, 64-byte aligned, zero-initialized dense buffer.
class Tensor {
 public:
  Tensor() = default;
  Tensor(ScalarType type, Shape shape);
  Tensor(const Tensor& other);
  Tensor& operator=(const Tensor& other);
  Tensor(Tensor&&) noexcept = default;
  Tensor& operator=(Tensor&&) noexcept = default;

  ScalarType type() const { return type_; }
  const Shape& shape() const { return shape_; }
  int64_t size() const { return NumElements(shape_); }
  int64_t bytes() const { return size() * ScalarSize(type_); }
  template <typename T>
  T* data() {
    return static_cast<T*>(static_cast<void*>(data_.get()));
  }
  template <typename T>
  const T* data() const {
    return static_cast<const T*>(static_cast<const void*>(data_.get()));
  }
  void* raw() { return data_.get(); }
  const void* raw() const { return data_.get(); }
  TensorRef ref() { return {data_.get(), type_, shape_}; }
  TensorRef ref() const { return {const_cast<unsigned char*>(data_.get()), type_, shape_}; }
  // Element i as a double, whatever the type (losses, metrics, per-example outputs).
  double At(int64_t i) const;
  // Element i set from a double, converted to the type (hyperparameters).
  void Set(int64_t i, double v);

 private:
  struct Free {
    void operator()(unsigned char* p) const { std::free(p); }
  };
  ScalarType type_ = ScalarType::kF32;
  Shape shape_;
  std::unique_ptr<unsigned char[], Free> data_;
};

}  // namespace kiln

#include "base/tensor.h"

namespace kiln {

const char* ScalarTypeName(ScalarType t) {
  switch (t) {
    case ScalarType::kF32:
      return "F32";
    case ScalarType::kF64:
      return "F64";
    case ScalarType::kI32:
      return "I32";
    case ScalarType::kU8:
      return "U8";
  }
  return "?";
}

Tensor::Tensor(ScalarType type, Shape shape) : type_(type), shape_(std::move(shape)) {
  size_t n = static_cast<size_t>(bytes());
  size_t rounded = ((n + 63) / 64) * 64;
  if (rounded == 0) rounded = 64;
  data_.reset(static_cast<unsigned char*>(std::aligned_alloc(64, rounded)));
  std::memset(data_.get(), 0, rounded);
}

Tensor::Tensor(const Tensor& other) : Tensor(other.type_, other.shape_) {
  std::memcpy(data_.get(), other.data_.get(), static_cast<size_t>(bytes()));
}

Tensor& Tensor::operator=(const Tensor& other) {
  if (this != &other) *this = Tensor(other);
  return *this;
}

double Tensor::At(int64_t i) const {
  switch (type_) {
    case ScalarType::kF32:
      return data<float>()[i];
    case ScalarType::kF64:
      return data<double>()[i];
    case ScalarType::kI32:
      return data<int32_t>()[i];
    case ScalarType::kU8:
      return data<uint8_t>()[i];
  }
  return 0;
}

void Tensor::Set(int64_t i, double v) {
  switch (type_) {
    case ScalarType::kF32:
      data<float>()[i] = static_cast<float>(v);
      break;
    case ScalarType::kF64:
      data<double>()[i] = v;
      break;
    case ScalarType::kI32:
      data<int32_t>()[i] = static_cast<int32_t>(v);
      break;
    case ScalarType::kU8:
      data<uint8_t>()[i] = static_cast<uint8_t>(v);
      break;
  }
}

}  // namespace kiln

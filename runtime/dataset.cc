#include "runtime/dataset.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <type_traits>

namespace kiln {

uint64_t Rng::Next() {
  uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

double Rng::Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }

double Rng::Normal() {
  double u1 = Uniform(), u2 = Uniform();
  if (u1 < 1e-300) u1 = 1e-300;
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

BatchFeeder::BatchFeeder(const Dataset& data, int64_t batch_size, uint64_t seed, bool shuffle,
                         bool drop_last)
    : data_(data),
      batch_(batch_size),
      seed_(seed),
      shuffle_(shuffle),
      drop_last_(drop_last),
      order_(static_cast<size_t>(data.count)) {
  std::iota(order_.begin(), order_.end(), 0);
}

void BatchFeeder::StartEpoch(int epoch) {
  epoch_ = epoch;
  std::iota(order_.begin(), order_.end(), 0);
  if (!shuffle_) return;
  Rng rng(seed_ * 0x100000001B3ull + static_cast<uint64_t>(epoch) + 1);
  for (size_t i = order_.size(); i > 1; --i) {  // Fisher-Yates
    size_t j = static_cast<size_t>(rng.Next() % i);
    std::swap(order_[i - 1], order_[j]);
  }
}

int64_t BatchFeeder::num_batches() const {
  const int64_t global = batch_ * ranks_;
  return drop_last_ ? data_.count / global : (data_.count + global - 1) / global;
}

int64_t BatchFeeder::IndexOf(int64_t b, int64_t row) const {
  int64_t i = FirstPosition(b) + row;
  return i < data_.count ? order_[static_cast<size_t>(i)] : -1;
}

namespace {
inline void Put(float* dst, uint8_t v) { *dst = static_cast<float>(v) * (1.0f / 255.0f); }
inline void Put(uint8_t* dst, uint8_t v) { *dst = v; }
inline void Put(float* dst, float v) { *dst = v; }
}  // namespace

// Example `idx` of `src` into `dst`, shifted for augmentation when asked (2-D examples only).
template <typename T, typename S>
void BatchFeeder::CopyExample(const S* src, int64_t idx, T* dst) const {
  const int64_t n = data_.example_size();
  src += idx * n;
  if (shift_ <= 0 || data_.example_shape.size() != 2) {
    for (int64_t k = 0; k < n; ++k) Put(&dst[k], src[k]);
    return;
  }
  Rng rng((seed_ ^ 0xA5A5A5A5ull) * 0x9E3779B97F4A7C15ull +
          static_cast<uint64_t>(epoch_) * 1000003ull + static_cast<uint64_t>(idx));
  const int span = 2 * shift_ + 1;
  const int sy = static_cast<int>(rng.Next() % span) - shift_;
  const int sx = static_cast<int>(rng.Next() % span) - shift_;
  const int64_t h = data_.example_shape[0], w = data_.example_shape[1];
  for (int64_t y = 0; y < h; ++y) {
    for (int64_t x = 0; x < w; ++x) {
      const int64_t yy = y - sy, xx = x - sx;
      const bool in = yy >= 0 && yy < h && xx >= 0 && xx < w;
      Put(&dst[y * w + x], in ? src[yy * w + xx] : S{0});
    }
  }
}

template <typename T>
int64_t BatchFeeder::FillT(int64_t b, T* examples, int32_t* labels) const {
  const int64_t n = data_.example_size();
  int64_t real = 0;
  for (int64_t row = 0; row < batch_; ++row) {
    const int64_t idx = IndexOf(b, row);
    T* dst = examples + row * n;
    if (idx < 0) {
      std::memset(dst, 0, static_cast<size_t>(n) * sizeof(T));
      if (labels != nullptr) labels[row] = 0;
      continue;
    }
    if constexpr (std::is_same_v<T, float>) {
      if (data_.float_examples()) {
        CopyExample(data_.values.data(), idx, dst);
      } else {
        CopyExample(data_.pixels.data(), idx, dst);
      }
    } else {
      CopyExample(data_.pixels.data(), idx, dst);
    }
    if (labels != nullptr) labels[row] = data_.labels[static_cast<size_t>(idx)];
    ++real;
  }
  if (shuffle_) Prefetch(b + 1);  // in file order, the hardware prefetcher keeps up alone
  return real;
}

void BatchFeeder::Prefetch(int64_t b) const {
  if (b < 0 || b >= num_batches() || data_.example_size() <= 0) return;
  const bool floats = data_.float_examples();
  const char* base = floats ? reinterpret_cast<const char*>(data_.values.data())
                            : reinterpret_cast<const char*>(data_.pixels.data());
  const size_t bytes = static_cast<size_t>(data_.example_size()) * (floats ? 4 : 1);
  for (int64_t row = 0; row < batch_; ++row) {
    const int64_t idx = IndexOf(b, row);
    if (idx < 0) break;  // padding rows come last
    const char* p = base + static_cast<size_t>(idx) * bytes;
    for (size_t off = 0; off < bytes; off += 64) __builtin_prefetch(p + off, 0, 2);
    __builtin_prefetch(p + bytes - 1, 0, 2);  // the last line, when p is not line-aligned
    if (!data_.labels.empty()) __builtin_prefetch(&data_.labels[static_cast<size_t>(idx)], 0, 2);
  }
}

int64_t BatchFeeder::Fill(int64_t b, float* examples, int32_t* labels) const {
  return FillT(b, examples, labels);
}
int64_t BatchFeeder::Fill(int64_t b, uint8_t* examples, int32_t* labels) const {
  return FillT(b, examples, labels);
}

void BatchFeeder::FillTargets(int64_t b, float* targets) const {
  const int64_t n = data_.target_size();
  for (int64_t row = 0; row < batch_; ++row) {
    const int64_t idx = IndexOf(b, row);
    float* dst = targets + row * n;
    if (idx < 0) {
      std::fill(dst, dst + n, 0.0f);
    } else {
      std::copy_n(data_.targets.data() + idx * n, n, dst);
    }
  }
}

}  // namespace kiln

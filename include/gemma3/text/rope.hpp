// Rotary position embedding, "rotate-half" (NeoX) pairing: dimension i rotates with i + D/2
// (transformers 4.51.3 modeling_gemma3.py, rotate_half, apply_rotary_pos_emb; docs/model.md, RoPE).
#pragma once

#include "gemma3/build_mode.hpp"

#include <cmath>
#include <vector>

#include "gemma3/config.hpp"
#include "gemma3/tensor.hpp"

namespace gemma3::inline GEMMA3_MODE {

// The inverse frequencies of one layer kind: inv_freq_i = 1 / theta^(2i/D) / linear_factor.
// Evaluated in T the way transformers does in f32 (`base ** (arange(0, D, 2) / D)`, then the
// reciprocal, then the linear division), so the float path rounds like the reference.
template <typename T>
struct Rope {
  Vec<T> inv_freq;  // [head_dim / 2]

  Rope() = default;
  Rope(const RopeParams& p, int64_t head_dim) : inv_freq(head_dim / 2) {
    for (int64_t i = 0; i < head_dim / 2; ++i) {
      const T exponent = T(2 * i) / T(head_dim);
      inv_freq[i] = (T(1) / std::pow(T(p.theta), exponent)) / T(p.linear_factor);
    }
  }

  // Rotates every head of x in place: x is [n, heads*D], row r at absolute position pos0 + r.
  void apply(MatRef<T> x, int64_t head_dim, int64_t pos0) const {
    const int64_t half = head_dim / 2, heads = x.cols() / head_dim;
    for (Eigen::Index r = 0; r < x.rows(); ++r) {
      const T pos = T(pos0 + r);
      for (int64_t i = 0; i < half; ++i) {
        const T angle = pos * inv_freq[i];
        const T c = std::cos(angle), s = std::sin(angle);
        for (int64_t h = 0; h < heads; ++h) {
          T* v = x.row(r).data() + h * head_dim;
          const T a = v[i], b = v[i + half];
          v[i] = a * c - b * s;
          v[i + half] = b * c + a * s;
        }
      }
    }
  }
};

}  // namespace gemma3::inline GEMMA3_MODE

// Rotary position embedding, "rotate-half" (NeoX) pairing: dimension i rotates with i + D/2
// (transformers 4.51.3 modeling_gemma3.py, rotate_half, apply_rotary_pos_emb; docs/model.md, RoPE).
#pragma once

#include "gemma3/build_mode.hpp"

#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>

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

  // cos and sin of every (row, frequency) angle (pos0 + r)·inv_freq_i of rows at positions
  // [pos0, pos0 + rows): [rows, head_dim / 2] each.
  struct Angles {
    int64_t pos0 = 0;
    Mat<T> cos, sin;
  };
  Angles angles(int64_t pos0, int64_t rows) const {
    const int64_t half = inv_freq.size();
    Angles a{pos0, Mat<T>(rows, half), Mat<T>(rows, half)};
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t i = 0; i < half; ++i) {
        const T angle = T(pos0 + r) * inv_freq[i];
        a.cos(r, i) = std::cos(angle);
        a.sin(r, i) = std::sin(angle);
      }
    return a;
  }

  // angles(pos0, rows), remembered on this thread for the last two tables asked for: every layer
  // of a kind rotates the same positions of a chunk, so the 26 layers of a 1b compute two tables
  // (local and global) instead of one per layer and per q and k. A sine and a cosine per angle
  // were 2% of a 1b Q8_0 prefill's samples (128 tokens), on the main thread while the others
  // waited; now too few to show. The reference is valid until this thread asks for a third
  // table.
  const Angles& cached_angles(int64_t pos0, int64_t rows) const {
    struct Entry {
      Vec<T> inv_freq;
      Angles angles;
    };
    static thread_local std::array<Entry, 2> memo;
    static thread_local std::size_t next = 0;
    for (const Entry& e : memo)
      if (e.angles.pos0 == pos0 && e.angles.cos.rows() == rows &&
          e.inv_freq.size() == inv_freq.size() && e.inv_freq == inv_freq)
        return e.angles;
    Entry& e = memo[next];
    next = (next + 1) % memo.size();
    e = {inv_freq, angles(pos0, rows)};
    return e.angles;
  }

  // Rotates every head of x in place: x is [n, heads*D], row r at position a.pos0 + r (a holds
  // at least n rows).
  void apply(MatRef<T> x, int64_t head_dim, const Angles& a) const {
    const int64_t half = head_dim / 2, heads = x.cols() / head_dim;
    for (Eigen::Index r = 0; r < x.rows(); ++r) {
      const T* c = a.cos.row(r).data();
      const T* s = a.sin.row(r).data();
      for (int64_t h = 0; h < heads; ++h) {
        T* v = x.row(r).data() + h * head_dim;
        for (int64_t i = 0; i < half; ++i) {
          const T x0 = v[i], x1 = v[i + half];
          v[i] = x0 * c[i] - x1 * s[i];
          v[i + half] = x1 * c[i] + x0 * s[i];
        }
      }
    }
  }
};

}  // namespace gemma3::inline GEMMA3_MODE

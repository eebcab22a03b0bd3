// The KV cache: keys (after q/k-norm and RoPE, as HF caches them) and values of every position
// seen.
//
// Global layers keep all positions [0, capacity). Local layers only ever look back sliding_window -
// 1 positions, so they keep a ring buffer of W rows: position p lives in row p mod W. A 128K
// context of the 4B model therefore needs 5 full-length caches and 29 window-sized ones
// (docs/kv-cache.md).
#pragma once

#include "gemma3/build_mode.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <new>
#include <string>
#include <vector>

#include <unistd.h>

#include "gemma3/config.hpp"
#include "gemma3/error.hpp"
#include "gemma3/memory.hpp"
#include "gemma3/tensor.hpp"
#include "gemma3/text/mask.hpp"

namespace gemma3::inline GEMMA3_MODE {

template <typename T>
struct LayerKVCache {
  Mat<T> k;           // [rows, kv_heads*head_dim]
  Mat<T> v;           // [rows, kv_heads*head_dim]
  bool ring = false;  // true for local layers: row = position mod rows

  int64_t rows() const { return k.rows(); }
  // The row that holds position `pos`: the one place the ring's wrap is written.
  int64_t row_of(int64_t pos) const { return ring ? pos % rows() : pos; }

  // Positions [from, to) as runs of consecutive rows (two at most: a ring wraps once):
  // f(first_row, count, first_position) for each, in position order.
  template <typename F>
  void for_each_run(int64_t from, int64_t to, F&& f) const {
    for (int64_t pos = from; pos < to;) {
      const int64_t row = row_of(pos), count = std::min(to - pos, rows() - row);
      f(row, count, pos);
      pos += count;
    }
  }

  // Stores the keys and values of positions [pos0, pos0 + k.rows()).
  void store(int64_t pos0, const ConstMatRef<T>& new_k, const ConstMatRef<T>& new_v) {
    for (int64_t r = 0; r < new_k.rows(); ++r) {
      k.row(row_of(pos0 + r)) = new_k.row(r);
      v.row(row_of(pos0 + r)) = new_v.row(r);
    }
  }
};

template <typename T>
class KVCache {
 public:
  // A cache for sequences of up to `capacity` positions. Refuses (InvalidArgument "context") a
  // capacity whose cache needs more memory than the system has available, before allocating it.
  KVCache(const TextConfig& cfg, int64_t capacity) : capacity_(capacity) {
    if (capacity <= 0) throw InvalidArgument("capacity", "KV cache capacity must be positive");
    if (capacity > cfg.max_position_embeddings)
      throw InvalidArgument("capacity", "KV cache capacity " + std::to_string(capacity) +
                                            " exceeds max_position_embeddings " +
                                            std::to_string(cfg.max_position_embeddings));
    const int64_t needed = bytes_needed(cfg, capacity);
    if (const int64_t available = detail::available_memory_bytes();
        available >= 0 && needed > available)
      throw InvalidArgument("context", "a KV cache of " + std::to_string(capacity) +
                                           " positions needs " + detail::gib(needed) + ", only " +
                                           detail::gib(available) + " of memory is available");
    const int64_t kv_dim = cfg.num_key_value_heads * cfg.head_dim;
    try {
      layers_.resize(cfg.num_hidden_layers);
      for (int64_t i = 0; i < cfg.num_hidden_layers; ++i) {
        const LayerKind kind = layer_kind(cfg, i);
        const int64_t rows = kv_cache_rows(kind, cfg.sliding_window, capacity);
        layers_[i].ring = kind == LayerKind::Local;
        layers_[i].k.setZero(rows, kv_dim);
        layers_[i].v.setZero(rows, kv_dim);
      }
    } catch (const std::bad_alloc&) {
      throw InvalidArgument("context", "out of memory allocating a KV cache of " +
                                           std::to_string(capacity) + " positions (" +
                                           detail::gib(needed) + ")");
    }
  }

  // Bytes a cache of `capacity` positions needs for `cfg` with elements of `bytes_per_value`
  // (INT64_MAX when that does not fit in 64 bits).
  static int64_t bytes_needed(const TextConfig& cfg, int64_t capacity,
                              int64_t bytes_per_value = sizeof(T)) {
    constexpr int64_t kTooMany = std::numeric_limits<int64_t>::max();
    int64_t rows = 0;
    for (int64_t i = 0; i < cfg.num_hidden_layers; ++i) {
      const int64_t layer_rows = kv_cache_rows(layer_kind(cfg, i), cfg.sliding_window, capacity);
      if (__builtin_add_overflow(rows, layer_rows, &rows)) return kTooMany;
    }
    int64_t bytes = rows;  // x 2 (keys and values) x kv_dim x bytes_per_value
    for (const int64_t factor :
         {int64_t(2), cfg.num_key_value_heads, cfg.head_dim, bytes_per_value})
      if (__builtin_mul_overflow(bytes, factor, &bytes)) return kTooMany;
    return bytes;
  }

  int64_t capacity() const { return capacity_; }
  // Positions [0, length) are in the cache; the next token goes to position length().
  int64_t length() const { return length_; }
  void clear() { length_ = 0; }
  LayerKVCache<T>& layer(int64_t i) { return layers_.at(i); }
  const LayerKVCache<T>& layer(int64_t i) const { return layers_.at(i); }

  // Called once per forward step after every layer stored its n new positions.
  void advance(int64_t n) { length_ += n; }

  // Throws unless n more positions fit.
  void check_room(int64_t n) const {
    if (length_ + n > capacity_)
      throw InvalidArgument("kv_cache", "full: " + std::to_string(length_) + " positions cached, " +
                                            std::to_string(n) + " more requested, capacity " +
                                            std::to_string(capacity_));
  }

 private:
  std::vector<LayerKVCache<T>> layers_;
  int64_t capacity_ = 0;
  int64_t length_ = 0;
};

}  // namespace gemma3::inline GEMMA3_MODE

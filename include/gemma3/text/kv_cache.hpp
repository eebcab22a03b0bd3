// The KV cache: keys (after q/k-norm and RoPE, as HF caches them) and values of every position seen.
//
// Global layers keep all positions [0, capacity). Local layers only ever look back sliding_window - 1
// positions, so they keep a ring buffer of W rows: position p lives in row p mod W. A 128K context of
// the 4B model therefore needs 5 full-length caches and 29 window-sized ones (docs/kv-cache.md).
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "gemma3/config.hpp"
#include "gemma3/error.hpp"
#include "gemma3/tensor.hpp"

namespace gemma3 {

template <typename T>
struct LayerKVCache {
  Mat<T> k;  // [rows, kv_heads*head_dim]
  Mat<T> v;  // [rows, kv_heads*head_dim]
  bool ring = false;  // true for local layers: row = position mod rows

  int64_t rows() const { return k.rows(); }
  int64_t row_of(int64_t pos) const { return ring ? pos % rows() : pos; }
};

template <typename T>
class KVCache {
 public:
  // A cache for sequences of up to `capacity` positions.
  KVCache(const TextConfig& cfg, int64_t capacity) : capacity_(capacity) {
    if (capacity <= 0) throw InvalidArgument("capacity", "KV cache capacity must be positive");
    if (capacity > cfg.max_position_embeddings)
      throw InvalidArgument("capacity", "KV cache capacity " + std::to_string(capacity) +
                                            " exceeds max_position_embeddings " +
                                            std::to_string(cfg.max_position_embeddings));
    const int64_t kv_dim = cfg.num_key_value_heads * cfg.head_dim;
    layers_.resize(cfg.num_hidden_layers);
    for (int64_t i = 0; i < cfg.num_hidden_layers; ++i) {
      const bool local = layer_kind(cfg, i) == LayerKind::Local;
      const int64_t rows = local ? std::min(cfg.sliding_window, capacity) : capacity;
      layers_[i].ring = local;
      layers_[i].k.setZero(rows, kv_dim);
      layers_[i].v.setZero(rows, kv_dim);
    }
  }

  // Bytes a cache of `capacity` positions needs for `cfg` with elements of `bytes_per_value`.
  static int64_t bytes_needed(const TextConfig& cfg, int64_t capacity, int64_t bytes_per_value = sizeof(T)) {
    int64_t rows = 0;
    for (int64_t i = 0; i < cfg.num_hidden_layers; ++i)
      rows += layer_kind(cfg, i) == LayerKind::Local ? std::min(cfg.sliding_window, capacity) : capacity;
    return rows * 2 * cfg.num_key_value_heads * cfg.head_dim * bytes_per_value;
  }

  int64_t capacity() const { return capacity_; }
  // Positions [0, length) are in the cache; the next token goes to position length().
  int64_t length() const { return length_; }
  void clear() { length_ = 0; }
  LayerKVCache<T>& layer(int64_t i) { return layers_.at(i); }
  const LayerKVCache<T>& layer(int64_t i) const { return layers_.at(i); }
  int64_t num_layers() const { return static_cast<int64_t>(layers_.size()); }

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

}  // namespace gemma3

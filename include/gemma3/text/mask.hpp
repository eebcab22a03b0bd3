// Which keys a query may attend to: the one rule both attention paths, the masks and the KV cache's
// size follow (the Gemma 3 report, section 2; transformers 4.51.3 modeling_gemma3.py
// Gemma3TextModel._update_causal_mask and the sliding-window mask; llama.cpp's gemma3 graph uses
// the same).
//
//   global layers: causal, key j visible to query i iff j <= i
//   local layers:  causal and inside the window, j > i - W (the query itself and W-1 earlier keys)
//   images:        OR'ed on top, the soft tokens of one image see each other in both directions,
//                  in every layer (current transformers, gemma_pytorch and the JAX code agree).
#pragma once

#include "gemma3/build_mode.hpp"

#include <algorithm>
#include <cstdint>
#include <span>
#include <vector>

#include "gemma3/config.hpp"
#include "gemma3/tensor.hpp"

namespace gemma3::inline GEMMA3_MODE {

// Image group of each token: -1 for text, otherwise the index of the image whose soft token it is.
// Groups are the maximal runs of `image_token_id`, numbered left to right (transformers
// modeling_gemma3.py, Gemma3ForConditionalGeneration: token_type_ids and the image blocks of the
// causal mask).
inline std::vector<int32_t> image_groups(std::span<const int32_t> ids, int64_t image_token_id) {
  std::vector<int32_t> groups(ids.size(), -1);
  int32_t next = 0;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] != image_token_id) continue;
    const bool starts = i == 0 || ids[i - 1] != image_token_id;
    groups[i] = starts ? next++ : groups[i - 1];
  }
  return groups;
}

// A half-open range of absolute positions [begin, end).
struct PositionRange {
  int64_t begin = 0, end = 0;
  bool contains(int64_t p) const { return p >= begin && p < end; }
  bool empty() const { return end <= begin; }
};

// For each token, the positions of its image's run of soft tokens ([i, i+1) for a text token),
// relative to the first token of `groups`.
inline std::vector<PositionRange> image_spans(std::span<const int32_t> groups) {
  const auto n = static_cast<int64_t>(groups.size());
  std::vector<PositionRange> spans(static_cast<std::size_t>(n));
  for (int64_t r = 0; r < n; ++r)
    spans[r].begin = r > 0 && groups[r] >= 0 && groups[r] == groups[r - 1] ? spans[r - 1].begin : r;
  for (int64_t r = n - 1; r >= 0; --r)
    spans[r].end =
        r + 1 < n && groups[r] >= 0 && groups[r] == groups[r + 1] ? spans[r + 1].end : r + 1;
  return spans;
}

// The keys visible to the query at `query_pos`: the causal (for local layers, windowed) range up to
// and including itself, and its own image's run `image` (empty or [q, q+1) for a text token).
struct VisibleKeys {
  PositionRange causal, image;
  bool contains(int64_t key) const { return causal.contains(key) || image.contains(key); }
};
inline VisibleKeys visible_keys(LayerKind kind, int64_t window, int64_t query_pos,
                                PositionRange image = {}) {
  const int64_t begin =
      kind == LayerKind::Global ? 0 : std::max<int64_t>(0, query_pos - window + 1);
  return {{begin, query_pos + 1}, image};
}

// The same rule for one (query, key) pair. `same_image` is true when both are soft tokens of the
// same image.
inline bool may_attend(LayerKind kind, int64_t window, int64_t query_pos, int64_t key_pos,
                       bool same_image) {
  return same_image || visible_keys(kind, window, query_pos).contains(key_pos);
}

// The full [T, T] mask of a sequence (1 = may attend), the layout of the fixtures' mask_*.npy.
inline Mat<uint8_t> attention_mask(LayerKind kind, int64_t window,
                                   std::span<const int32_t> groups) {
  const auto n = static_cast<int64_t>(groups.size());
  const auto spans = image_spans(groups);
  Mat<uint8_t> mask(n, n);
  for (int64_t i = 0; i < n; ++i) {
    const VisibleKeys keys = visible_keys(kind, window, i, spans[i]);
    for (int64_t j = 0; j < n; ++j) mask(i, j) = keys.contains(j);
  }
  return mask;
}

// Rows of a layer's KV cache for a context of `capacity` positions: a local layer never looks back
// further than its window, so it keeps a ring of that many rows.
inline int64_t kv_cache_rows(LayerKind kind, int64_t window, int64_t capacity) {
  return kind == LayerKind::Local ? std::min(window, capacity) : capacity;
}

}  // namespace gemma3::inline GEMMA3_MODE

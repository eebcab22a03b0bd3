// Which keys a query may attend to (spec §2.6, §2.7).
//
//   global layers: causal, key j visible to query i iff j <= i
//   local layers:  causal and inside the window, j > i - W (the query itself and W-1 earlier keys)
//   images:        OR'ed on top, the soft tokens of one image see each other in both directions,
//                  in every layer (current transformers, gemma_pytorch and the JAX code agree).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "gemma3/config.hpp"
#include "gemma3/tensor.hpp"

namespace gemma3 {

// Image group of each token: -1 for text, otherwise the index of the image whose soft token it is.
// Groups are the maximal runs of `image_token_id`, numbered left to right (HF-mod
// create_causal_mask_mapping).
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

// The visibility rule for one (query, key) pair of absolute positions. `same_image` is true when both
// are soft tokens of the same image.
inline bool may_attend(LayerKind kind, int64_t window, int64_t query_pos, int64_t key_pos,
                       bool same_image) {
  if (same_image) return true;
  if (key_pos > query_pos) return false;
  return kind == LayerKind::Global || key_pos > query_pos - window;
}

// The full [T, T] mask of a sequence (1 = may attend), the layout of the fixtures' mask_*.npy.
inline Mat<uint8_t> attention_mask(LayerKind kind, int64_t window, std::span<const int32_t> groups) {
  const auto n = static_cast<int64_t>(groups.size());
  Mat<uint8_t> mask(n, n);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j)
      mask(i, j) = may_attend(kind, window, i, j, groups[i] >= 0 && groups[i] == groups[j]);
  return mask;
}

}  // namespace gemma3

// Gemma 3 self-attention over a chunk of new tokens and the KV cache (spec §2.4).
//
//   q, k, v = h·W_qᵀ, h·W_kᵀ, h·W_vᵀ
//   q, k    = RMSNorm per head (q_norm, k_norm), then RoPE at each token's absolute position
//   s       = q·kᵀ · query_pre_attn_scalar^-½ (+ optional soft-cap), masked, softmax over keys
//   o       = Σ p·v per head; heads concatenated; out = o·W_oᵀ
// GQA: query head h reads KV head h / (heads / kv_heads).
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <omp.h>

#include "gemma3/config.hpp"
#include "gemma3/kernels/ops.hpp"
#include "gemma3/observer.hpp"
#include "gemma3/text/kv_cache.hpp"
#include "gemma3/text/mask.hpp"
#include "gemma3/text/rope.hpp"
#include "gemma3/weights.hpp"

namespace gemma3 {

// Everything one layer's attention needs besides its projection matrices.
template <typename T>
struct AttentionParams {
  LayerKind kind = LayerKind::Global;
  int64_t window = 0;  // sliding_window, used by local layers
  int64_t heads = 0, kv_heads = 0, head_dim = 0;
  T scale = T(1);  // query_pre_attn_scalar^-1/2
  std::optional<double> softcap;
  double eps = 1e-6;
  Vec<T> q_norm, k_norm;  // stored w of the per-head RMSNorms
  Rope<T> rope;           // the table of this layer's kind
  Backend backend = Backend::Reference;
};

namespace detail {

// Reference attention: gathers the visible keys [first, pos0) from the cache, appends the new ones,
// builds the score matrix per head, masks it with may_attend, softmax, times V.
template <typename T, typename Obs, typename Name>
Mat<T> attend_reference(const Mat<T>& q, const Mat<T>& k, const Mat<T>& v,
                        const AttentionParams<T>& p, const LayerKVCache<T>& cache, int64_t pos0,
                        std::span<const int32_t> groups, Obs& obs, const Name& name) {
  const int64_t n = q.rows(), D = p.head_dim;
  const int64_t first = p.kind == LayerKind::Global ? 0 : std::max<int64_t>(0, pos0 - p.window + 1);
  const int64_t n_past = pos0 - first, S = n_past + n;
  Mat<T> keys(S, k.cols()), values(S, v.cols());
  for (int64_t s = 0; s < n_past; ++s) {
    keys.row(s) = cache.k.row(cache.row_of(first + s));
    values.row(s) = cache.v.row(cache.row_of(first + s));
  }
  keys.bottomRows(n) = k;
  values.bottomRows(n) = v;

  const int64_t group_size = p.heads / p.kv_heads;
  Mat<T> out(n, p.heads * D);  // attention output before o_proj
  Mat<T> weights;              // [heads*n, S], only when observed
  if constexpr (Obs::enabled) weights.resize(p.heads * n, S);
  for (int64_t head = 0; head < p.heads; ++head) {
    const int64_t g = head / group_size;
    Mat<T> scores =
        q.middleCols(head * D, D) * keys.middleCols(g * D, D).transpose() * p.scale;  // [n, S]
    if (p.softcap) ref::soft_cap<T>(scores, *p.softcap);
    for (int64_t r = 0; r < n; ++r)
      for (int64_t s = 0; s < S; ++s) {
        const int64_t j = s - n_past;  // index of the key among the new tokens, < 0 if cached
        const bool same_image = j >= 0 && groups[r] >= 0 && groups[r] == groups[j];
        if (!may_attend(p.kind, p.window, pos0 + r, first + s, same_image))
          scores(r, s) = -std::numeric_limits<T>::infinity();
      }
    ref::softmax_rows<T>(scores);
    if constexpr (Obs::enabled) weights.middleRows(head * n, n) = scores;
    out.middleCols(head * D, D).noalias() = scores * values.middleCols(g * D, D);
  }
  notify(
      obs, [&] { return name("self_attn.attn_weights"); }, weights);
  return out;
}

// Fast attention: for each (query, head) the visible keys as at most four contiguous segments —
// cached positions (a ring buffer wraps once at most) and new tokens (the causal window, and the
// query's image) — and one online-softmax pass over them (kernels/simd.hpp AttendQuery). The same
// visibility rule as may_attend, as index ranges instead of a materialised mask.
inline Mat<float> attend_fast(const Mat<float>& q, const Mat<float>& k, const Mat<float>& v,
                              const AttentionParams<float>& p, const LayerKVCache<float>& cache,
                              int64_t pos0, std::span<const int32_t> groups) {
  const int64_t n = q.rows(), D = p.head_dim, kv_dim = k.cols();
  const int64_t group_size = p.heads / p.kv_heads;
  const bool local = p.kind == LayerKind::Local;
  // Each image's run of new tokens, [begin, end).
  std::vector<int64_t> group_begin(n), group_end(n);
  for (int64_t r = 0; r < n; ++r) {
    group_begin[r] =
        (r > 0 && groups[r] >= 0 && groups[r] == groups[r - 1]) ? group_begin[r - 1] : r;
  }
  for (int64_t r = n - 1; r >= 0; --r)
    group_end[r] =
        (r + 1 < n && groups[r] >= 0 && groups[r] == groups[r + 1]) ? group_end[r + 1] : r + 1;
  Mat<float> out(n, p.heads * D);
  const float cap = p.softcap ? float(*p.softcap) : 0.f;
  // One task per (token, key head, part of its group): the query heads of a part share one pass
  // over their keys and values. The group is split only as far as it takes to give every thread
  // a task (a decode step of a model with one key head).
  const int64_t parts =
      std::clamp<int64_t>(omp_get_max_threads() / (n * p.kv_heads), 1, group_size);
  const int64_t per_part = (group_size + parts - 1) / parts;
#pragma omp parallel for schedule(dynamic)
  for (int64_t task = 0; task < n * p.kv_heads * parts; ++task) {
    const int64_t r = task / (p.kv_heads * parts), g = task / parts % p.kv_heads;
    const int64_t head = g * group_size + task % parts * per_part;  // first query head of the part
    const int64_t heads = std::min(per_part, (g + 1) * group_size - head);
    if (heads <= 0) continue;
    const int64_t pos = pos0 + r;
    kernels::simd::KeySegment segs[4];
    int64_t n_segs = 0;
    // Cached keys [lo, pos0).
    const int64_t lo = local ? std::max<int64_t>(0, pos - p.window + 1) : 0;
    for (int64_t s = lo; s < pos0;) {
      const int64_t row = cache.row_of(s);
      const int64_t count = std::min(pos0 - s, cache.rows() - row);
      segs[n_segs++] = {cache.k.data() + row * kv_dim + g * D,
                        cache.v.data() + row * kv_dim + g * D, count, kv_dim};
      s += count;
    }
    // New keys: [window start, r] and, for an image token, its whole image.
    int64_t a = local ? std::max<int64_t>(0, r - p.window + 1) : 0, b = r + 1;
    int64_t c = b, d = b;
    if (groups[r] >= 0) {
      c = group_begin[r], d = group_end[r];
      if (c <= b && d >= a)
        a = std::min(a, c), b = std::max(b, d), c = d = b;  // overlapping: one range
    }
    for (auto [from, to] : {std::pair{a, b}, std::pair{c, d}})
      if (to > from)
        segs[n_segs++] = {k.data() + from * kv_dim + g * D, v.data() + from * kv_dim + g * D,
                          to - from, kv_dim};
    kernels::call(kernels::simd::AttendQuery{}, q.data() + r * q.cols() + head * D, heads, D, segs,
                  n_segs, p.scale, cap, out.data() + r * out.cols() + head * D);
  }
  return out;
}

}  // namespace detail

// Attention of n new tokens at positions [pos0, pos0 + n). Keys and values of earlier positions
// come from `cache`; the new ones are written to it. `groups` gives each new token's image group
// (-1 for text); an image must lie entirely inside one chunk for its tokens to see each other.
template <typename T, typename Obs, typename Name>
Mat<T> self_attention(const ConstMatRef<T>& h, const LayerWeights& w, const AttentionParams<T>& p,
                      LayerKVCache<T>& cache, int64_t pos0, std::span<const int32_t> groups,
                      Obs& obs, const Name& name) {
  const int64_t n = h.rows(), D = p.head_dim;
  // q, k and v read the same h: one call (one pass over the three matrices on the fast path).
  auto qkv = linear<T>(h, std::array{&w.q_proj, &w.k_proj, &w.v_proj}, p.backend);
  Mat<T>& q = qkv[0];  // [n, heads*D]
  Mat<T>& k = qkv[1];  // [n, kv_heads*D]
  Mat<T>& v = qkv[2];  // [n, kv_heads*D]
  notify(
      obs, [&] { return name("self_attn.q_proj"); }, q);
  notify(
      obs, [&] { return name("self_attn.k_proj"); }, k);
  notify(
      obs, [&] { return name("self_attn.v_proj"); }, v);

  // q/k norm: one RMSNorm over each head's D values; viewing [n, heads*D] as [n*heads, D].
  MatMap<T>(q.data(), n * p.heads, D) =
      ref::rms_norm<T>(MatMap<T>(q.data(), n * p.heads, D), p.q_norm, p.eps);
  MatMap<T>(k.data(), n * p.kv_heads, D) =
      ref::rms_norm<T>(MatMap<T>(k.data(), n * p.kv_heads, D), p.k_norm, p.eps);
  notify(
      obs, [&] { return name("self_attn.q_norm"); }, q);
  notify(
      obs, [&] { return name("self_attn.k_norm"); }, k);
  p.rope.apply(q, D, pos0);
  p.rope.apply(k, D, pos0);
  notify(
      obs, [&] { return name("self_attn.q_rope"); }, q);
  notify(
      obs, [&] { return name("self_attn.k_rope"); }, k);

  Mat<T> out;  // [n, heads*D] attention output before o_proj
  if constexpr (std::is_same_v<T, float> && !Obs::enabled)
    out = p.backend != Backend::Reference
              ? detail::attend_fast(q, k, v, p, cache, pos0, groups)
              : detail::attend_reference<T>(q, k, v, p, cache, pos0, groups, obs, name);
  else
    out = detail::attend_reference<T>(q, k, v, p, cache, pos0, groups, obs, name);
  // Only now store the new keys: in a ring, a long chunk would overwrite keys its first queries
  // see.
  for (int64_t r = 0; r < n; ++r) {
    cache.k.row(cache.row_of(pos0 + r)) = k.row(r);
    cache.v.row(cache.row_of(pos0 + r)) = v.row(r);
  }
  notify(
      obs, [&] { return name("self_attn.attn_output"); }, out);
  Mat<T> o = linear<T>(out, w.o_proj, p.backend);
  notify(
      obs, [&] { return name("self_attn"); }, o);
  return o;
}

}  // namespace gemma3

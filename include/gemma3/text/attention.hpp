// Gemma 3 self-attention over a chunk of new tokens and the KV cache (docs/model.md, Attention).
//
//   q, k, v = h·W_qᵀ, h·W_kᵀ, h·W_vᵀ
//   q, k    = RMSNorm per head (q_norm, k_norm), then RoPE at each token's absolute position
//   s       = q·kᵀ · query_pre_attn_scalar^-½ (+ optional soft-cap), masked, softmax over keys
//   o       = Σ p·v per head; heads concatenated; out = o·W_oᵀ
// GQA: query head h reads KV head h / (heads / kv_heads).
#pragma once

#include "gemma3/build_mode.hpp"

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
#include "gemma3/kernels/team.hpp"
#include "gemma3/observer.hpp"
#include "gemma3/text/functions.hpp"
#include "gemma3/text/kv_cache.hpp"
#include "gemma3/text/mask.hpp"
#include "gemma3/text/rope.hpp"
#include "gemma3/weights.hpp"

namespace gemma3::inline GEMMA3_MODE {

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
  Backend backend = Backend::Plain;
};

namespace detail {

// The keys each of n new tokens at [pos0, pos0 + n) may see (text/mask.hpp's one rule), with its
// image's run in absolute positions.
template <typename T>
std::vector<VisibleKeys> visible_keys_of(const AttentionParams<T>& p, int64_t pos0,
                                         std::span<const int32_t> groups) {
  const auto spans = image_spans(groups);
  std::vector<VisibleKeys> keys(spans.size());
  for (std::size_t r = 0; r < spans.size(); ++r)
    keys[r] = visible_keys(p.kind, p.window, pos0 + int64_t(r),
                           {pos0 + spans[r].begin, pos0 + spans[r].end});
  return keys;
}

// The keys and values of positions [first, pos0 + n): the cached ones, then the n new ones.
template <typename T>
std::pair<Mat<T>, Mat<T>> gather_keys(const Mat<T>& k, const Mat<T>& v,
                                      const LayerKVCache<T>& cache, int64_t first, int64_t pos0) {
  const int64_t n = k.rows(), n_past = pos0 - first;
  Mat<T> keys(n_past + n, k.cols()), values(n_past + n, v.cols());
  cache.for_each_run(first, pos0, [&](int64_t row, int64_t count, int64_t pos) {
    keys.middleRows(pos - first, count) = cache.k.middleRows(row, count);
    values.middleRows(pos - first, count) = cache.v.middleRows(row, count);
  });
  keys.bottomRows(n) = k;
  values.bottomRows(n) = v;
  return {std::move(keys), std::move(values)};
}

// Softmax probabilities [n, S] of query head `head` over the keys of positions [first, first + S):
// scaled scores, optional soft-cap, masked by each query's visible keys.
template <typename T>
Mat<T> head_probabilities(const Mat<T>& q, const Mat<T>& keys, const AttentionParams<T>& p,
                          int64_t head, std::span<const VisibleKeys> visible, int64_t first) {
  const int64_t n = q.rows(), S = keys.rows(), D = p.head_dim;
  const int64_t g = head / (p.heads / p.kv_heads);  // GQA: the key head this query head reads
  Mat<T> scores =
      q.middleCols(head * D, D) * keys.middleCols(g * D, D).transpose() * p.scale;  // [n, S]
  if (p.softcap) plain::soft_cap<T>(scores, *p.softcap);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t s = 0; s < S; ++s)
      if (!visible[r].contains(first + s)) scores(r, s) = -std::numeric_limits<T>::infinity();
  plain::softmax_rows<T>(scores);
  return scores;
}

// Every head's probabilities, [heads*n, S] head-major: the attn_weights site.
template <typename T>
Mat<T> all_probabilities(const Mat<T>& q, const Mat<T>& keys, const AttentionParams<T>& p,
                         std::span<const VisibleKeys> visible, int64_t first) {
  const int64_t n = q.rows();
  Mat<T> weights(p.heads * n, keys.rows());
  for (int64_t head = 0; head < p.heads; ++head)
    weights.middleRows(head * n, n) = head_probabilities<T>(q, keys, p, head, visible, first);
  return weights;
}

// Plain attention: gathers the visible keys [first, pos0) from the cache and appends the new
// ones, then per head: probabilities (head_probabilities) times V. When the probabilities are
// observed they are kept for every head, announced (an edit changes what multiplies V), then used.
template <typename T>
Mat<T> attend_plain(const Mat<T>& q, const Mat<T>& k, const Mat<T>& v, const AttentionParams<T>& p,
                    const LayerKVCache<T>& cache, int64_t pos0, std::span<const int32_t> groups,
                    const LayerTap<T>& tap) {
  const int64_t n = q.rows(), D = p.head_dim, group_size = p.heads / p.kv_heads;
  const auto visible = visible_keys_of(p, pos0, groups);
  const int64_t first =
      visible_keys(p.kind, p.window, pos0).causal.begin;  // the earliest key any query sees
  const auto [keys, values] = gather_keys(k, v, cache, first, pos0);
  Mat<T> out(n, p.heads * D);  // attention output before o_proj
  if (!tap.wants(SiteKind::AttnWeights)) {
    for (int64_t head = 0; head < p.heads; ++head)
      out.middleCols(head * D, D).noalias() =
          head_probabilities<T>(q, keys, p, head, visible, first) *
          values.middleCols(head / group_size * D, D);
    return out;
  }
  Mat<T> weights = all_probabilities<T>(q, keys, p, visible, first);
  tap(SiteKind::AttnWeights, MatRef<T>(weights), {.heads = p.heads, .key0 = first});
  for (int64_t head = 0; head < p.heads; ++head)
    out.middleCols(head * D, D).noalias() =
        weights.middleRows(head * n, n) * values.middleCols(head / group_size * D, D);
  return out;
}

// The attention probabilities alone [heads*n, S] and the position of their first key, as the
// plain path computes them: what the fast path announces when they are read, computed beside its
// own attention, which does not use them.
template <typename T>
std::pair<Mat<T>, int64_t> attention_probabilities(const Mat<T>& q, const Mat<T>& k,
                                                   const Mat<T>& v, const AttentionParams<T>& p,
                                                   const LayerKVCache<T>& cache, int64_t pos0,
                                                   std::span<const int32_t> groups) {
  const auto visible = visible_keys_of(p, pos0, groups);
  const int64_t first = visible_keys(p.kind, p.window, pos0).causal.begin;
  return {all_probabilities<T>(q, gather_keys(k, v, cache, first, pos0).first, p, visible, first),
          first};
}

// Decode (at most kKeySplitTokens new tokens) splits each (token, key head)'s keys into spans of
// kKeySpan, one task each: with one key head (270m, 1b) and the query heads as the only other
// split, every thread read all of a layer's keys and values. Each span is a partial softmax of
// the group's query heads (AttendQuery's stats), and the spans are merged in order:
//   m = max_s m_s,   o = Σ_s e^(m_s - m)·o_s / Σ_s e^(m_s - m)·l_s.
// The spans are fixed, not one per thread, so the result is the same for any thread count.
inline constexpr int64_t kKeySplitTokens = 4;
inline constexpr int64_t kKeySpan = 64;

// Keys [a, b) of a (token, key head)'s segments (in order) as segments of their own; returns
// their count.
inline int64_t slice_keys(std::span<const kernels::simd::KeySegment> segs, int64_t a, int64_t b,
                          kernels::simd::KeySegment* out) {
  int64_t n = 0, first = 0;  // first: the index of segment s's first key among all of them
  for (const kernels::simd::KeySegment& s : segs) {
    const int64_t from = std::max(a, first), to = std::min(b, first + s.count);
    if (to > from)
      out[n++] = {s.k + (from - first) * s.stride, s.v + (from - first) * s.stride, to - from,
                  s.stride};
    first += s.count;
  }
  return n;
}

// Decode's attention in spans of keys (above): `segments(r, g, segs)` gives the visible keys of
// token r for key head g.
template <class Segments>
Mat<float> attend_spans(const Mat<float>& q, const AttentionParams<float>& p,
                        const Segments& segments) {
  const int64_t n = q.rows(), D = p.head_dim, group_size = p.heads / p.kv_heads;
  const float cap = p.softcap ? float(*p.softcap) : 0.f;
  Mat<float> out(n, p.heads * D);
  // Token r's tasks are [first[r], first[r + 1]): its spans for each key head.
  std::vector<int64_t> first(std::size_t(n + 1), 0), spans(static_cast<std::size_t>(n));
  for (int64_t r = 0; r < n; ++r) {
    kernels::simd::KeySegment segs[4];
    int64_t keys = 0;
    for (int64_t s = 0, n_segs = segments(r, 0, segs); s < n_segs; ++s) keys += segs[s].count;
    spans[std::size_t(r)] = std::max<int64_t>(1, (keys + kKeySpan - 1) / kKeySpan);
    first[std::size_t(r + 1)] = first[std::size_t(r)] + p.kv_heads * spans[std::size_t(r)];
  }
  const int64_t tasks = first.back();
  // Each task's partial o [group_size, D] and its stats [2, group_size], in memory the calling
  // thread keeps from call to call (a step's attention runs once per layer).
  static thread_local std::vector<float> partials;
  partials.resize(std::size_t(tasks * group_size * (D + 2)));
  float* const o_of = partials.data();
  float* const stats_of = o_of + tasks * group_size * D;
  fast::detail::Meeting spans_done;  // every span's partials are in before any merge reads them
  fast::Team::parallel([&] {
#pragma omp for schedule(dynamic) nowait
    for (int64_t task = 0; task < tasks; ++task) {
      int64_t r = 0;
      while (task >= first[std::size_t(r + 1)]) ++r;
      const int64_t span = spans[std::size_t(r)], g = (task - first[std::size_t(r)]) / span;
      const int64_t s = (task - first[std::size_t(r)]) % span;
      kernels::simd::KeySegment segs[4], slice[4];
      const int64_t n_segs = segments(r, g, segs);
      const int64_t n_slice =
          slice_keys(std::span(segs, std::size_t(n_segs)), s * kKeySpan, (s + 1) * kKeySpan, slice);
      kernels::call(kernels::simd::AttendQuery{}, q.data() + r * q.cols() + g * group_size * D,
                    group_size, D, slice, n_slice, p.scale, cap, o_of + task * group_size * D,
                    stats_of + task * 2 * group_size);
    }
    spans_done.arrive_and_wait();
    // The merge, per (token, query head), in span order.
#pragma omp for schedule(static) nowait
    for (int64_t rh = 0; rh < n * p.heads; ++rh) {
      const int64_t r = rh / p.heads, head = rh % p.heads, g = head / group_size;
      const int64_t j = head % group_size, span = spans[std::size_t(r)];
      const int64_t task0 = first[std::size_t(r)] + g * span;
      const auto m_of = [&](int64_t s) { return stats_of[(task0 + s) * 2 * group_size + j]; };
      const auto l_of = [&](int64_t s) {
        return stats_of[(task0 + s) * 2 * group_size + group_size + j];
      };
      float m = m_of(0);
      for (int64_t s = 1; s < span; ++s) m = std::max(m, m_of(s));
      float l = 0.f;
      for (int64_t s = 0; s < span; ++s) l += std::exp(m_of(s) - m) * l_of(s);
      auto o = out.row(r).segment(head * D, D);
      o.setZero();
      for (int64_t s = 0; s < span; ++s)
        o += Eigen::Map<const Eigen::RowVectorXf>(o_of + ((task0 + s) * group_size + j) * D, D) *
             (std::exp(m_of(s) - m) / l);
    }
  });
  return out;
}

// Fast attention: for each (query, head) the visible keys as at most four contiguous segments —
// cached positions (a ring wraps once at most) and new tokens (the causal window, and the query's
// image) — and one online-softmax pass over them (kernels/simd.hpp AttendQuery), or, in decode,
// one per span of them, merged. The keys are those of visible_keys_of, as index ranges instead of
// a materialised mask.
inline Mat<float> attend_fast(const Mat<float>& q, const Mat<float>& k, const Mat<float>& v,
                              const AttentionParams<float>& p, const LayerKVCache<float>& cache,
                              int64_t pos0, std::span<const int32_t> groups) {
  const int64_t n = q.rows(), D = p.head_dim, kv_dim = k.cols();
  const int64_t group_size = p.heads / p.kv_heads;
  const auto visible = visible_keys_of(p, pos0, groups);
  // The visible keys of token r for key head g, into segs; returns their count.
  const auto segments = [&](int64_t r, int64_t g, kernels::simd::KeySegment* segs) {
    int64_t n_segs = 0;
    const VisibleKeys& keys = visible[r];
    // Cached keys: the causal range's part before pos0.
    cache.for_each_run(keys.causal.begin, std::min(keys.causal.end, pos0),
                       [&](int64_t row, int64_t count, int64_t) {
                         segs[n_segs++] = {cache.k.data() + row * kv_dim + g * D,
                                           cache.v.data() + row * kv_dim + g * D, count, kv_dim};
                       });
    // New keys, as rows of k: the causal range's part from pos0 on and the query's image.
    int64_t a = std::max(keys.causal.begin, pos0) - pos0, b = keys.causal.end - pos0;
    int64_t c = keys.image.begin - pos0, d = keys.image.end - pos0;
    if (c <= b && d >= a)
      a = std::min(a, c), b = std::max(b, d), c = d = b;  // overlapping: one range
    for (auto [from, to] : {std::pair{a, b}, std::pair{c, d}})
      if (to > from)
        segs[n_segs++] = {k.data() + from * kv_dim + g * D, v.data() + from * kv_dim + g * D,
                          to - from, kv_dim};
    return n_segs;
  };
  if (n <= kKeySplitTokens) return attend_spans(q, p, segments);
  // Prefill: one task per (token, key head, part of its group): the query heads of a part share
  // one pass over their keys and values. The group is split only as far as it takes to give every
  // thread a task.
  Mat<float> out(n, p.heads * D);
  const float cap = p.softcap ? float(*p.softcap) : 0.f;
  const int64_t parts =
      std::clamp<int64_t>(omp_get_max_threads() / (n * p.kv_heads), 1, group_size);
  const int64_t per_part = (group_size + parts - 1) / parts;
#pragma omp parallel for schedule(dynamic)
  for (int64_t task = 0; task < n * p.kv_heads * parts; ++task) {
    const int64_t r = task / (p.kv_heads * parts), g = task / parts % p.kv_heads;
    const int64_t head = g * group_size + task % parts * per_part;  // first query head of the part
    const int64_t heads = std::min(per_part, (g + 1) * group_size - head);
    if (heads <= 0) continue;
    kernels::simd::KeySegment segs[4];
    const int64_t n_segs = segments(r, g, segs);
    kernels::call(kernels::simd::AttendQuery{}, q.data() + r * q.cols() + head * D, heads, D, segs,
                  n_segs, p.scale, cap, out.data() + r * out.cols() + head * D);
  }
  return out;
}

}  // namespace detail

// Attention of n new tokens at positions [pos0, pos0 + n). Keys and values of earlier positions
// come from `cache`; the new ones are written to it. `groups` gives each new token's image group
// (-1 for text); an image must lie entirely inside one chunk for its tokens to see each other.
//
// The fast backend runs attend_fast unless the probabilities are edited in this layer (then the
// plain attention, which multiplies V by the edited probabilities); read, they are computed beside
// it.
template <typename T>
Mat<T> self_attention(const ConstMatRef<T>& h, const LayerWeights& w, const AttentionParams<T>& p,
                      LayerKVCache<T>& cache, int64_t pos0, std::span<const int32_t> groups,
                      const detail::LayerTap<T>& tap) {
  const int64_t n = h.rows(), D = p.head_dim;
  // q, k and v read the same h: one call (one pass over the three matrices on the fast path).
  auto qkv = linear<T>(h, std::array{&w.q_proj, &w.k_proj, &w.v_proj}, p.backend);
  Mat<T>& q = qkv[0];  // [n, heads*D]
  Mat<T>& k = qkv[1];  // [n, kv_heads*D]
  Mat<T>& v = qkv[2];  // [n, kv_heads*D]
  tap(SiteKind::QProj, MatRef<T>(q));
  tap(SiteKind::KProj, MatRef<T>(k));
  tap(SiteKind::VProj, MatRef<T>(v));

  // q/k norm: one RMSNorm over each head's D values; viewing [n, heads*D] as [n*heads, D].
  MatMap<T>(q.data(), n * p.heads, D) =
      plain::rms_norm<T>(MatMap<T>(q.data(), n * p.heads, D), p.q_norm, p.eps);
  MatMap<T>(k.data(), n * p.kv_heads, D) =
      plain::rms_norm<T>(MatMap<T>(k.data(), n * p.kv_heads, D), p.k_norm, p.eps);
  tap(SiteKind::QNorm, MatRef<T>(q));
  tap(SiteKind::KNorm, MatRef<T>(k));
  const auto& angles = p.rope.cached_angles(pos0, n);
  p.rope.apply(q, D, angles);
  p.rope.apply(k, D, angles);
  tap(SiteKind::QRope, MatRef<T>(q));
  tap(SiteKind::KRope, MatRef<T>(k));

  Mat<T> out;         // [n, heads*D] attention output before o_proj
  bool fast = false;  // the fast kernel runs unless the probabilities are edited in this layer
  if constexpr (std::is_same_v<T, float>) {
    fast = p.backend != Backend::Plain && !tap.edits(SiteKind::AttnWeights);
    if (fast) out = detail::attend_fast(q, k, v, p, cache, pos0, groups);
    if (fast && tap.wants(SiteKind::AttnWeights)) {
      auto [weights, first] = detail::attention_probabilities<T>(q, k, v, p, cache, pos0, groups);
      tap(SiteKind::AttnWeights, MatRef<T>(weights), {.heads = p.heads, .key0 = first});
    }
  }
  if (!fast) out = detail::attend_plain<T>(q, k, v, p, cache, pos0, groups, tap);
  // Only now store the new keys: in a ring, a long chunk would overwrite keys its first queries
  // see.
  cache.store(pos0, k, v);
  tap(SiteKind::AttnOutput, MatRef<T>(out));
  Mat<T> o = linear<T>(out, w.o_proj, p.backend);
  tap(SiteKind::SelfAttn, MatRef<T>(o));
  return o;
}

}  // namespace gemma3::inline GEMMA3_MODE

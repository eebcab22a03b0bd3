// Scoring: log-probabilities of given tokens under the model, the helpers to read a row of logits
// (log_softmax, top_k, entropy), continuation scoring as evaluation harnesses do it, and
// sliding-window perplexity.
//
// All sums over the vocabulary run in double: a row has 262144 entries.
#pragma once

#include "gemma3/build_mode.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gemma3/error.hpp"
#include "gemma3/tensor.hpp"
#include "gemma3/text/model.hpp"
#include "gemma3/tokenizer/tokenizer.hpp"

namespace gemma3::inline GEMMA3_MODE {

namespace detail {
// log Σ e^z over a row, or NaN for a row without a finite maximum or with a NaN; in double
// (vectorised: a row has 262144 entries).
template <typename Row>
double log_sum_exp_or_nan(const Row& row) {
  const auto z = row.array().template cast<double>();
  const double max = z.maxCoeff();
  if (!std::isfinite(max) || z.isNaN().any()) return std::numeric_limits<double>::quiet_NaN();
  return max + std::log((z - max).exp().sum());
}
template <typename Row>
double log_sum_exp(const Row& row) {
  const double lse = log_sum_exp_or_nan(row);
  if (std::isnan(lse)) throw InvalidArgument("logits", "a row with a NaN, a +inf, or only -inf");
  return lse;
}
}  // namespace detail

// log softmax(row): log p_i = z_i - log Σ_j e^{z_j}, for one row of logits.
template <typename Derived>
Eigen::VectorXd log_softmax(const Eigen::DenseBase<Derived>& row) {
  const double lse = detail::log_sum_exp(row.derived().reshaped());
  Eigen::VectorXd out(row.size());
  const auto flat = row.derived().reshaped();
  for (Eigen::Index i = 0; i < row.size(); ++i) out(i) = double(flat(i)) - lse;
  return out;
}

// The k largest entries of a row as (id, value), largest first; among equal values the lower id
// first (the sampler's ranking).
template <typename Derived>
std::vector<std::pair<int32_t, double>> top_k(const Eigen::DenseBase<Derived>& row, int64_t k) {
  const auto flat = row.derived().reshaped();
  std::vector<int32_t> ids(std::size_t(flat.size()));
  for (std::size_t i = 0; i < ids.size(); ++i) ids[i] = int32_t(i);
  k = std::clamp<int64_t>(k, 0, int64_t(ids.size()));
  const auto better = [&](int32_t a, int32_t b) {
    return flat(a) > flat(b) || (flat(a) == flat(b) && a < b);
  };
  std::partial_sort(ids.begin(), ids.begin() + k, ids.end(), better);
  std::vector<std::pair<int32_t, double>> out;
  for (int64_t i = 0; i < k; ++i)
    out.emplace_back(ids[std::size_t(i)], double(flat(ids[std::size_t(i)])));
  return out;
}

// Entropy of softmax(row) in nats: -Σ p log p.
template <typename Derived>
double entropy(const Eigen::DenseBase<Derived>& row) {
  const Eigen::VectorXd lp = log_softmax(row);
  double h = 0;
  for (Eigen::Index i = 0; i < lp.size(); ++i)
    if (std::isfinite(lp(i))) h -= std::exp(lp(i)) * lp(i);
  return h;
}

// One scored token.
struct TokenScore {
  int32_t id = 0;
  int64_t position = 0;                         // its position in the scored sequence
  double logprob = 0;                           // log p(id | everything before it)
  int64_t rank = 0;                             // 0 when it is the model's top choice
  std::vector<std::pair<int32_t, double>> top;  // the most likely alternatives (id, log-prob)
};

// Log-probabilities of ids[first..] given what precedes each, in one forward pass from position 0;
// `top` alternatives per token when asked for.
template <typename T>
std::vector<TokenScore> score_ids(const TextModel<T>& model, std::span<const int32_t> ids,
                                  int64_t first, int64_t top = 0) {
  const auto n = static_cast<int64_t>(ids.size());
  if (first < 1 || first > n)
    throw InvalidArgument("score",
                          "the first scored token must have at least one token before it (first " +
                              std::to_string(first) + " of " + std::to_string(n) + " tokens)");
  std::vector<int64_t> rows;  // the logits at position t - 1 predict token t
  for (int64_t t = first; t < n; ++t) rows.push_back(t - 1);
  if (rows.empty()) return {};
  const Mat<T> logits = model.forward(ids, LogitRows::at(rows));
  std::vector<TokenScore> out(rows.size());
  // Rows are independent: split over threads (each row's sums in one thread, in a fixed order).
#pragma omp parallel for schedule(dynamic)
  for (std::size_t r = 0; r < rows.size(); ++r) {
    const auto z = logits.row(Eigen::Index(r)).array();
    const int64_t t = rows[r] + 1;
    const int32_t id = ids[std::size_t(t)];
    const double lse =
        detail::log_sum_exp_or_nan(logits.row(Eigen::Index(r)));  // (no throw in here)
    TokenScore& s = out[r];
    s = {.id = id, .position = t, .logprob = double(z(id)) - lse, .rank = 0, .top = {}};
    // The rank as the sampler orders: a higher logit first, on ties the lower id.
    s.rank = (z > z(id)).count() + (z.head(id) == z(id)).count();
    if (top > 0)
      for (const auto& [i, v] : top_k(logits.row(Eigen::Index(r)), top))
        s.top.emplace_back(i, v - lse);
  }
  for (const TokenScore& s : out)
    if (std::isnan(s.logprob))
      throw InvalidArgument("logits", "the row predicting position " + std::to_string(s.position) +
                                          " holds a NaN, a +inf, or only -inf");
  return out;
}

// A continuation scored after a prompt.
struct ContinuationScore {
  std::vector<int32_t> ids;  // prompt + continuation, as the tokenizer splits their concatenation
  int64_t first = 0;         // index in ids of the first scored token
  bool boundary_merged = false;    // a token spans the prompt's end: scoring starts with it
  std::vector<TokenScore> tokens;  // ids[first..] with their log-probs
  double logprob = 0;              // their sum: log p(continuation | prompt)
};

// log p(continuation | prompt). The text is tokenized whole, as the model would see it, so the
// continuation's tokens are those after the longest run of tokens the whole shares with the prompt
// alone: when the tokenizer merges characters across the boundary (a prompt ending in a space
// before a word), the merged token is scored and `boundary_merged` says so.
template <typename T>
ContinuationScore score(const TextModel<T>& model, const Tokenizer& tok, std::string_view prompt,
                        std::string_view continuation, bool add_bos = true, int64_t top = 0) {
  if (continuation.empty()) throw InvalidArgument("continuation", "empty: nothing to score");
  ContinuationScore r;
  const std::string whole = std::string(prompt) + std::string(continuation);
  r.ids = tok.encode(whole, {.add_bos = add_bos});
  const auto alone = tok.encode(std::string(prompt), {.add_bos = add_bos});
  std::size_t shared = 0;
  while (shared < alone.size() && shared < r.ids.size() && alone[shared] == r.ids[shared]) ++shared;
  r.boundary_merged = shared < alone.size();
  r.first = int64_t(shared);
  if (r.first == 0)
    throw InvalidArgument(
        "prompt", "empty and no <bos>: the first continuation token has nothing to condition on");
  if (r.first >= int64_t(r.ids.size()))
    throw InvalidArgument("continuation", "adds no token to the prompt");
  r.tokens = score_ids(model, r.ids, r.first, top);
  for (const auto& s : r.tokens) r.logprob += s.logprob;
  return r;
}

// Perplexity over a long token sequence with a sliding window, as transformers' guide "Perplexity
// of fixed-length models" computes it: windows of `context` tokens starting every `stride` tokens;
// each window scores only the tokens the previous one did not, each conditioned on the window's
// tokens before it, so every token is scored at most once, with at least context - stride tokens
// of history (all of it in the first window). A window's first token is context only: with
// stride == context, each window's first token goes unscored (PerplexityResult::tokens counts what
// was). With `bos` (the id the text
// began with, or -1), a later window's first token is replaced by it, as llama.cpp's perplexity
// does: Gemma expects a <bos> at position 0.
struct PerplexityOptions {
  int64_t context = 2048;
  int64_t stride = 1024;
  int32_t bos = -1;
  // Called after each window with the tokens scored so far and the total to score.
  std::function<void(int64_t scored, int64_t total)> progress{};
};
struct PerplexityResult {
  int64_t tokens = 0;     // tokens scored
  int64_t windows = 0;    // forward passes
  double nll = 0;         // Σ -log p, nats
  int64_t processed = 0;  // tokens run through the model (windows overlap)
  double seconds = 0;
  double perplexity() const { return tokens ? std::exp(nll / double(tokens)) : 0; }
};

template <typename T>
PerplexityResult perplexity(const TextModel<T>& model, std::span<const int32_t> ids,
                            const PerplexityOptions& opt) {
  const auto n = static_cast<int64_t>(ids.size());
  if (opt.context < 2)
    throw InvalidArgument("context",
                          "must be at least 2 tokens, got " + std::to_string(opt.context));
  if (opt.stride < 1 || opt.stride > opt.context)
    throw InvalidArgument("stride", "must be in [1, context " + std::to_string(opt.context) +
                                        "], got " + std::to_string(opt.stride));
  if (n < 2)
    throw InvalidArgument("text", "needs at least 2 tokens to score, got " + std::to_string(n));
  const auto start = std::chrono::steady_clock::now();
  PerplexityResult r;
  std::vector<int32_t> window;
  for (int64_t begin = 0, scored_end = 1; scored_end < n; begin += opt.stride) {
    const int64_t end = std::min(begin + opt.context, n);
    window.assign(ids.begin() + begin, ids.begin() + end);
    if (begin > 0 && opt.bos >= 0) window[0] = opt.bos;
    // Score positions [max(scored_end, begin + 1), end): new in this window, with context before
    // them.
    const int64_t first = std::max(scored_end, begin + 1) - begin;
    for (const auto& s : score_ids(model, window, first)) r.nll -= s.logprob, ++r.tokens;
    r.processed += end - begin;
    ++r.windows;
    scored_end = end;
    if (opt.progress) opt.progress(r.tokens, n - 1);
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

}  // namespace gemma3::inline GEMMA3_MODE

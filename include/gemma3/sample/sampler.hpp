// Choosing the next token from a row of logits.
//
// A sampler is a short pipeline of small stages, each a plain function in `gemma3::sampling` below,
// applied in the order HF transformers applies them (generation/utils.py `_get_logits_processor`:
// the repetition penalty among the logits processors, then the warpers temperature → top-k → top-p
// → min-p):
//
//   logits [vocab]
//     → repetition, presence and frequency penalties over the last `penalty_window` recent tokens
//     → temperature 0: argmax (the lowest id among equal maxima), done
//     → top-k: the k best tokens, best first (among equal logits the lower id first)
//     → softmax(logit / T) over them, in double
//     → top-p: the smallest best-first prefix whose mass is >= p
//     → min-p: drop the tokens whose probability is < min_p · (the best one's)
//     → draw: the inverse CDF, best first, of one uniform from a seeded SplitMix64
//
// Determinism: the same (seed, sequence of logits rows and recent tokens, settings) gives the same
// tokens on every run. The random stream is integer-only and draws exactly one number per
// non-greedy token, so it is bit-identical on every machine and standard library
// (std::uniform_real_distribution is not specified bit-exactly, so it is not used). The
// probabilities come from std::exp, which C libraries may round differently by an ulp, so across
// libraries a token could differ only when a uniform lands within ~1e-16 of a cumulative boundary.
// See docs/sampling.md.
#pragma once

#include "gemma3/build_mode.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <Eigen/Core>
#include <nlohmann/json.hpp>

#include "gemma3/error.hpp"

namespace gemma3::inline GEMMA3_MODE {

// The sampler's settings. The defaults are Gemma 3's: the published generation_config.json of the
// google/gemma-3-* checkpoints holds {"do_sample": true, "top_k": 64, "top_p": 0.95} and no
// temperature, so transformers samples at its default temperature 1.0 (see
// docs/sampling.md for the sources). The Gemma team's recommendation, as quoted by Unsloth's Gemma
// 3 guide, is the same: temperature 1.0, top_k 64, top_p 0.95, min_p 0.0.
struct SamplerConfig {
  float temperature = 1.0f;  // divides the logits; 0 = greedy (argmax, lowest id on ties)
  int32_t top_k = 64;        // keep the k most likely tokens; 0 = off
  float top_p = 0.95f;       // keep the smallest best-first prefix of mass >= top_p; 1 = off
  float min_p = 0.0f;        // drop tokens with p < min_p · p_max; 0 = off
  float repetition_penalty =
      1.0f;  // HF/CTRL: logit > 0 → logit / r, logit < 0 → logit · r; 1 = off
  float presence_penalty = 0.0f;   // OpenAI: logit −= presence_penalty if the token occurs at all
  float frequency_penalty = 0.0f;  // OpenAI: logit −= frequency_penalty · (occurrences)
  int32_t penalty_window = 64;     // penalties see the last n recent tokens (llama.cpp's
                                   // repeat_last_n default); 0 = all the tokens passed in
  int32_t top_logprobs = 0;  // also report the n most likely tokens with their log-probabilities
  uint64_t seed = 0;         // the random stream; same seed, same tokens

  bool operator==(const SamplerConfig&) const = default;
};

// One sampled token.
struct SampleResult {
  int32_t id = 0;
  // The token's log-probability under the model's own distribution: log-softmax of the logits as
  // given, before penalties, temperature and truncation (what OpenAI's `logprobs` reports).
  float logprob = 0.0f;
  // The `top_logprobs` most likely tokens, best first, as (id, log-probability) on the same scale.
  std::vector<std::pair<int32_t, float>> top;
};

namespace detail {
inline std::string number(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", x);
  return buf;
}
}  // namespace detail

// Throws InvalidArgument naming the field when a setting is outside its range.
inline void validate(const SamplerConfig& c) {
  auto require = [](bool ok, const char* field, const std::string& what) {
    if (!ok) throw InvalidArgument(field, what);
  };
  using detail::number;
  require(std::isfinite(c.temperature) && c.temperature >= 0, "temperature",
          "must be a finite number >= 0 (0 means greedy), got " + number(c.temperature));
  require(c.top_k >= 0, "top_k", "must be >= 0 (0 turns it off), got " + std::to_string(c.top_k));
  require(c.top_p > 0 && c.top_p <= 1, "top_p",
          "must be in (0, 1] (1 turns it off), got " + number(c.top_p));
  require(c.min_p >= 0 && c.min_p <= 1, "min_p",
          "must be in [0, 1] (0 turns it off), got " + number(c.min_p));
  require(std::isfinite(c.repetition_penalty) && c.repetition_penalty > 0, "repetition_penalty",
          "must be a finite number > 0 (1 turns it off), got " + number(c.repetition_penalty));
  require(std::isfinite(c.presence_penalty), "presence_penalty",
          "must be finite (0 turns it off), got " + number(c.presence_penalty));
  require(std::isfinite(c.frequency_penalty), "frequency_penalty",
          "must be finite (0 turns it off), got " + number(c.frequency_penalty));
  require(c.penalty_window >= 0, "penalty_window",
          "must be >= 0 (0 means every recent token), got " + std::to_string(c.penalty_window));
  require(c.top_logprobs >= 0, "top_logprobs",
          "must be >= 0, got " + std::to_string(c.top_logprobs));
}

// The settings a transformers generation_config.json asks for. Absent keys take transformers'
// GenerationConfig defaults (do_sample false → greedy; temperature 1.0, top_k 50, top_p 1.0), so
// Gemma 3's file gives exactly SamplerConfig{}. Keys this sampler has no stage for are ignored.
inline SamplerConfig sampler_config_from_json(const nlohmann::json& g) {
  if (!g.is_object()) throw ConfigError("generation_config", "expected an object");
  auto get = [&](const char* key, auto fallback) {
    using T = decltype(fallback);
    const auto it = g.find(key);
    if (it == g.end() || it->is_null()) return fallback;
    const bool ok = std::is_same_v<T, bool> ? it->is_boolean()
                    : std::is_integral_v<T> ? it->is_number_integer()
                                            : it->is_number();
    if (!ok)
      throw ConfigError(std::string("generation_config.") + key, "unexpected type: " + it->dump());
    return it->template get<T>();
  };
  SamplerConfig c;
  c.temperature = get("do_sample", false) ? get("temperature", 1.0f) : 0.0f;
  c.top_k = get("top_k", int32_t{50});
  c.top_p = get("top_p", 1.0f);
  c.min_p = get("min_p", 0.0f);
  c.repetition_penalty = get("repetition_penalty", 1.0f);
  validate(c);
  return c;
}

// The stages, each usable on its own.
namespace sampling {

inline constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// SplitMix64 (Steele, Lea & Flood, "Fast splittable pseudorandom number generators", OOPSLA 2014;
// the generator synth.hpp uses for weights): integer arithmetic only, so a seed gives the same
// stream on every machine. Seed 0 starts e220a8397b1dcdaf, 6e789e6aa1b965f4, 06c45d188009454f.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, 1): the top 53 bits, exactly representable in double.
  double uniform() { return double(next() >> 11) * 0x1.0p-53; }

 private:
  uint64_t state_;
};

// A token still in the running, with its (penalised) logit.
struct Candidate {
  int32_t id;
  float logit;
  bool operator==(const Candidate&) const = default;
};

// The ranking every stage uses: higher logit first; among equal logits, the lower id first.
inline bool ranks_before(const Candidate& a, const Candidate& b) {
  return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
}

// What a row of logits holds: how many tokens are finite (may be sampled) and the best logit.
struct RowStats {
  std::size_t finite = 0;
  float max = kNegInf;
};

// Checks a row: not empty, no NaN, no +inf, not every entry −inf. `what` names the row in errors.
inline RowStats check_logits(std::span<const float> logits, const char* what = "logits") {
  if (logits.empty()) throw InvalidArgument(what, "empty row");
  // One branch-free pass the compiler can vectorise; a second one only to name a bad entry.
  RowStats s;
  bool bad = false;
  for (const float l : logits) {
    bad |= !(l < -kNegInf);  // NaN or +inf
    s.finite += l != kNegInf;
    s.max = l > s.max ? l : s.max;
  }
  if (bad)
    for (std::size_t i = 0; i < logits.size(); ++i)
      if (!(logits[i] < -kNegInf))
        throw InvalidArgument(what, std::string(std::isnan(logits[i]) ? "NaN" : "+inf") +
                                        " at token id " + std::to_string(i));
  if (s.finite == 0) throw InvalidArgument(what, "every logit is -inf: no token can be sampled");
  return s;
}

// Every recent token id must index the row.
inline void check_token_ids(std::span<const int32_t> ids, std::size_t vocab) {
  for (std::size_t i = 0; i < ids.size(); ++i)
    if (ids[i] < 0 || std::size_t(ids[i]) >= vocab)
      throw InvalidArgument("recent_tokens", "token id " + std::to_string(ids[i]) +
                                                 " at position " + std::to_string(i) +
                                                 " is outside the vocabulary [0, " +
                                                 std::to_string(vocab) + ")");
}

// The distinct ids of `tokens` with their number of occurrences, by id.
inline std::vector<std::pair<int32_t, int32_t>> token_counts(std::span<const int32_t> tokens) {
  std::vector<int32_t> sorted(tokens.begin(), tokens.end());
  std::sort(sorted.begin(), sorted.end());
  std::vector<std::pair<int32_t, int32_t>> counts;
  for (const int32_t id : sorted) {
    if (counts.empty() || counts.back().first != id) counts.emplace_back(id, 0);
    ++counts.back().second;
  }
  return counts;
}

// Repetition penalty (Keskar et al. 2019, CTRL; HF RepetitionPenaltyLogitsProcessor): every token
// that occurs in `recent`, once however often it occurs, becomes less likely for r > 1: a positive
// logit is divided by r, a negative one multiplied by r.
inline void apply_repetition_penalty(std::span<float> logits, std::span<const int32_t> recent,
                                     float r) {
  if (r == 1.0f) return;
  check_token_ids(recent, logits.size());
  for (const auto& [id, count] : token_counts(recent)) {
    float& l = logits[std::size_t(id)];
    l = l < 0 ? l * r : l / r;
  }
}

// Presence and frequency penalties (OpenAI's API reference, "parameter details"):
// logit[j] −= count[j] · frequency + (count[j] > 0) · presence, counts over `recent`.
inline void apply_presence_frequency_penalties(std::span<float> logits,
                                               std::span<const int32_t> recent, float presence,
                                               float frequency) {
  if (presence == 0.0f && frequency == 0.0f) return;
  check_token_ids(recent, logits.size());
  for (const auto& [id, count] : token_counts(recent))
    logits[std::size_t(id)] -= float(count) * frequency + presence;
}

// Greedy: the best token, the lowest id among equal maxima (NaN logits never win, unless the
// first is NaN: then nothing beats it). Two passes: the maximum by a SIMD reduction, then its first
// index. One compare-and-branch per token cost 3% of a 270m decode step on its 262144 logits.
inline int32_t argmax(std::span<const float> logits) {
  if (logits.empty() || std::isnan(logits[0])) return 0;
  float max = logits[0];
  const float* z = logits.data();
  const std::size_t n = logits.size();
#pragma omp simd reduction(max : max)
  for (std::size_t i = 0; i < n; ++i) max = z[i] > max ? z[i] : max;  // (a NaN never is)
  // The first chunk that holds the maximum (a vectorised test per chunk), then its first index.
  constexpr std::size_t kChunk = 256;
  std::size_t chunk = 0;
  for (;; chunk += kChunk) {
    const std::size_t end = std::min(n, chunk + kChunk);
    int found = 0;
#pragma omp simd reduction(| : found)
    for (std::size_t i = chunk; i < end; ++i) found |= z[i] == max;
    if (found) break;
  }
  while (!(z[chunk] == max)) ++chunk;
  return int32_t(chunk);
}

// Top-k: the k best tokens of the row, best first (see ranks_before). −inf tokens never take part,
// so fewer than k come back when fewer are finite; k = 0 ranks every finite token.
// One pass that keeps the k best so far in a heap whose front is the worst of them: O(V log k), and
// almost always one comparison per token, instead of sorting the whole vocabulary.
inline void top_k(std::span<const float> logits, std::size_t k, std::vector<Candidate>& out) {
  out.clear();
  if (k == 0 || k >= logits.size()) {
    for (std::size_t i = 0; i < logits.size(); ++i)
      if (logits[i] != kNegInf) out.push_back({int32_t(i), logits[i]});
    std::sort(out.begin(), out.end(), ranks_before);
    return;
  }
  out.reserve(k);
  std::size_t i = 0;
  for (; i < logits.size() && out.size() < k; ++i)
    if (logits[i] != kNegInf) out.push_back({int32_t(i), logits[i]});
  std::make_heap(out.begin(), out.end(), ranks_before);
  // Ids only grow, so a token equal to the worst kept one ranks after it: one comparison decides.
  float worst = out.empty() ? -kNegInf : out.front().logit;
  for (; i < logits.size(); ++i) {
    if (!(logits[i] > worst)) continue;
    std::pop_heap(out.begin(), out.end(), ranks_before);
    out.back() = {int32_t(i), logits[i]};
    std::push_heap(out.begin(), out.end(), ranks_before);
    worst = out.front().logit;
  }
  std::sort_heap(out.begin(), out.end(), ranks_before);
}
inline std::vector<Candidate> top_k(std::span<const float> logits, std::size_t k) {
  std::vector<Candidate> out;
  top_k(logits, k, out);
  return out;
}

// Temperature and softmax: the numerators exp((logit − best) / T) of best-first candidates, in
// double, so that p_i = w_i / Σw (the best gets weight 1). The division by T happens in double
// inside the exponent, so the weights never reverse the ranking of the logits.
inline void softmax_weights(std::span<const Candidate> ranked, float temperature,
                            std::vector<double>& w) {
  w.resize(ranked.size());
  const double best = ranked.empty() ? 0.0 : double(ranked[0].logit), t = double(temperature);
  for (std::size_t i = 0; i < ranked.size(); ++i)
    w[i] = std::exp((double(ranked[i].logit) - best) / t);
}

// Σ exp((logit − max) / T) over every finite token of the row, in id order: the softmax denominator
// (relative to the best token) when no top-k cut applies.
inline double softmax_total(std::span<const float> logits, float max, float temperature) {
  double total = 0;
  const double t = double(temperature);
  for (const float l : logits)
    if (l != kNegInf) total += std::exp((double(l) - double(max)) / t);
  return total;
}

// Top-p (nucleus, Holtzman et al. 2020): how many best-first tokens to keep, the smallest n whose
// mass Σ_{i<n} w_i reaches p · total, i.e. token i stays while the mass before it is < p (as HF's
// TopPLogitsWarper). `total` is the mass of the whole distribution; the weights may be only its
// best prefix, and nullopt says that prefix does not reach p yet.
inline std::optional<std::size_t> top_p_count(std::span<const double> w, double total, float p) {
  const double target = double(p) * total;
  double mass = 0;
  for (std::size_t n = 0; n < w.size(); ++n) {
    mass += w[n];
    if (mass >= target) return n + 1;
  }
  return std::nullopt;
}

// Min-p (Nguyen et al. 2024; HF MinPLogitsWarper): how many best-first tokens have probability
// >= min_p times the best one's, i.e. weight >= min_p · w_0. Counts within the given prefix only.
inline std::size_t min_p_count(std::span<const double> w, float min_p) {
  if (w.empty()) return 0;
  const double threshold = double(min_p) * w[0];
  std::size_t n = 0;
  while (n < w.size() && w[n] >= threshold) ++n;
  return n;
}

// The draw: the first index whose cumulative weight exceeds u · total, u uniform in [0, 1).
// A zero weight is never chosen; nullopt when the given prefix ends before u · total is reached.
inline std::optional<std::size_t> draw(std::span<const double> w, double total, double u) {
  const double target = u * total;
  double cumulative = 0;
  for (std::size_t i = 0; i < w.size(); ++i) {
    cumulative += w[i];
    if (cumulative > target) return i;
  }
  return std::nullopt;
}

// exp(x) for x <= 0, in float and branch-free, so that compilers vectorise the loops that call it
// (std::exp is a library call). Cephes' expf (S. Moshier): n = round(x·log2 e), r = x − n·ln 2 in
// two parts (Cody-Waite), e^r by a polynomial, times 2^n through the exponent bits. Within 1e-7
// relative of std::exp; inputs below −87, −inf included, give e^−87 ≈ 1.6e−38 instead of 0.
inline float exp_nonpositive(float x) {
  // Clamp at −87 without a float comparison (GCC does not vectorise one under its default
  // -ftrapping-math): for x <= 0 the unsigned order of the bits is the reverse of the float order.
  x = std::bit_cast<float>(std::min(std::bit_cast<uint32_t>(x), std::bit_cast<uint32_t>(-87.0f)));
  // round(x·log2 e) in [−126, 0]: adding 1.5·2^23, whose ulp is 1, rounds to an integer in the
  // bits.
  const int32_t n = std::bit_cast<int32_t>(x * 1.44269504088896341f + 12582912.0f) - 0x4B400000;
  const float r = (x - float(n) * 0.693359375f) + float(n) * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float e = p * r * r + r + 1.0f;
  return std::bit_cast<float>(std::bit_cast<int32_t>(e) + n * (1 << 23));
}

// log Σ exp(logit) over the row, for the reported log-probabilities (no token choice depends on
// it): exponentials in float (exp_nonpositive, vectorised, in blocks that stay in L1 cache), summed
// in double into four fixed partial sums. The e^−87 of −inf tokens vanishes next to the best
// token's 1.
inline double log_sum_exp(std::span<const float> logits, float max) {
  constexpr std::size_t kBlock = 256;
  float e[kBlock];
  double s[4] = {0, 0, 0, 0};
  for (std::size_t i = 0; i < logits.size(); i += kBlock) {
    const std::size_t n = std::min(kBlock, logits.size() - i);
    for (std::size_t j = 0; j < n; ++j) e[j] = exp_nonpositive(logits[i + j] - max);
    std::size_t j = 0;
    for (; j + 4 <= n; j += 4)
      for (std::size_t q = 0; q < 4; ++q) s[q] += double(e[j + q]);
    for (; j < n; ++j) s[0] += double(e[j]);
  }
  return double(max) + std::log((s[0] + s[1]) + (s[2] + s[3]));
}

}  // namespace sampling

// The sampler: one per generated sequence. Holds the settings, the random stream and scratch
// buffers sized to the vocabulary, so sampling allocates nothing once warm.
class Sampler {
 public:
  explicit Sampler(const SamplerConfig& cfg = {}) : cfg_(cfg), rng_(cfg.seed) { validate(cfg_); }

  const SamplerConfig& config() const { return cfg_; }

  // Restarts the random stream: the sampler then behaves as one constructed with this seed.
  void reseed(uint64_t seed) {
    cfg_.seed = seed;
    rng_ = sampling::Rng(seed);
  }

  // Samples one token from `logits` [vocab]. `recent` holds the tokens the penalties look at (the
  // prompt and what was generated so far, oldest first); only its last `penalty_window` count.
  SampleResult sample(std::span<const float> logits, std::span<const int32_t> recent = {}) {
    using namespace sampling;
    const RowStats raw = check_logits(logits);

    // Penalties, on a copy of the row.
    std::span<const float> row = logits;
    RowStats stats = raw;
    const std::size_t window = cfg_.penalty_window == 0
                                   ? recent.size()
                                   : std::min(recent.size(), std::size_t(cfg_.penalty_window));
    const auto last = recent.last(window);
    if (penalties_on() && !last.empty()) {
      check_token_ids(last, logits.size());
      penalised_.assign(logits.begin(), logits.end());
      apply_repetition_penalty(penalised_, last, cfg_.repetition_penalty);
      apply_presence_frequency_penalties(penalised_, last, cfg_.presence_penalty,
                                         cfg_.frequency_penalty);
      row = penalised_;
      stats = check_logits(row, "logits after penalties");
    }

    SampleResult result;
    result.id = cfg_.temperature == 0 ? argmax(row) : draw_token(row, stats);

    // Log-probabilities under the model's own distribution.
    const double lse = log_sum_exp(logits, raw.max);
    result.logprob = float(double(logits[std::size_t(result.id)]) - lse);
    if (cfg_.top_logprobs > 0) {
      top_k(logits, std::size_t(cfg_.top_logprobs), ranked_);
      for (const Candidate& c : ranked_)
        result.top.emplace_back(c.id, float(double(c.logit) - lse));
    }
    return result;
  }

  // The same from an Eigen vector or one-row/one-column matrix of any scalar (copied to float).
  template <typename Derived>
  SampleResult sample(const Eigen::DenseBase<Derived>& logits,
                      std::span<const int32_t> recent = {}) {
    if (logits.rows() != 1 && logits.cols() != 1)
      throw InvalidArgument("logits", "expected one row, got a " + std::to_string(logits.rows()) +
                                          "x" + std::to_string(logits.cols()) + " matrix");
    converted_.resize(std::size_t(logits.size()));
    for (Eigen::Index i = 0; i < logits.size(); ++i)
      converted_[std::size_t(i)] = float(logits.rows() == 1 ? logits(0, i) : logits(i, 0));
    return sample(std::span<const float>(converted_), recent);
  }

 private:
  bool penalties_on() const {
    return cfg_.repetition_penalty != 1.0f || cfg_.presence_penalty != 0.0f ||
           cfg_.frequency_penalty != 0.0f;
  }

  // Top-k, softmax, top-p, min-p and the draw over a checked, penalised row.
  int32_t draw_token(std::span<const float> row, const sampling::RowStats& stats) {
    using namespace sampling;
    const float t = cfg_.temperature;
    // The top-k set: the k best, or every finite token when top-k is off.
    const std::size_t k =
        cfg_.top_k > 0 ? std::min(std::size_t(cfg_.top_k), stats.finite) : stats.finite;

    // Best-first candidates and their softmax weights. With top-k on, all k at once. With it off, a
    // best-first prefix, grown ×8 until the cut-offs and the draw fall inside it: a language
    // model's nucleus is a tiny part of a 262144-token vocabulary, and each growth costs one pass.
    std::size_t m = cfg_.top_k > 0 ? k : std::min(k, kFirstPrefix);
    auto rank = [&] {
      top_k(row, m == stats.finite ? 0 : m, ranked_);
      softmax_weights(ranked_, t, weights_);
    };
    rank();
    const double total = m == k ? sum(weights_) : softmax_total(row, stats.max, t);

    // How many of the ranking to keep: the smaller of the top-p and min-p cuts (each a prefix).
    // A cut the prefix cannot decide yet lies beyond it, so a decided one is the answer; with none
    // decided, nullopt asks for a longer prefix.
    auto kept = [&]() -> std::optional<std::size_t> {
      std::optional<std::size_t> n;
      bool undecided = false;
      if (cfg_.top_p < 1.0f) {
        if (const auto n_p = top_p_count(weights_, total, cfg_.top_p))
          n = n_p;
        else
          undecided = true;
      }
      if (cfg_.min_p > 0.0f) {
        const std::size_t n_min = min_p_count(weights_, cfg_.min_p);
        if (n_min < m)
          n = std::min(n.value_or(n_min), n_min);
        else
          undecided = true;
      }
      if (n) return n;
      // No cut: the whole top-k set (also when rounding kept top-p from quite reaching p).
      if (!undecided || m == k) return k;
      return std::nullopt;
    };
    std::optional<std::size_t> n = kept();
    while (!n) {
      m = std::min(k, m * kGrowth);
      rank();
      n = kept();
    }

    const double u = rng_.uniform();
    const double kept_total = *n <= m ? sum(std::span<const double>(weights_).first(*n)) : total;
    for (;;) {
      const std::size_t end = std::min(*n, m);
      if (const auto i = draw(std::span<const double>(weights_).first(end), kept_total, u))
        return ranked_[*i].id;
      if (end == *n) break;  // rounding left u · total just past the last weight
      m = std::min(k, m * kGrowth);
      rank();
    }
    // The last kept token with a positive weight (the best has weight 1).
    std::size_t last = std::min(*n, m) - 1;
    while (last > 0 && weights_[last] == 0) --last;
    return ranked_[last].id;
  }

  static double sum(std::span<const double> w) {
    double s = 0;
    for (const double x : w) s += x;
    return s;
  }

  static constexpr std::size_t kFirstPrefix = 64, kGrowth = 8;

  SamplerConfig cfg_;
  sampling::Rng rng_;
  std::vector<float> penalised_;             // [vocab] the row after penalties
  std::vector<float> converted_;             // [vocab] an Eigen row as float
  std::vector<sampling::Candidate> ranked_;  // best-first candidates
  std::vector<double> weights_;              // their softmax numerators
};

}  // namespace gemma3::inline GEMMA3_MODE

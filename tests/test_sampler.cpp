// The sampler (each stage exactly, the settings' errors, determinism, the distribution it draws
// from) and Gemma 3 tool calls (prompt rendering, parsing hand-written model outputs, malformed
// calls).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <set>
#include <vector>

#include <gemma3/sample/sampler.hpp>
#include <gemma3/tensor.hpp>
#include <gemma3/tokenizer/tool_call.hpp>

#include "test_helpers.hpp"

using namespace gemma3;
namespace smp = gemma3::sampling;
using Catch::Matchers::Contains;
using Catch::Matchers::Equals;

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

// The oracle: the distribution SamplerConfig describes, written plainly (full sort, probabilities,
// cut-offs, renormalise), over the whole vocabulary. Penalties are not part of it.
std::vector<double> expected_distribution(const std::vector<float>& logits,
                                          const SamplerConfig& c) {
  std::vector<int> order;
  for (int i = 0; i < int(logits.size()); ++i)
    if (logits[i] != -kInf) order.push_back(i);
  std::sort(order.begin(), order.end(), [&](int a, int b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  });
  if (c.top_k > 0 && std::size_t(c.top_k) < order.size()) order.resize(std::size_t(c.top_k));
  std::vector<double> p(order.size());
  double z = 0;
  for (std::size_t i = 0; i < order.size(); ++i)
    z += p[i] = std::exp((double(logits[order[i]]) - logits[order[0]]) / c.temperature);
  for (double& x : p) x /= z;
  std::size_t keep = p.size();
  if (c.top_p < 1) {
    double mass = 0;
    for (std::size_t n = 0; n < p.size(); ++n)
      if ((mass += p[n]) >= c.top_p) {
        keep = std::min(keep, n + 1);
        break;
      }
  }
  std::size_t n_min = 0;
  while (n_min < p.size() && p[n_min] >= c.min_p * p[0]) ++n_min;
  keep = std::min(keep, n_min);
  std::vector<double> out(logits.size(), 0.0);
  double kept_mass = 0;
  for (std::size_t i = 0; i < keep; ++i) kept_mass += p[i];
  for (std::size_t i = 0; i < keep; ++i) out[order[i]] = p[i] / kept_mass;
  return out;
}

std::vector<int> draw_counts(Sampler& s, const std::vector<float>& logits, int n) {
  std::vector<int> counts(logits.size(), 0);
  for (int i = 0; i < n; ++i) ++counts[std::size_t(s.sample(logits).id)];
  return counts;
}

std::set<int32_t> drawn_ids(Sampler& s, const std::vector<float>& logits, int n) {
  std::set<int32_t> ids;
  for (int i = 0; i < n; ++i) ids.insert(s.sample(logits).id);
  return ids;
}

// Upper 0.1% points of the chi-square distribution (standard tables, e.g. NIST/SEMATECH e-Handbook
// §1.3.6.7.4): a correct sampler exceeds them with probability 0.001.
double chi_square_999(std::size_t df) {
  static const double table[] = {0,      10.828, 13.816, 16.266, 18.467, 20.515, 22.458,
                                 24.322, 26.124, 27.877, 29.588, 31.264, 32.909, 34.528};
  REQUIRE(df >= 1);
  REQUIRE(df < std::size(table));
  return table[df];
}

// Pearson's statistic of `counts` against `expected` probabilities over the tokens it allows; a
// token it forbids must never be drawn. Returns {statistic, degrees of freedom}.
std::pair<double, std::size_t> chi_square(const std::vector<int>& counts,
                                          const std::vector<double>& expected, int n) {
  double stat = 0;
  std::size_t bins = 0;
  for (std::size_t i = 0; i < counts.size(); ++i) {
    if (expected[i] == 0) {
      INFO("token " << i << " is outside the truncated distribution");
      CHECK(counts[i] == 0);
      continue;
    }
    const double e = expected[i] * n;
    REQUIRE(e >= 5);  // the chi-square approximation needs it
    stat += (counts[i] - e) * (counts[i] - e) / e;
    ++bins;
  }
  return {stat, bins - 1};
}

std::vector<double> log_softmax(const std::vector<float>& l) {
  double m = -kInf, z = 0;
  for (float x : l) m = std::max(m, double(x));
  for (float x : l) z += std::exp(double(x) - m);
  std::vector<double> out;
  for (float x : l) out.push_back(double(x) - m - std::log(z));
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------
// Settings

TEST_CASE("the defaults are Gemma 3's generation_config.json", "[sampler]") {
  // google/gemma-3-*: generation_config.json as published (no temperature key: transformers' 1.0).
  const auto gemma = nlohmann::json::parse(R"({"bos_token_id": 2, "cache_implementation": "hybrid",
      "do_sample": true, "eos_token_id": [1, 106], "pad_token_id": 0, "top_k": 64, "top_p": 0.95,
      "transformers_version": "4.50.0.dev0"})");
  CHECK(sampler_config_from_json(gemma) == SamplerConfig{});
  const SamplerConfig d;
  CHECK(d.temperature == 1.0f);
  CHECK(d.top_k == 64);
  CHECK(d.top_p == 0.95f);
  CHECK(d.min_p == 0.0f);
  CHECK(d.repetition_penalty == 1.0f);

  // Absent do_sample is transformers' greedy; absent top_k its 50.
  const auto greedy = sampler_config_from_json(nlohmann::json::object());
  CHECK(greedy.temperature == 0.0f);
  CHECK(greedy.top_k == 50);
  const auto custom = sampler_config_from_json({{"do_sample", true},
                                                {"temperature", 0.7},
                                                {"top_k", 0},
                                                {"min_p", 0.05},
                                                {"repetition_penalty", 1.1}});
  CHECK(custom.temperature == 0.7f);
  CHECK(custom.top_k == 0);
  CHECK(custom.top_p == 1.0f);
  CHECK(custom.min_p == 0.05f);
  CHECK(custom.repetition_penalty == 1.1f);
  CHECK_THROWS_AS(sampler_config_from_json({{"top_k", "64"}}), ConfigError);
  CHECK_THROWS_WITH(sampler_config_from_json({{"top_k", "64"}}),
                    Equals("generation_config.top_k: unexpected type: \"64\""));
  CHECK_THROWS_WITH(sampler_config_from_json({{"top_k", 1.5}}),
                    Contains("generation_config.top_k"));
  CHECK_THROWS_WITH(sampler_config_from_json({{"top_p", 2.0}}),
                    Contains("top_p: must be in (0, 1]"));
  CHECK_THROWS_AS(sampler_config_from_json(nlohmann::json::array()), ConfigError);
}

TEST_CASE("every invalid setting is an InvalidArgument naming its field", "[sampler]") {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  auto error_of = [](SamplerConfig c) -> std::string {
    try {
      Sampler s(c);
    } catch (const InvalidArgument& e) {
      return e.what();
    }
    return "no error";
  };
  auto with = [](auto edit) {
    SamplerConfig c;
    edit(c);
    return c;
  };
  CHECK(error_of(with([](auto& c) { c.temperature = -0.5f; })) ==
        "temperature: must be a finite number >= 0 (0 means greedy), got -0.5");
  CHECK_THAT(error_of(with([&](auto& c) { c.temperature = nan; })),
             Contains("temperature: must be a finite number >= 0 (0 means greedy), got") &&
                 Contains("nan"));
  CHECK(error_of(with([](auto& c) { c.temperature = kInf; })) ==
        "temperature: must be a finite number >= 0 (0 means greedy), got inf");
  CHECK(error_of(with([](auto& c) { c.top_k = -1; })) ==
        "top_k: must be >= 0 (0 turns it off), got -1");
  CHECK(error_of(with([](auto& c) { c.top_p = 0.0f; })) ==
        "top_p: must be in (0, 1] (1 turns it off), got 0");
  CHECK(error_of(with([](auto& c) { c.top_p = 1.5f; })) ==
        "top_p: must be in (0, 1] (1 turns it off), got 1.5");
  CHECK_THAT(error_of(with([&](auto& c) { c.top_p = nan; })), Contains("top_p: must be in (0, 1]"));
  CHECK(error_of(with([](auto& c) { c.min_p = -0.1f; })) ==
        "min_p: must be in [0, 1] (0 turns it off), got -0.1");
  CHECK(error_of(with([](auto& c) { c.min_p = 1.5f; })) ==
        "min_p: must be in [0, 1] (0 turns it off), got 1.5");
  CHECK_THAT(error_of(with([&](auto& c) { c.min_p = nan; })), Contains("min_p: must be in [0, 1]"));
  CHECK(error_of(with([](auto& c) { c.repetition_penalty = 0.0f; })) ==
        "repetition_penalty: must be a finite number > 0 (1 turns it off), got 0");
  CHECK(error_of(with([](auto& c) { c.repetition_penalty = -1.0f; })) ==
        "repetition_penalty: must be a finite number > 0 (1 turns it off), got -1");
  CHECK_THAT(error_of(with([&](auto& c) { c.repetition_penalty = nan; })),
             Contains("repetition_penalty: must be"));
  CHECK(error_of(with([](auto& c) { c.presence_penalty = kInf; })) ==
        "presence_penalty: must be finite (0 turns it off), got inf");
  CHECK_THAT(error_of(with([&](auto& c) { c.frequency_penalty = nan; })),
             Contains("frequency_penalty: must be finite (0 turns it off), got"));
  CHECK(error_of(with([](auto& c) { c.penalty_window = -2; })) ==
        "penalty_window: must be >= 0 (0 means every recent token), got -2");
  CHECK(error_of(with([](auto& c) { c.top_logprobs = -1; })) ==
        "top_logprobs: must be >= 0, got -1");

  // The edges of each range are valid.
  CHECK(error_of({.temperature = 0, .top_k = 0, .top_p = 1, .min_p = 1}) == "no error");
  CHECK(error_of({.min_p = 0,
                  .repetition_penalty = 1e-3f,
                  .presence_penalty = -2,
                  .frequency_penalty = 2}) == "no error");
}

TEST_CASE("bad logits and recent tokens are InvalidArguments that say where", "[sampler]") {
  Sampler s;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_AS(s.sample(std::vector<float>{}), InvalidArgument);
  CHECK_THROWS_WITH(s.sample(std::vector<float>{}), Equals("logits: empty row"));
  CHECK_THROWS_WITH(s.sample(std::vector<float>{1, 2, nan, 3}),
                    Equals("logits: NaN at token id 2"));
  CHECK_THROWS_WITH(s.sample(std::vector<float>{1, kInf, 3}), Equals("logits: +inf at token id 1"));
  CHECK_THROWS_WITH(s.sample(std::vector<float>{-kInf, -kInf}),
                    Equals("logits: every logit is -inf: no token can be sampled"));
  Sampler greedy({.temperature = 0});
  CHECK_THROWS_WITH(greedy.sample(std::vector<float>{-kInf}), Contains("every logit is -inf"));

  Sampler penalised({.repetition_penalty = 1.2f});
  const std::vector<int32_t> bad{1, 7};
  CHECK_THROWS_WITH(
      penalised.sample(std::vector<float>{1, 2, 3, 4}, bad),
      Equals("recent_tokens: token id 7 at position 1 is outside the vocabulary [0, 4)"));
  const std::vector<int32_t> negative{-1};
  CHECK_THROWS_AS(penalised.sample(std::vector<float>{1, 2, 3, 4}, negative), InvalidArgument);
  // A penalty that overflows every logit to -inf.
  Sampler huge({.repetition_penalty = 3e38f});
  const std::vector<int32_t> both{0, 1};
  CHECK_THROWS_WITH(huge.sample(std::vector<float>{-2, -3}, both),
                    Equals("logits after penalties: every logit is -inf: no token can be sampled"));

  Mat<float> m(2, 3);
  m.setZero();
  CHECK_THROWS_WITH(s.sample(m), Equals("logits: expected one row, got a 2x3 matrix"));
}

// ---------------------------------------------------------------------------------------------------
// The stages, exactly

TEST_CASE("the generator is SplitMix64, bit for bit", "[sampler]") {
  // Reference outputs of splitmix64.c (Vigna) from state 0.
  smp::Rng rng(0);
  CHECK(rng.next() == 0xe220a8397b1dcdafull);
  CHECK(rng.next() == 0x6e789e6aa1b965f4ull);
  CHECK(rng.next() == 0x06c45d188009454full);
  smp::Rng a(12345), b(12345);
  for (int i = 0; i < 1000; ++i) {
    const double u = a.uniform();
    CHECK((u >= 0.0 && u < 1.0));
    CHECK(u == double(b.next() >> 11) / 9007199254740992.0);
  }
}

TEST_CASE("greedy is the argmax, the lowest id among equal maxima", "[sampler]") {
  CHECK(smp::argmax(std::vector<float>{1, 5, 5, -kInf}) == 1);
  CHECK(smp::argmax(std::vector<float>{-kInf, -kInf, 2}) == 2);
  CHECK(smp::argmax(std::vector<float>{-3}) == 0);
  // NaN never wins, unless it comes first (nothing compares greater than it).
  const float nan = std::numeric_limits<float>::quiet_NaN();
  CHECK(smp::argmax(std::vector<float>{1, nan, 2, nan}) == 2);
  CHECK(smp::argmax(std::vector<float>{nan, 7, 9}) == 0);
  CHECK(smp::argmax(std::vector<float>{-kInf, nan, -kInf}) == 0);
  // A vocabulary's length (the SIMD pass): ties, the maximum last, an infinity, NaNs around it.
  std::vector<float> big(262144 + 3);
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = float(i % 1000) * 1e-3f;
  CHECK(smp::argmax(big) == 999);
  big.back() = 5, big[big.size() / 2] = nan;
  CHECK(smp::argmax(big) == int32_t(big.size() - 1));
  big[70001] = kInf, big[70002] = nan, big[90000] = kInf;
  CHECK(smp::argmax(big) == 70001);
  Sampler s({.temperature = 0, .top_logprobs = 2});
  const std::vector<float> l{0.5f, 3, -1, 3, 2};
  for (int i = 0; i < 5; ++i) CHECK(s.sample(l).id == 1);
  const auto r = s.sample(l);
  const auto ref = log_softmax(l);
  CHECK(r.logprob == Approx(ref[1]).margin(1e-6));
  REQUIRE(r.top.size() == 2);
  CHECK(r.top[0].first == 1);
  CHECK(r.top[1].first == 3);
  CHECK(r.top[1].second == Approx(ref[3]).margin(1e-6));
}

TEST_CASE("top-k keeps the k best, lower ids first among equals, never -inf", "[sampler]") {
  using C = smp::Candidate;
  const std::vector<float> l{0, 3, 1, 3, 2, 3, -kInf};
  CHECK(smp::top_k(l, 2) == std::vector<C>{{1, 3}, {3, 3}});
  CHECK(smp::top_k(l, 4) == std::vector<C>{{1, 3}, {3, 3}, {5, 3}, {4, 2}});
  CHECK(smp::top_k(l, 0) == std::vector<C>{{1, 3}, {3, 3}, {5, 3}, {4, 2}, {2, 1}, {0, 0}});
  CHECK(smp::top_k(l, 7).size() == 6);  // the -inf token never takes part
  CHECK(smp::top_k(l, 100).size() == 6);
  // The heap path (k < vocab) and the sort path (k = 0) rank a larger row identically.
  std::vector<float> big(5000);
  smp::Rng rng(3);
  for (float& x : big) x = float(std::floor(rng.uniform() * 50));  // many ties
  const auto all = smp::top_k(big, 0);
  for (std::size_t k : {1, 7, 64, 999}) {
    INFO("k = " << k);
    CHECK(smp::top_k(big, k) == std::vector<C>(all.begin(), all.begin() + std::ptrdiff_t(k)));
  }

  Sampler s({.top_k = 2, .top_p = 1, .seed = 1});
  CHECK(drawn_ids(s, l, 2000) == std::set<int32_t>{1, 3});
  Sampler one({.top_k = 1, .top_p = 1});
  CHECK(drawn_ids(one, l, 200) == std::set<int32_t>{1});
}

TEST_CASE("top-p keeps the smallest best-first prefix with mass >= p", "[sampler]") {
  // Exact probabilities (powers of two): the boundary is exact.
  const std::vector<double> p{0.5, 0.25, 0.125, 0.125};
  CHECK(smp::top_p_count(p, 1.0, 0.1f) == 1u);
  CHECK(smp::top_p_count(p, 1.0, 0.5f) == 1u);  // the first token's mass is exactly p
  CHECK(smp::top_p_count(p, 1.0, std::nextafter(0.5f, 1.0f)) == 2u);
  CHECK(smp::top_p_count(p, 1.0, 0.75f) == 2u);
  CHECK(smp::top_p_count(p, 1.0, 0.8f) == 3u);
  CHECK(smp::top_p_count(p, 1.0, 0.875f) == 3u);
  CHECK(smp::top_p_count(p, 1.0, 0.9f) == 4u);
  CHECK(smp::top_p_count(p, 1.0, 1.0f) == 4u);
  // Unnormalised weights against their total give the same cuts.
  const std::vector<double> w{1, 0.5, 0.25, 0.25};
  CHECK(smp::top_p_count(w, 2.0, 0.75f) == 2u);
  CHECK(smp::top_p_count(w, 2.0, 0.8f) == 3u);
  // A prefix that does not reach p cannot decide.
  CHECK_FALSE(smp::top_p_count(std::vector<double>{1, 0.5}, 2.0, 0.8f).has_value());

  // Through the sampler: probabilities 1/2, 1/4, 1/8, 1/8 (the last two tie: id 2 ranks first).
  const std::vector<float> l{std::log(0.5f), std::log(0.25f), std::log(0.125f), std::log(0.125f)};
  Sampler a({.top_k = 0, .top_p = 0.4f, .seed = 5});
  CHECK(drawn_ids(a, l, 500) == std::set<int32_t>{0});
  Sampler b({.top_k = 0, .top_p = 0.7f, .seed = 5});
  CHECK(drawn_ids(b, l, 2000) == std::set<int32_t>{0, 1});
  Sampler c({.top_k = 0, .top_p = 0.8f, .seed = 5});
  CHECK(drawn_ids(c, l, 2000) == std::set<int32_t>{0, 1, 2});
  Sampler d({.top_k = 0, .top_p = 1.0f, .seed = 5});
  CHECK(drawn_ids(d, l, 2000) == std::set<int32_t>{0, 1, 2, 3});
  // Top-p applies to the top-k set renormalised (as transformers does): within the best 2, token 0
  // has mass 2/3 >= 0.6.
  Sampler e({.top_k = 2, .top_p = 0.6f, .seed = 5});
  CHECK(drawn_ids(e, l, 500) == std::set<int32_t>{0});
}

TEST_CASE("min-p drops tokens below min_p times the best probability", "[sampler]") {
  const std::vector<double> w{1, 0.5, 0.25, 0.125};
  CHECK(smp::min_p_count(w, 0.0f) == 4u);
  CHECK(smp::min_p_count(w, 0.125f) == 4u);
  CHECK(smp::min_p_count(w, 0.25f) == 3u);  // equal to the threshold stays
  CHECK(smp::min_p_count(w, 0.26f) == 2u);
  // min_p is a float: 0.1f is 0.100000001..., so a weight of exactly 0.1 falls below it.
  CHECK(smp::min_p_count(std::vector<double>{1, 0.1}, 0.1f) == 1u);
  CHECK(smp::min_p_count(w, 1.0f) == 1u);
  CHECK(smp::min_p_count(std::vector<double>{2, 1, 0.5}, 0.5f) == 2u);  // relative to the first

  // e^0, e^-1 = 0.37, e^-2 = 0.14, ...: min_p 0.3 keeps two; at T = 2 (e^-0.5, e^-1 = 0.37) three.
  const std::vector<float> l{3, 2, 1, 0, -1};
  Sampler a({.top_k = 0, .top_p = 1, .min_p = 0.3f, .seed = 2});
  CHECK(drawn_ids(a, l, 2000) == std::set<int32_t>{0, 1});
  Sampler b({.temperature = 2, .top_k = 0, .top_p = 1, .min_p = 0.3f, .seed = 2});
  CHECK(drawn_ids(b, l, 3000) == std::set<int32_t>{0, 1, 2});
}

TEST_CASE("the draw is the inverse CDF and never picks a zero weight", "[sampler]") {
  const std::vector<double> w{1, 0, 1};
  CHECK(smp::draw(w, 2.0, 0.0) == 0u);
  CHECK(smp::draw(w, 2.0, 0.49) == 0u);
  CHECK(smp::draw(w, 2.0, 0.5) == 2u);
  CHECK(smp::draw(w, 2.0, 0.999) == 2u);
  CHECK_FALSE(smp::draw(std::vector<double>{1, 1}, 4.0, 0.9).has_value());  // beyond this prefix

  std::vector<smp::Candidate> c{{4, 2.0f}, {1, 1.0f}, {0, -1.0f}};
  std::vector<double> weights;
  smp::softmax_weights(c, 0.5f, weights);
  CHECK(weights[0] == 1.0);
  CHECK(weights[1] == std::exp(-2.0));
  CHECK(weights[2] == std::exp(-6.0));
}

TEST_CASE("logits of -inf are never sampled", "[sampler]") {
  const std::vector<float> l{-kInf, 1, -kInf, 0.5f, -kInf};
  for (SamplerConfig c : {SamplerConfig{}, SamplerConfig{.top_k = 0, .top_p = 1},
                          SamplerConfig{.temperature = 5, .top_k = 4, .top_p = 1, .min_p = 0}}) {
    Sampler s(c);
    CHECK(drawn_ids(s, l, 1000) == std::set<int32_t>{1, 3});
  }
  Sampler s({.top_logprobs = 5});
  const auto r = s.sample(l);
  CHECK(r.top.size() == 2);  // -inf tokens are not among the top either
}

TEST_CASE("penalties: exact values", "[sampler]") {
  std::vector<float> l{2, -2, 0, 1, 3};
  const std::vector<int32_t> recent{0, 1, 2, 0};
  smp::apply_repetition_penalty(l, recent, 2.0f);
  CHECK(l == std::vector<float>{1, -4, 0, 1, 3});  // once per token, however often it occurs

  std::vector<float> m{1, 1, 1, 1};
  const std::vector<int32_t> seen{0, 0, 0, 2};
  smp::apply_presence_frequency_penalties(m, seen, 0.5f, 0.25f);
  CHECK(m == std::vector<float>{1 - (3 * 0.25f + 0.5f), 1, 1 - (0.25f + 0.5f), 1});
  std::vector<float> n{1, 1, 1};  // (every id in `seen` must index the row)
  smp::apply_presence_frequency_penalties(n, seen, -1.0f, 0.0f);  // negative: encourage
  CHECK(n == std::vector<float>{2, 1, 2});

  // Through the sampler, the window is the last `penalty_window` recent tokens.
  const std::vector<float> row{5, 4.9f, 1};
  const std::vector<int32_t> history{1, 0};
  auto greedy_with_window = [&](int32_t window) {
    Sampler s({.temperature = 0, .repetition_penalty = 2, .penalty_window = window});
    return s.sample(row, history).id;
  };
  CHECK(greedy_with_window(1) == 1);  // only token 0 penalised: 2.5 < 4.9
  CHECK(greedy_with_window(2) == 0);  // both: 2.5 > 2.45
  CHECK(greedy_with_window(0) == 0);  // 0 = all
  Sampler presence({.temperature = 0, .presence_penalty = 0.2f, .penalty_window = 0});
  CHECK(presence.sample(row, history).id == 0);  // 4.8 vs 4.7
  Sampler frequency({.temperature = 0, .frequency_penalty = 0.1f, .penalty_window = 0});
  const std::vector<int32_t> zeros{0, 0};
  CHECK(frequency.sample(row, zeros).id == 1);  // 4.8 < 4.9
  // The reported log-probability is the model's, not the penalised one.
  Sampler p({.temperature = 0, .repetition_penalty = 10});
  const auto r = p.sample(row, std::vector<int32_t>{0});
  CHECK(r.id == 1);
  CHECK(r.logprob == Approx(log_softmax(row)[1]).margin(1e-6));
}

TEST_CASE("log-probabilities are the model's log-softmax", "[sampler]") {
  const std::vector<float> l{1, 2, 3, 4, -kInf};
  const auto ref = log_softmax(l);
  Sampler s({.temperature = 0.3f, .top_k = 2, .top_logprobs = 3, .seed = 9});
  for (int i = 0; i < 20; ++i) {
    const auto r = s.sample(l);
    CHECK(r.logprob == Approx(ref[std::size_t(r.id)]).margin(1e-6));
    REQUIRE(r.top.size() == 3);
    for (int j = 0; j < 3; ++j) {
      CHECK(r.top[std::size_t(j)].first == 3 - j);
      CHECK(r.top[std::size_t(j)].second == Approx(ref[std::size_t(3 - j)]).margin(1e-6));
    }
  }
  // The vectorisable exp behind the sum: within 1e-7 relative of std::exp down to -87, about 0
  // below.
  double worst = 0;
  for (double x = -87; x <= 0; x += 1e-3) {
    const float xf = float(x);
    const double ref = std::exp(double(xf));
    worst = std::max(worst, std::abs(double(smp::exp_nonpositive(xf)) - ref) / ref);
  }
  CHECK(worst < 1e-7);
  CHECK(smp::exp_nonpositive(0.0f) == 1.0f);
  CHECK(smp::exp_nonpositive(-0.0f) == 1.0f);
  CHECK(smp::exp_nonpositive(-1000.0f) < 2e-38f);
  CHECK(smp::exp_nonpositive(-kInf) < 2e-38f);

  // Across a long row too (the blocked, vectorised sum).
  std::vector<float> big(70001);
  smp::Rng rng(8);
  for (float& x : big) x = float(rng.uniform() * 30 - 15);
  const auto big_ref = log_softmax(big);
  Sampler g({.temperature = 0});
  const auto r = g.sample(big);
  CHECK(r.logprob == Approx(big_ref[std::size_t(r.id)]).margin(1e-5));
}

// ---------------------------------------------------------------------------------------------------
// Determinism and the distribution

TEST_CASE("same seed, same tokens, a golden sequence pins the generator and the pipeline",
          "[sampler]") {
  // Exactly representable logits -4, -3.75, ..., 3.75 in a scrambled order; the defaults (top-k 64
  // keeps all 32, top-p 0.95 about half).
  std::vector<float> row(32);
  for (std::size_t i = 0; i < row.size(); ++i) row[i] = float((i * 13) % 32) * 0.25f - 4.0f;
  auto run = [&](uint64_t seed, int n) {
    Sampler s({.seed = seed});
    std::vector<int32_t> ids;
    for (int i = 0; i < n; ++i) ids.push_back(s.sample(row).id);
    return ids;
  };
  const std::vector<int32_t> golden{12, 27, 22, 27, 29, 17, 27, 12, 27, 17, 17, 29,
                                    29, 12, 27, 7,  4,  22, 2,  17, 17, 12, 22, 17};
  CHECK(run(2024, int(golden.size())) == golden);
  CHECK(run(7, 200) == run(7, 200));
  CHECK(run(7, 200) != run(8, 200));

  // reseed restarts the stream; sequences of different rows repeat too.
  Sampler a({.top_k = 5, .seed = 11}), b({.top_k = 5, .seed = 99});
  b.reseed(11);
  CHECK(b.config().seed == 11);
  for (int step = 0; step < 100; ++step) {
    std::vector<float> l(50);
    for (std::size_t i = 0; i < l.size(); ++i) l[i] = std::cos(float(step * 31 + int(i)));
    CHECK(a.sample(l).id == b.sample(l).id);
  }
}

TEST_CASE("100k draws follow the truncated, renormalised softmax (chi-square)", "[sampler]") {
  // Each case: a fixed seed, so the outcome is deterministic; the bound is the chi-square 0.999
  // quantile for its degrees of freedom (significance 0.001: a correct sampler would fail for about
  // 1 seed in 1000).
  constexpr int n = 100000;
  SECTION("every stage on a small row, with ties and -inf") {
    const std::vector<float> l{2.0f,  1.5f,  1.2f,  1.0f,  0.7f,  0.5f, 0.3f, 0.0f,
                               -0.5f, -1.0f, -2.0f, -3.0f, -kInf, 0.1f, 1.0f, -10.0f};
    const SamplerConfig cfg{
        .temperature = 0.7f, .top_k = 10, .top_p = 0.9f, .min_p = 0.05f, .seed = 42};
    const auto expected = expected_distribution(l, cfg);
    Sampler s(cfg);
    const auto [stat, df] = chi_square(draw_counts(s, l, n), expected, n);
    INFO("chi-square " << stat << " with " << df << " degrees of freedom");
    CHECK(df == 6);  // top-p cuts the 10 best to 7 (mass 0.924 >= 0.9), the tie at 1.0 included
    CHECK(stat < chi_square_999(df));
  }
  SECTION("Gemma's defaults") {
    std::vector<float> l(100);
    for (std::size_t i = 0; i < l.size(); ++i) l[i] = 6.0f - 0.35f * float(i);
    const SamplerConfig cfg{.seed = 3};
    const auto expected = expected_distribution(l, cfg);
    Sampler s(cfg);
    const auto [stat, df] = chi_square(draw_counts(s, l, n), expected, n);
    INFO("chi-square " << stat << " with " << df << " degrees of freedom");
    CHECK(df == 8);  // p_i ∝ e^(-0.35 i): the best 9 first reach 0.95
    CHECK(stat < chi_square_999(df));
  }
  SECTION("top-k off over a 3000-token row: the nucleus is found in a best-first prefix") {
    std::vector<float> l(3000, -4.0f);
    smp::Rng rng(5);
    for (float& x : l) x -= float(rng.uniform());
    for (int i = 0; i < 12; ++i) l[std::size_t(100 * i + 17)] = 5.0f - 0.3f * float(i);
    const SamplerConfig cfg{.temperature = 1.0f, .top_k = 0, .top_p = 0.8f, .seed = 17};
    const auto expected = expected_distribution(l, cfg);
    Sampler s(cfg);
    const auto [stat, df] = chi_square(draw_counts(s, l, n), expected, n);
    INFO("chi-square " << stat << " with " << df << " degrees of freedom");
    CHECK(df == 5);  // the best 6 of 3000
    CHECK(stat < chi_square_999(df));
  }
}

TEST_CASE("top-k off draws like top-k = vocabulary, whatever prefix it ranks", "[sampler]") {
  // Nearly flat over 5000 tokens: the draw walks past the first ranked prefix, which must grow.
  std::vector<float> l(5000);
  smp::Rng rng(21);
  for (float& x : l) x = float(rng.uniform());
  l[10] = -kInf;
  for (const float p : {1.0f, 0.5f}) {
    Sampler lazy({.top_k = 0, .top_p = p, .seed = 4}), full({.top_k = 5000, .top_p = p, .seed = 4});
    for (int i = 0; i < 300; ++i) {
      const int32_t id = lazy.sample(l).id;
      CHECK(id == full.sample(l).id);
      CHECK(id != 10);
    }
  }
}

TEST_CASE("a 262144-token row: defaults stay within the top 64, Eigen rows match spans",
          "[sampler]") {
  std::vector<float> l(262144);
  smp::Rng rng(77);
  for (float& x : l) x = float(rng.uniform() * 20 - 10);
  std::set<int32_t> best64;
  for (const auto& c : smp::top_k(l, 64)) best64.insert(c.id);
  Sampler s;
  for (int i = 0; i < 50; ++i) CHECK(best64.count(s.sample(l).id) == 1);

  // A row of a row-major float matrix, a double one, a column vector: the same tokens.
  Mat<float> mf(2, Eigen::Index(l.size()));
  mf.row(0).setZero();
  mf.row(1) = Eigen::Map<const Eigen::RowVectorXf>(l.data(), Eigen::Index(l.size()));
  const Mat<double> md = mf.cast<double>();
  const Eigen::VectorXf column = mf.row(1).transpose();
  Sampler a({.seed = 5}), b({.seed = 5}), c({.seed = 5}), d({.seed = 5});
  for (int i = 0; i < 10; ++i) {
    const int32_t id = a.sample(l).id;
    CHECK(b.sample(mf.row(1)).id == id);
    CHECK(c.sample(md.row(1)).id == id);
    CHECK(d.sample(column).id == id);
  }
}

// ---------------------------------------------------------------------------------------------------
// Tool calls

namespace {

// The model's turn around a tool_code block.
std::string block(const std::string& code) {
  return "I'll look that up.\n```tool_code\n" + code + "\n```\n";
}

ToolCall parse(const std::string& code) {
  const auto call = find_tool_call(block(code));
  REQUIRE(call.has_value());
  return *call;
}

// The message of the error a malformed block raises, and its offset within the code.
std::pair<std::string, std::size_t> error_of(const std::string& code) {
  const std::string text = block(code);
  const std::size_t code_at = text.find("```tool_code\n") + 13;
  try {
    find_tool_calls(text);
  } catch (const ToolCallError& e) {
    return {e.what(), e.offset() - code_at};
  }
  return {"no error", 0};
}

}  // namespace

TEST_CASE("tool declarations render as the guide's instructions plus JSON", "[tool_call]") {
  const nlohmann::json weather = {{"name", "get_weather"},
                                  {"description", "Current weather in a city"},
                                  {"parameters",
                                   {{"type", "object"},
                                    {"properties", {{"city", {{"type", "string"}}}}},
                                    {"required", {"city"}}}}};
  const std::string expected =
      "You have access to functions. If you decide to invoke any of the function(s), you MUST put "
      "it in the "
      "format of\n"
      "```tool_code\n"
      "func_name1(params_name1=params_value1, params_name2=params_value2...)\n"
      "```\n"
      "The result of a call will be given back to you wrapped in ```tool_output```.\n"
      "You SHOULD NOT include any other text in the response if you call a function\n"
      "[\n"
      "  {\n"
      "    \"description\": \"Current weather in a city\",\n"
      "    \"name\": \"get_weather\",\n"
      "    \"parameters\": {\n"
      "      \"properties\": {\n"
      "        \"city\": {\n"
      "          \"type\": \"string\"\n"
      "        }\n"
      "      },\n"
      "      \"required\": [\n"
      "        \"city\"\n"
      "      ],\n"
      "      \"type\": \"object\"\n"
      "    }\n"
      "  }\n"
      "]\n";
  CHECK(render_tool_declarations(nlohmann::json::array({weather})) == expected);
  CHECK(render_tool_declarations(weather) == expected);  // one declaration
  CHECK(render_tool_declarations({{{"type", "function"}, {"function", weather}}}) ==
        expected);  // OpenAI style

  CHECK_THROWS_AS(render_tool_declarations(nlohmann::json::array({3})), InvalidArgument);
  CHECK_THROWS_WITH(render_tool_declarations(nlohmann::json::array({3})),
                    Equals("tools[0]: a declaration must be an object, got 3"));
  CHECK_THROWS_WITH(render_tool_declarations({weather, {{"description", "x"}}}),
                    Equals("tools[1]: a declaration needs a non-empty string \"name\""));
  CHECK_THROWS_WITH(render_tool_declarations({{{"name", "get weather"}}}),
                    Equals("tools[0]: name \"get weather\" is not a Python identifier"));
}

TEST_CASE("tool calls: every value kind, nested", "[tool_call]") {
  const ToolCall c = parse(
      "search(query='it\\'s \"ok\"\\n', limit=10, ratio=0.25, exact=True, fuzzy=False, lang=None, "
      "tags=['a', \"b\", 3], filters={'year': [2020, 2021], \"nested\": {'deep': (1, 2.5e-3, "
      "-7)}}, "
      "empty_list=[], empty_dict={}, flag=true, missing=null)");
  CHECK(c.name == "search");
  CHECK(c.positional.empty());
  CHECK(c.arguments == nlohmann::json::parse(R"({
      "query": "it's \"ok\"\n", "limit": 10, "ratio": 0.25, "exact": true, "fuzzy": false, "lang": null,
      "tags": ["a", "b", 3], "filters": {"year": [2020, 2021], "nested": {"deep": [1, 0.0025, -7]}},
      "empty_list": [], "empty_dict": {}, "flag": true, "missing": null})"));
  CHECK(c.arguments["limit"].is_number_integer());
  CHECK(c.arguments["ratio"].is_number_float());
}

TEST_CASE("tool calls: Python's strings and numbers", "[tool_call]") {
  const ToolCall s =
      parse(R"(f(a="tab\there", b='\x41\101\u00e9\U0001F600\ud83d\ude00', c='back\\slash', )"
            R"(d='adjacent' " strings", e='''multi
line''', f="unknown \d escape", g='', h=""))");
  CHECK(s.arguments["a"] == "tab\there");
  CHECK(s.arguments["b"] == "AA\u00e9\U0001F600\U0001F600");
  CHECK(s.arguments["c"] == "back\\slash");
  CHECK(s.arguments["d"] == "adjacent strings");
  CHECK(s.arguments["e"] == "multi\nline");
  CHECK(s.arguments["f"] == "unknown \\d escape");
  CHECK(s.arguments["g"] == "");
  CHECK(s.arguments["h"] == "");

  const ToolCall n = parse(
      "f(a=42, b=-7, c=+3, d=1_000, e=2.5, f=-0.5, g=.5, h=5., i=1e3, j=1.5E-2, "
      "k=9223372036854775807, l=-9223372036854775808, m=18446744073709551615, o=- 4)");
  CHECK(n.arguments["a"] == 42);
  CHECK(n.arguments["b"] == -7);
  CHECK(n.arguments["c"] == 3);
  CHECK(n.arguments["d"] == 1000);
  CHECK(n.arguments["e"] == 2.5);
  CHECK(n.arguments["f"] == -0.5);
  CHECK(n.arguments["g"] == 0.5);
  CHECK(n.arguments["h"] == 5.0);
  CHECK(n.arguments["h"].is_number_float());
  CHECK(n.arguments["i"] == 1000.0);
  CHECK(n.arguments["i"].is_number_float());
  CHECK(n.arguments["j"] == 0.015);
  CHECK(n.arguments["k"] == std::numeric_limits<int64_t>::max());
  CHECK(n.arguments["l"] == std::numeric_limits<int64_t>::min());
  CHECK(n.arguments["m"] == std::numeric_limits<uint64_t>::max());
  CHECK(n.arguments["o"] == -4);

  const ToolCall t = parse("f(a=(1, 2), b=(1,), c=(), d=(5), e={1: 'x', 'y': (None,)})");
  CHECK(t.arguments["a"] == nlohmann::json({1, 2}));
  CHECK(t.arguments["b"] == nlohmann::json::array({1}));
  CHECK(t.arguments["c"] == nlohmann::json::array());
  CHECK(t.arguments["d"] == 5);
  CHECK(t.arguments["e"] == nlohmann::json::parse(R"({"1": "x", "y": [null]})"));
}

TEST_CASE("tool calls: whitespace, fences and call forms", "[tool_call]") {
  const ToolCall expected{.name = "get_weather", .arguments = {{"city", "Paris"}, {"days", 3}}};
  for (const std::string text : {
           "```tool_code\nget_weather(city='Paris', days=3)\n```",
           "```tool_code\nget_weather(city='Paris', days=3)```",  // no line break before the fence
           "```tool_code\r\nget_weather(city='Paris', days=3)\r\n```",
           "```tool_code get_weather(city='Paris', days=3) ```",
           "```tool_code\n\n   get_weather ( city = 'Paris' ,days=3 , )  \n\n```",
           "```tool_code\nget_weather(\n    city='Paris',  # where\n    days=3,\n)\n```",
           "```tool_code\nget_weather(city='Paris', \\\n days=3)\n```",
           "```tool_code\nprint(get_weather(city='Paris', days=3))\n```",
           "```tool_code\n[get_weather(city='Paris', days=3)]\n```",
           "Sure! Let me check.\n\n```tool_code\nget_weather(city=\"Paris\", days=3)\n```\nOne "
           "moment.",
           "```python\nnot_a_call(\n```\n```tool_code\nget_weather(city='Paris', days=3)\n```",
       }) {
    INFO(text);
    const auto call = find_tool_call(text);
    REQUIRE(call.has_value());
    CHECK(*call == expected);
  }

  const ToolCall dotted = parse("weather.today(\"Paris\", 3, unit='C')");
  CHECK(dotted.name == "weather.today");
  CHECK(dotted.positional == nlohmann::json({"Paris", 3}));
  CHECK(dotted.arguments == nlohmann::json({{"unit", "C"}}));
  CHECK(parse("now()") == ToolCall{.name = "now"});

  // Several calls: a list, one per line, several blocks.
  const auto calls = find_tool_calls(
      "```tool_code\n[a(x=1), b(y=2),]\nc()\n```\ntext\n```tool_code\nd(z=[])\n```");
  REQUIRE(calls.size() == 4);
  CHECK(calls[0] == ToolCall{.name = "a", .arguments = {{"x", 1}}});
  CHECK(calls[1].name == "b");
  CHECK(calls[2].name == "c");
  CHECK(calls[3].arguments["z"] == nlohmann::json::array());
  CHECK(find_tool_call("```tool_code\na()\nb()\n```")->name == "a");
}

TEST_CASE("no complete tool_code block, no call, streaming knows when a call is open",
          "[tool_call]") {
  for (const std::string text :
       {"", "The weather is fine.", "```python\nget_weather(city='Paris')\n```",
        "```tool_code\nget_weather(city='Paris')", "```tool_code\nget_weather(city='Paris')\n``",
        "```tool_codex\nget_weather()\n```"}) {
    INFO(text);
    CHECK_FALSE(find_tool_call(text).has_value());
    CHECK(find_tool_calls(text).empty());
  }
  // A stream, token by token.
  const std::vector<std::pair<std::string, bool>> stream{
      {"Let me check.", false},
      {"Let me check.\n```tool", false},
      {"Let me check.\n```tool_code", true},
      {"Let me check.\n```tool_code\nget_weather(city='Par", true},
      {"Let me check.\n```tool_code\nget_weather(city='Paris')\n``", true},
      {"Let me check.\n```tool_code\nget_weather(city='Paris')\n```", false},
      {"Let me check.\n```tool_code\nget_weather(city='Paris')\n```\n```tool_code\n", true},
      {"```python\nx = 1\n```", false},
      {"```tool_codex\n", false},
  };
  for (const auto& [text, inside] : stream) {
    INFO(text);
    CHECK(inside_tool_code(text) == inside);
  }
}

TEST_CASE("malformed calls are ToolCallErrors with their position", "[tool_call]") {
  using E = std::pair<std::string, std::size_t>;
  // block() puts the code at offset 32, on line 3.
  CHECK(error_of("f(a=[1, 2)") == E{"tool_code: offset 41 (line 3, column 10): expected ',' or ']' "
                                    "in the list opened at offset 36, found ')'",
                                    9});
  CHECK(error_of("f(a='abc)") == E{"tool_code: offset 36 (line 3, column 5): unterminated string "
                                   "(only a '''...''' or \"\"\"...\"\"\" string "
                                   "may span lines)",
                                   4});
  CHECK(error_of("f(a=1) xyz").first ==
        "tool_code: offset 43 (line 4, column 1): expected '(' after the function name 'xyz', "
        "found the end of the "
        "block");
  CHECK(error_of("f a=1").first ==
        "tool_code: offset 34 (line 3, column 3): expected '(' after the function name 'f', found "
        "'a'");
  CHECK(error_of("f(a=b)") ==
        E{"tool_code: offset 36 (line 3, column 5): 'b' is not a literal: arguments must be "
          "strings, numbers, True/False/None, lists, tuples or dicts",
          4});
  CHECK_THAT(error_of("f(a=g(1))").first,
             Contains("a nested call (g(...)) is not a literal argument"));
  CHECK_THAT(error_of("f(a=1, a=2)").first, Contains("column 8): keyword argument repeated: a"));
  CHECK_THAT(error_of("f(a=1, 2)").first, Contains("positional argument follows keyword argument"));
  CHECK_THAT(error_of("").first, Contains("empty tool_code block: expected a function call"));
  CHECK_THAT(error_of("[]").first, Contains("empty list of calls"));
  CHECK_THAT(
      error_of("f(a=1").first,
      Contains("expected ',' or ')' in the arguments of f(...), found the end of the block"));
  CHECK_THAT(error_of("f(a=})").first, Contains("expected a value, found '}'"));
  CHECK_THAT(error_of("f(a={'k' 1})").first, Contains("expected ':' after a dict key, found '1'"));
  CHECK_THAT(error_of("f(a={'k': 1)").first,
             Contains("expected ',' or '}' in the dict opened at offset"));
  CHECK_THAT(error_of("f(a={[1]: 2})").first,
             Contains("dict keys must be strings or numbers, found [1]"));
  CHECK_THAT(error_of("f(a=(1, 2)").first,
             Contains("expected ',' or ')' in the arguments of f(...)"));
  CHECK_THAT(error_of("f(a=0x10)").first, Contains("malformed number 0x"));
  CHECK_THAT(error_of("f(a=1e)").first, Contains("expected the exponent's digits, found ')'"));
  CHECK_THAT(error_of("f(a=99999999999999999999)").first,
             Contains("integer 99999999999999999999 does not fit in 64 bits"));
  CHECK_THAT(error_of("f(a=-'x')").first, Contains("expected a number after the sign, found '''"));
  CHECK_THAT(error_of("f(*args)").first, Contains("*args and **kwargs are not supported"));
  CHECK_THAT(error_of("f(a=r'x')").first,
             Contains("string prefixes like r'...' are not supported"));
  CHECK_THAT(error_of("f(a='\\u12')").first, Contains("escape needs 4 hex digits"));
  CHECK_THAT(error_of("f(a='\\ud83d')").first,
             Contains("high surrogate in \\u escape without its low half"));
  CHECK_THAT(error_of("f(a='\\U00110000')").first, Contains("invalid code point in \\U escape"));
  CHECK_THAT(error_of("print(x)").first,
             Contains("print(...) must wrap exactly one function call"));
  CHECK_THAT(error_of("f(a=1); 42").first, Contains("expected a name, found '42'"));

  // An unterminated string that runs into the fence; and a FormatError for callers that catch
  // those.
  CHECK_THROWS_WITH(find_tool_call("```tool_code\nf(a='abc)```"),
                    Contains("offset 17 (line 2, column 5)"));
  CHECK_THROWS_AS(find_tool_call("```tool_code\nf(\n```"), FormatError);
}

TEST_CASE("tool outputs and calls render as fenced blocks, calls round-trip", "[tool_call]") {
  CHECK(render_tool_output("22 degrees and sunny") == "```tool_output\n22 degrees and sunny\n```");
  CHECK(render_tool_output({{"temp", 22}, {"sky", "clear"}}) ==
        "```tool_output\n{\"sky\":\"clear\",\"temp\":22}\n```");
  CHECK(render_tool_output(4.5) == "```tool_output\n4.5\n```");

  const ToolCall call{.name = "db.query",
                      .arguments = {{"sql", "SELECT 'x'\n"},
                                    {"limit", 5},
                                    {"ratio", 1.0},
                                    {"opts", {{"a", nullptr}, {"b", {true, false, -2, "é"}}}}},
                      .positional = {"first", nlohmann::json::array()}};
  const std::string text = render_tool_call(call);
  CHECK(text ==
        "```tool_code\ndb.query(\"first\", [], limit=5, opts={\"a\": None, \"b\": [True, False, "
        "-2, \"é\"]}, "
        "ratio=1.0, sql=\"SELECT 'x'\\n\")\n```");
  CHECK(find_tool_call(text) == call);
}

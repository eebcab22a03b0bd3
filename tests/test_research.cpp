// The research interface: typed sites, observation that never changes the numbers (every backend),
// every site of the fast path against the plain path, edits, capture of what is asked for only,
// the logit rows asked for, the stepper, scoring and perplexity, generation with log-probs.
#include <catch2/catch.hpp>

#include <cmath>
#include <fstream>
#include <map>

#include <omp.h>

#include <gemma3/checkpoint.hpp>
#include <gemma3/multimodal.hpp>
#include <gemma3/score.hpp>
#include <gemma3/session.hpp>
#include <gemma3/site.hpp>
#include <gemma3/stepper.hpp>
#include <gemma3/synth.hpp>

#include "test_helpers.hpp"

using namespace gemma3;

namespace {

const Tokenizer& tokenizer() {
  static const Tokenizer tok(GEMMA3_TOKENIZER_MODEL);  // built by scripts/get_tokenizer.sh
  return tok;
}

// A bf16 checkpoint with a short window (prompts cross it), an untied head and 3 layers (local,
// local, global): the fast path's bf16 GEMV, GEMM and fused MLP all run on it.
const std::filesystem::path& bf16_checkpoint() {
  static const std::filesystem::path dir = [] {
    ModelConfig cfg = preset("tiny");
    cfg.text.vocab_size = 384;
    cfg.text.sliding_window = 6;
    cfg.text.num_hidden_layers = 3;
    cfg.text.layer_types = {LayerKind::Local, LayerKind::Local, LayerKind::Global};
    cfg.text.tie_word_embeddings = false;
    auto d = test::scratch_dir("research_bf16");
    synthesize_checkpoint(cfg, d, {.seed = 5, .dtype = DType::BF16});
    return d;
  }();
  return dir;
}

std::vector<int32_t> some_ids(int64_t n, int64_t vocab, int64_t salt = 0) {
  std::vector<int32_t> ids(static_cast<std::size_t>(n));
  ids[0] = 2;
  for (int64_t i = 1; i < n; ++i) ids[std::size_t(i)] = int32_t((i * 131 + 17 + salt * 7) % vocab);
  return ids;
}

constexpr Backend kBackends[] = {Backend::Plain, Backend::Fast, Backend::FastBf16};

}  // namespace

TEST_CASE("sites: every kind's module path parses back to it, and junk parses to nothing",
          "[research][sites]") {
  for (std::size_t k = 0; k < kSiteKinds; ++k) {
    const auto kind = SiteKind(k);
    for (const int32_t layer :
         per_layer(kind) ? std::vector<int32_t>{0, 7, 33} : std::vector<int32_t>{-1}) {
      const Site s{kind, layer};
      INFO(s.name());
      CHECK(Site::parse(s.name()) == s);
    }
  }
  CHECK(Site::residual(5).name() == "model.layers.5");
  CHECK(Site::attn_weights(3).name() == "model.layers.3.self_attn.attn_weights");
  CHECK(Site::mlp_act(0).name() == "model.layers.0.mlp.act_fn");
  CHECK(Site{SiteKind::VisionFc1, 2}.name() ==
        "vision_tower.vision_model.encoder.layers.2.mlp.fc1");
  for (const char* junk : {"model.layers.", "model.layers.x", "model.layers.01", "model.layers.-1",
                           "model.layers.3.nope", "model.layers.3.", "lm_head.weight", ""})
    CHECK_FALSE(Site::parse(junk).has_value());
  CHECK_THROWS_WITH(
      Site::parse_or_throw("model.layers.3.nope", "--site"),
      Catch::Contains("--site") && Catch::Contains("'model.layers.3.nope' names no site"));
  CHECK_THROWS_WITH(SiteSet{}.insert(Site{SiteKind::Residual}), Catch::Contains("needs a layer"));
  CHECK_THROWS_WITH(SiteSet{}.insert(Site{SiteKind::Logits, 2}), Catch::Contains("takes no layer"));

  SiteSet set{Site::residual(2)};
  set.insert_every_layer(SiteKind::AttnWeights);
  CHECK(set.contains(Site::residual(2)));
  CHECK_FALSE(set.contains(Site::residual(1)));
  CHECK(set.contains(Site::attn_weights(40)));
  CHECK_FALSE(set.contains(Site::logits()));
  CHECK(SiteSet::all().contains(Site{SiteKind::VisionMlp, 3}));
}

TEST_CASE("observing never changes the logits, for every backend (prefill, decode, images)",
          "[research][observe]") {
  const auto ck = Checkpoint::open(bf16_checkpoint());
  const int64_t vocab = ck.config().text.vocab_size;
  const auto ids = some_ids(13, vocab);
  for (const Backend backend : kBackends) {
    INFO(to_string(backend));
    const TextModel<float> model(ck, backend);
    const Mat<float> plain = model.forward(ids);
    Capture<float> everything(SiteSet::all());
    CHECK(model.forward(ids, everything) == plain);  // bit-identical
    CHECK(everything.count(Site::attn_weights(0)) == 1);
    CHECK(everything.count(Site::mlp_act(2)) == 1);
    // Prefill then decode, observed and not.
    auto prefill_decode = [&](Observer<float>* obs) {
      KVCache<float> cache(ck.config().text, 13);
      Mat<float> stepped(13 - 7 + 1, vocab);
      stepped.topRows(1) =
          obs ? model.forward(std::span(ids).first(7), cache, *obs, LogitRows::last())
              : model.forward(std::span(ids).first(7), cache, LogitRows::last());
      for (int64_t t = 7; t < 13; ++t)
        stepped.row(t - 6) = obs ? model.forward(std::span(ids).subspan(t, 1), cache, *obs)
                                 : model.forward(std::span(ids).subspan(t, 1), cache);
      return stepped;
    };
    CHECK(prefill_decode(&everything) == prefill_decode(nullptr));
  }
  // The multimodal fixture: images attend bidirectionally inside the fast attention.
  const auto dir = test::fixture("mm-tiny-a");
  const auto mm = Checkpoint::open(dir);
  for (const Backend backend : kBackends) {
    INFO("mm " << to_string(backend));
    const Gemma3<float> model(mm, backend);
    const auto images = model.encode(std::vector<Image>{load_image(dir / "image0.png")});
    const auto mm_ids = test::read_ids(dir / "p0_input_ids.npy");
    Capture<float> everything(SiteSet::all());
    CHECK(model.forward(mm_ids, images, everything) == model.forward(mm_ids, images));
  }
}

TEST_CASE("every site of the fast path is within 2e-5 of the plain path", "[research][observe]") {
  for (const auto& path :
       {test::fixture("text-tiny-a"), test::fixture("text-tiny-b"), bf16_checkpoint()}) {
    const auto ck = Checkpoint::open(path);
    const auto ids = some_ids(11, ck.config().text.vocab_size, 1);
    const TextModel<float> fast(ck, Backend::Fast), plain(ck, Backend::Plain);
    const auto a = fast.run_with_cache(ids, SiteSet::all()),
               b = plain.run_with_cache(ids, SiteSet::all());
    REQUIRE(a.captured.all().size() == b.captured.all().size());
    // 3 once-per-call sites + 20 per layer.
    CHECK(a.captured.all().size() == std::size_t(3 + 20 * ck.config().text.num_hidden_layers));
    for (const auto& [site, values] : b.captured.all()) {
      INFO(path.filename().string() << " " << site.name());
      const Captured<float>& x = a.captured.at(site);
      REQUIRE(x.value.rows() == values[0].value.rows());
      REQUIRE(x.value.cols() == values[0].value.cols());
      // Relative to the site's scale: residual streams grow to ~1e2 in the bf16 checkpoint.
      const double scale = std::max(1.0, double(values[0].value.cwiseAbs().maxCoeff()));
      CHECK(test::max_abs_diff(x.value, values[0].value) <= 2e-5 * scale);
      CHECK(x.info.heads == values[0].info.heads);
      CHECK(x.info.key0 == values[0].info.key0);
    }
  }
}

TEST_CASE("attention probabilities: per head, with the key positions they cover",
          "[research][observe]") {
  const auto ck = Checkpoint::open(bf16_checkpoint());  // window 6: layers 0 and 1 local
  const TextModel<float> model(ck);
  const auto ids = some_ids(10, ck.config().text.vocab_size);
  const int64_t heads = ck.config().text.num_attention_heads;
  KVCache<float> cache(ck.config().text, 16);
  model.forward(std::span(ids).first(8), cache);
  Capture<float> cap({Site::attn_weights(0), Site::attn_weights(2)});
  model.forward(std::span(ids).subspan(8, 2), cache, cap);  // positions 8 and 9
  const auto& local = cap.at(Site::attn_weights(0));
  CHECK(local.info.heads == heads);
  CHECK(local.info.pos0 == 8);
  CHECK(local.info.key0 == 3);  // position 8 sees 3..8 in a window of 6
  CHECK(local.value.rows() == heads * 2);
  CHECK(local.value.cols() == 10 - 3);
  for (int64_t h = 0; h < heads; ++h) {
    CHECK(local.head(h).row(0)(6) == 0.0f);  // position 8 does not see position 9
    CHECK(local.head(h).row(1)(0) == 0.0f);  // position 9 no longer sees position 3
    CHECK(std::abs(local.head(h).row(1).sum() - 1.0f) < 1e-5f);
  }
  const auto& global = cap.at(Site::attn_weights(2));
  CHECK(global.info.key0 == 0);
  CHECK(global.value.cols() == 10);
  CHECK(cap.all().size() == 2);  // nothing else was kept
}

TEST_CASE("edits: fall back to the unfused form only where needed, and agree across backends",
          "[research][edit]") {
  const auto ck = Checkpoint::open(bf16_checkpoint());
  const auto ids = some_ids(9, ck.config().text.vocab_size);
  const TextModel<float> fast(ck, Backend::Fast), plain(ck, Backend::Plain);
  const Mat<float> base = fast.forward(ids);
  // Edits that leave the values as they are run the unfused code in that layer only: close to,
  // not necessarily equal to, the fused result.
  for (const Site site : {Site::attn_weights(1), Site::mlp_act(0), Site{SiteKind::MlpGate, 2}}) {
    INFO(site.name());
    Hooks<float> identity;
    identity.edit(site, [](MatRef<float>, const SiteInfo&) {});
    CHECK(test::max_abs_diff(fast.forward(ids, identity), base) <=
          2e-5 * base.cwiseAbs().maxCoeff());
  }
  // Real edits change the output the same way on both backends.
  const int64_t D = ck.config().text.head_dim;
  for (const Site site :
       {Site::attn_output(1), Site::attn_weights(0), Site::mlp_act(1), Site::residual(0)}) {
    INFO(site.name());
    Hooks<float> edit;
    edit.edit(site, [&](MatRef<float> v, const SiteInfo&) {
      if (site.kind == SiteKind::AttnWeights)
        v.topRows(v.rows() / 2) *= 0.5f;  // the first heads' probabilities halved
      else
        v.leftCols(D) *= -1.0f;
    });
    const Mat<float> a = fast.forward(ids, edit), b = plain.forward(ids, edit);
    CHECK(test::max_abs_diff(a, base) > 1e-3);
    CHECK(test::max_abs_diff(a, b) <= 2e-5 * b.cwiseAbs().maxCoeff());
  }
  // Hooks built in the call itself (a temporary).
  const Mat<float> zeroed =
      fast.forward(ids, Hooks<float>().edit(Site::residual(2),
                                            [](MatRef<float> x, const SiteInfo&) { x.setZero(); }));
  CHECK(zeroed == fast.forward(ids, Hooks<float>().edit(
                                        Site::residual(2),
                                        [](MatRef<float> x, const SiteInfo&) { x.setZero(); })));
  CHECK(test::max_abs_diff(zeroed, base) > 1e-3);
  // A hook that reads and one that edits the same site: the reader sees the value before the edit.
  Hooks<float> both;
  Mat<float> seen;
  both.read(Site::residual(1), [&](ConstMatRef<float> v, const SiteInfo&) { seen = v; });
  both.edit(Site::residual(1), [](MatRef<float> v, const SiteInfo&) { v.setZero(); });
  fast.forward(ids, both);
  CHECK(seen.cwiseAbs().maxCoeff() > 0);
}

TEST_CASE("capture keeps what is asked for, logits for the rows asked for", "[research][capture]") {
  const auto ck = Checkpoint::open(test::fixture("text-tiny-a"));
  const TextModel<float> model(ck);
  const auto ids = some_ids(12, ck.config().text.vocab_size);
  const auto n = int64_t(ids.size());
  const Mat<float> all = model.forward(ids);
  const auto run = model.run_with_cache(ids, {Site::residual(3)}, LogitRows::at({0, -1}));
  CHECK(run.captured.all().size() == 1);
  CHECK(run.captured[Site::residual(3)].rows() == n);
  REQUIRE(run.logits.rows() == 2);
  CHECK(test::max_abs_diff(run.logits.row(0), all.row(0)) <= 1e-5);
  CHECK(test::max_abs_diff(run.logits.row(1), all.row(n - 1)) <= 1e-5);
  CHECK(model.forward(ids, LogitRows::none()).rows() == 0);
  CHECK(test::max_abs_diff(model.forward(ids, LogitRows::last()), all.bottomRows(1)) <= 1e-5);
  CHECK_THROWS_WITH(model.forward(ids, LogitRows::at({n})), Catch::Contains("outside the call's"));
  CHECK_THROWS_WITH(run.captured.at(Site::residual(2)),
                    Catch::Contains("model.layers.2 was not captured"));
  // A capture over a prefill and decode steps stacks one row per position.
  KVCache<float> cache(ck.config().text, n);
  Capture<float> cap({Site::residual(3)});
  model.forward(std::span(ids).first(n - 2), cache, cap);
  model.forward(std::span(ids).subspan(n - 2, 1), cache, cap);
  model.forward(std::span(ids).subspan(n - 1, 1), cache, cap);
  CHECK(cap.count(Site::residual(3)) == 3);
  CHECK(cap.at(Site::residual(3), 2).info.pos0 == n - 1);
  CHECK(test::max_abs_diff(cap.rows(Site::residual(3)), run.captured[Site::residual(3)]) <= 1e-5);
}

TEST_CASE("stepper: stage by stage equals forward bit for bit, stages out of order are refused",
          "[research][stepper]") {
  const auto ck = Checkpoint::open(bf16_checkpoint());
  const TextModel<float> model(ck);
  const auto ids = some_ids(12, ck.config().text.vocab_size);
  Stepper<float> step(model, 12);
  step.embed(std::span(ids).first(8)).layers();
  const Mat<float> first = step.logits();
  step.embed(std::span(ids).subspan(8, 4));
  CHECK(step.position() == 8);
  step.layer(0);
  CHECK_THROWS_WITH(step.layer(2), Catch::Contains("layer 2 cannot run now: layer 1 is next"));
  CHECK_THROWS_WITH(step.embed(ids), Catch::Contains("has run 1 of 3 layers"));
  CHECK_THROWS_WITH(step.final_norm(), Catch::Contains("run every layer first"));
  step.layers();
  const Mat<float> second = step.logits();
  KVCache<float> cache(ck.config().text, 12);
  CHECK(first == model.forward(std::span(ids).first(8), cache));
  CHECK(second == model.forward(std::span(ids).subspan(8, 4), cache));
  CHECK(step.cache().length() == 12);

  // With images and an observer.
  const auto dir = test::fixture("mm-tiny-a");
  const auto mm = Checkpoint::open(dir);
  const Gemma3<float> mm_model(mm);
  const auto images = mm_model.encode(std::vector<Image>{load_image(dir / "image0.png")});
  const auto mm_ids = test::read_ids(dir / "p0_input_ids.npy");
  Capture<float> cap({Site::residual(1)});
  Stepper<float> mm_step(mm_model, int64_t(mm_ids.size()), &cap);
  mm_step.embed(mm_ids, images).layers();
  const auto expected = mm_model.run_with_cache(mm_ids, images, {Site::residual(1)});
  CHECK(mm_step.logits() == expected.logits);
  CHECK(cap[Site::residual(1)] == expected.captured[Site::residual(1)]);
  Stepper<float> text_only(model, 4);
  CHECK_THROWS_WITH(text_only.embed(std::vector<int32_t>{2}, images),
                    Catch::Contains("text model"));
}

TEST_CASE("scoring helpers: log_softmax, top_k, entropy", "[research][score]") {
  Eigen::RowVectorXf z(5);
  z << 1.0f, 3.0f, -2.0f, 3.0f, 0.5f;
  const Eigen::VectorXd lp = log_softmax(z);
  CHECK(std::abs(lp.array().exp().sum() - 1.0) < 1e-12);
  CHECK(std::abs(lp(1) - lp(3)) == 0.0);
  CHECK(std::abs((lp(1) - lp(0)) - 2.0) < 1e-6);
  const auto top = top_k(z, 3);
  REQUIRE(top.size() == 3);
  CHECK(top[0].first == 1);  // ties: the lower id first
  CHECK(top[1].first == 3);
  CHECK(top[2].first == 0);
  CHECK(std::abs(entropy(Eigen::RowVectorXf::Zero(8)) - std::log(8.0)) < 1e-12);
  CHECK(entropy(Eigen::RowVectorXf::Constant(1, 4.0f)) == 0.0);
}

TEST_CASE("score: per-token log-probs of a continuation, and sliding-window perplexity",
          "[research][score]") {
  const auto dir = test::scratch_dir("research_score");
  synthesize_checkpoint(preset("tiny"), dir, {.seed = 9});  // the real vocabulary
  const auto ck = Checkpoint::open(dir);
  const TextModel<float> model(ck);
  const Tokenizer& tok = tokenizer();

  const auto r = score(model, tok, "The capital of France is", " Paris, of course.", true, 3);
  CHECK_FALSE(r.boundary_merged);
  CHECK(r.ids == tok.encode("The capital of France is Paris, of course.", {.add_bos = true}));
  REQUIRE(r.tokens.size() == r.ids.size() - std::size_t(r.first));
  const Mat<float> logits = model.forward(r.ids);
  double sum = 0;
  for (const auto& s : r.tokens) {
    const Eigen::VectorXd lp = log_softmax(logits.row(s.position - 1));
    CHECK(std::abs(s.logprob - lp(s.id)) <= 1e-4);
    CHECK(s.top.size() == 3);
    CHECK((s.rank == 0) == (s.top[0].first == s.id));
    sum += s.logprob;
  }
  CHECK(std::abs(r.logprob - sum) < 1e-9);
  // A prompt ending in a space: the tokenizer joins it to the next word, and that token is scored.
  const auto merged = score(model, tok, "The capital of France is ", "Paris", true);
  CHECK(merged.boundary_merged);
  CHECK(merged.ids == tok.encode("The capital of France is Paris", {.add_bos = true}));
  CHECK(merged.tokens.front().id == merged.ids[std::size_t(merged.first)]);
  CHECK_THROWS_WITH(score(model, tok, "a", "", true), Catch::Contains("continuation"));

  // Perplexity: one window gives exactly the scores of one pass; overlapping windows score every
  // token once.
  std::vector<int32_t> ids = tok.encode(
      "One two three four five six seven eight nine ten eleven twelve.", {.add_bos = true});
  const auto n = int64_t(ids.size());
  double nll = 0;
  for (const auto& s : score_ids(model, ids, 1)) nll -= s.logprob;
  const auto one = perplexity(model, ids, {.context = n, .stride = n});
  CHECK(one.tokens == n - 1);
  CHECK(one.windows == 1);
  CHECK(std::abs(one.nll - nll) < 1e-6 * nll);
  int64_t calls = 0, total_seen = 0;
  const auto slid = perplexity(
      model, ids, {.context = 8, .stride = 4, .bos = 2, .progress = [&](int64_t, int64_t total) {
                     ++calls;
                     total_seen = total;
                   }});
  CHECK(total_seen == n - 1);
  CHECK(slid.tokens == n - 1);
  CHECK(calls == slid.windows);
  CHECK(slid.windows == (n - 8 + 3) / 4 + 1);
  CHECK(std::isfinite(slid.perplexity()));
  CHECK_THROWS_WITH(perplexity(model, ids, {.context = 8, .stride = 9}), Catch::Contains("stride"));
}

TEST_CASE("generation: per-token log-probs in the callback and the result, observer, text model",
          "[research][generate]") {
  const auto dir = test::scratch_dir("research_generate");
  synthesize_checkpoint(preset("tiny"), dir, {.seed = 4});
  const auto ck = Checkpoint::open(dir);
  const TextModel<float> model(ck);
  const Tokenizer& tok = tokenizer();
  Session<float> session(model, tok, 64, {.temperature = 0, .top_logprobs = 2});
  Capture<float> cap({Site::residual(0)});
  session.set_observer(&cap);
  const auto prompt = tok.encode("Hello there", {.add_bos = true});
  std::vector<SampleResult> streamed;
  const auto r =
      session.generate(prompt, {.max_new_tokens = 5, .on_token = [&](const SampleResult& s) {
                                  streamed.push_back(s);
                                  return true;
                                }});
  REQUIRE(r.tokens.size() == streamed.size());
  REQUIRE(r.tokens.size() >= r.ids.size());
  // Greedy: each token is the argmax, and its log-prob is log-softmax of the full pass's logits.
  std::vector<int32_t> all = prompt;
  all.insert(all.end(), r.ids.begin(), r.ids.end());
  const Mat<float> logits = model.forward(all);
  for (std::size_t i = 0; i < r.ids.size(); ++i) {
    const Eigen::VectorXd lp = log_softmax(logits.row(Eigen::Index(prompt.size() + i - 1)));
    CHECK(r.tokens[i].id == r.ids[i]);
    CHECK(streamed[i].id == r.ids[i]);
    CHECK(std::abs(r.tokens[i].logprob - lp(r.ids[i])) <= 1e-3);
    CHECK(r.tokens[i].top.size() == 2);
    CHECK(r.tokens[i].top[0].first == r.ids[i]);
  }
  // The observer saw the prefill and every decode step that ran.
  CHECK(cap.rows(Site::residual(0)).rows() == int64_t(session.tokens().size()));
  // A callback that says stop.
  session.reset();
  const auto stopped = session.generate(
      prompt, {.max_new_tokens = 5, .on_token = [](const SampleResult&) { return false; }});
  CHECK(stopped.reason == StopReason::Callback);
  CHECK(stopped.tokens.size() == 1);
  CHECK_THROWS_WITH(session.prefill(prompt, {Mat<float>::Zero(1, 4)}),
                    Catch::Contains("takes no images"));
}

TEST_CASE("long prompts run in chunks: close to one pass, captured whole, images kept whole",
          "[research][chunks]") {
  const auto ck = Checkpoint::open(bf16_checkpoint());
  TextModel<float> model(ck);
  const auto ids = some_ids(23, ck.config().text.vocab_size);
  const auto whole = model.run_with_cache(ids, {Site::residual(2), Site::attn_weights(0)});
  model.set_prefill_chunk(5);
  const auto chunked = model.run_with_cache(ids, {Site::residual(2), Site::attn_weights(0)});
  CHECK(test::max_abs_diff(chunked.logits, whole.logits) <=
        1e-4 * whole.logits.cwiseAbs().maxCoeff());
  CHECK(chunked.captured.count(Site::residual(2)) == 1);  // the chunks stitched into one matrix
  CHECK(test::max_abs_diff(chunked.captured[Site::residual(2)],
                           whole.captured[Site::residual(2)]) <= 1e-3);
  REQUIRE(chunked.captured.count(Site::attn_weights(0)) == 5);  // 23 tokens in chunks of 5
  CHECK(chunked.captured.at(Site::attn_weights(0), 4).info.pos0 == 20);
  CHECK(chunked.captured.at(Site::attn_weights(0), 4).info.key0 == 15);  // window 6
  CHECK_THROWS_WITH(model.set_prefill_chunk(0), Catch::Contains("prefill_chunk"));

  // An image is never split across chunks: its tokens see each other whatever the chunk size.
  const auto dir = test::fixture("mm-tiny-a");
  const auto mm = Checkpoint::open(dir);
  Gemma3<float> mm_model(mm);
  const auto images = mm_model.encode(std::vector<Image>{load_image(dir / "image0.png")});
  const auto mm_ids = test::read_ids(dir / "p0_input_ids.npy");
  const Mat<float> expected = read_npy(dir / "p0_logits.npy").matrix<float>();
  for (const int64_t chunk : {3, 7}) {
    INFO("chunk " << chunk);
    mm_model.set_prefill_chunk(chunk);
    CHECK(test::max_abs_diff(mm_model.forward(mm_ids, images), expected) <= 1e-4);
  }
}

namespace {
// This process's resident memory (kB): now, or its peak since reset_peak_rss().
int64_t rss_kib(const char* field) {
  std::ifstream status("/proc/self/status");
  std::string key;
  int64_t kib = -1;
  while (status >> key) {
    if (key == field) {
      status >> kib;
      break;
    }
    status.ignore(1 << 20, '\n');
  }
  return kib;
}
bool reset_peak_rss() {  // Linux >= 4.0: writing 5 to clear_refs resets VmHWM to VmRSS
  std::ofstream f("/proc/self/clear_refs");
  f << "5";
  f.flush();
  return bool(f);
}
}  // namespace

TEST_CASE("memory follows what is captured: one residual over a 32K-token prompt",
          "[research][memory]") {
  // The tiny shapes with the window of 16 and one global layer in six: the KV cache, the captured
  // residual [T, hidden] and one chunk's activations may grow the process; nothing else of size T:
  // not the decoder input (embedded a chunk at a time), not the MLP's activations over the whole
  // prompt (T x intermediate x 4 bytes, three times). For the 1B at T = 32768 that is: weights
  // 2.00 GB (bf16) + KV cache 0.29 GB, and beyond them the residual 0.15 GB + a chunk ~0.06 GB,
  // 9% of weights + KV (docs/research-api.md).
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  WARN("under a sanitizer the resident memory measures its shadow memory and quarantine: skipped");
  return;
#endif
  const auto dir = test::scratch_dir("research_memory");
  const ModelConfig cfg = preset("tiny");
  synthesize_checkpoint(cfg, dir, {.seed = 2, .dtype = DType::F32});
  const auto ck = Checkpoint::open(dir);
  TextModel<float> model(ck);
  const int64_t T = cfg.text.max_position_embeddings, H = cfg.text.hidden_size,
                I = cfg.text.intermediate_size;
  const auto ids = some_ids(T, cfg.text.vocab_size);
  model.forward(std::span(ids).first(600),
                LogitRows::last());  // weights and thread stacks resident
  if (!reset_peak_rss() || rss_kib("VmHWM:") < 0) {
    WARN("cannot reset the peak RSS here (/proc/self/clear_refs): skipped");
    return;
  }
  const auto grown_mib = [&](int64_t chunk) {
    model.set_prefill_chunk(chunk);
    reset_peak_rss();
    const int64_t before = rss_kib("VmRSS:");
    const auto run = model.run_with_cache(ids, {Site::residual(3)}, LogitRows::last());
    CHECK(run.captured[Site::residual(3)].rows() == T);
    return double(rss_kib("VmHWM:") - before) / 1024;
  };
  const double mib = 1 << 20;
  const double kv = double(KVCache<float>::bytes_needed(cfg.text, T)) / mib,
               captured = double(T * H * 4) / mib;
  const double chunk = double(TextModel<float>::kDefaultPrefillChunk * (3 * I + 8 * H) * 4) / mib;
  const double bound = kv + captured + chunk + 8;  // + 8 MiB: allocator and page slack
  const double chunked = grown_mib(TextModel<float>::kDefaultPrefillChunk);
  INFO("grown " << chunked << " MiB; KV " << kv << ", captured " << captured << ", one chunk "
                << chunk);
  CHECK(chunked <= bound);
  // The same prompt in one pass: the check above would fail (this is what it guards against).
  CHECK(grown_mib(T) > bound);
}

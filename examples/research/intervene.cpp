// intervene — edit an activation in the middle of the forward pass and measure what the edit does
// to the prediction. A hook declared as an edit receives the live buffer of its site (a writable
// Eigen::Ref), so writing to it changes everything downstream; the model code is untouched. Two
// classic edits:
//
//   1. ablate a head: zero head H's slice of layer L's attention output, before o_proj mixes heads;
//   2. steer: add alpha * (mean residual of "Love" prompt - mean residual of "Hate" prompt) to the
//      residual stream after layer L at every position (activation addition, Turner et al. 2023,
//      arXiv:2308.10248).
//
//   intervene MODEL_DIR [LAYER] [HEAD] [ALPHA]
#include <cmath>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <string>
#include <vector>

#include <gemma3/gemma3.hpp>

namespace {

using gemma3::Hooks;
using gemma3::Mat;
using gemma3::MatRef;
using gemma3::Site;
using gemma3::SiteInfo;

// Last-position logits [1, vocab] of `ids`, run with `hooks` (none: the plain forward pass).
// Observing never changes the numbers, so "before" and "after" differ by the edit alone.
Mat<float> last_logits(const gemma3::TextModel<float>& model, const std::vector<int32_t>& ids,
                       Hooks<float>* hooks = nullptr) {
  const auto last = gemma3::LogitRows::last();
  return hooks ? model.forward(ids, *hooks, last) : model.forward(ids, last);
}

// Mean over the tokens after <bos> of the residual stream after layer `layer` [1, hidden].
Mat<float> mean_residual(const gemma3::TextModel<float>& model, const std::vector<int32_t>& ids,
                         int32_t layer) {
  const auto run = model.run_with_cache(ids, {Site::residual(layer)}, gemma3::LogitRows::none());
  const Mat<float>& x = run.captured[Site::residual(layer)];
  return x.bottomRows(x.rows() - 1).colwise().mean();
}

// How far `after` moved from `before`: max |change|, KL(before || after), both top tokens.
float report(const char* what, const Mat<float>& before, const Mat<float>& after,
             const gemma3::Tokenizer& tok) {
  auto softmax = [](const Mat<float>& z) {
    Eigen::ArrayXd p = (z.row(0).cast<double>().array() - double(z.maxCoeff())).exp().transpose();
    return Eigen::ArrayXd(p / p.sum());
  };
  const Eigen::ArrayXd p = softmax(before), q = softmax(after);
  const double kl = (p * (p.log() - q.log())).sum();
  Eigen::Index top_before = 0, top_after = 0;
  before.row(0).maxCoeff(&top_before);
  after.row(0).maxCoeff(&top_after);
  const float change = (after - before).cwiseAbs().maxCoeff();
  std::printf("%-38s max|dlogit| %8.4f   KL %.3e   top-1 '%s' -> '%s'\n", what, change, kl,
              tok.decode({int32_t(top_before)}).c_str(), tok.decode({int32_t(top_after)}).c_str());
  return change;
}

}  // namespace

int main(int argc, char** argv) try {
  if (argc < 2) {
    std::fprintf(stderr, "usage: intervene MODEL_DIR [LAYER] [HEAD] [ALPHA]\n");
    return 2;
  }
  const std::filesystem::path dir = argv[1];
  const auto checkpoint = gemma3::Checkpoint::open(dir);
  const gemma3::TextModel<float> model(checkpoint);
  const gemma3::TextConfig& cfg = model.config();
  const gemma3::Tokenizer tokenizer(dir / "tokenizer.model");
  const int32_t layer = argc > 2 ? std::stoi(argv[2]) : int32_t(cfg.num_hidden_layers / 2);
  const int64_t head = argc > 3 ? std::stol(argv[3]) : 0;
  const float alpha = argc > 4 ? std::stof(argv[4]) : 4.0f;
  if (layer < 0 || layer >= cfg.num_hidden_layers || head < 0 || head >= cfg.num_attention_heads)
    throw gemma3::InvalidArgument("layer/head", "out of range for this model");

  const auto ids = tokenizer.encode("I think that you are", {.add_bos = true});
  const Mat<float> before = last_logits(model, ids);
  std::printf("layer %ld (%s), head %ld of %ld, alpha %g\n\n", long(layer),
              gemma3::layer_kind(cfg, layer) == gemma3::LayerKind::Local ? "local" : "global",
              long(head), long(cfg.num_attention_heads), alpha);

  // 1. Head ablation. attn_output is [T, heads * head_dim], head-major: head h owns columns
  //    [h * head_dim, (h + 1) * head_dim).
  Hooks<float> ablate;
  ablate.edit(Site::attn_output(layer), [&](MatRef<float> value, const SiteInfo&) {
    value.middleCols(head * cfg.head_dim, cfg.head_dim).setZero();
  });
  const Mat<float> ablated = last_logits(model, ids, &ablate);
  const float ablation =
      report(("zero head " + std::to_string(head)).c_str(), before, ablated, tokenizer);

  // 2. Steering: the direction between two contrasting prompts, added after the same layer.
  const Mat<float> steer =
      alpha * (mean_residual(model, tokenizer.encode("Love", {.add_bos = true}), layer) -
               mean_residual(model, tokenizer.encode("Hate", {.add_bos = true}), layer));
  Hooks<float> add_steer;
  add_steer.edit(Site::residual(layer),
                 [&](MatRef<float> x, const SiteInfo&) { x.rowwise() += steer.row(0); });
  const Mat<float> steered = last_logits(model, ids, &add_steer);
  const float steering = report("add alpha*(Love - Hate) to residual", before, steered, tokenizer);

  // A hook that edits nothing changes nothing; an edit that changes nothing is a bug in the hook.
  return ablation > 0 && steering > 0 ? 0 : 1;
} catch (const std::exception& e) {
  std::fprintf(stderr, "intervene: %s\n", e.what());
  return 1;
}

// intervene — edit an activation in the middle of the forward pass and measure what the edit does
// to the prediction. An observer receives the live buffer (a writable Eigen::Ref), so writing to it
// changes everything downstream; the model code is untouched. Two classic edits:
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
#include <functional>
#include <string>
#include <vector>

#include <gemma3/gemma3.hpp>

namespace {

using gemma3::Mat;
using gemma3::MatRef;
using Edit = std::function<void(const std::string& name, MatRef<float> value)>;

// Last-position logits [1, vocab] of `ids`, with `edit` shown every named intermediate on the way.
// Even the unedited baseline runs through an observer: an enabled observer selects the reference
// attention path, so "before" and "after" differ by the edit and nothing else.
Mat<float> last_logits(const gemma3::TextModel<float>& model, const std::vector<int32_t>& ids,
                       const Edit& edit) {
  gemma3::FunctionObserver<float> observer(edit);
  gemma3::KVCache<float> cache(model.config(), static_cast<int64_t>(ids.size()));
  return model.forward(ids, cache, observer, /*all_logits=*/false);
}

// Mean over the tokens after <bos> of the residual stream after layer `layer` [1, hidden].
Mat<float> mean_residual(const gemma3::TextModel<float>& model, const std::vector<int32_t>& ids,
                         int64_t layer) {
  const std::string target = "model.layers." + std::to_string(layer);
  Mat<float> mean;
  last_logits(model, ids, [&](const std::string& name, MatRef<float> x) {
    if (name == target) mean = x.bottomRows(x.rows() - 1).colwise().mean();
  });
  return mean;
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
  const int64_t layer = argc > 2 ? std::stol(argv[2]) : cfg.num_hidden_layers / 2;
  const int64_t head = argc > 3 ? std::stol(argv[3]) : 0;
  const float alpha = argc > 4 ? std::stof(argv[4]) : 4.0f;
  if (layer < 0 || layer >= cfg.num_hidden_layers || head < 0 || head >= cfg.num_attention_heads)
    throw gemma3::InvalidArgument("layer/head", "out of range for this model");

  const auto ids = tokenizer.encode("I think that you are", {.add_bos = true});
  const Mat<float> before = last_logits(model, ids, [](const std::string&, MatRef<float>) {});
  std::printf("layer %ld (%s), head %ld of %ld, alpha %g\n\n", long(layer),
              gemma3::layer_kind(cfg, layer) == gemma3::LayerKind::Local ? "local" : "global",
              long(head), long(cfg.num_attention_heads), alpha);

  // 1. Head ablation. attn_output is [T, heads * head_dim], head-major: head h owns columns
  //    [h * head_dim, (h + 1) * head_dim).
  const std::string attn_output =
      "model.layers." + std::to_string(layer) + ".self_attn.attn_output";
  const Mat<float> ablated =
      last_logits(model, ids, [&](const std::string& name, MatRef<float> value) {
        if (name == attn_output) value.middleCols(head * cfg.head_dim, cfg.head_dim).setZero();
      });
  const float ablation =
      report(("zero head " + std::to_string(head)).c_str(), before, ablated, tokenizer);

  // 2. Steering: the direction between two contrasting prompts, added after the same layer.
  const Mat<float> steer =
      alpha * (mean_residual(model, tokenizer.encode("Love", {.add_bos = true}), layer) -
               mean_residual(model, tokenizer.encode("Hate", {.add_bos = true}), layer));
  const std::string residual = "model.layers." + std::to_string(layer);
  const Mat<float> steered = last_logits(model, ids, [&](const std::string& name, MatRef<float> x) {
    if (name == residual) x.rowwise() += steer.row(0);
  });
  const float steering = report("add alpha*(Love - Hate) to residual", before, steered, tokenizer);

  // A hook that edits nothing changes nothing; an edit that changes nothing is a bug in the hook.
  return ablation > 0 && steering > 0 ? 0 : 1;
} catch (const std::exception& e) {
  std::fprintf(stderr, "intervene: %s\n", e.what());
  return 1;
}

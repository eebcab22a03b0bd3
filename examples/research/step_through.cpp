// step_through — the text decoder one layer at a time with a Stepper, printing how the residual
// stream grows. The stepper owns the position, the KV cache and the observer, so this program only
// names the stages: the one to run under a debugger (docs/debugging.md: break in a layer, print the
// Eigen matrices).
//
//   step_through MODEL_DIR [PROMPT]
//
// At the end it checks that stepping gives exactly TextModel::forward's logits: the same layers,
// kernels and summation order, so the difference must be 0, not merely small.
#include <cmath>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <string>
#include <vector>

#include <gemma3/gemma3.hpp>

namespace {

// One line per stage: the size of the residual stream x [n, hidden] at the last token and overall.
void print_stage(const std::string& stage, const gemma3::Mat<float>& x) {
  const double rms = std::sqrt(x.squaredNorm() / double(x.size()));
  std::printf("%-18s |x_last| %9.3f   rms %8.4f   max|x| %8.3f\n", stage.c_str(),
              x.bottomRows(1).norm(), rms, x.cwiseAbs().maxCoeff());
}

}  // namespace

int main(int argc, char** argv) try {
  if (argc < 2) {
    std::fprintf(stderr, "usage: step_through MODEL_DIR [PROMPT]\n");
    return 2;
  }
  const std::filesystem::path dir = argv[1];
  const std::string prompt = argc > 2 ? argv[2] : "The capital of France is";

  const auto checkpoint = gemma3::Checkpoint::open(dir);
  const gemma3::TextModel<float> model(checkpoint);
  const gemma3::TextConfig& cfg = model.config();
  const gemma3::Tokenizer tokenizer(dir / "tokenizer.model");
  const std::vector<int32_t> ids = tokenizer.encode(prompt, {.add_bos = true});
  const auto n = static_cast<int64_t>(ids.size());
  std::printf("%ld tokens, %ld layers, hidden %ld\n", long(n), long(cfg.num_hidden_layers),
              long(cfg.hidden_size));

  gemma3::Stepper<float> step(model, /*context=*/n);  // owns the cache and the position
  step.embed(ids);  // the residual stream x [n, hidden]: E[id] * sqrt(hidden)
  print_stage("embed", step.residual());
  for (int64_t i = 0; i < step.num_layers(); ++i) {
    // x += post_norm(attention(pre_norm(x))); x += post_norm(mlp(pre_norm(x))), in place.
    step.layer(i);
    const char* kind = model.layers()[i].kind() == gemma3::LayerKind::Local ? "local" : "global";
    print_stage("layer " + std::to_string(i) + " " + kind, step.residual());
  }
  print_stage("final norm", step.final_norm());     // [n, hidden]
  const gemma3::Mat<float> logits = step.logits();  // [n, vocab]

  // The same computation in one call.
  const gemma3::Mat<float> expected = model.forward(ids);
  const float diff = (logits - expected).cwiseAbs().maxCoeff();
  Eigen::Index next = 0;
  logits.row(n - 1).maxCoeff(&next);  // greedy prediction after the last token
  std::printf("next token: %ld '%s' (logit %.4f)\n", long(next),
              tokenizer.piece(int32_t(next)).c_str(), logits(n - 1, next));
  std::printf("max |stepped - TextModel::forward| = %g over %ld x %ld logits\n", diff,
              long(logits.rows()), long(logits.cols()));
  return diff == 0.0f ? 0 : 1;
} catch (const std::exception& e) {
  std::fprintf(stderr, "step_through: %s\n", e.what());
  return 1;
}

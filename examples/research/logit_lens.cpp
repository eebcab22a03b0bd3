// logit_lens — what would the model predict if it stopped after layer N? Every layer's residual
// stream is read through the final norm and the LM head, as if it were the last layer (the "logit
// lens", nostalgebraist 2020), and the top tokens at the last position are printed layer by layer.
//
//   logit_lens MODEL_DIR [PROMPT] [TOP_K]
//
// The residual stream is captured at its sites (run_with_cache), so the model code is untouched.
// The lens of the last layer is, by construction, the model's own output: checked at the end.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include <gemma3/gemma3.hpp>

namespace {

// A token as text, with newlines made visible.
std::string show(const gemma3::Tokenizer& tok, int32_t id) {
  std::string out;
  for (char c : tok.decode({id})) out += c == '\n' ? std::string("\\n") : std::string(1, c);
  return "'" + out + "'";
}

}  // namespace

int main(int argc, char** argv) try {
  if (argc < 2) {
    std::fprintf(stderr, "usage: logit_lens MODEL_DIR [PROMPT] [TOP_K]\n");
    return 2;
  }
  const std::filesystem::path dir = argv[1];
  const std::string prompt = argc > 2 ? argv[2] : "The Eiffel Tower is in the city of";
  const int top_k = argc > 3 ? std::stoi(argv[3]) : 5;

  const auto checkpoint = gemma3::Checkpoint::open(dir);
  const gemma3::TextModel<float> model(checkpoint);
  const gemma3::Tokenizer tokenizer(dir / "tokenizer.model");
  const std::vector<int32_t> ids = tokenizer.encode(prompt, {.add_bos = true});

  // The residual stream after the embedding, then after every layer; the last position's logits
  // [1, vocab] only, computed as the lens is.
  const auto [logits, captured] = model.run_with_cache(
      ids,
      gemma3::SiteSet{gemma3::Site::inputs_embeds()}.insert_every_layer(gemma3::SiteKind::Residual),
      gemma3::LogitRows::last());
  std::vector<std::pair<std::string, gemma3::Mat<float>>> stream{
      {"embeddings", captured[gemma3::Site::inputs_embeds()].bottomRows(1)}};
  for (int32_t l = 0; l < model.config().num_hidden_layers; ++l)
    stream.emplace_back("layer " + std::to_string(l),
                        captured[gemma3::Site::residual(l)].bottomRows(1));

  Eigen::Index final_top = 0;
  logits.row(0).maxCoeff(&final_top);
  std::printf("prompt: %zu tokens; the model's next token is %s\n\n", ids.size(),
              show(tokenizer, int32_t(final_top)).c_str());
  std::printf("%-16s %-6s  top %d at the last position (probability)\n", "residual after", "rank",
              top_k);

  gemma3::Mat<float> lens;
  for (const auto& [name, x] : stream) {
    lens =
        model.lm_head(model.final_norm(x));  // [1, vocab]: this layer read as if it were the last
    // Softmax in double: 262k terms.
    const double max = lens.maxCoeff();
    std::vector<double> p(std::size_t(lens.size()));
    double sum = 0;
    for (Eigen::Index v = 0; v < lens.size(); ++v) sum += p[v] = std::exp(double(lens(0, v)) - max);
    std::vector<int32_t> order(p.size());
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + top_k, order.end(),
                      [&](int32_t a, int32_t b) { return p[a] > p[b]; });
    // Where the model's final answer ranks under this layer's lens (1 = already on top).
    const auto rank =
        1 + std::count_if(p.begin(), p.end(), [&](double q) { return q > p[final_top]; });
    std::printf("%-16s %-6ld ", name.c_str(), long(rank));
    for (int i = 0; i < top_k; ++i)
      std::printf(" %s %.3f", show(tokenizer, order[i]).c_str(), p[order[i]] / sum);
    std::printf("\n");
  }

  // The last layer's lens is the model's output: same norm, same head, same numbers.
  const float diff = (lens - logits).cwiseAbs().maxCoeff();
  std::printf("\nmax |lens(last layer) - model logits| = %g\n", diff);
  return diff == 0.0f ? 0 : 1;
} catch (const std::exception& e) {
  std::fprintf(stderr, "logit_lens: %s\n", e.what());
  return 1;
}

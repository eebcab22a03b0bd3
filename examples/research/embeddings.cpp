// embeddings — one vector per sentence from the decoder's hidden states, and the cosine similarity
// of every pair.
//
//   embeddings MODEL_DIR [SENTENCE ...]
//
// Pooling: the MEAN over the sentence's tokens of the final hidden state (after the final norm,
// what the LM head reads), leaving out <bos>. Why:
//   * mean, not the last token: in a causal decoder the last token's state is specialised to
//     predict the next token; the mean spreads over every token of the sentence, the usual
//     baseline for decoder-only models (EmbeddingGemma, the Gemma 3 model trained for embeddings,
//     mean-pools too, over a bidirectional variant that this library does not run);
//   * without <bos>: its state is the same for every sentence (it sees only itself) and has a large
//     norm, so including it pulls every pair of sentences towards similarity 1.
// Gemma 3 was not trained for this: expect a rough signal, not a sentence-embedding model.
#include <cstdio>
#include <exception>
#include <filesystem>
#include <string>
#include <vector>

#include <gemma3/gemma3.hpp>

int main(int argc, char** argv) try {
  if (argc < 2) {
    std::fprintf(stderr, "usage: embeddings MODEL_DIR [SENTENCE ...]\n");
    return 2;
  }
  const std::filesystem::path dir = argv[1];
  std::vector<std::string> sentences(argv + 2, argv + argc);
  if (sentences.empty())
    sentences = {"The cat sat on the mat.", "A cat was sitting on the rug.",
                 "Stock markets fell sharply today.", "The cat sat on the mat."};

  const auto checkpoint = gemma3::Checkpoint::open(dir);
  const gemma3::TextModel<float> model(checkpoint);
  const gemma3::Tokenizer tokenizer(dir / "tokenizer.model");
  const int64_t hidden = model.config().hidden_size;

  // The "batch": one forward pass per sentence (no padding needed); pooled [sentences, hidden].
  gemma3::Mat<float> pooled(static_cast<Eigen::Index>(sentences.size()), hidden);
  for (std::size_t s = 0; s < sentences.size(); ++s) {
    const std::vector<int32_t> ids = tokenizer.encode(sentences[s], {.add_bos = true});
    const auto n = static_cast<int64_t>(ids.size());
    if (n < 2) throw gemma3::InvalidArgument("sentence", "empty sentence " + std::to_string(s));
    // The final norm's output [n, hidden]; no logits: the LM head is not run at all.
    const auto run =
        model.run_with_cache(ids, {gemma3::Site::final_norm()}, gemma3::LogitRows::none());
    const gemma3::Mat<float>& h = run.captured[gemma3::Site::final_norm()];
    pooled.row(s) = h.bottomRows(n - 1).colwise().mean();  // mean over tokens 1..n-1
    std::printf("[%zu] %2ld tokens  %s\n", s, long(n - 1), sentences[s].c_str());
  }

  // Cosine similarity: normalise each row, then all dot products at once.
  const gemma3::Mat<float> unit = pooled.rowwise().normalized();
  const gemma3::Mat<float> cosine = unit * unit.transpose();  // [sentences, sentences]
  std::printf("\ncosine similarity (mean-pooled final hidden states, <bos> excluded)\n     ");
  for (Eigen::Index j = 0; j < cosine.cols(); ++j) std::printf("  [%ld]  ", long(j));
  std::printf("\n");
  for (Eigen::Index i = 0; i < cosine.rows(); ++i) {
    std::printf("[%ld] ", long(i));
    for (Eigen::Index j = 0; j < cosine.cols(); ++j) std::printf(" %+.4f", cosine(i, j));
    std::printf("\n");
  }
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "embeddings: %s\n", e.what());
  return 1;
}

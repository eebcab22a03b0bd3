// hello — load a checkpoint, put a question in Gemma 3's chat format, stream the answer.
//
//   hello MODEL_DIR [QUESTION]
//
// MODEL_DIR is a Hugging Face checkpoint directory (config.json, model.safetensors) with its
// tokenizer.model beside it, such as `gemma3 synth --preset tiny --out DIR --tokenizer TOK` makes.
#include <cstdio>
#include <exception>
#include <filesystem>
#include <string>

#include <gemma3/gemma3.hpp>

int main(int argc, char** argv) try {
  if (argc < 2) {
    std::fprintf(stderr, "usage: hello MODEL_DIR [QUESTION]\n");
    return 2;
  }
  const std::filesystem::path dir = argv[1];
  const std::string question = argc > 2 ? argv[2] : "Why is the sky blue?";

  const auto checkpoint = gemma3::Checkpoint::open(dir);  // maps the weights: keep it alive
  const gemma3::Gemma3<float> model(checkpoint);          // views into the checkpoint
  const gemma3::Tokenizer tokenizer(dir / "tokenizer.model");

  // Greedy decoding, so that the same checkpoint always gives the same answer.
  gemma3::Session<float> session(model, tokenizer, /*context=*/512, {.temperature = 0});
  gemma3::Conversation chat;
  chat.user(
      question);  // "<bos><start_of_turn>user\n{question}<end_of_turn>\n<start_of_turn>model\n"

  gemma3::GenerateOptions options;
  options.max_new_tokens = 24;  // also stops at <end_of_turn> or <eos>

  std::printf("> %s\n", question.c_str());
  const auto result =
      session.generate(chat.render_ids(tokenizer), options, [](const std::string& piece) {
        std::fputs(piece.c_str(), stdout);  // streamed as decoded
        std::fflush(stdout);
        return true;  // keep going
      });
  std::printf("\n[%zu tokens, stopped by %s, %.2f s]\n", result.ids.size(),
              gemma3::to_string(result.reason), result.prefill_seconds + result.decode_seconds);
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "hello: %s\n", e.what());
  return 1;
}

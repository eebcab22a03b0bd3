// Loads a checkpoint through the public API and runs one forward pass: proof that the consuming
// project found the headers and every dependency.
#include <cstdio>
#include <vector>

#include <gemma3/gemma3.hpp>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: consumer CHECKPOINT_DIR\n");
    return 2;
  }
  const auto ck = gemma3::Checkpoint::open(argv[1]);
  const gemma3::TextModel<float> model(ck);
  const std::vector<int32_t> ids{2, 105, 107};
  const auto logits = model.forward(ids);
  std::printf("%zu tensors, logits [%ld, %ld]\n", ck.store().tensors().size(), long(logits.rows()),
              long(logits.cols()));
  return logits.allFinite() ? 0 : 1;
}

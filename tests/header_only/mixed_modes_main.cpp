// mixed_modes REFERENCE_DIR — one program, two modes: this translation unit is built in the
// compiled mode (it links gemma3::kernels), header_only_model.cpp in the header-only mode. The
// modes' inline namespaces (gemma3::compiled, gemma3::header_only) keep their definitions apart,
// so both run the model correctly side by side: their logits agree with each other and with the
// fixture.
#include <cmath>
#include <cstdio>
#include <filesystem>

#include <gemma3/gemma3.hpp>

#include "header_only_model.hpp"

#if !GEMMA3_COMPILED_MODELS
#error "mixed_modes_main.cpp must be built in the compiled mode"
#endif

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: mixed_modes REFERENCE_DIR\n");
    return 2;
  }
  const std::filesystem::path dir = std::filesystem::path(argv[1]) / "text-tiny-a";
  const auto ids = gemma3::read_npy(dir / "p2_input_ids.npy").values<int32_t>();
  const gemma3::Mat<float> expected = gemma3::read_npy(dir / "p2_logits.npy").matrix<float>();
  const auto ck = gemma3::Checkpoint::open(dir);
  const gemma3::TextModel<float> model(ck);
  const gemma3::Mat<float> compiled = model.forward(ids);
  const std::vector<float> header_only = consumer::header_only_logits(dir.string(), ids, "fast");
  double vs_fixture = 0, between = 0;
  for (Eigen::Index i = 0; i < compiled.size(); ++i) {
    vs_fixture = std::max(vs_fixture, double(std::abs(compiled.data()[i] - expected.data()[i])));
    between = std::max(between, double(std::abs(compiled.data()[i] - header_only[std::size_t(i)])));
  }
  std::printf("compiled mode (%s) vs fixture %.2e; header-only (%s) vs compiled %.2e\n",
              gemma3::kernels::active_isa(), vs_fixture, consumer::header_only_isa().c_str(),
              between);
  return header_only.size() == std::size_t(compiled.size()) && vs_fixture <= 1e-4 && between <= 1e-5
             ? 0
             : 1;
}

// A translation unit of a program that uses gemma3 header-only: built with only the include
// directory (the CMake target gemma3::gemma3, no gemma3::kernels) and -march=native, so the SIMD
// kernels are compiled inline for this machine's instruction sets, AVX512-BF16 included where the
// compiler targets it.
#include "header_only_model.hpp"

#include <cmath>
#include <cstdio>
#include <filesystem>

#include <gemma3/gemma3.hpp>

#if GEMMA3_KERNEL_DISPATCH || GEMMA3_COMPILED_MODELS
#error "header_only_model.cpp must be built in the header-only mode"
#endif

namespace consumer {

std::string header_only_isa() {
  std::string isa = gemma3::kernels::active_isa();
  if (gemma3::fast::bf16_dot_available()) isa += "+avx512bf16";
  return isa;
}

std::vector<float> header_only_logits(const std::string& dir, const std::vector<int32_t>& ids,
                                      const std::string& backend) {
  const auto ck = gemma3::Checkpoint::open(dir);
  const gemma3::TextModel<float> model(ck, gemma3::backend_from_string(backend));
  const gemma3::Mat<float> logits = model.forward(ids);
  return {logits.data(), logits.data() + logits.size()};
}

int check_text_fixtures(const std::string& reference_dir) {
  int failures = 0, prompts = 0;
  for (const char* c : {"text-tiny-a", "text-tiny-b"}) {
    const std::filesystem::path dir = std::filesystem::path(reference_dir) / c;
    const auto ck = gemma3::Checkpoint::open(dir);
    const gemma3::TextModel<float> model(ck, gemma3::Backend::Fast);
    for (int k = 0;; ++k) {
      std::string p = "p";  // (not "p" + std::to_string(k): GCC 12 -Wrestrict false positive)
      p += std::to_string(k);
      p += "_";
      if (!std::filesystem::exists(dir / (p + "input_ids.npy"))) break;
      const auto ids = gemma3::read_npy(dir / (p + "input_ids.npy")).values<int32_t>();
      const gemma3::Mat<double> expected =
          gemma3::read_npy(dir / (p + "logits.npy")).matrix<double>();
      const gemma3::Mat<double> logits = model.forward(ids).cast<double>();
      double worst = 0;
      bool argmax_equal = logits.rows() == expected.rows();
      for (Eigen::Index r = 0; argmax_equal && r < logits.rows(); ++r) {
        Eigen::Index a, b;
        logits.row(r).maxCoeff(&a);
        expected.row(r).maxCoeff(&b);
        argmax_equal = a == b;
        worst = std::max(worst, (logits.row(r) - expected.row(r)).cwiseAbs().maxCoeff());
      }
      const bool ok = argmax_equal && worst <= 1e-4;
      std::printf("%s %s %s: max |logits - fixture| %.2e, argmax %s\n", ok ? "ok  " : "FAIL", c,
                  p.substr(0, p.size() - 1).c_str(), worst, argmax_equal ? "equal" : "DIFFERS");
      failures += !ok;
      ++prompts;
    }
  }
  return prompts > 0 && failures == 0 ? 0 : 1;
}

}  // namespace consumer

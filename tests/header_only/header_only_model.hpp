// The interface of header_only_model.cpp, in standard types only: that translation unit is built
// in gemma3's header-only mode, and its callers may be built in the compiled mode (mixed_modes).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace consumer {
// The instruction set the header-only kernels were compiled for, e.g. "avx512bw+avx512bf16".
std::string header_only_isa();
// Logits [T, vocab], row-major, of ids through the checkpoint at `dir` on `backend`.
std::vector<float> header_only_logits(const std::string& dir, const std::vector<int32_t>& ids,
                                      const std::string& backend);
// Every prompt of every text fixture under `reference_dir` within 1e-4 of its logits, argmax
// equal, on both fast backends' f32 path; prints one line per prompt; 0 when all agree.
int check_text_fixtures(const std::string& reference_dir);
}  // namespace consumer

// Fuzz target: .npy files (format versions 1-3: magic, header length, the dict literal, the shape).
//
// Input: the file's bytes, read through a memfd by read_npy. Oracles: an accepted file's data bytes
// are exactly the input's tail and match its shape; converting its values to float, double and
// int32 (what `gemma3 dump --ids-npy` does) either works or throws a gemma3::Error.
#include <cstring>

#include <gemma3/io/npy.hpp>

#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  const fuzz::MemFile file(data, size);
  try {
    const gemma3::NpyArray a = gemma3::read_npy(file.path());
    FUZZ_CHECK(a.bytes.size() <= size, "data larger than the file");
    FUZZ_CHECK(a.bytes.empty() ||
                   std::memcmp(a.bytes.data(), data + size - a.bytes.size(), a.bytes.size()) == 0,
               "data bytes");
    int64_t numel = 1;
    for (const int64_t d : a.shape) numel *= d;
    FUZZ_CHECK(numel == a.numel(), "numel");
    fuzz::sink(a.values<double>().size());
    fuzz::sink(a.matrix<float>().size());
    fuzz::sink(a.values<int32_t>().size());
  } catch (const gemma3::Error&) {
  }
  return 0;
}

// Fuzz target: one .safetensors file (header length, JSON header, dtypes, shapes, byte ranges).
//
// Input: the file's bytes, opened through a memfd by SafetensorsFile (what TensorStore and
// Checkpoint::open use). Oracle, when the file is accepted: every tensor view lies inside the
// data section at the offsets its header entry states, and holds exactly those bytes of the input
// (the mapping is not ASan-instrumented, so ranges are checked against the input instead).
#include <cstring>

#include <nlohmann/json.hpp>

#include <gemma3/io/safetensors.hpp>

#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  const fuzz::MemFile file(data, size);
  try {
    const gemma3::SafetensorsFile st(file.path());
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | data[i];
    const std::size_t data_begin = 8 + std::size_t(n), data_size = size - data_begin;
    const auto header = nlohmann::json::parse(data + 8, data + data_begin);
    const std::byte* base = nullptr;  // the mapping's data section, from the first tensor
    for (const auto& [name, view] : st.tensors()) {
      const auto& entry = header.at(name);
      const uint64_t begin = entry.at("data_offsets").at(0).get<uint64_t>();
      const uint64_t end = entry.at("data_offsets").at(1).get<uint64_t>();
      FUZZ_CHECK(end - begin == view.nbytes(), name);
      FUZZ_CHECK(end <= data_size, name);
      if (!base) base = view.data - begin;
      FUZZ_CHECK(view.data == base + begin, name);
      FUZZ_CHECK(view.nbytes() == 0 ||
                     std::memcmp(view.data, data + data_begin + begin, view.nbytes()) == 0,
                 name);
      FUZZ_CHECK(view.name == name, name);
      if (view.numel() > 0) fuzz::sink(view.at<double>(view.numel() - 1));
    }
    for (const auto& [k, v] : st.metadata()) fuzz::sink(k.size() + v.size());
  } catch (const gemma3::Error&) {
  }
  return 0;
}

// Fuzz target: the JSON side of function calling — a --tools file through
// render_tool_declarations, a tool's result through render_tool_output — on arbitrary JSON text,
// with the nesting limit (kMaxNestingDepth) in the way of deep inputs.
//
// Input: JSON text. Oracles: text that nlohmann::json rejects is not rendered; otherwise rendering
// either succeeds or throws a gemma3::Error, and a value nested deeper than the limit is always
// refused with InvalidArgument (never a stack overflow, never a slow render).
#include <gemma3/tokenizer/tool_call.hpp>

#include "fuzz_common.hpp"

namespace {

// The nesting depth of `v` (iterative, as deep as the input).
int depth_of(const nlohmann::json& v) {
  int deepest = 0;
  std::vector<std::pair<const nlohmann::json*, int>> pending{{&v, 1}};
  while (!pending.empty()) {
    const auto [node, depth] = pending.back();
    pending.pop_back();
    if (!node->is_structured()) continue;
    deepest = std::max(deepest, depth);
    for (const auto& child : *node) pending.push_back({&child, depth + 1});
  }
  return deepest;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  const auto value = nlohmann::json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) return 0;
  const bool too_deep = depth_of(value) > gemma3::kMaxNestingDepth;
  for (int which = 0; which < 2; ++which) {
    try {
      fuzz::sink(which == 0 ? gemma3::render_tool_declarations(value)
                            : gemma3::render_tool_output(value));
      FUZZ_CHECK(!too_deep, "a value nested deeper than the limit was rendered");
    } catch (const gemma3::InvalidArgument& e) {
      // Too deep, or (declarations only) not a valid declaration.
      FUZZ_CHECK(too_deep || which == 0, e.what());
    } catch (const gemma3::Error& e) {
      fuzz::fail(std::string("unexpected error class: ") + e.what());
    }
  }
  return 0;
}

// Fuzz target: tool-call parsing in model output — find_tool_calls, find_tool_call and
// inside_tool_code on arbitrary text (```tool_code fences, the Python call syntax, strings and
// escapes, numbers, nested lists/tuples/dicts).
//
// Input: the model's text. Oracles: a malformed block is a ToolCallError (a gemma3::Error) whose
// offset lies inside the text; find_tool_call is the first of find_tool_calls; every call found
// renders (render_tool_call) to a block that parses back to the same call.
#include <gemma3/tokenizer/tool_call.hpp>

#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  fuzz::sink(gemma3::inside_tool_code(text));
  std::vector<gemma3::ToolCall> calls;
  try {
    calls = gemma3::find_tool_calls(text);
  } catch (const gemma3::ToolCallError& e) {
    FUZZ_CHECK(e.offset() <= size, e.what());
    try {
      (void)gemma3::find_tool_call(text);
    } catch (const gemma3::Error&) {
    }
    return 0;
  } catch (const gemma3::Error& e) {
    fuzz::fail(std::string("not a ToolCallError: ") + e.what());
  }
  try {
    const auto first = gemma3::find_tool_call(text);
    FUZZ_CHECK(first.has_value() == !calls.empty(), "find_tool_call disagrees");
    if (first && !calls.empty())
      FUZZ_CHECK(*first == calls.front(), "find_tool_call is not the first call");
  } catch (const gemma3::Error&) {
    // The first block may parse to no call at all only if it is malformed, which find_tool_calls
    // would have reported.
    fuzz::fail("find_tool_call threw where find_tool_calls did not");
  }
  for (const auto& call : calls) {
    const std::string rendered = gemma3::render_tool_call(call);
    std::vector<gemma3::ToolCall> again;
    try {
      again = gemma3::find_tool_calls(rendered);
    } catch (const gemma3::Error& e) {
      fuzz::fail("rendered call does not parse: " + rendered + ": " + e.what());
    }
    FUZZ_CHECK(again.size() == 1 && again[0] == call, rendered);
  }
  return 0;
}

// Gemma 3 function calling: tools declared in the prompt, calls found in the model's text.
//
// Gemma 3 has no tool tokens: "Gemma does not output a tool specific token. Your framework must
// detect a tool call by checking if the structure of the output matches your prompted function
// output specification" (ai.google.dev/gemma/docs/capabilities/function-calling). The convention
// here is the one Google's Gemma guides use:
//   * the prompt declares the functions as JSON and asks for Python-style calls,
//     func_name(param_name=param_value, ...) (the function-calling guide above);
//   * the model wraps its call in a ```tool_code fence, and the application gives the result back
//     wrapped in a ```tool_output fence ("Gemma will generate a code wrapped with ```tool_code```",
//     "Gemma is expecting to get its result back wrapped with ```tool_output```":
//     ai.google.dev/gemma/docs/meme-generator).
//
//   render_tool_declarations(tools)  → the instructions and declarations, for the system/user turn
//   find_tool_calls(model_output)    → the calls in every complete ```tool_code block
//   render_tool_output(result)       → the ```tool_output block for the next user turn
//
// The call syntax accepted is the part of Python a call with literal arguments needs: a dotted
// name, keyword and positional arguments; strings ('…', "…", '''…''', """…""", adjacent ones
// concatenated, Python's escapes), ints, floats, True/False/None (and JSON's true/false/null),
// lists, tuples (as lists) and dicts, nested, trailing commas and # comments. A block may hold
// several calls (one after another, or a Python list [f(...), g(...)] as the function-calling guide
// shows), and a call may be wrapped in print(...). Keyword arguments go to ToolCall::arguments (a
// JSON object, what a JSON schema describes); positional ones, which the declarations cannot name
// reliably (a JSON object's keys are unordered), go to ToolCall::positional in order rather than
// under invented names. Anything else (variables, expressions, nested calls, *args) is a
// ToolCallError with its offset.
#pragma once

#include "gemma3/build_mode.hpp"

#include <charconv>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "gemma3/error.hpp"
#include "gemma3/tokenizer/utf8.hpp"

namespace gemma3::inline GEMMA3_MODE {

// The deepest nesting of lists, dicts and objects that tool declarations, tool results and the
// model's calls may have. Parsing and rendering recurse once per level: a bound keeps the stack
// and the output (indentation grows with depth) small, and no real schema comes near it.
inline constexpr int kMaxNestingDepth = 256;

// One function call the model asked for.
struct ToolCall {
  std::string name;                                     // "get_weather", or dotted: "weather.today"
  nlohmann::json arguments = nlohmann::json::object();  // keyword arguments: name → value
  nlohmann::json positional = nlohmann::json::array();  // positional arguments, in order

  bool operator==(const ToolCall&) const = default;
};

// A malformed call inside a complete ```tool_code block. offset() is the byte offset in the text
// given to find_tool_calls; the message also says the line and column.
class ToolCallError : public FormatError {
 public:
  ToolCallError(std::size_t offset, const std::string& message)
      : FormatError("tool_code", message), offset_(offset) {}
  std::size_t offset() const noexcept { return offset_; }

 private:
  std::size_t offset_;
};

inline constexpr std::string_view kToolCodeFence = "```tool_code";
inline constexpr std::string_view kToolOutputFence = "```tool_output";

namespace detail {

inline constexpr std::string_view kFence = "```";

inline bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f';
}

// Where a complete ```tool_code block's body lies in the text, and where its closing fence ends.
struct ToolCodeBlock {
  std::size_t body_begin, body_end, end;
};

// The first complete block at or after `from`; nullopt when there is none (yet).
inline std::optional<ToolCodeBlock> next_tool_code_block(std::string_view text, std::size_t from) {
  for (;;) {
    const std::size_t open = text.find(kToolCodeFence, from);
    if (open == std::string_view::npos) return std::nullopt;
    const std::size_t body = open + kToolCodeFence.size();
    // "```tool_code" must be the whole info string: followed by a space or a line break.
    if (body < text.size() && !is_space(text[body])) {
      from = body;
      continue;
    }
    const std::size_t close = text.find(kFence, body);
    if (close == std::string_view::npos) return std::nullopt;
    return ToolCodeBlock{body, close, close + kFence.size()};
  }
}

inline bool is_identifier_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
inline bool is_identifier_char(char c) {
  return is_identifier_start(c) || (c >= '0' && c <= '9');
}
inline bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

inline void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += char(0xE0 | (cp >> 12));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xF0 | (cp >> 18));
    out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  }
}

// A recursive-descent parser for the calls in text[begin, end) (one block's body). Offsets in
// errors are offsets in `text`.
class PythonCallParser {
 public:
  PythonCallParser(std::string_view text, std::size_t begin, std::size_t end)
      : text_(text), pos_(begin), end_(end) {}

  // block := (call | 'print' '(' call ')' | '[' call (',' call)* ','? ']')+
  std::vector<ToolCall> parse_block() {
    std::vector<ToolCall> calls;
    skip_space();
    if (at_end()) fail(pos_, "empty tool_code block: expected a function call");
    while (!at_end()) {
      if (eat('[')) {
        do {
          skip_space();
          if (peek() == ']') break;
          calls.push_back(statement());
          skip_space();
        } while (eat(','));
        expect(']', "to close the list of calls");
        if (calls.empty()) fail(pos_ - 1, "empty list of calls");
      } else {
        calls.push_back(statement());
      }
      skip_space();
      while (eat(';')) skip_space();
    }
    return calls;
  }

 private:
  [[noreturn]] void fail(std::size_t at, const std::string& what) const {
    std::size_t line = 1, line_start = 0;
    for (std::size_t i = 0; i < at && i < text_.size(); ++i)
      if (text_[i] == '\n') ++line, line_start = i + 1;
    throw ToolCallError(at, "offset " + std::to_string(at) + " (line " + std::to_string(line) +
                                ", column " + std::to_string(at - line_start + 1) + "): " + what);
  }

  bool at_end() const { return pos_ >= end_; }
  char peek(std::size_t ahead = 0) const {
    return pos_ + ahead < end_ ? text_[pos_ + ahead] : '\0';
  }
  bool eat(char c) {
    if (at_end() || text_[pos_] != c) return false;
    ++pos_;
    return true;
  }
  // What stands at the cursor, for error messages.
  std::string found() const {
    if (at_end()) return "the end of the block";
    std::size_t n = 1;
    if (is_identifier_char(peek()))
      while (pos_ + n < end_ && is_identifier_char(text_[pos_ + n]) && n < 24) ++n;
    std::string quoted = "'";  // (appends: GCC 12 warns falsely on "..." + std::string&&)
    quoted.append(text_.substr(pos_, n));
    return quoted += '\'';
  }
  void expect(char c, const char* context) {
    skip_space();
    if (!eat(c)) fail(pos_, std::string("expected '") + c + "' " + context + ", found " + found());
  }

  // Whitespace, line breaks (calls may span lines) and # comments.
  void skip_space() {
    while (!at_end()) {
      const char c = peek();
      if (is_space(c)) {
        ++pos_;
      } else if (c == '\\' &&
                 (peek(1) == '\n' || (peek(1) == '\r' && peek(2) == '\n'))) {  // line continuation
        pos_ += peek(1) == '\n' ? 2 : 3;
      } else if (c == '#') {
        while (!at_end() && peek() != '\n') ++pos_;
      } else {
        return;
      }
    }
  }

  std::string identifier() {
    const std::size_t start = pos_;
    if (!is_identifier_start(peek())) fail(pos_, "expected a name, found " + found());
    while (!at_end() && is_identifier_char(peek())) ++pos_;
    return std::string(text_.substr(start, pos_ - start));
  }

  // A call, or print(call): print(f(...)) is f(...).
  ToolCall statement() {
    skip_space();
    const std::size_t start = pos_;
    // (print only as a whole name: print_report(...) and printer.status(...) are calls of their
    // own)
    if (text_.substr(pos_, 5) == "print" && !is_identifier_char(peek(5)) && peek(5) != '.' &&
        call_ahead()) {
      pos_ += 5;
      expect('(', "after print");
      skip_space();
      if (!call_ahead()) fail(start, "print(...) must wrap exactly one function call");
      ToolCall c = call();
      expect(')', "to close print(...)");
      return c;
    }
    return call();
  }

  // Is the cursor at a (dotted) name followed by '('?
  bool call_ahead() const {
    std::size_t i = pos_;
    if (i >= end_ || !is_identifier_start(text_[i])) return false;
    while (i < end_ && (text_[i] == '.' || is_identifier_char(text_[i]))) ++i;
    while (i < end_ && (text_[i] == ' ' || text_[i] == '\t')) ++i;
    return i < end_ && text_[i] == '(';
  }

  // call := dotted_name '(' [argument (',' argument)* ','?] ')'
  ToolCall call() {
    ToolCall c;
    c.name = identifier();
    while (peek() == '.' && is_identifier_start(peek(1))) {
      ++pos_;
      c.name += "." + identifier();
    }
    skip_space();
    if (!eat('('))
      fail(pos_, "expected '(' after the function name '" + c.name + "', found " + found());
    bool keyword_seen = false;
    for (;;) {
      skip_space();
      if (eat(')')) break;
      const std::size_t arg_at = pos_;
      if (peek() == '*') fail(pos_, "*args and **kwargs are not supported");
      if (is_identifier_start(peek()) && keyword_ahead()) {
        const std::string key = identifier();
        skip_space();
        eat('=');
        if (c.arguments.contains(key)) fail(arg_at, "keyword argument repeated: " + key);
        c.arguments[key] = value();
        keyword_seen = true;
      } else {
        if (keyword_seen) fail(arg_at, "positional argument follows keyword argument");
        c.positional.push_back(value());
      }
      skip_space();
      if (eat(')')) break;
      if (!eat(','))
        fail(pos_, "expected ',' or ')' in the arguments of " + c.name + "(...), found " + found());
    }
    return c;
  }

  // Is the cursor at `name =` (a keyword argument), rather than `name ==` or a value?
  bool keyword_ahead() const {
    std::size_t i = pos_;
    while (i < end_ && is_identifier_char(text_[i])) ++i;
    while (i < end_ && (text_[i] == ' ' || text_[i] == '\t')) ++i;
    return i < end_ && text_[i] == '=' && !(i + 1 < end_ && text_[i + 1] == '=');
  }

  // value := string+ | ['-'|'+'] number | True | False | None | list | tuple | dict
  nlohmann::json value() {
    skip_space();
    const std::size_t start = pos_;
    // Lists, tuples and dicts recurse here once per level.
    struct Level {
      int& depth;
      explicit Level(int& d) : depth(++d) {}
      ~Level() { --depth; }
    } level(depth_);
    if (depth_ > kMaxNestingDepth)
      fail(start, "values nested deeper than " + std::to_string(kMaxNestingDepth) + " levels");
    const char c = peek();
    if (c == '\'' || c == '"') {
      std::string s = string_literal();
      for (skip_space(); peek() == '\'' || peek() == '"'; skip_space()) s += string_literal();
      return s;
    }
    if (c == '-' || c == '+' || c == '.' || is_digit(c)) return number();
    if (c == '[') {
      ++pos_;
      return sequence(']');
    }
    if (c == '(') {
      ++pos_;
      return sequence(')');
    }
    if (c == '{') {
      ++pos_;
      return dict();
    }
    if (is_identifier_start(c)) {
      const std::string name = identifier();
      if (name == "True" || name == "true") return true;
      if (name == "False" || name == "false") return false;
      if (name == "None" || name == "null") return nullptr;
      if (peek() == '\'' || peek() == '"')
        fail(start, "string prefixes like " + name + "'...' are not supported");
      pos_ = start;
      if (call_ahead()) fail(start, "a nested call (" + name + "(...)) is not a literal argument");
      fail(start, "'" + name +
                      "' is not a literal: arguments must be strings, numbers, True/False/None, "
                      "lists, tuples or dicts");
    }
    fail(start, "expected a value, found " + found());
  }

  // [a, b] and (a, b) are lists; (a) is just a.
  nlohmann::json sequence(char close) {
    const std::size_t open = pos_ - 1;
    nlohmann::json out = nlohmann::json::array();
    bool comma = false;
    for (;;) {
      skip_space();
      if (at_end())
        fail(open, std::string("unbalanced '") + text_[open] + "': no matching '" + close + "'");
      if (eat(close)) break;
      out.push_back(value());
      skip_space();
      if (eat(close)) break;
      if (!eat(','))
        fail(pos_, std::string("expected ',' or '") + close + "' in the " +
                       (close == ']' ? "list" : "tuple") + " opened at offset " +
                       std::to_string(open) + ", found " + found());
      comma = true;
    }
    if (close == ')' && out.size() == 1 && !comma) return out[0];
    return out;
  }

  // {key: value, ...}; keys are strings, or numbers (JSON keys are strings: 1 becomes "1").
  nlohmann::json dict() {
    const std::size_t open = pos_ - 1;
    nlohmann::json out = nlohmann::json::object();
    for (;;) {
      skip_space();
      if (at_end()) fail(open, "unbalanced '{': no matching '}'");
      if (eat('}')) break;
      const std::size_t key_at = pos_;
      const nlohmann::json key = value();
      std::string name;
      if (key.is_string())
        name = key.get<std::string>();
      else if (key.is_number())
        name = key.dump();
      else
        fail(key_at, "dict keys must be strings or numbers, found " + key.dump());
      expect(':', "after a dict key");
      out[name] = value();
      skip_space();
      if (eat('}')) break;
      if (!eat(','))
        fail(pos_, "expected ',' or '}' in the dict opened at offset " + std::to_string(open) +
                       ", found " + found());
    }
    return out;
  }

  // Python's int and float literals (decimal, '_' between digits), with an optional sign.
  nlohmann::json number() {
    const std::size_t start = pos_;
    std::string digits;
    if (peek() == '-' || peek() == '+') {
      if (peek() == '-') digits += '-';
      ++pos_;
      skip_space();
      if (!(is_digit(peek()) || (peek() == '.' && is_digit(peek(1)))))
        fail(start, "expected a number after the sign, found " + found());
    }
    bool is_float = false;
    auto take_digits = [&] {
      while (!at_end() && (is_digit(peek()) ||
                           (peek() == '_' && is_digit(peek(1)) && is_digit(text_[pos_ - 1])))) {
        if (peek() != '_') digits += peek();
        ++pos_;
      }
    };
    take_digits();
    if (peek() == '.') {
      is_float = true;
      digits += '.';
      ++pos_;
      take_digits();
    }
    if (peek() == 'e' || peek() == 'E') {
      is_float = true;
      digits += 'e';
      ++pos_;
      if (peek() == '-' || peek() == '+') digits += text_[pos_++];
      if (!is_digit(peek())) fail(pos_, "expected the exponent's digits, found " + found());
      take_digits();
    }
    if (is_identifier_char(peek()))
      fail(start, "malformed number " + std::string(text_.substr(start, pos_ + 1 - start)));
    const char* first = digits.data();
    const char* last = digits.data() + digits.size();
    if (is_float) {
      double d = 0;
      if (std::from_chars(first, last, d).ec != std::errc())
        fail(start, "malformed number " + digits);
      return d;
    }
    if (int64_t i = 0; std::from_chars(first, last, i).ec == std::errc()) return i;
    if (uint64_t u = 0; std::from_chars(first, last, u).ec == std::errc()) return u;
    fail(start, "integer " + digits + " does not fit in 64 bits");
  }

  // '...', "...", '''...''', """...""" with Python's escapes.
  std::string string_literal() {
    const std::size_t start = pos_;
    const char quote = peek();
    const bool triple = peek(1) == quote && peek(2) == quote;
    pos_ += triple ? 3 : 1;
    std::string out;
    for (;;) {
      if (at_end()) fail(start, "unterminated string");
      const char c = text_[pos_];
      if (c == quote && (!triple || (peek(1) == quote && peek(2) == quote))) {
        pos_ += triple ? 3 : 1;
        // Escapes are ASCII and decode to whole UTF-8 sequences, so the value is valid UTF-8 (what
        // a JSON string must be) exactly when the literal's own bytes are.
        if (const auto bad = find_invalid_utf8(text_.substr(start, pos_ - start));
            bad != std::string_view::npos)
          fail(start + bad, "invalid UTF-8 in a string literal");
        return out;
      }
      if (c == '\n' && !triple)
        fail(start,
             "unterminated string (only a '''...''' or \"\"\"...\"\"\" string may span lines)");
      if (c != '\\') {
        out += c;
        ++pos_;
        continue;
      }
      escape(out);
    }
  }

  void escape(std::string& out) {
    const std::size_t at = pos_;
    ++pos_;  // the backslash
    if (at_end()) fail(at, "unterminated string");
    const char e = text_[pos_++];
    switch (e) {
      case '\n':
        return;  // line continuation
      case '\\':
        out += '\\';
        return;
      case '\'':
        out += '\'';
        return;
      case '"':
        out += '"';
        return;
      case 'n':
        out += '\n';
        return;
      case 't':
        out += '\t';
        return;
      case 'r':
        out += '\r';
        return;
      case 'b':
        out += '\b';
        return;
      case 'f':
        out += '\f';
        return;
      case 'v':
        out += '\v';
        return;
      case 'a':
        out += '\a';
        return;
      case 'x':
        append_utf8(out, hex(at, 2));
        return;
      case 'U': {
        const uint32_t cp = hex(at, 8);
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp < 0xE000))
          fail(at, "invalid code point in \\U escape");
        append_utf8(out, cp);
        return;
      }
      case 'u': {
        uint32_t cp = hex(at, 4);
        if (cp >= 0xDC00 && cp < 0xE000) fail(at, "lone low surrogate in \\u escape");
        if (cp >= 0xD800 && cp < 0xDC00) {  // a JSON-style surrogate pair
          if (!(peek() == '\\' && peek(1) == 'u'))
            fail(at, "high surrogate in \\u escape without its low half");
          pos_ += 2;
          const uint32_t low = hex(at, 4);
          if (!(low >= 0xDC00 && low < 0xE000))
            fail(at, "high surrogate in \\u escape without its low half");
          cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
        }
        append_utf8(out, cp);
        return;
      }
      default:
        if (e >= '0' && e <= '7') {  // octal, up to three digits
          uint32_t cp = uint32_t(e - '0');
          for (int n = 1; n < 3 && peek() >= '0' && peek() <= '7'; ++n)
            cp = cp * 8 + uint32_t(text_[pos_++] - '0');
          append_utf8(out, cp);
          return;
        }
        out += '\\';  // Python keeps unknown escapes as they are
        out += e;
    }
  }

  uint32_t hex(std::size_t escape_at, int n) {
    uint32_t v = 0;
    for (int i = 0; i < n; ++i) {
      const char c = peek();
      const int d = is_digit(c)              ? c - '0'
                    : (c >= 'a' && c <= 'f') ? c - 'a' + 10
                    : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                             : -1;
      if (d < 0) fail(escape_at, "escape needs " + std::to_string(n) + " hex digits");
      v = v * 16 + uint32_t(d);
      ++pos_;
    }
    return v;
  }

  std::string_view text_;
  std::size_t pos_, end_;
  int depth_ = 1;  // a call's arguments are the first level, as check_nesting counts them
};

// Throws InvalidArgument naming `where` if `v` nests arrays and objects deeper than
// kMaxNestingDepth (measured without recursion, so any depth is safe to measure).
inline void check_nesting(const nlohmann::json& v, const std::string& where) {
  std::vector<std::pair<const nlohmann::json*, int>> pending{{&v, 1}};
  while (!pending.empty()) {
    const auto [node, depth] = pending.back();
    pending.pop_back();
    if (!node->is_structured()) continue;
    if (depth > kMaxNestingDepth)
      throw InvalidArgument(where, "nested deeper than " + std::to_string(kMaxNestingDepth) +
                                       " levels (at least " + std::to_string(depth) + ")");
    for (const auto& child : *node) pending.push_back({&child, depth + 1});
  }
}

// A string as a Python literal: JSON's escapes are Python's too. A backtick is escaped (\x60) so
// that a value holding ``` cannot close the ```tool_code block it is rendered into.
inline std::string python_string(const nlohmann::json& s) {
  std::string out;
  for (const char c : s.dump()) {
    if (c == '`')
      out += "\\x60";
    else
      out += c;
  }
  return out;
}

// A JSON value as a Python literal: None/True/False, "..." strings, numbers, lists and dicts.
inline void append_python(std::string& out, const nlohmann::json& v) {
  if (v.is_null())
    out += "None";
  else if (v.is_boolean())
    out += v.get<bool>() ? "True" : "False";
  else if (v.is_array()) {
    out += '[';
    for (std::size_t i = 0; i < v.size(); ++i) {
      if (i) out += ", ";
      append_python(out, v[i]);
    }
    out += ']';
  } else if (v.is_object()) {
    out += '{';
    bool first = true;
    for (const auto& [key, item] : v.items()) {
      if (!first) out += ", ";
      first = false;
      out += python_string(key) + ": ";
      append_python(out, item);
    }
    out += '}';
  } else if (v.is_string()) {
    out += python_string(v);
  } else {
    out += v.dump();
  }
}

}  // namespace detail

// The calls in every complete ```tool_code block of `model_output`, in order; empty when there is
// none. A block is complete once its closing ``` has arrived (a line break before it is optional).
// Throws ToolCallError (a FormatError) with the offset of the first problem in a malformed block.
inline std::vector<ToolCall> find_tool_calls(std::string_view model_output) {
  std::vector<ToolCall> calls;
  std::size_t from = 0;
  while (const auto block = detail::next_tool_code_block(model_output, from)) {
    auto found =
        detail::PythonCallParser(model_output, block->body_begin, block->body_end).parse_block();
    calls.insert(calls.end(), found.begin(), found.end());
    from = block->end;
  }
  return calls;
}

// The first call of the first complete ```tool_code block (find_tool_calls has them all).
inline std::optional<ToolCall> find_tool_call(std::string_view model_output) {
  const auto block = detail::next_tool_code_block(model_output, 0);
  if (!block) return std::nullopt;
  return detail::PythonCallParser(model_output, block->body_begin, block->body_end)
      .parse_block()
      .front();
}

// For streaming: true while the text so far has opened a ```tool_code block that has not closed,
// i.e. the model is writing a call (hold it back from the user; parse it once this turns false).
inline bool inside_tool_code(std::string_view output_so_far) {
  std::size_t from = 0;
  for (;;) {
    const std::size_t open = output_so_far.find(kToolCodeFence, from);
    if (open == std::string_view::npos) return false;
    const std::size_t body = open + kToolCodeFence.size();
    if (body < output_so_far.size() && !detail::is_space(output_so_far[body])) {  // "```tool_codeX"
      from = body;
      continue;
    }
    const std::size_t close = output_so_far.find(detail::kFence, body);
    if (close == std::string_view::npos) return true;
    from = close + detail::kFence.size();
  }
}

// The instructions and the function declarations, to put at the start of the first user turn (Gemma
// has no system role). `tools`: an array of declarations {"name", "description", "parameters": JSON
// schema}, or one declaration; OpenAI-style {"type": "function", "function": {...}} entries are
// unwrapped. The wording follows the function-calling guide's Python-style prompt, with the call
// wrapped in ```tool_code as the Gemma guides' agent examples do.
inline std::string render_tool_declarations(const nlohmann::json& tools) {
  detail::check_nesting(tools, "tools");
  const nlohmann::json list = tools.is_array() ? tools : nlohmann::json::array({tools});
  nlohmann::json declarations = nlohmann::json::array();
  for (std::size_t i = 0; i < list.size(); ++i) {
    const std::string where = "tools[" + std::to_string(i) + "]";
    nlohmann::json d = list[i];
    if (d.is_object() && d.contains("function") && d.contains("type") && d["type"] == "function")
      d = d["function"];
    if (!d.is_object())
      throw InvalidArgument(where, "a declaration must be an object, got " + d.dump());
    if (!d.contains("name") || !d["name"].is_string() || d["name"].get<std::string>().empty())
      throw InvalidArgument(where, "a declaration needs a non-empty string \"name\"");
    for (const char c : d["name"].get<std::string>())
      if (!(detail::is_identifier_char(c) || c == '.'))
        throw InvalidArgument(where, "name " + d["name"].dump() + " is not a Python identifier");
    declarations.push_back(std::move(d));
  }
  return "You have access to functions. If you decide to invoke any of the function(s), you MUST "
         "put it in "
         "the format of\n"
         "```tool_code\n"
         "func_name1(params_name1=params_value1, params_name2=params_value2...)\n"
         "```\n"
         "The result of a call will be given back to you wrapped in ```tool_output```.\n"
         "You SHOULD NOT include any other text in the response if you call a function\n" +
         declarations.dump(2) + "\n";
}

// The ```tool_output block that carries a tool's result back: a string as it is, anything else as
// compact JSON.
inline std::string render_tool_output(const nlohmann::json& result) {
  detail::check_nesting(result, "tool result");
  const std::string body = result.is_string() ? result.get<std::string>() : result.dump();
  return std::string(kToolOutputFence) + "\n" + body + "\n```";
}

// The ```tool_code block the model would have written for `call` (for a conversation history):
// positional arguments first, then keyword ones, values as Python literals.
inline std::string render_tool_call(const ToolCall& call) {
  detail::check_nesting(call.arguments, "tool call arguments");
  detail::check_nesting(call.positional, "tool call arguments");
  std::string code = call.name + "(";
  bool first = true;
  for (const auto& v : call.positional) {
    if (!first) code += ", ";
    first = false;
    detail::append_python(code, v);
  }
  for (const auto& [key, v] : call.arguments.items()) {
    if (!first) code += ", ";
    first = false;
    code += key + "=";
    detail::append_python(code, v);
  }
  return std::string(kToolCodeFence) + "\n" + code + ")\n```";
}

}  // namespace gemma3::inline GEMMA3_MODE

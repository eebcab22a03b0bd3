// Generation: a Session owns a KV cache and the token history of one conversation. It prefills a
// prompt (token ids, or a Conversation's next turns), decodes until a stop token, a stop string, a
// token limit or a full context, streams each piece of text through a callback, and keeps its cache
// so that a chat's next turn only prefills the new tokens.
//
// Context policy: a prompt that does not fit in the remaining context is refused with an error
// before anything is computed; generation that fills the context stops with StopReason::ContextFull.
// Nothing is ever truncated silently.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "gemma3/error.hpp"
#include "gemma3/sample/sampler.hpp"
#include "gemma3/text/kv_cache.hpp"
#include "gemma3/text/mask.hpp"
#include "gemma3/multimodal.hpp"
#include "gemma3/text/model.hpp"
#include "gemma3/tokenizer/chat.hpp"
#include "gemma3/tokenizer/tokenizer.hpp"

namespace gemma3 {

enum class StopReason { EndOfTurn, Eos, StopString, MaxTokens, ContextFull };

inline const char* to_string(StopReason r) {
  switch (r) {
    case StopReason::EndOfTurn: return "end_of_turn";
    case StopReason::Eos: return "eos";
    case StopReason::StopString: return "stop_string";
    case StopReason::MaxTokens: return "max_tokens";
    case StopReason::ContextFull: return "context_full";
  }
  return "?";
}

struct GenerateOptions {
  int64_t max_new_tokens = 512;
  std::vector<std::string> stop_strings{};  // generation ends where the text first contains one
};

struct GenerateResult {
  std::vector<int32_t> ids;  // generated tokens, the stop token excluded
  std::string text;          // their text, cut before a stop string
  StopReason reason = StopReason::MaxTokens;
  int64_t prefill_tokens = 0;  // tokens this call prefilled (a chat turn: only the new ones)
  double prefill_seconds = 0, decode_seconds = 0;
  double time_to_first_token = 0;  // seconds from the call to the first generated token
};

// Receives each piece of generated text as soon as it is valid UTF-8 and cannot be part of a stop
// string. Returning false stops generation.
using PieceCallback = std::function<bool(const std::string& piece)>;

template <typename T = float>
class Session {
 public:
  // `context` is the most positions this session will hold (its KV cache's size).
  Session(const Gemma3<T>& model, const Tokenizer& tok, int64_t context, const SamplerConfig& sampling = {})
      : model_(&model), tok_(&tok), cache_(model.config().text, context), sampler_(sampling) {}

  const std::vector<int32_t>& tokens() const { return tokens_; }
  int64_t context() const { return cache_.capacity(); }
  const KVCache<T>& cache() const { return cache_; }
  Sampler& sampler() { return sampler_; }
  const Conversation& conversation() const { return conversation_; }

  // Forgets everything: empty cache, history and conversation.
  void reset() {
    cache_.clear();
    tokens_.clear();
    conversation_ = Conversation();
    turn_open_ = false;
  }

  // Prefills `ids` after what the cache holds and returns the logits of the last one. Image
  // placeholders are replaced by `images` (unscaled, spec §2.1) and attend bidirectionally within
  // their image.
  Vec<T> prefill(std::span<const int32_t> ids, const ImageEmbeddings<T>& images = {}) {
    if (ids.empty()) throw InvalidArgument("prompt", "empty");
    if (cache_.length() + int64_t(ids.size()) > cache_.capacity())
      throw InvalidArgument("prompt", std::to_string(ids.size()) + " tokens do not fit: " +
                                          std::to_string(cache_.length()) + " of the context's " +
                                          std::to_string(cache_.capacity()) + " positions are in use");
    NullObserver none;
    Mat<T> logits = model_->forward(ids, images, cache_, none, /*all_logits=*/false);
    tokens_.insert(tokens_.end(), ids.begin(), ids.end());
    return logits.row(0).transpose();
  }

  // Prefills `prompt`, then samples until a stop condition.
  GenerateResult generate(std::span<const int32_t> prompt, const GenerateOptions& opt = {},
                          const PieceCallback& on_piece = {}, const ImageEmbeddings<T>& images = {}) {
    using clock = std::chrono::steady_clock;
    const auto start = clock::now();
    GenerateResult r;
    r.prefill_tokens = int64_t(prompt.size());
    Vec<T> logits = prefill(prompt, images);
    const auto prefilled = clock::now();
    r.prefill_seconds = std::chrono::duration<double>(prefilled - start).count();

    StreamDecoder stream(*tok_);
    std::string held;  // decoded text not yet passed on: it might begin a stop string
    bool stopped = false;
    auto emit = [&](std::string piece, bool final) {
      held += piece;
      std::size_t cut = std::string::npos;
      for (const auto& s : opt.stop_strings)
        if (auto p = held.find(s); p != std::string::npos && p < cut) cut = p;
      if (cut != std::string::npos) {
        held.resize(cut);
        stopped = true;
      }
      // Keep back the longest tail that could still grow into a stop string.
      std::size_t keep = 0;
      if (!stopped && !final)
        for (const auto& s : opt.stop_strings)
          for (std::size_t n = std::min(s.size() - 1, held.size()); n > keep; --n)
            if (held.compare(held.size() - n, n, s, 0, n) == 0) {
              keep = n;
              break;
            }
      const std::string out = held.substr(0, held.size() - keep);
      held.erase(0, held.size() - keep);
      r.text += out;
      if (!out.empty() && on_piece && !on_piece(out)) stopped = true;
    };

    std::vector<float> row(std::size_t(logits.size()));
    r.reason = StopReason::MaxTokens;
    for (int64_t step = 0; step < opt.max_new_tokens; ++step) {
      for (Eigen::Index i = 0; i < logits.size(); ++i) row[i] = float(logits[i]);
      const int32_t id = sampler_.sample(row, tokens_).id;
      if (step == 0) r.time_to_first_token = std::chrono::duration<double>(clock::now() - start).count();
      if (id == tok_->end_of_turn() || id == tok_->eos()) {
        r.reason = id == tok_->eos() ? StopReason::Eos : StopReason::EndOfTurn;
        break;
      }
      r.ids.push_back(id);
      emit(stream.push(id), false);
      if (stopped) {
        r.reason = StopReason::StopString;
        break;
      }
      if (cache_.length() == cache_.capacity()) {
        // The token is generated but cannot be fed back: the context is full.
        tokens_.push_back(id);
        r.reason = StopReason::ContextFull;
        break;
      }
      const int32_t one[] = {id};
      logits = prefill(one);
    }
    if (!stopped) emit(stream.finish(), true);
    r.decode_seconds = std::chrono::duration<double>(clock::now() - prefilled).count();
    return r;
  }

  // Sets the system prompt of a conversation that has not started yet.
  void chat_system(std::string text) {
    if (!conversation_.messages().empty()) throw InvalidArgument("system", "the conversation has already started");
    conversation_.system(std::move(text));
  }

  // One chat turn: adds `message` (a user turn) to the conversation, prefills only what the cache
  // does not hold yet (the previous answer's <end_of_turn>, the new turn and the generation prompt),
  // generates the model's answer and records it in the conversation.
  GenerateResult chat(const Message& message, const GenerateOptions& opt = {}, const PieceCallback& on_piece = {},
                      const ImageEmbeddings<T>& images = {}, int64_t mm_tokens_per_image = 256) {
    const std::size_t first_new = conversation_.messages().size();
    Conversation next = conversation_;
    next.add(message);
    std::vector<int32_t> ids;
    if (turn_open_) {
      // The previous answer stopped without its <end_of_turn> being fed: close the turn.
      ids.push_back(tok_->end_of_turn());
      const auto nl = tok_->encode("\n");
      ids.insert(ids.end(), nl.begin(), nl.end());
    }
    // An empty cache takes the whole conversation (<bos>, a system message folded into the turn).
    const auto turn = next.render_ids(*tok_, mm_tokens_per_image, /*add_generation_prompt=*/true,
                                      /*parse_special=*/false, tokens_.empty() ? 0 : first_new);
    ids.insert(ids.end(), turn.begin(), turn.end());
    GenerateResult r = generate(ids, opt, on_piece, images);
    next.model(r.text);
    conversation_ = std::move(next);
    turn_open_ = true;
    return r;
  }

 private:
  const Gemma3<T>* model_;
  const Tokenizer* tok_;
  KVCache<T> cache_;
  Sampler sampler_;
  std::vector<int32_t> tokens_;
  Conversation conversation_;
  bool turn_open_ = false;  // the last answer's <end_of_turn> has not been fed yet
};

}  // namespace gemma3

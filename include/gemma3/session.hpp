// Generation: a Session owns a KV cache and the token history of one conversation. It prefills a
// prompt (token ids, or a Conversation's next turns), decodes until a stop token, a stop string, a
// token limit or a full context, streams each piece of text through a callback, and keeps its cache
// so that a chat's next turn only prefills the new tokens.
//
// Context policy: a prompt that does not fit in the remaining context is refused with an error
// before anything is computed, and the session is left as it was; generation that fills the
// context stops with StopReason::ContextFull. A chat may opt in to dropping its oldest exchanges
// instead (ContextFull::DropOldest), and the result says how many messages went. Nothing is ever
// truncated silently.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "gemma3/build_mode.hpp"
#include "gemma3/error.hpp"
#include "gemma3/multimodal.hpp"
#include "gemma3/sample/sampler.hpp"
#include "gemma3/text/kv_cache.hpp"
#include "gemma3/text/mask.hpp"
#include "gemma3/text/model.hpp"
#include "gemma3/tokenizer/chat.hpp"
#include "gemma3/tokenizer/tokenizer.hpp"

namespace gemma3::inline GEMMA3_MODE {

// A prompt or chat turn that does not fit in the session's remaining context.
class ContextOverflow : public InvalidArgument {
 public:
  using InvalidArgument::InvalidArgument;
};

enum class StopReason { EndOfTurn, Eos, StopString, MaxTokens, ContextFull, Callback };

inline const char* to_string(StopReason r) {
  switch (r) {
    case StopReason::EndOfTurn:
      return "end_of_turn";
    case StopReason::Eos:
      return "eos";
    case StopReason::StopString:
      return "stop_string";
    case StopReason::MaxTokens:
      return "max_tokens";
    case StopReason::ContextFull:
      return "context_full";
    case StopReason::Callback:
      return "callback";
  }
  return "?";
}

// Receives each sampled token with its log-probability (and the SamplerConfig::top_logprobs best
// alternatives) as soon as it is drawn, the stop token included. Returning false stops generation.
using TokenCallback = std::function<bool(const SampleResult& token)>;

// What chat() does with a turn that does not fit in the remaining context.
enum class ContextFull {
  Refuse,      // throw InvalidArgument; the session is unchanged (the default)
  DropOldest,  // drop the oldest exchanges (never the system prompt) until the rest, the turn
               // and room for the answer fill at most half of the context, then prefill the rest
               // again
};

struct GenerateOptions {
  int64_t max_new_tokens = 512;
  std::vector<std::string> stop_strings{};  // generation ends where the text first contains one
  TokenCallback on_token{};                 // per-token ids and log-probs, as they are drawn
  ContextFull on_full_context = ContextFull::Refuse;  // chat() only
};

struct GenerateResult {
  std::vector<int32_t> ids;  // generated tokens, the stop token excluded
  // Every sampled token with its log-probability under the model (log-softmax of the raw logits)
  // and the top_logprobs alternatives: ids, then the stop token if one ended generation.
  std::vector<SampleResult> tokens;
  std::string text;  // their text, cut before a stop string
  StopReason reason = StopReason::MaxTokens;
  int64_t prefill_tokens = 0;  // tokens this call prefilled (a chat turn: only the new ones)
  double prefill_seconds = 0, decode_seconds = 0;
  double time_to_first_token = 0;  // seconds from the call to the first generated token
  int64_t dropped_messages = 0;    // chat() with ContextFull::DropOldest: history dropped to fit
};

// Receives each piece of generated text as soon as it is valid UTF-8 and cannot be part of a stop
// string. Returning false stops generation.
using PieceCallback = std::function<bool(const std::string& piece)>;

template <typename T = float>
class Session {
 public:
  // `context` is the most positions this session will hold (its KV cache's size).
  Session(const Gemma3<T>& model, const Tokenizer& tok, int64_t context,
          const SamplerConfig& sampling = {})
      : model_(&model),
        text_(&model.text()),
        tok_(&tok),
        cache_(model.config().text, context),
        sampler_(sampling) {}
  // Over a text model alone (no images).
  Session(const TextModel<T>& model, const Tokenizer& tok, int64_t context,
          const SamplerConfig& sampling = {})
      : text_(&model), tok_(&tok), cache_(model.config(), context), sampler_(sampling) {}

  // An observer (null: none) that sees the sites it asked for in every forward step that follows:
  // the prefill, then each decode step (a Capture keeps each step's in order).
  void set_observer(Observer<T>* obs) { obs_ = obs; }

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

  // The soft tokens of a preprocessed image and its crops, in order, for prefill/generate/chat:
  // each encoded once per session (image_cache(): an image shown again is looked up, not encoded).
  ImageEmbeddings<T> encode(const ProcessedImage& image);
  const ImageCache<T>& image_cache() const { return image_cache_; }

  // Prefills `ids` after what the cache holds and returns the logits of the last one. Image
  // placeholders are replaced by `images` (unscaled, as multimodal.hpp says) and attend
  // bidirectionally within their image.
  Vec<T> prefill(std::span<const int32_t> ids, const ImageEmbeddings<T>& images = {});

  // Prefills `prompt`, then samples until a stop condition.
  GenerateResult generate(std::span<const int32_t> prompt, const GenerateOptions& opt = {},
                          const PieceCallback& on_piece = {},
                          const ImageEmbeddings<T>& images = {});

  // Sets the system prompt of a conversation that has not started yet.
  void chat_system(std::string text) {
    if (!conversation_.messages().empty())
      throw InvalidArgument("system", "the conversation has already started");
    conversation_.system(std::move(text));
  }

  // One chat turn: adds `message` (a user turn) to the conversation, prefills only what the cache
  // does not hold yet (the previous answer's <end_of_turn>, the new turn and the generation
  // prompt), generates the model's answer and records it in the conversation.
  GenerateResult chat(const Message& message, const GenerateOptions& opt = {},
                      const PieceCallback& on_piece = {}, const ImageEmbeddings<T>& images = {},
                      int64_t mm_tokens_per_image = 256);

 private:
  const Gemma3<T>* model_ = nullptr;  // null for a text model
  const TextModel<T>* text_;
  const Tokenizer* tok_;
  Observer<T>* obs_ = nullptr;
  KVCache<T> cache_;
  Sampler sampler_;
  std::vector<int32_t> tokens_;
  Conversation conversation_;
  bool turn_open_ = false;  // the last answer's <end_of_turn> has not been fed yet
  ImageCache<T> image_cache_;

  // The tokens that put `next` (the conversation with the new turn) into the cache.
  std::vector<int32_t> turn_ids(const Conversation& next, int64_t mm_tokens_per_image) const;
  // Drops the oldest exchange of `next` (before its last message, the new turn), and every older
  // one that holds an image (their soft tokens are not kept, so they cannot be prefilled again);
  // empties the cache, so that the whole rest is prefilled. False when nothing is left to drop.
  bool drop_oldest_exchange(Conversation& next, int64_t& dropped);
};

// The members with real work, out of the class (not inline: see text/model.hpp).

template <typename T>
ImageEmbeddings<T> Session<T>::encode(const ProcessedImage& image) {
  if (!model_)
    throw InvalidArgument("images", "this session runs a text model: it takes no images");
  ImageEmbeddings<T> out;
  for (const Mat<float>& pixels : image.pixel_values)
    out.push_back(image_cache_.encode(*model_, pixels));
  return out;
}

template <typename T>
Vec<T> Session<T>::prefill(std::span<const int32_t> ids, const ImageEmbeddings<T>& images) {
  if (ids.empty()) throw InvalidArgument("prompt", "empty");
  if (cache_.length() + int64_t(ids.size()) > cache_.capacity())
    throw ContextOverflow("prompt", std::to_string(ids.size()) +
                                        " tokens do not fit: " + std::to_string(cache_.length()) +
                                        " of the context's " + std::to_string(cache_.capacity()) +
                                        " positions are in use");
  if (!images.empty() && !model_)
    throw InvalidArgument("images", "this session runs a text model: it takes no images");
  Mat<T> logits;
  if (model_) {
    logits = obs_ ? model_->forward(ids, images, cache_, *obs_, LogitRows::last())
                  : model_->forward(ids, images, cache_, LogitRows::last());
  } else {
    logits = obs_ ? text_->forward(ids, cache_, *obs_, LogitRows::last())
                  : text_->forward(ids, cache_, LogitRows::last());
  }
  tokens_.insert(tokens_.end(), ids.begin(), ids.end());
  return logits.row(0).transpose();
}

template <typename T>
GenerateResult Session<T>::generate(std::span<const int32_t> prompt, const GenerateOptions& opt,
                                    const PieceCallback& on_piece,
                                    const ImageEmbeddings<T>& images) {
  for (std::size_t i = 0; i < opt.stop_strings.size(); ++i)
    if (opt.stop_strings[i].empty())
      throw InvalidArgument("stop_strings[" + std::to_string(i) + "]",
                            "is empty: it would match before any text");
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  GenerateResult r;
  r.prefill_tokens = int64_t(prompt.size());
  Vec<T> logits = prefill(prompt, images);
  const auto prefilled = clock::now();
  r.prefill_seconds = std::chrono::duration<double>(prefilled - start).count();

  StreamDecoder stream(*tok_);
  std::string held;          // decoded text not yet passed on: it might begin a stop string
  bool stopped = false;      // by a stop string, or by on_piece
  bool by_callback = false;  // on_piece or on_token asked to stop
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
    if (!out.empty() && on_piece && !on_piece(out)) stopped = by_callback = true;
  };

  std::vector<float> row(std::size_t(logits.size()));
  r.reason = StopReason::MaxTokens;
  for (int64_t step = 0; step < opt.max_new_tokens; ++step) {
    for (Eigen::Index i = 0; i < logits.size(); ++i) row[i] = float(logits[i]);
    r.tokens.push_back(sampler_.sample(row, tokens_));
    const int32_t id = r.tokens.back().id;
    if (opt.on_token && !opt.on_token(r.tokens.back())) by_callback = true;
    if (step == 0)
      r.time_to_first_token = std::chrono::duration<double>(clock::now() - start).count();
    if (id == tok_->end_of_turn() || id == tok_->eos()) {
      r.reason = id == tok_->eos() ? StopReason::Eos : StopReason::EndOfTurn;
      break;
    }
    r.ids.push_back(id);
    emit(stream.push(id), false);
    if (stopped || by_callback) {
      r.reason = by_callback ? StopReason::Callback : StopReason::StopString;
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

template <typename T>
std::vector<int32_t> Session<T>::turn_ids(const Conversation& next,
                                          int64_t mm_tokens_per_image) const {
  std::vector<int32_t> ids;
  if (turn_open_ && !tokens_.empty()) {
    // The previous answer stopped without its <end_of_turn> being fed: close the turn.
    ids.push_back(tok_->end_of_turn());
    const auto nl = tok_->encode("\n");
    ids.insert(ids.end(), nl.begin(), nl.end());
  }
  // An empty cache takes the whole conversation (<bos>, a system message folded into the turn).
  const std::size_t first_new = next.messages().size() - 1;
  const auto turn = next.render_ids(*tok_, mm_tokens_per_image, /*add_generation_prompt=*/true,
                                    /*parse_special=*/false, tokens_.empty() ? 0 : first_new);
  ids.insert(ids.end(), turn.begin(), turn.end());
  return ids;
}

template <typename T>
bool Session<T>::drop_oldest_exchange(Conversation& next, int64_t& dropped) {
  const auto& messages = next.messages();
  const std::size_t last = messages.size() - 1;  // the new turn stays
  std::size_t first = 0;
  while (first < last && messages[first].role == "system") ++first;
  if (first == last) return false;
  auto has_image = [](const Message& m) {
    for (const auto& p : m.content)
      if (p.kind == ContentPart::Kind::Image) return true;
    return false;
  };
  // One exchange: a user turn and what follows it up to the next user turn.
  std::size_t end = first + 1;
  while (end < last && messages[end].role != "user") ++end;
  // Older turns with images go too: everything up to the last one of them.
  for (std::size_t i = end; i < last; ++i)
    if (has_image(messages[i]))
      for (end = i + 1; end < last && messages[end].role != "user";) ++end;
  Conversation kept;
  for (std::size_t i = 0; i < messages.size(); ++i)
    if (i < first || i >= end) kept.add(messages[i]);
  dropped += int64_t(end - first);
  next = std::move(kept);
  cache_.clear();
  tokens_.clear();
  return true;
}

template <typename T>
GenerateResult Session<T>::chat(const Message& message, const GenerateOptions& opt,
                                const PieceCallback& on_piece, const ImageEmbeddings<T>& images,
                                int64_t mm_tokens_per_image) {
  Conversation next = conversation_;
  next.add(message);
  std::vector<int32_t> ids = turn_ids(next, mm_tokens_per_image);
  int64_t dropped = 0;
  // Room for the answer too: max_new_tokens, but at most a quarter of the context.
  const int64_t room = std::min(opt.max_new_tokens, cache_.capacity() / 4);
  if (opt.on_full_context == ContextFull::DropOldest &&
      cache_.length() + int64_t(ids.size()) + room > cache_.capacity()) {
    // The rest is prefilled again: drop until it fills at most half of the context, so that
    // this happens once every few turns rather than on every one.
    while (drop_oldest_exchange(next, dropped)) {
      ids = turn_ids(next, mm_tokens_per_image);
      if (int64_t(ids.size()) + room <= cache_.capacity() / 2) break;
    }
  }
  // A turn that still does not fit is refused by prefill before it changes anything: the
  // conversation stays whole (an emptied cache is filled from it again on the next turn).
  GenerateResult r = generate(ids, opt, on_piece, images);
  r.dropped_messages = dropped;
  next.model(r.text);
  conversation_ = std::move(next);
  turn_open_ = true;
  return r;
}

#if GEMMA3_EXTERN_TEMPLATES
extern template class Session<float>;
extern template class Session<double>;
#endif

}  // namespace gemma3::inline GEMMA3_MODE

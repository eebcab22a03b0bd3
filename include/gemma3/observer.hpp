// Observers: read, capture or edit the intermediates of a forward pass (its sites, site.hpp),
// without touching the model code.
//
// An observer declares up front which sites it reads and which it edits; the model announces only
// those, and the rest cost nothing. Reading never changes the numbers: with any backend, a forward
// pass with an observer that only reads gives logits bit-identical to one without. The fast path's
// fused blocks keep that promise: read attention probabilities are computed beside the
// online-softmax attention, never instead of it, and only edited ones make that layer run the
// plain attention; a site inside the packed MLP makes that layer run the same kernels unfused,
// bit-identically (docs/research-api.md).
//
//   Capture<float> cap({Site::residual(5), Site::attn_weights(3)});  // capture what you ask for
//   Hooks<float> hooks;                                               // or run code at sites
//   hooks.edit(Site::attn_output(2),
//              [](MatRef<float> o, const SiteInfo&) { o.leftCols(256).setZero(); });
//
// Reads receive a const view of the live buffer, edits a writable one: writing to it edits the
// forward pass (zero a head, add a steering vector, patch in a cached activation).
#pragma once

#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "gemma3/build_mode.hpp"
#include "gemma3/error.hpp"
#include "gemma3/site.hpp"
#include "gemma3/tensor.hpp"

namespace gemma3::inline GEMMA3_MODE {

// Where an announced tensor lies in the sequence.
struct SiteInfo {
  int64_t pos0 = 0;    // the absolute position of its first row's token (text sites)
  int64_t heads = 0;   // attention probabilities: the rows are [heads, T] head-major; else 0
  int64_t key0 = 0;    // attention probabilities: the absolute position of column 0's key
  int64_t image = -1;  // vision sites: which image (or crop) of the call, counting from 0
};

// The base of every observer.
template <typename T>
class Observer {
 public:
  Observer() = default;
  Observer(SiteSet reads, SiteSet edits) : reads_(std::move(reads)), edits_(std::move(edits)) {}
  virtual ~Observer() = default;

  // Sites announced to on_read (and not edited) and to on_edit.
  const SiteSet& reads() const { return reads_; }
  const SiteSet& edits() const { return edits_; }
  bool wants(const Site& s) const { return edits_.contains(s) || reads_.contains(s); }
  bool edits(const Site& s) const { return edits_.contains(s); }

  virtual void on_read(const Site&, ConstMatRef<T>, const SiteInfo&) {}
  virtual void on_edit(const Site&, MatRef<T>, const SiteInfo&) {}
  // Called as a forward call starts, with its first position and its number of tokens: a long
  // prompt then runs through the layers in chunks (TextModel::prefill_chunk), and each chunk
  // announces the layer sites of its own rows (SiteInfo::pos0 says which).
  virtual void on_forward(int64_t /*pos0*/, int64_t /*tokens*/) {}

 protected:
  SiteSet reads_, edits_;
};

// Announces `value` at site `s` to `obs` (which may be null): to on_edit when it edits the site,
// else to on_read when it reads it, else to nobody.
template <typename T>
inline void announce(Observer<T>* obs, const Site& s, MatRef<T> value, const SiteInfo& info = {}) {
  if (!obs) return;
  if (obs->edits(s))
    obs->on_edit(s, value, info);
  else if (obs->reads().contains(s))
    obs->on_read(s, value, info);
}

// One captured tensor and where it lies.
template <typename T>
struct Captured {
  Mat<T> value;
  SiteInfo info;
  // Attention probabilities: head h's [T, S] block (keys from info.key0 on).
  auto head(int64_t h) const {
    const int64_t t = value.rows() / info.heads;
    return value.middleRows(h * t, t);
  }
};

// Keeps a copy of every announcement of the sites it is given: run_with_cache's observer. A site
// announced several times (a prefill, then decode steps; several images) keeps each, in order;
// the chunks of one forward call are stitched into one [tokens, ...] matrix as they arrive (the
// attention probabilities excepted: each chunk's say which queries and keys they cover).
template <typename T>
class Capture : public Observer<T> {
 public:
  explicit Capture(SiteSet sites) : Observer<T>(std::move(sites), {}) {}
  Capture(std::initializer_list<Site> sites) : Capture(SiteSet(sites)) {}

  void on_forward(int64_t pos0, int64_t tokens) override {
    call_ = {pos0, tokens};
    ++calls_;
  }
  void on_read(const Site& s, ConstMatRef<T> v, const SiteInfo& info) override {
    auto& list = seen_[s];
    const bool chunk_of_call = s.kind != SiteKind::Logits && info.heads == 0 && info.image < 0 &&
                               v.rows() < call_.tokens && info.pos0 >= call_.pos0 &&
                               info.pos0 + v.rows() <= call_.pos0 + call_.tokens;
    if (!chunk_of_call) {
      list.push_back({Mat<T>(v), info});
      return;
    }
    int64_t& call = stitched_in_[s];
    if (call != calls_) {  // the call's first chunk: room for all its rows, allocated once
      call = calls_;
      list.push_back({Mat<T>(call_.tokens, v.cols()), info});
      list.back().info.pos0 = call_.pos0;
    }
    list.back().value.middleRows(info.pos0 - call_.pos0, v.rows()) = v;
  }

  bool contains(const Site& s) const { return seen_.contains(s); }
  std::size_t count(const Site& s) const {
    const auto it = seen_.find(s);
    return it == seen_.end() ? 0 : it->second.size();
  }
  // The k-th announcement of `s`; InvalidArgument naming the site when there is none.
  const Captured<T>& at(const Site& s, std::size_t k = 0) const {
    const auto it = seen_.find(s);
    if (it == seen_.end() || k >= it->second.size())
      throw InvalidArgument(
          "site", s.name() + " was not captured" +
                      (it == seen_.end() ? std::string(" (not asked for, or not computed)")
                                         : " " + std::to_string(k + 1) + " times"));
    return it->second[k];
  }
  const Mat<T>& operator[](const Site& s) const { return at(s).value; }
  // Every announcement of a row-per-token site stacked in order: a prefill and the decode steps
  // after it give one row per position.
  Mat<T> rows(const Site& s) const {
    const auto it = seen_.find(s);
    if (it == seen_.end()) at(s);  // throws
    int64_t n = 0;
    for (const auto& c : it->second) n += c.value.rows();
    Mat<T> out(n, it->second.front().value.cols());
    n = 0;
    for (const auto& c : it->second) {
      if (c.value.cols() != out.cols())
        throw InvalidArgument("site",
                              s.name() + " changes width between calls: not a row-per-token site");
      out.middleRows(n, c.value.rows()) = c.value;
      n += c.value.rows();
    }
    return out;
  }
  const std::map<Site, std::vector<Captured<T>>>& all() const { return seen_; }
  void clear() {
    seen_.clear();
    stitched_in_.clear();
  }

 private:
  struct Call {
    int64_t pos0 = 0, tokens = 0;
  };
  std::map<Site, std::vector<Captured<T>>> seen_;
  Call call_;                            // the forward call running now
  int64_t calls_ = 0;                    // forward calls seen
  std::map<Site, int64_t> stitched_in_;  // the call whose chunks a site's last entry holds
};

// Runs callables at sites: `read` ones see a const view, `edit` ones a writable one.
template <typename T>
class Hooks : public Observer<T> {
 public:
  using ReadFn = std::function<void(ConstMatRef<T>, const SiteInfo&)>;
  using EditFn = std::function<void(MatRef<T>, const SiteInfo&)>;

  Hooks& read(const Site& s, ReadFn f) {
    this->reads_.insert(s);
    reads_fns_.emplace(s, std::move(f));
    return *this;
  }
  Hooks& edit(const Site& s, EditFn f) {
    this->edits_.insert(s);
    edit_fns_.emplace(s, std::move(f));
    return *this;
  }

  void on_read(const Site& s, ConstMatRef<T> v, const SiteInfo& info) override {
    for (auto [it, end] = reads_fns_.equal_range(s); it != end; ++it) it->second(v, info);
  }
  void on_edit(const Site& s, MatRef<T> v, const SiteInfo& info) override {
    // A site that is both read and edited: the readers see it before the edit.
    for (auto [it, end] = reads_fns_.equal_range(s); it != end; ++it) it->second(v, info);
    for (auto [it, end] = edit_fns_.equal_range(s); it != end; ++it) it->second(v, info);
  }

 private:
  std::multimap<Site, ReadFn> reads_fns_;
  std::multimap<Site, EditFn> edit_fns_;
};

namespace detail {
// What one layer's code announces through: the observer (null when nobody observes), the layer and
// its first position. Asking costs a null test when nobody observes, a few bit tests otherwise.
template <typename T>
struct LayerTap {
  Observer<T>* obs = nullptr;
  int32_t layer = -1;
  int64_t pos0 = 0;
  int64_t image = -1;  // vision sites: the image of the call

  bool wants(SiteKind k) const { return obs && obs->wants(Site{k, layer}); }
  bool edits(SiteKind k) const { return obs && obs->edits(Site{k, layer}); }
  void operator()(SiteKind k, MatRef<T> value, SiteInfo info = {}) const {
    if (!obs) return;
    info.pos0 = pos0;
    info.image = image;
    announce(obs, Site{k, layer}, value, info);
  }
};
}  // namespace detail

#if GEMMA3_EXTERN_TEMPLATES
extern template class Capture<float>;
extern template class Capture<double>;
extern template class Hooks<float>;
extern template class Hooks<double>;
#endif

}  // namespace gemma3::inline GEMMA3_MODE

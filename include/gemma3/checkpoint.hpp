// A checkpoint as published: a Hugging Face directory (config.json + safetensors, single or
// sharded) or a llama.cpp GGUF file (text models; io/gguf_gemma3.hpp), with the vision tower and
// projector of a multimodal GGUF model in llama.cpp's separate mmproj file (io/gguf_mmproj.hpp),
// opened, validated against the config and bound to typed weight structs.
#pragma once

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <system_error>

#include "gemma3/build_mode.hpp"
#include "gemma3/config.hpp"
#include "gemma3/error.hpp"
#include "gemma3/io/gguf_gemma3.hpp"
#include "gemma3/io/gguf_mmproj.hpp"
#include "gemma3/io/hf_names.hpp"
#include "gemma3/io/safetensors.hpp"
#include "gemma3/kernels/fast.hpp"
#include "gemma3/weights.hpp"

namespace gemma3::inline GEMMA3_MODE {

// Whether a GGUF's quantized matrices get their rows interleaved for the int8 decode kernel
// (gguf::Tensors, kernels::quantdot::panels): where they are the model's own copy, which can be
// rewritten, and the CPU runs that kernel (elsewhere the panels would only be put back in file
// order at every product).
inline bool interleave_rows(Residency residency) {
  return residency == Residency::HugePages && fast::vnni_available();
}

class Checkpoint {
 public:
  // Opens `path`: a checkpoint directory (parses config.json, maps the safetensors file(s)) or a
  // .gguf file (config from its metadata), then binds every tensor the config calls for, checking
  // names and shapes. Throws on a missing, unexpected or mis-shaped tensor. `residency`: mapped
  // (the default: no copy) or read into 2 MiB pages (slower to load, faster to decode).
  static Checkpoint open(const std::filesystem::path& path, Residency residency = Residency::Mapped,
                         const Progress& progress = {});
  // Opens a multimodal model held as llama.cpp holds it: the text model's .gguf and the vision
  // tower + projector's mmproj .gguf (what llama.cpp's --mmproj takes). The config is the
  // multimodal one (model_type "gemma3"): the text GGUF's, with the vision config from the mmproj
  // file's clip.* metadata, and the image token ids from the text GGUF's vocabulary unless
  // `image_tokens` gives them. `progress` hears of the bytes of both files.
  static Checkpoint open(const std::filesystem::path& model_gguf,
                         const std::filesystem::path& mmproj_gguf,
                         Residency residency = Residency::Mapped, const Progress& progress = {},
                         const std::optional<gguf::ImageTokenIds>& image_tokens = std::nullopt);

  // A regular file named *.gguf or starting with the GGUF magic.
  static bool is_gguf(const std::filesystem::path& path) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) return false;
    if (path.extension() == ".gguf") return true;
    char magic[4] = {};
    std::ifstream in(path, std::ios::binary);
    return in.read(magic, 4) && std::memcmp(magic, gguf::kMagic, 4) == 0;
  }

  // The parsed GGUF file (what it stores, its metadata), or null for a safetensors checkpoint.
  const gguf::File* gguf_file() const { return gguf_ ? &gguf_->file() : nullptr; }
  // The mmproj file's tensors and config (image normalisation included), or null when the vision
  // tower, if any, came from the checkpoint itself.
  const gguf::MmprojTensors* mmproj() const { return mmproj_.get(); }
  // What was opened: the directory, or the .gguf file.
  const std::filesystem::path& path() const { return path_; }
  // The checkpoint's directory (the .gguf file's directory for GGUF).
  const std::filesystem::path& dir() const { return dir_; }
  const ModelConfig& config() const { return config_; }
  const TensorStore& store() const { return store_; }
  const ModelWeights& weights() const { return weights_; }
  const NameScheme& name_scheme() const { return *scheme_; }

  // Throws IoError naming the file if a weight file changed on disk since it was opened, or was
  // truncated under a read (io/mapped_file.hpp). Check between steps when the files may change.
  void check_unchanged() const { store_.check_unchanged(); }

 private:
  void bind();

  std::filesystem::path path_, dir_;
  std::shared_ptr<const gguf::Tensors> gguf_;          // set when opened from a .gguf file
  std::shared_ptr<const gguf::MmprojTensors> mmproj_;  // set when opened with an mmproj file
  ModelConfig config_;
  TensorStore store_;
  ModelWeights weights_;
  const NameScheme* scheme_ = nullptr;
};

// The loader's definitions: inline here in the header-only mode, compiled into gemma3::kernels in
// the compiled one (build_mode.hpp).
#if GEMMA3_DEFINE_COMPILED
GEMMA3_COMPILED_INLINE Checkpoint Checkpoint::open(const std::filesystem::path& path,
                                                   Residency residency, const Progress& progress) {
  Checkpoint ck;
  ck.path_ = path;
  if (is_gguf(path)) {
    ck.gguf_ = std::make_shared<const gguf::Tensors>(path, residency, progress,
                                                     interleave_rows(residency));
    ck.dir_ = path.parent_path();
    ck.config_ = gguf::config_from_gguf(ck.gguf_->file());
    ck.store_.add(path, ck.gguf_, ck.gguf_->views(), &ck.gguf_->file().mapped());
  } else {
    if (!std::filesystem::is_directory(path))
      throw IoError(path.string(),
                    "not a directory or a .gguf file (expected a checkpoint directory with "
                    "config.json, or a "
                    "GGUF file)");
    ck.dir_ = path;
    // A directory gemma3 wrote carries a completion stamp: check that it is still whole.
    check_completion_stamp(path);
    ck.config_ = load_config(path / "config.json");
    ck.store_ = TensorStore::open(path, residency, progress);
  }
  ck.bind();
  return ck;
}

GEMMA3_COMPILED_INLINE Checkpoint
Checkpoint::open(const std::filesystem::path& model_gguf, const std::filesystem::path& mmproj_gguf,
                 Residency residency, const Progress& progress,
                 const std::optional<gguf::ImageTokenIds>& image_tokens) {
  if (!is_gguf(model_gguf))
    throw InvalidArgument(model_gguf.string(),
                          "an mmproj file goes with a .gguf text model (a checkpoint directory "
                          "holds its own vision tower)");
  // Progress over both files: the mmproj's bytes after the text model's.
  std::error_code ec;
  const uint64_t model_bytes = std::filesystem::file_size(model_gguf, ec);
  const uint64_t total = model_bytes + std::filesystem::file_size(mmproj_gguf, ec);
  auto part = [&](uint64_t before) -> Progress {
    if (!progress) return {};
    return [&progress, before, total](uint64_t done, uint64_t) {
      progress(std::min(before + done, total), total);
    };
  };
  Checkpoint ck;
  ck.path_ = model_gguf;
  ck.dir_ = model_gguf.parent_path();
  ck.gguf_ = std::make_shared<const gguf::Tensors>(model_gguf, residency, part(0),
                                                   interleave_rows(residency));
  const ModelConfig text_config = gguf::config_from_gguf(ck.gguf_->file());  // (its errors first)
  ck.mmproj_ =
      std::make_shared<const gguf::MmprojTensors>(mmproj_gguf, residency, part(model_bytes));
  ck.config_ = gguf::multimodal_config(text_config, ck.gguf_->file(), ck.mmproj_->config(),
                                       ck.mmproj_->file(), image_tokens);
  ck.store_.add(model_gguf, ck.gguf_, ck.gguf_->views(), &ck.gguf_->file().mapped());
  ck.store_.add(mmproj_gguf, ck.mmproj_, ck.mmproj_->views(), &ck.mmproj_->file().mapped());
  ck.bind();
  return ck;
}

GEMMA3_COMPILED_INLINE void Checkpoint::bind() {
  const std::string where = path_.string();
  scheme_ = &detect_name_scheme([&](const std::string& n) { return store_.contains(n); }, where);
  std::set<std::string> used;
  // Errors name the tensor as the file does: GGUF files use llama.cpp's names, and a vision tensor
  // of a GGUF model is missing from its mmproj file.
  const bool from_mmproj = mmproj_ != nullptr;
  auto bind_one = [&](Module m, const std::string& rel, TensorView& slot, const Shape& expected) {
    const std::string full = scheme_->full_name(m, rel);
    const bool vision = m == Module::Vision || m == Module::Projector;
    if (!store_.contains(full))
      throw TensorError(!gguf_   ? full
                        : vision ? gguf::mmproj_name(m, rel)
                                 : gguf::gguf_name(m, rel),
                        "missing from " +
                            (vision && from_mmproj ? mmproj_->file().path().string() : where) +
                            " (expected shape " + shape_string(expected) + ")");
    slot = store_.at(full);
    expect_shape(slot, expected, from_mmproj ? store_.tensor_file(full) : where);
    used.insert(full);
  };
  for_each_tensor(config_, weights_,
                  [&](Module m, const std::string& rel, TensorView& slot, const Shape& expected,
                      Init) { bind_one(m, rel, slot, expected); });
  // An lm_head.weight present in a tied checkpoint is used as published (transformers loads it
  // too).
  if (config_.text.tie_word_embeddings) {
    if (store_.contains(scheme_->full_name(Module::LmHead, "lm_head.weight")))
      bind_one(Module::LmHead, "lm_head.weight", weights_.text.lm_head,
               Shape{config_.text.vocab_size, config_.text.hidden_size});
    else
      weights_.text.lm_head = weights_.text.embed_tokens;
  }
  for (const auto& [name, view] : store_.tensors())
    if (!used.count(name))
      throw TensorError(view.name, "unexpected tensor in " +
                                       (from_mmproj ? store_.tensor_file(name) : where) +
                                       " for a " + config_.model_type +
                                       " config (name scheme: " + scheme_->label + ")");
}
#endif

}  // namespace gemma3::inline GEMMA3_MODE

// gemma3 dump — run a forward pass and write its intermediates as .npy files named like the
// reference fixtures (minus their p{k}_ prefix), to compare against other backends with
// scripts/compare_npy.py.
//
//   embed.npy [T, hidden]   layers.npy [layers, T, hidden]   final_norm.npy [T, hidden]
//   logits.npy [T, vocab]   decode_logits.npy [T-P+1, vocab] (with --prefill P)
//   --all: every other observable intermediate, one <module path>.npy each
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <gemma3/checkpoint.hpp>
#include <gemma3/io/npy.hpp>
#include <gemma3/multimodal.hpp>

#include "commands.hpp"
#include "console.hpp"

namespace gemma3::cli {
namespace {

struct DumpOptions {
  std::string model, mmproj, ids, ids_npy, out, dtype = "f32";
  std::vector<std::string> images;
  int64_t prefill = 0;
  bool all = false;
  std::vector<std::string> ablate;  // sites set to zero (an edit) before anything reads them
};

// The dump's observer: captures what it is asked to, and zeroes the --ablate sites first (zero
// ablation, then what follows runs on the zeros; an ablated site is captured as zeros).
template <typename T>
class AblatingCapture : public Capture<T> {
 public:
  AblatingCapture(SiteSet capture, const std::vector<std::string>& ablate)
      : Capture<T>(std::move(capture)) {
    for (const auto& name : ablate) this->edits_.insert(Site::parse_or_throw(name, "--ablate"));
  }
  void on_edit(const Site& s, MatRef<T> v, const SiteInfo& info) override {
    v.setZero();
    if (this->reads().contains(s)) Capture<T>::on_read(s, v, info);
  }
};

std::vector<int32_t> parse_ids(const std::string& text) {
  std::vector<int32_t> ids;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      std::size_t used = 0;
      const long v = std::stol(item, &used);
      if (used != item.size() || v < INT32_MIN || v > INT32_MAX) throw std::invalid_argument(item);
      ids.push_back(int32_t(v));
    } catch (const std::exception&) {
      throw InvalidArgument("--ids", "'" + item + "' is not a token id (expected e.g. 2,818,5279)");
    }
  }
  return ids;
}

void write_f32(const std::filesystem::path& path, const Shape& shape, const auto& m) {
  const Mat<float> f = m.template cast<float>();
  write_npy(path, shape, f.data());
}

template <typename T>
void dump(const DumpOptions& o) {
  const auto ck = open_model(o.model, o.mmproj);
  const Gemma3<T> model(ck);
  const TextConfig& cfg = ck.config().text;
  std::vector<int32_t> ids =
      o.ids_npy.empty() ? parse_ids(o.ids) : read_npy(o.ids_npy).values<int32_t>();
  const auto n = static_cast<int64_t>(ids.size());
  if (o.prefill < 0 || o.prefill > n)
    throw InvalidArgument(
        "--prefill", "must be in [1, " + std::to_string(n) + "], got " + std::to_string(o.prefill));
  // All files or none: they are written into a temporary directory that replaces --out, with a
  // completion stamp, only once every one is complete (scripts/compare_npy.py checks the stamp).
  OutputDirectory directory(o.out);
  const std::filesystem::path& out = directory.path();

  // The fixtures' sites, or every site with --all.
  AblatingCapture<T> rec(
      o.all ? SiteSet::all()
            : SiteSet{Site::inputs_embeds(), Site::final_norm()}.insert_every_layer(
                  SiteKind::Residual),
      o.ablate);
  // Images: pixel values, SigLIP output and soft tokens, under the fixtures' names.
  ImageEmbeddings<T> images;
  if (!o.images.empty()) {
    const auto& vc = model.vision().vision_config();
    const int64_t n_img = int64_t(o.images.size()), S = vc.image_size;
    Mat<float> pixels(n_img * 3, S * S);
    Mat<T> hidden(n_img * vc.num_patches(), vc.hidden_size);
    Mat<T> soft(n_img * model.vision().tokens_per_image(), cfg.hidden_size);
    for (int64_t i = 0; i < n_img; ++i) {
      const auto pv = model.pixel_values(load_image(o.images[i]));
      if (pv.size() != 1)
        throw InvalidArgument("--image", "dump feeds images without pan & scan crops");
      pixels.middleRows(3 * i, 3) = pv[0];
      hidden.middleRows(i * vc.num_patches(), vc.num_patches()) =
          model.vision().last_hidden_state(pv[0].template cast<T>(), &rec, i);
      images.push_back(
          model.vision().project(hidden.middleRows(i * vc.num_patches(), vc.num_patches())));
      soft.middleRows(i * images.back().rows(), images.back().rows()) = images.back();
    }
    write_f32(out / "pixel_values.npy", {n_img, 3, S, S}, pixels);
    write_f32(out / "vision_last_hidden_state.npy", {n_img, vc.num_patches(), vc.hidden_size},
              hidden);
    write_f32(out / "image_soft_tokens.npy",
              {n_img, model.vision().tokens_per_image(), cfg.hidden_size}, soft);
  }
  const Mat<T> logits = model.forward(ids, images, rec);
  const int64_t H = cfg.hidden_size;
  Mat<T> layers(cfg.num_hidden_layers * n, H);
  write_f32(out / "embed.npy", {n, H}, rec[Site::inputs_embeds()]);
  write_f32(out / "final_norm.npy", {n, H}, rec[Site::final_norm()]);
  for (int32_t l = 0; l < cfg.num_hidden_layers; ++l)
    layers.middleRows(n * l, n) = rec[Site::residual(l)];
  if (o.all)
    for (const auto& [site, captured] : rec.all())
      for (std::size_t k = 0; k < captured.size(); ++k) {
        const Mat<T>& m = captured[k].value;
        Shape shape{m.rows(), m.cols()};
        if (captured[k].info.heads > 0)
          shape = {captured[k].info.heads, m.rows() / captured[k].info.heads, m.cols()};
        // A vision site is announced once per image: image 1 and later get a suffix.
        write_f32(out / (site.name() + (k > 0 ? "." + std::to_string(k) : "") + ".npy"), shape, m);
      }
  write_f32(out / "layers.npy", {cfg.num_hidden_layers, n, H}, layers);
  write_f32(out / "logits.npy", {n, cfg.vocab_size}, logits);
  if (o.prefill > 0) {
    // Prefill [0, P), then one token at a time; row r = logits at position P - 1 + r.
    // Images must lie inside the prefill (their tokens see each other within one chunk).
    KVCache<T> cache(cfg, n);
    Mat<T> decode(n - o.prefill + 1, cfg.vocab_size);
    decode.row(0) =
        model.forward(std::span(ids).first(o.prefill), images, cache, LogitRows::last());
    for (int64_t t = o.prefill; t < n; ++t)
      decode.row(t - o.prefill + 1) = model.forward(std::span(ids).subspan(t, 1), {}, cache);
    write_f32(out / "decode_logits.npy", {decode.rows(), decode.cols()}, decode);
  }
  directory.commit({{"model", o.model}, {"tokens", n}, {"dtype", o.dtype}});
  std::printf("wrote %s: %ld tokens, %s compute%s\n", o.out.c_str(), long(n), o.dtype.c_str(),
              o.all ? ", every intermediate" : "");
}

}  // namespace

void add_dump_command(CLI::App& app) {
  auto o = std::make_shared<DumpOptions>();
  auto* cmd = app.add_subcommand("dump", "write a forward pass's intermediates as .npy files");
  cmd->add_option("--model", o->model, "checkpoint directory")->required();
  auto* ids = cmd->add_option("--ids", o->ids, "comma-separated token ids, e.g. 2,818,5279");
  auto* ids_npy = cmd->add_option("--ids-npy", o->ids_npy, "token ids from an int .npy file");
  ids->excludes(ids_npy);
  cmd->add_option("--out", o->out, "output directory")->required();
  cmd->add_option("--dtype", o->dtype, "compute precision (files are always float32)")
      ->check(CLI::IsMember({"f32", "f64"}));
  cmd->add_option("--prefill", o->prefill,
                  "also prefill [0,P) then decode the rest: decode_logits.npy");
  cmd->add_flag("--all", o->all, "also write every other intermediate, named by module path");
  cmd->add_option("--ablate", o->ablate,
                  "zero this site in the forward pass (repeatable), e.g. "
                  "model.layers.3.self_attn.attn_output");
  cmd->add_option(
         "--image", o->images,
         "an image for the next run of image placeholders in the ids (repeatable, in order)")
      ->check(CLI::ExistingFile);
  add_mmproj_option(cmd, o->mmproj);
  cmd->callback([o, ids, ids_npy] {
    if (ids->count() == 0 && ids_npy->count() == 0)
      throw InvalidArgument("--ids", "give the tokens with --ids or --ids-npy");
    if (o->dtype == "f64")
      dump<double>(*o);
    else
      dump<float>(*o);
  });
}

}  // namespace gemma3::cli

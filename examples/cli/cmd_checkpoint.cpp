// gemma3 synth — write a checkpoint of a preset's exact published layout with seeded random
// weights. gemma3 inspect — print what a checkpoint holds before running anything. gemma3 convert —
// write a checkpoint's text model as a llama.cpp-style GGUF file.
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include <gemma3/checkpoint.hpp>
#include <gemma3/io/gguf_tokenizer.hpp>
#include <gemma3/synth.hpp>
#include <gemma3/text/kv_cache.hpp>
#include <gemma3/tokenizer/load_tokenizer.hpp>
#include <gemma3/vision/preprocess.hpp>

#include "commands.hpp"
#include "console.hpp"

namespace gemma3::cli {
namespace {

std::string thousands(int64_t n) {
  std::string s = std::to_string(n), out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (i && (s.size() - i) % 3 == 0) out += ',';
    out += s[i];
  }
  return out;
}

void inspect(const std::string& dir, const std::string& mmproj) {
  const auto ck = open_model(dir, mmproj);
  const ModelConfig& cfg = ck.config();
  const TextConfig& t = cfg.text;
  std::printf("checkpoint   %s\n", dir.c_str());
  const gguf::File* gguf_file = ck.gguf_file();
  std::printf("model_type   %s (%s)\n", cfg.model_type.c_str(),
              gguf_file ? "GGUF, llama.cpp names" : ck.name_scheme().label);
  std::printf("files        ");
  for (const auto& f : ck.store().files()) std::printf("%s ", f.filename().c_str());
  if (gguf_file) {
    // What the file stores (the loader widens norms and quantized matrices to f32).
    std::map<std::string, int> stored;
    for (const auto& t : gguf_file->tensors()) ++stored[gguf::type_name(t.type)];
    std::printf("\ngguf         version %u, %zu tensors stored as", gguf_file->version(),
                gguf_file->tensors().size());
    for (const auto& [type, n] : stored) std::printf(" %s: %d", type.c_str(), n);
  }
  std::printf("\n\ntext decoder\n");
  std::printf("  vocab %ld, hidden %ld, intermediate %ld, layers %ld\n", long(t.vocab_size),
              long(t.hidden_size), long(t.intermediate_size), long(t.num_hidden_layers));
  std::printf("  heads %ld (kv %ld) x head_dim %ld, query_pre_attn_scalar %g\n",
              long(t.num_attention_heads), long(t.num_key_value_heads), long(t.head_dim),
              t.query_pre_attn_scalar);
  std::string kinds;
  int64_t n_global = 0;
  for (int64_t i = 0; i < t.num_hidden_layers; ++i) {
    const bool global = layer_kind(t, i) == LayerKind::Global;
    kinds += global ? 'G' : 'L';
    n_global += global;
  }
  std::printf("  layers       %s  (%ld local, %ld global)\n", kinds.c_str(),
              long(t.num_hidden_layers - n_global), long(n_global));
  std::printf("  sliding_window %ld, max_position_embeddings %ld, rms_norm_eps %g\n",
              long(t.sliding_window), long(t.max_position_embeddings), t.rms_norm_eps);
  std::printf("  rope local theta %g x1/%g, global theta %g x1/%g\n", t.rope_local.theta,
              t.rope_local.linear_factor, t.rope_global.theta, t.rope_global.linear_factor);
  std::printf(
      "  softcapping  final %s, attention %s; embeddings %s\n",
      t.final_logit_softcapping ? std::to_string(*t.final_logit_softcapping).c_str() : "none",
      t.attn_logit_softcapping ? std::to_string(*t.attn_logit_softcapping).c_str() : "none",
      t.tie_word_embeddings ? "tied" : "untied");
  if (cfg.vision) {
    const auto& v = *cfg.vision;
    std::printf(
        "\nvision tower (SigLIP)\n  image %ld px, patch %ld (%ld patches), hidden %ld, "
        "intermediate %ld, "
        "layers %ld, heads %ld\n  %ld soft tokens per image; boi %ld, eoi %ld, image token %ld\n",
        long(v.image_size), long(v.patch_size), long(v.num_patches()), long(v.hidden_size),
        long(v.intermediate_size), long(v.num_hidden_layers), long(v.num_attention_heads),
        long(cfg.mm_tokens_per_image), long(cfg.boi_token_index), long(cfg.eoi_token_index),
        long(cfg.image_token_index));
  }

  // Parameters and bytes by component and dtype.
  struct Tally {
    int64_t params = 0, bytes = 0, tensors = 0;
  };
  std::map<std::string, Tally> by_component;
  std::map<std::string, Tally> by_dtype;
  ModelWeights w;
  for_each_tensor(cfg, w, [&](Module m, const std::string& rel, TensorView&, const Shape&, Init) {
    const auto& view = ck.store().at(ck.name_scheme().full_name(m, rel));
    const char* component = m == Module::Vision            ? "vision tower"
                            : m == Module::Projector       ? "projector"
                            : m == Module::LmHead          ? "lm_head"
                            : rel == "embed_tokens.weight" ? "embedding"
                                                           : "text (non-embedding)";
    for (auto* tally : {&by_component[component], &by_dtype[dtype_name(view.dtype)]}) {
      tally->params += view.numel();
      tally->bytes += int64_t(view.nbytes());
      tally->tensors += 1;
    }
  });
  std::printf("\n%-22s %8s %18s %12s\n", "component", "tensors", "parameters", "bytes");
  Tally total;
  for (const auto& [name, tally] : by_component) {
    std::printf("%-22s %8ld %18s %12s\n", name.c_str(), long(tally.tensors),
                thousands(tally.params).c_str(), human_bytes(double(tally.bytes)).c_str());
    total.params += tally.params, total.bytes += tally.bytes, total.tensors += tally.tensors;
  }
  std::printf("%-22s %8ld %18s %12s\n", "total", long(total.tensors),
              thousands(total.params).c_str(), human_bytes(double(total.bytes)).c_str());
  std::printf("dtypes      ");
  for (const auto& [name, tally] : by_dtype)
    std::printf(" %s: %ld tensors", name.c_str(), long(tally.tensors));
  std::printf("\n\nKV cache (f32, one sequence):");
  for (int64_t ctx : {int64_t(8192), int64_t(32768), int64_t(131072)})
    if (ctx <= t.max_position_embeddings)
      std::printf("  %ldK %s", long(ctx / 1024),
                  human_bytes(double(KVCache<float>::bytes_needed(t, ctx))).c_str());
  std::printf("\n");
}

// general.name from the model's directory (or .gguf file) name, as llama.cpp's converter makes it:
// its words, capitalised ("gemma-3-1b-it" -> "Gemma 3 1b It").
std::string model_name(const std::string& model) {
  std::filesystem::path p(model);
  if (!p.has_filename()) p = p.parent_path();  // "dir/"
  std::string name =
      std::filesystem::is_regular_file(p) ? p.stem().string() : p.filename().string();
  bool word_start = true;
  for (char& c : name) {
    if (c == '-' || c == '_' || c == '.') c = ' ';
    if (word_start && c >= 'a' && c <= 'z') c = char(c - 'a' + 'A');
    word_start = c == ' ';
  }
  return name;
}

// The tokenizer `convert` embeds: --tokenizer, else the model's own (default_tokenizer_path), with
// the HF tokenizer_config.json beside a tokenizer.model, or what a GGUF kept of it. Without any,
// the file is written without one (llama.cpp will refuse it), and a note says so.
gguf::WriteOptions write_options(const std::string& model, const std::string& given) {
  gguf::WriteOptions options{.name = model_name(model)};
  std::string path;
  try {
    path = default_tokenizer_path(given, model);
  } catch (const InvalidArgument&) {
    std::fprintf(stderr,
                 "note: no tokenizer.model found, so the GGUF has no tokenizer.ggml.* metadata "
                 "(llama.cpp refuses such a file); give one with --tokenizer\n");
    return options;
  }
  if (is_gguf_file(path)) {
    const gguf::File f(path);
    options.tokenizer = gguf::sentencepiece_model(f);
    options.tokenizer_config = gguf::tokenizer_config(f);
    return options;
  }
  options.tokenizer = spm::parse_model_proto(read_file(path, "tokenizer model"), path);
  const auto config = std::filesystem::path(path).parent_path() / "tokenizer_config.json";
  if (std::filesystem::exists(config)) {
    try {
      options.tokenizer_config = nlohmann::json::parse(read_file(config, "tokenizer config"));
    } catch (const nlohmann::json::exception& e) {
      throw FormatError(config.string(), std::string("invalid JSON: ") + e.what());
    }
  }
  return options;
}

// `convert --mmproj`: the vision tower and projector as llama.cpp's mmproj GGUF. llama.cpp's
// converter writes one as f32, f16, bf16 or q8_0; with a lower --type (meant for the text model)
// the projector is written as f16, as the mmproj files published beside quantized models are.
void write_mmproj_file(const Checkpoint& ck, const std::string& model, const std::string& out,
                       const std::string& type) {
  const std::map<std::string, gguf::FileType> types{{"f32", gguf::FileType::F32},
                                                    {"f16", gguf::FileType::F16},
                                                    {"bf16", gguf::FileType::BF16},
                                                    {"q8_0", gguf::FileType::Q8_0}};
  const auto it = types.find(type);
  if (it == types.end())
    std::fprintf(stderr,
                 "note: the mmproj file is written as f16 (llama.cpp's converter writes "
                 "one as f32, f16, bf16 or q8_0)\n");
  gguf::MmprojWriteOptions options{.name = model_name(model)};
  // The preprocessor's normalisation, which llama.cpp reads from the mmproj file.
  const auto pre = ck.dir() / "preprocessor_config.json";
  if (!ck.gguf_file() && std::filesystem::exists(pre)) {
    const ImageProcessorConfig pc = load_preprocessor_config(pre, &*ck.config().vision);
    options.image_mean = pc.image_mean;
    options.image_std = pc.image_std;
  }
  ProgressBar bar("convert --mmproj");
  gguf::write_mmproj(ck.config(), ck.weights(), out,
                     it == types.end() ? gguf::FileType::F16 : it->second, bar.callback(), options);
  std::printf("wrote %s (vision tower and projector, %s)\n", out.c_str(),
              human_bytes(double(std::filesystem::file_size(out))).c_str());
}

}  // namespace

void add_checkpoint_commands(CLI::App& app) {
  auto* synth = app.add_subcommand(
      "synth", "write a checkpoint with seeded random weights in the published layout");
  auto preset_name = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  auto seed = std::make_shared<uint64_t>(0);
  auto dtype = std::make_shared<std::string>("bf16");
  synth->add_option("--preset", *preset_name, "model size")
      ->required()
      ->check(CLI::IsMember(preset_names()));
  synth->add_option("--seed", *seed, "random seed");
  std::vector<std::string> dtypes{"bf16", "f32"};
  for (const auto& info : gguf::file_types())
    if (info.name != "bf16" && info.name != "f32") dtypes.push_back(info.name);
  synth
      ->add_option("--dtype", *dtype,
                   "weight dtype: bf16 or f32 (a safetensors directory, or a GGUF if --out ends "
                   "in .gguf), or a llama.cpp file type (a GGUF, written a row at a time)")
      ->check(CLI::IsMember(dtypes));
  synth->add_option("--out", *out, "output directory (or .gguf file)")->required();
  auto tokenizer = std::make_shared<std::string>();
  synth
      ->add_option("--tokenizer", *tokenizer,
                   "copy this tokenizer.model into the checkpoint, as published")
      ->check(CLI::ExistingFile);
  synth->callback([=] {
    const ModelConfig cfg = preset(*preset_name);
    ProgressBar bar("synth " + *preset_name);
    const bool to_gguf =
        std::filesystem::path(*out).extension() == ".gguf" || (*dtype != "bf16" && *dtype != "f32");
    if (to_gguf) {
      if (std::filesystem::path(*out).extension() != ".gguf")
        throw InvalidArgument(
            "--out", "'" + *out + "': a " + *dtype + " model is a GGUF file; name it *.gguf");
      if (cfg.is_multimodal())
        std::fprintf(stderr,
                     "note: the vision tower is not written (llama.cpp keeps it in a "
                     "separate mmproj file)\n");
      synthesize_gguf(cfg, *out, *gguf::parse_file_type(*dtype),
                      {.seed = *seed, .tokenizer = *tokenizer, .progress = bar.callback()});
      std::printf("wrote %s (%s, %s)\n", out->c_str(), preset_name->c_str(),
                  human_bytes(double(std::filesystem::file_size(*out))).c_str());
      return;
    }
    const std::size_t bytes =
        synthesize_checkpoint(cfg, *out,
                              {.seed = *seed,
                               .dtype = *dtype == "bf16" ? DType::BF16 : DType::F32,
                               .tokenizer = *tokenizer,
                               .progress = bar.callback()});
    std::printf("wrote %s (%s, %s of weights)\n", out->c_str(), preset_name->c_str(),
                human_bytes(double(bytes)).c_str());
  });

  auto* insp = app.add_subcommand("inspect", "print a checkpoint's config, tensors and sizes");
  auto model = std::make_shared<std::string>();
  insp->add_option("--model", *model, "checkpoint directory or .gguf file")->required();
  auto insp_mmproj = std::make_shared<std::string>();
  add_mmproj_option(insp, *insp_mmproj);
  insp->callback([=] { inspect(*model, *insp_mmproj); });

  // convert and quantize: the same writer; quantize reads as naturally from a GGUF (requantizing
  // it, e.g. a bf16 or q8_0 file to q4_k_m) as from a directory.
  const auto add_writer = [&](const char* command, const char* description,
                              const char* default_type) {
    auto* conv = app.add_subcommand(command, description);
    auto conv_model = std::make_shared<std::string>();
    auto conv_out = std::make_shared<std::string>();
    auto conv_type = std::make_shared<std::string>(default_type);
    conv->add_option("--model", *conv_model, "checkpoint directory or .gguf file")->required();
    conv->add_option("--out", *conv_out, "output .gguf file")->required();
    auto conv_tokenizer = std::make_shared<std::string>();
    conv->add_option("--tokenizer", *conv_tokenizer,
                     "tokenizer.model (or a .gguf holding one) to embed (default: the model's "
                     "own, then $GEMMA3_TOKENIZER, then the one scripts/setup.sh built)");
    auto conv_mmproj = std::make_shared<std::string>();
    conv->add_option("--mmproj", *conv_mmproj,
                     "also write the vision tower and projector to this file, as llama.cpp's "
                     "mmproj GGUF");
    std::vector<std::string> names;
    for (const auto& info : gguf::file_types()) names.push_back(info.name);
    conv->add_option("--type", *conv_type,
                     "llama.cpp file type: the matrices' type (q4_k_m, q5_k_m: mixed as "
                     "llama-quantize mixes them; norms are always f32)")
        ->check(CLI::IsMember(names));
    conv->callback([=] {
      const auto ck = Checkpoint::open(*conv_model);
      if (!conv_mmproj->empty())
        write_mmproj_file(ck, *conv_model, *conv_mmproj, *conv_type);
      else if (ck.config().is_multimodal())
        std::fprintf(stderr,
                     "note: the vision tower is not written (llama.cpp keeps it in a separate "
                     "mmproj file: give one with --mmproj)\n");
      const gguf::WriteOptions options = write_options(*conv_model, *conv_tokenizer);
      ProgressBar bar(command);
      gguf::write_gguf(ck.config(), ck.weights(), *conv_out, *gguf::parse_file_type(*conv_type),
                       bar.callback(), options);
      std::printf("wrote %s (%s, %s)\n", conv_out->c_str(), conv_type->c_str(),
                  human_bytes(double(std::filesystem::file_size(*conv_out))).c_str());
    });
  };
  add_writer("convert", "write a checkpoint's text model as a GGUF file (llama.cpp's layout)",
             "bf16");
  add_writer("quantize",
             "write a checkpoint (or GGUF) as a quantized GGUF file (llama.cpp's file types)",
             "q4_k_m");
}

}  // namespace gemma3::cli

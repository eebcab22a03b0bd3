// gemma3 bench — end-to-end speed on a real-shaped checkpoint, judged against this machine's limits
// measured in the same run (twice, around the decode; the best of each):
//   decode:  tokens/s (the fastest of --decode-runs) vs the roofline  read bandwidth ÷ bytes read
//            per token (the weights, and the KV cache rows that attention reads, averaged over the
//            decoded positions)
//   prefill: FLOP/s (the fastest of --prefill-runs; the first, cold, reported too) vs the measured
//            peak of the instruction the products run on (f32 FMA, bf16 dot or int8 dot)
//   vision:  (multimodal checkpoints) one image through SigLIP and the projector, FLOP/s vs the
//            same peak
// and each warm prefill run and each decode run against its own yardstick, measured just before
// it: the median and range of the runs' fractions.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <unistd.h>

#include <omp.h>
#include <nlohmann/json.hpp>

#include <gemma3/checkpoint.hpp>
#include <gemma3/kernels/machine.hpp>
#include <gemma3/multimodal.hpp>
#include <gemma3/sample/sampler.hpp>
#include <gemma3/synth.hpp>

#include "commands.hpp"
#include "console.hpp"

namespace gemma3::cli {
namespace {

struct BenchOptions {
  std::string model, mmproj, preset, dtype = "bf16", backend = "fast", image;
  int64_t prompt_tokens = 512, gen_tokens = 128;
  int prefill_runs = 2, decode_runs = 1;
  int threads = 0;
  bool json = false, huge_pages = false;
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Where --preset checkpoints are synthesised once and reused.
std::filesystem::path preset_dir(const BenchOptions& o) {
  std::filesystem::path cache;
  if (const char* c = std::getenv("GEMMA3_CACHE"))
    cache = c;
  else if (const char* home = std::getenv("HOME"))
    cache = std::filesystem::path(home) / ".cache" / "gemma3";
  else
    cache = std::filesystem::temp_directory_path() / "gemma3";
  return cache / "bench" / (o.preset + "-" + o.dtype);
}

// The floating-point work of encoding one image: 2 FLOP per multiply-add of the patch embedding,
// of q/k/v/out and fc1/fc2 in every layer and of the projector, plus attention (q·k and p·v, over
// all P² keys for each of the P² patches).
double vision_flops(const ModelConfig& cfg) {
  const VisionConfig& v = *cfg.vision;
  const double patches = double(v.num_patches()), vh = double(v.hidden_size);
  const double per_layer = 2.0 * patches * vh * (4.0 * vh + 2.0 * double(v.intermediate_size)) +
                           4.0 * patches * patches * vh;
  return 2.0 * patches * double(v.num_channels * v.patch_size * v.patch_size) * vh +
         double(v.num_hidden_layers) * per_layer +
         2.0 * double(cfg.mm_tokens_per_image) * vh * double(cfg.text.hidden_size);
}

// Resident memory now, in MiB (/proc/self/statm; 0 where there is none).
double resident_mib() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (!f) return 0;
  long size = 0, resident = 0;
  const int got = std::fscanf(f, "%ld %ld", &size, &resident);
  std::fclose(f);
  return got == 2 ? double(resident) * double(sysconf(_SC_PAGESIZE)) / double(1 << 20) : 0;
}

// The peak resident memory of the bench's own work, in MiB (as getrusage's ru_maxrss / 1024),
// without the bandwidth measurements' arrays: 768 MiB at a time, more than a whole 1b Q4_0
// model, which a process-wide peak would count. Linux's VmHWM is read before each measurement
// (noted) and reset to the resident memory after it (5 written to /proc/self/clear_refs, which
// frees nothing). Where either cannot be done: getrusage's peak, the arrays included.
class WorkPeakRss {
 public:
  // Runs measure() between the two.
  template <class Measure>
  auto around(Measure&& measure) {
    note();
    auto result = measure();
    std::FILE* f = std::fopen("/proc/self/clear_refs", "w");
    exact_ = exact_ && f && std::fputs("5", f) >= 0;
    if (f) exact_ = std::fclose(f) == 0 && exact_;
    return result;
  }
  double mib() {
    note();
    return double(exact_ && hwm_kb_ > 0 ? hwm_kb_ : peak_rss_kib()) / 1024.0;
  }

 private:
  void note() {
    std::FILE* f = std::fopen("/proc/self/status", "r");
    long kb = -1;
    char line[256];
    while (f && std::fgets(line, sizeof line, f))
      if (std::sscanf(line, "VmHWM: %ld kB", &kb) == 1) break;
    if (f) std::fclose(f);
    if (kb < 0) exact_ = false;
    hwm_kb_ = std::max(hwm_kb_, kb);
  }
  long hwm_kb_ = 0;
  bool exact_ = true;
};

// A seeded test pattern of the encoder's input size (the bench's image when none is given).
Image pattern_image(int64_t size) {
  Image img(size, size);
  SplitMix64 rng(7);
  for (int64_t y = 0; y < size; ++y)
    for (int64_t x = 0; x < size; ++x)
      for (int c = 0; c < 3; ++c) img.at(y, x, c) = uint8_t(rng.next() >> 56);
  return img;
}

void bench(const BenchOptions& o) {
  set_threads(o.threads);
  std::string model_dir = o.model;
  if (!o.preset.empty()) {
    const auto dir = preset_dir(o);
    // The cache is used only when complete: synth stamps a directory last, in one rename. A
    // directory without the stamp is what an older version or an interrupted one left: redo it.
    if (!std::filesystem::exists(dir / kCompletionStamp)) {
      std::fprintf(stderr, "synthesising %s (%s) in %s ...\n", o.preset.c_str(), o.dtype.c_str(),
                   dir.c_str());
      std::filesystem::remove_all(dir);
      ProgressBar bar("synth " + o.preset);
      synthesize_checkpoint(preset(o.preset), dir,
                            {.seed = 0,
                             .dtype = o.dtype == "f32" ? DType::F32 : DType::BF16,
                             .progress = bar.callback()});
    }
    model_dir = dir.string();
  }
  auto t0 = std::chrono::steady_clock::now();
  ProgressBar loading("reading into huge pages");
  const auto ck =
      open_model(model_dir, o.mmproj, o.huge_pages ? Residency::HugePages : Residency::Mapped,
                 o.huge_pages ? loading.callback() : Progress{});
  const Gemma3<float> full(ck,
                           backend_from_string(o.backend));  // + vision tower where there is one
  const TextModel<float>& model = full.text();
  const double load_s = seconds_since(t0);
  const TextConfig& cfg = model.config();
  if (!o.image.empty() && !ck.config().is_multimodal())
    throw InvalidArgument("--image", "this is a text-only checkpoint (" + ck.config().model_type +
                                         "): no vision tower");

  // One image through the vision tower and the projector (multimodal checkpoints).
  double vision_s = 0, vision_rss_mib = 0, vision_growth_mib = 0;
  if (ck.config().is_multimodal()) {
    // (the image itself, without pan & scan crops: the processor's first output)
    const Mat<float> pixels = full.pixel_values(
        o.image.empty() ? pattern_image(ck.config().vision->image_size) : load_image(o.image))[0];
    const double before_mib = resident_mib();
    t0 = std::chrono::steady_clock::now();
    const Mat<float> soft_tokens = full.encode(pixels);
    vision_s = seconds_since(t0);
    vision_rss_mib = double(peak_rss_kib()) / 1024.0;
    // What encoding added at its peak: the activations, plus the vision weights' pages where the
    // weights are mapped (--huge-pages reads them all in before).
    vision_growth_mib = std::max(0.0, vision_rss_mib - before_mib);
  }

  // Bytes of weights one decode step reads: every decoder matrix and norm, the final norm and the
  // LM head (the tied embedding, read whole); of the input embedding only one row.
  // The matrices' bytes per dtype: a llama.cpp K-quant file mixes several (a Q4_K_M 1b: Q5_0,
  // Q8_0, Q4_K and Q6_K), so one tensor's dtype would misname it.
  int64_t bytes_per_token = 0, matmul_params = 0;
  std::map<std::string, int64_t> matrix_bytes;
  for (const auto& l : model.weights().layers)
    for (const TensorView* t :
         {&l.input_layernorm, &l.q_proj, &l.k_proj, &l.v_proj, &l.q_norm, &l.k_norm, &l.o_proj,
          &l.post_attention_layernorm, &l.pre_feedforward_layernorm, &l.gate_proj, &l.up_proj,
          &l.down_proj, &l.post_feedforward_layernorm}) {
      bytes_per_token += int64_t(t->nbytes());
      if (t->shape.size() == 2) {
        matmul_params += t->numel();
        matrix_bytes[dtype_name(t->dtype)] += int64_t(t->nbytes());
      }
    }
  bytes_per_token += int64_t(model.weights().norm.nbytes() + model.weights().lm_head.nbytes());
  matrix_bytes[dtype_name(model.weights().lm_head.dtype)] +=
      int64_t(model.weights().lm_head.nbytes());
  // "Q4_0", or the mix by share of the bytes, largest first (ties in the names' order): a 1b
  // Q4_K_M file is "Q8_0 41%, Q5_0 39%, Q6_K 11%, Q4_K 9%".
  std::vector<std::pair<std::string, int64_t>> by_bytes(matrix_bytes.begin(), matrix_bytes.end());
  std::ranges::stable_sort(by_bytes, std::greater{}, &std::pair<std::string, int64_t>::second);
  int64_t all_matrix_bytes = 0;
  for (const auto& [name, bytes] : by_bytes) all_matrix_bytes += bytes;
  std::string weights_mix = by_bytes.front().first;
  if (by_bytes.size() > 1) {
    weights_mix.clear();
    for (const auto& [name, bytes] : by_bytes)
      weights_mix +=
          (weights_mix.empty() ? "" : ", ") + name + " " +
          std::to_string(int(std::lround(100.0 * double(bytes) / double(all_matrix_bytes)))) + "%";
  }

  // Sizes checked before anything is allocated for them.
  if (o.prompt_tokens + o.gen_tokens > cfg.max_position_embeddings)
    throw InvalidArgument("--prompt-tokens", std::to_string(o.prompt_tokens) + " prompt and " +
                                                 std::to_string(o.gen_tokens) +
                                                 " generated tokens exceed the model's " +
                                                 std::to_string(cfg.max_position_embeddings) +
                                                 " positions");
  // A seeded random prompt.
  SplitMix64 rng(1);
  std::vector<int32_t> prompt(std::size_t(o.prompt_tokens));
  prompt[0] = int32_t(cfg.bos_token_id);
  for (std::size_t i = 1; i < prompt.size(); ++i)
    prompt[i] = int32_t(1000 + rng.next() % 200000 % uint64_t(cfg.vocab_size - 1000));

  // The prompt is prefilled prefill_runs times, each into a fresh cache. The first run is cold: it
  // faults the activations' heap pages in, starts the threads and warms the caches (on a 270m
  // Q4_0 prefill of 128 tokens, a third slower than the next); it gives the time to first token.
  // The fastest run gives the prefill speed, as a warm process (or llama-bench, after its warm-up
  // run) prefills; the decode continues from the last run's cache.
  // Greedy, as `run --temperature 0` picks.
  const auto greedy = [](const Mat<float>& logits) {
    return sampling::argmax({logits.data(), std::size_t(logits.cols())});
  };
  std::unique_ptr<KVCache<float>> cache;
  const auto fresh_cache = [&] {
    cache.reset();  // (its memory is reused by the next)
    cache = std::make_unique<KVCache<float>>(cfg, o.prompt_tokens + o.gen_tokens);
  };
  // The machine's limits: compute peaks (GFLOP/s, GFLOP/s, GOP/s; 0 where the CPU lacks the
  // instruction) and the memory's bandwidth.
  struct Limits {
    MachineBandwidth bw;
    double fma = 0, bf16 = 0, int8 = 0;
  };
  // Prefill is judged against the peak of the instruction its GEMM runs on: vpdpbusd for
  // quantized weights where the CPU has it, vdpbf16ps for --backend fast-bf16 where the CPU has
  // it, the f32 FMA otherwise. The text model and the vision tower each by their own weights.
  struct Peak {
    const char* name;      // for the report
    const char* key;       // for the JSON
    double Limits::*best;  // its best measurement, in measure_limits' Limits
    double (*measure)();   // one measurement of it alone
  };
  const auto peak_for = [&](DType weights) -> Peak {
    if (is_quantized(weights) && model.backend() != Backend::Plain && fast::vnni_available())
      return {"int8 dot", "int8_dot", &Limits::int8, [] { return measure_int8_dot_peak_gops(); }};
    if (!is_quantized(weights) && model.backend() == Backend::FastBf16 &&
        fast::bf16_dot_available())
      return {"bf16 dot", "bf16_dot", &Limits::bf16, [] { return measure_bf16_dot_peak_gflops(); }};
    return {"f32 FMA", "f32_fma", &Limits::fma, [] { return measure_fma_peak_gflops(); }};
  };
  const Peak prefill = peak_for(model.weights().layers.at(0).gate_proj.dtype);

  // Each warm prefill run and each decode run is judged against its own yardstick too, measured
  // just before it (the peak; the read bandwidth): on a shared host the limits move between
  // measurements by as much as the runs do (one 1b run's int8 peak measured 1038 GOP/s, the run
  // before's 1928), so the median of the runs' own fractions is the steadier figure.
  std::vector<double> prefill_run_s, prefill_run_peak, decode_run_s, decode_run_read_gb_s;
  Mat<float> logits;
  int32_t next = 0;
  double prefill_s = 0, cold_prefill_s = 0, ttft_s = 0;
  for (int run = 0; run < o.prefill_runs; ++run) {
    if (run > 0) prefill_run_peak.push_back(prefill.measure());
    fresh_cache();
    t0 = std::chrono::steady_clock::now();
    logits = model.forward(prompt, *cache, LogitRows::last());
    const double s = seconds_since(t0);
    next = greedy(logits);
    if (run == 0) cold_prefill_s = s, ttft_s = seconds_since(t0);
    if (run > 0) prefill_run_s.push_back(s);
    prefill_s = run == 0 ? s : std::min(prefill_s, s);
  }

  // The machine's limits, measured between the prefill and the decode and again after the decode,
  // the best of each kept: on a shared host a neighbour can slow one measurement (the int8 peak
  // of one 1b run measured 1203 GOP/s, of the next 1683), and a low limit would make the run look
  // closer to it than it was. (Not before the prefill: its first run is the cold one.)
  Limits limits;
  WorkPeakRss work_rss;
  const auto measure_limits = [&] {
    const MachineBandwidth bw = work_rss.around([] { return measure_bandwidth(); });
    limits.bw.triad_gb_s = std::max(limits.bw.triad_gb_s, bw.triad_gb_s);
    limits.bw.read_gb_s = std::max(limits.bw.read_gb_s, bw.read_gb_s);
    limits.fma = std::max(limits.fma, measure_fma_peak_gflops());
    limits.bf16 = std::max(limits.bf16, measure_bf16_dot_peak_gflops());
    limits.int8 = std::max(limits.int8, measure_int8_dot_peak_gops());
    return bw;
  };
  decode_run_read_gb_s.push_back(measure_limits().read_gb_s);  // the first decode run's

  // The decode is run decode_runs times, each from the prompt prefilled again (untimed) into a
  // fresh cache, so each decodes the same tokens at the same positions. The fastest run gives the
  // speed, as the fastest prefill does and as the bandwidth is the best of its sweeps: on a shared
  // host a run during which a neighbour streams memory measures the neighbour (one 1b Q4_0 decode
  // of 128 tokens moved between 57 and 78 tok/s from run to run).
  const int32_t first_next = next;
  double decode_s = 0, slowest_decode_s = 0;
  for (int run = 0; run < o.decode_runs; ++run) {
    if (run > 0) {
      // (Smaller arrays than measure_limits' and two sweeps: a decode run's yardstick in ~0.1 s.)
      decode_run_read_gb_s.push_back(
          work_rss.around([] { return measure_bandwidth(std::size_t(128) << 20, 2); }).read_gb_s);
      fresh_cache();
      model.forward(prompt, *cache, LogitRows::last());
      next = first_next;
    }
    t0 = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < o.gen_tokens; ++i) {
      const int32_t id[] = {next};
      logits = model.forward(id, *cache);
      next = greedy(logits);
    }
    const double s = seconds_since(t0);
    decode_run_s.push_back(s);
    decode_s = run == 0 ? s : std::min(decode_s, s);
    slowest_decode_s = std::max(slowest_decode_s, s);
  }

  measure_limits();
  const MachineBandwidth bw = limits.bw;
  const double peak_gflops = limits.fma, bf16_peak_gflops = limits.bf16,
               int8_peak_gops = limits.int8;
  const double prefill_peak = limits.*prefill.best;
  const char* prefill_peak_name = prefill.name;
  const double peak_rss_mib = work_rss.mib();

  const double decode_tok_s = double(o.gen_tokens) / decode_s;
  const double prefill_tok_s = double(o.prompt_tokens) / prefill_s;
  const double cold_prefill_tok_s = double(o.prompt_tokens) / cold_prefill_s;
  // Keys a query at `position` attends to in layer `i` (text only: the causal range, cut to the
  // window in local layers), by the rule the attention itself uses (text/mask.hpp).
  const auto keys_seen = [&](int64_t i, int64_t position) {
    const PositionRange keys =
        visible_keys(layer_kind(cfg, i), cfg.sliding_window, position).causal;
    return keys.end - keys.begin;
  };
  // The keys and values a decode step reads too: at position p each layer's attention reads the
  // rows of its visible positions (p + 1, or the sliding window's), averaged over the decoded
  // positions. (At 512 cached positions of a 270m that is 13% on top of its Q4_0 weights.)
  double kv_bytes_per_token = 0;
  const int64_t kv_row_bytes = 2 * cfg.num_key_value_heads * cfg.head_dim * int64_t(sizeof(float));
  for (int64_t t = 0; t < o.gen_tokens; ++t)
    for (int64_t i = 0; i < cfg.num_hidden_layers; ++i)
      kv_bytes_per_token += double(kv_row_bytes * keys_seen(i, o.prompt_tokens + t));
  kv_bytes_per_token /= double(o.gen_tokens);
  const double read_per_token = double(bytes_per_token) + kv_bytes_per_token;
  const double roofline_tok_s = bw.read_gb_s * 1e9 / read_per_token;
  // Prefill work: 2 FLOP per matrix parameter per token, plus attention (q·k and p·v over the
  // visible keys), plus the LM head for the last position.
  double attention_flops = 0;
  for (int64_t i = 0; i < cfg.num_hidden_layers; ++i)
    for (int64_t t = 0; t < o.prompt_tokens; ++t)
      attention_flops += 4.0 * double(keys_seen(i, t) * cfg.head_dim * cfg.num_attention_heads);
  const double prefill_flops = 2.0 * double(matmul_params) * double(o.prompt_tokens) +
                               attention_flops + 2.0 * double(model.weights().lm_head.numel());
  const double prefill_gflops = prefill_flops / prefill_s / 1e9;
  // Each run's fraction of its own yardstick (above): the median and the range over the runs.
  struct Spread {
    double median = 0, low = 0, high = 0;
    int runs = 0;
  };
  const auto spread = [](std::vector<double> f) {
    Spread r;
    if (f.empty()) return r;
    std::ranges::sort(f);
    const std::size_t n = f.size();
    r.median = n % 2 ? f[n / 2] : 0.5 * (f[n / 2 - 1] + f[n / 2]);
    r.low = f.front(), r.high = f.back(), r.runs = int(n);
    return r;
  };
  std::vector<double> fractions;
  for (std::size_t i = 0; i < prefill_run_s.size(); ++i)
    fractions.push_back(prefill_flops / prefill_run_s[i] / 1e9 / prefill_run_peak[i]);
  const Spread prefill_own = spread(fractions);
  fractions.clear();
  for (std::size_t i = 0; i < decode_run_s.size(); ++i)
    fractions.push_back(double(o.gen_tokens) / decode_run_s[i] * read_per_token /
                        (decode_run_read_gb_s[i] * 1e9));
  const Spread decode_own = spread(fractions);
  const auto spread_json = [](const Spread& r) {
    return r.runs == 0
               ? nlohmann::json()
               : nlohmann::json{
                     {"median", r.median}, {"low", r.low}, {"high", r.high}, {"runs", r.runs}};
  };

  nlohmann::json j{{"model", model_dir},
                   {"backend", to_string(model.backend())},
                   {"isa", kernels::active_isa()},
                   {"threads", omp_get_max_threads()},
                   {"weights_dtype", by_bytes.front().first},  // the most bytes
                   {"weights_dtype_bytes", matrix_bytes},      // every matrix's, per dtype
                   {"prompt_tokens", o.prompt_tokens},
                   {"gen_tokens", o.gen_tokens},
                   {"weights", o.huge_pages ? "huge_pages" : "mapped"},
                   {"load_s", load_s},
                   {"prefill_runs", o.prefill_runs},
                   {"prefill_tok_s", prefill_tok_s},
                   {"prefill_cold_tok_s", cold_prefill_tok_s},
                   {"time_to_first_token_s", ttft_s},
                   {"decode_runs", o.decode_runs},
                   {"decode_tok_s", decode_tok_s},
                   {"decode_slowest_tok_s", double(o.gen_tokens) / slowest_decode_s},
                   {"weight_bytes_per_token", bytes_per_token},
                   {"kv_bytes_per_token", kv_bytes_per_token},
                   {"bandwidth_gb_s", bw.triad_gb_s},
                   {"read_bandwidth_gb_s", bw.read_gb_s},
                   {"decode_roofline_tok_s", roofline_tok_s},
                   {"decode_roofline_fraction", decode_tok_s / roofline_tok_s},
                   {"decode_roofline_fraction_own", spread_json(decode_own)},
                   {"prefill_gflops", prefill_gflops},
                   {"fma_peak_gflops", peak_gflops},
                   {"bf16_dot_peak_gflops",
                    bf16_peak_gflops > 0 ? nlohmann::json(bf16_peak_gflops) : nlohmann::json()},
                   {"int8_dot_peak_gops",
                    int8_peak_gops > 0 ? nlohmann::json(int8_peak_gops) : nlohmann::json()},
                   {"prefill_peak", prefill.key},
                   {"prefill_peak_fraction", prefill_gflops / prefill_peak},
                   {"prefill_peak_fraction_own", spread_json(prefill_own)},
                   {"prefill_fma_peak_fraction", prefill_gflops / peak_gflops},
                   {"peak_rss_mib", peak_rss_mib}};
  const bool multimodal = ck.config().is_multimodal();
  const Peak vision_peak =
      multimodal ? peak_for(ck.weights().vision->layers.at(0).fc1_weight.dtype) : prefill;
  if (multimodal) {
    const double gflops = vision_flops(ck.config()) / vision_s / 1e9;
    j["vision_encoder_s"] = vision_s;
    j["vision_gflops"] = gflops;
    j["vision_peak"] = vision_peak.key;  // the products' instruction, for its weights
    j["vision_peak_fraction"] = gflops / limits.*vision_peak.best;
    j["vision_fma_peak_fraction"] = gflops / peak_gflops;
    j["vision_patches"] = ck.config().vision->num_patches();
    j["vision_peak_rss_mib"] = vision_rss_mib;  // before the text prefill
    j["vision_rss_growth_mib"] = vision_growth_mib;
  }
  if (o.json) {
    std::printf("%s\n", j.dump().c_str());
    return;
  }
  std::printf("model            %s (%s weights, %s path, %s, %d threads)\n", model_dir.c_str(),
              weights_mix.c_str(), to_string(model.backend()), kernels::active_isa(),
              omp_get_max_threads());
  std::printf("load             %.3f s (weights %s)\n", load_s,
              o.huge_pages ? "read into 2 MiB pages" : "mapped from the file");
  std::printf("prefill          %8.1f tok/s  %7.1f GFLOP/s = %.2f of the %s peak (%.0f GFLOP/s)\n",
              prefill_tok_s, prefill_gflops, prefill_gflops / prefill_peak, prefill_peak_name,
              prefill_peak);
  std::printf("                 (the fastest of %d runs; the first, cold: %.1f tok/s)\n",
              o.prefill_runs, cold_prefill_tok_s);
  if (prefill_own.runs > 0)
    std::printf(
        "                 (each warm run against the peak measured just before it: median %.2f, "
        "%.2f-%.2f over %d runs)\n",
        prefill_own.median, prefill_own.low, prefill_own.high, prefill_own.runs);
  std::printf("compute          f32 FMA peak %.0f GFLOP/s, bf16 dot peak %s, int8 dot peak %s\n",
              peak_gflops,
              bf16_peak_gflops > 0 ? (std::to_string(long(bf16_peak_gflops)) + " GFLOP/s").c_str()
                                   : "n/a (no AVX512-BF16)",
              int8_peak_gops > 0 ? (std::to_string(long(int8_peak_gops)) + " GOP/s").c_str()
                                 : "n/a (no AVX512-VNNI)");
  if (multimodal)
    std::printf(
        "vision           %8.2f s/image %6.1f GFLOP/s = %.2f of the %s peak (%ld patches, %s; "
        "RSS +%.0f MiB while encoding)\n",
        vision_s, j["vision_gflops"].get<double>(), j["vision_peak_fraction"].get<double>(),
        vision_peak.name, long(ck.config().vision->num_patches()),
        o.image.empty() ? "a seeded pattern" : o.image.c_str(), vision_growth_mib);
  std::printf("first token      %.3f s after %ld prompt tokens\n", ttft_s, long(o.prompt_tokens));
  std::printf(
      "decode           %8.2f tok/s  = %.2f of the roofline (%.2f tok/s: %.1f MB/token, %.1f of "
      "weights and %.1f of KV cache, at %.1f GB/s read)\n",
      decode_tok_s, decode_tok_s / roofline_tok_s, roofline_tok_s, read_per_token / 1e6,
      double(bytes_per_token) / 1e6, kv_bytes_per_token / 1e6, bw.read_gb_s);
  if (o.decode_runs > 1)
    std::printf("                 (the fastest of %d runs; the slowest: %.2f tok/s)\n",
                o.decode_runs, double(o.gen_tokens) / slowest_decode_s);
  std::printf(
      "                 (each run against the read bandwidth measured just before it: median "
      "%.2f, %.2f-%.2f over %d runs)\n",
      decode_own.median, decode_own.low, decode_own.high, decode_own.runs);
  std::printf(
      "memory           triad %.1f GB/s, read %.1f GB/s; peak RSS %.0f MiB (the bandwidth "
      "measurements' arrays not counted)\n",
      bw.triad_gb_s, bw.read_gb_s, peak_rss_mib);
}

}  // namespace

void add_bench_command(CLI::App& app) {
  auto o = std::make_shared<BenchOptions>();
  auto* cmd = app.add_subcommand(
      "bench", "prefill/decode speed against this machine's measured bandwidth and peak");
  auto* model = cmd->add_option("--model", o->model, "checkpoint directory");
  auto* pre = cmd->add_option("--preset", o->preset,
                              "synthesise (once, cached) a checkpoint of this preset's shapes")
                  ->check(CLI::IsMember(preset_names()));
  model->excludes(pre);
  add_mmproj_option(cmd, o->mmproj);
  cmd->add_option("--dtype", o->dtype, "weight dtype of a --preset checkpoint")
      ->check(CLI::IsMember({"bf16", "f32"}));
  cmd->add_option("--prompt-tokens", o->prompt_tokens, "prompt length to prefill")
      ->check(whole_in(1, INT32_MAX));
  cmd->add_option("--gen-tokens", o->gen_tokens, "tokens to decode")->check(whole_in(1, INT32_MAX));
  cmd->add_option("--prefill-runs", o->prefill_runs,
                  "times the prompt is prefilled (fresh caches): the speed is the fastest run's, "
                  "the first run is cold and also reported")
      ->check(whole_in(1, 1000));
  cmd->add_option("--decode-runs", o->decode_runs,
                  "times the tokens are decoded, each after the prompt is prefilled again into a "
                  "fresh cache: the speed is the fastest run's, the slowest is also reported")
      ->check(whole_in(1, 1000));
  cmd->add_option("--threads", o->threads, "OpenMP threads")->check(whole_in(1, 1 << 20));
  cmd->add_option("--backend", o->backend,
                  "plain (Eigen, the definition), fast (SIMD kernels) or fast-bf16 (matrix inputs "
                  "rounded to bf16)")
      ->check(CLI::IsMember({"fast", "fast-bf16", "plain"}));
  cmd->add_flag(
      "--huge-pages", o->huge_pages,
      "read the weights into 2 MiB pages instead of mapping the file (slower load, faster decode; "
      "with AVX512-VNNI, Q8_0/Q4_0/Q5_0/Q4_K/Q5_K/Q6_K rows interleaved for the int8 kernel: "
      "docs/gguf.md)");
  cmd->add_option("--image", o->image,
                  "the image a multimodal checkpoint's vision encoder is timed on (default: a "
                  "seeded pattern)")
      ->check(CLI::ExistingFile);
  cmd->add_flag("--json", o->json, "one JSON object instead of the table");
  cmd->callback([o, model, pre] {
    if (model->count() == 0 && pre->count() == 0)
      throw InvalidArgument("--model", "give --model DIR or --preset NAME");
    bench(*o);
  });
}

}  // namespace gemma3::cli

// Faults from outside the process: outputs that fail halfway, files changed under a mapping.
// (The command line's share, signals and full devices, is in tests/cli_faults.sh.)
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>

#include <gemma3/checkpoint.hpp>
#include <gemma3/io/files.hpp>
#include <gemma3/io/gguf_gemma3.hpp>
#include <gemma3/io/npy.hpp>
#include <gemma3/synth.hpp>
#include <gemma3/text/model.hpp>

#include "test_helpers.hpp"

using namespace gemma3;
namespace fs = std::filesystem;

namespace {

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Names in `dir` (temporary files start with '.').
std::vector<std::string> listing(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

struct Abandon {};  // thrown by a progress callback to stop a writer halfway

float sum_of_weights(const Checkpoint& ck) {
  float s = 0;
  for (const auto& [name, view] : ck.store().tensors())
    for (int64_t i = 0; i < view.numel(); i += 7) s += view.at<float>(i);
  return s;
}

}  // namespace

TEST_CASE("faults: an output file appears complete or not at all", "[faults][io]") {
  const auto dir = test::scratch_dir("faults_output");
  write_file(dir / "a.txt", "old");
  {
    OutputFile out(dir / "a.txt");
    out.write("new, but never committed");
  }  // destroyed uncommitted: the temporary file goes, the old file stays
  CHECK(slurp(dir / "a.txt") == "old");
  CHECK(listing(dir) == std::vector<std::string>{"a.txt"});
  {
    OutputFile out(dir / "a.txt");
    out.write("new");
    CHECK(slurp(dir / "a.txt") == "old");  // nothing visible before commit
    out.commit();
  }
  CHECK(slurp(dir / "a.txt") == "new");
  CHECK(listing(dir) == std::vector<std::string>{"a.txt"});

  // Errors name the target and give the reason.
  CHECK_THROWS_WITH(OutputFile(dir / "missing" / "b.txt"),
                    Catch::StartsWith((dir / "missing" / "b.txt").string() + ": cannot create") &&
                        Catch::EndsWith("No such file or directory"));
  // Renaming over a directory fails at commit, naming it; the directory is untouched.
  fs::create_directories(dir / "d");
  OutputFile over(dir / "d");
  over.write("x");
  CHECK_THROWS_WITH(over.commit(), Catch::StartsWith((dir / "d").string() + ": cannot replace: "));
  CHECK(fs::is_directory(dir / "d"));
}

TEST_CASE("faults: a failed synth leaves the old checkpoint, a finished one is stamped",
          "[faults][io]") {
  const auto root = test::scratch_dir("faults_synth");
  const auto out = root / "ck";
  const ModelConfig cfg = preset("tiny");
  synthesize_checkpoint(cfg, out, {.seed = 1, .dtype = DType::F32});
  CHECK(check_completion_stamp(out));
  const std::string before = slurp(out / "model.safetensors");

  // A second synth abandoned halfway (as a full disk or Ctrl-C would): the first stays whole.
  int calls = 0;
  CHECK_THROWS_AS(synthesize_checkpoint(cfg, out,
                                        {.seed = 2,
                                         .dtype = DType::F32,
                                         .progress =
                                             [&](uint64_t done, uint64_t total) {
                                               if (++calls > 1 && done < total) throw Abandon{};
                                             }}),
                  Abandon);
  CHECK(slurp(out / "model.safetensors") == before);
  CHECK(listing(root) == std::vector<std::string>{"ck"});  // no temporary directory left
  CHECK(check_completion_stamp(out));

  // A finished synth replaces it whole; a checkpoint opened before keeps reading the old bytes.
  const auto old = Checkpoint::open(out);
  const float old_sum = sum_of_weights(old);
  synthesize_checkpoint(cfg, out, {.seed = 3, .dtype = DType::F32});
  CHECK(sum_of_weights(old) == old_sum);
  CHECK_NOTHROW(old.check_unchanged());
  CHECK(sum_of_weights(Checkpoint::open(out)) != old_sum);
  CHECK(listing(root) == std::vector<std::string>{"ck"});

  // A stamped directory whose file was changed afterwards is refused, naming the file.
  {
    std::ofstream append(out / "model.safetensors", std::ios::app | std::ios::binary);
    append << "x";
  }
  CHECK_THROWS_WITH(Checkpoint::open(out),
                    Catch::StartsWith((out / "model.safetensors").string() + ": is ") &&
                        Catch::Contains("the directory was changed after it was written"));

  // A directory gemma3 did not write is never replaced.
  const auto foreign = root / "foreign";
  fs::create_directories(foreign);
  write_file(foreign / "notes.txt", "mine");
  CHECK_THROWS_WITH(synthesize_checkpoint(cfg, foreign),
                    foreign.string() +
                        ": exists and holds files that gemma3 did not write (no "
                        "gemma3-complete.json); choose a new directory or remove it");
  CHECK(listing(foreign) == std::vector<std::string>{"notes.txt"});

  // --tokenizer may point into the directory being replaced: it is read before the swap.
  write_file(out / "tokenizer.model", "a tokenizer");
  synthesize_checkpoint(cfg, root / "ck2", {.tokenizer = out / "tokenizer.model"});
  synthesize_checkpoint(cfg, root / "ck2", {.tokenizer = root / "ck2" / "tokenizer.model"});
  CHECK(slurp(root / "ck2" / "tokenizer.model") == "a tokenizer");
}

TEST_CASE("faults: converting over a mapped GGUF leaves its reader intact", "[faults][gguf]") {
  const auto dir = test::scratch_dir("faults_gguf");
  const auto ck = Checkpoint::open(test::fixture("text-tiny-a"));
  gguf::write_gguf(ck.config(), ck.weights(), dir / "m.gguf", gguf::TensorType::F32);
  const auto mapped = Checkpoint::open(dir / "m.gguf");
  const TextModel<float> model(mapped);
  const std::vector<int32_t> ids{2, 18, 27};
  const Mat<float> logits = model.forward(ids);
  // The writer renames a new file into place: the mapped inode keeps its bytes (no SIGBUS).
  gguf::write_gguf(ck.config(), ck.weights(), dir / "m.gguf", gguf::TensorType::Q8_0);
  CHECK(test::max_abs_diff(model.forward(ids), logits) == 0);
  CHECK_NOTHROW(mapped.check_unchanged());
  CHECK(listing(dir) == std::vector<std::string>{"m.gguf"});
}

TEST_CASE("faults: a mapped checkpoint changed underneath is reported, not obeyed",
          "[faults][io]") {
  const auto dir = test::scratch_dir("faults_mapped");
  const auto src = test::fixture("text-tiny-a");
  fs::copy_file(src / "config.json", dir / "config.json");
  fs::copy_file(src / "model.safetensors", dir / "model.safetensors");
  const auto weights = dir / "model.safetensors";
  const auto size = fs::file_size(weights);

  SECTION("truncated: reads past the new end do not kill the process") {
    const auto ck = Checkpoint::open(dir);
    CHECK_NOTHROW(ck.check_unchanged());
    REQUIRE(::truncate(weights.c_str(), 4096) == 0);
    CHECK(std::isfinite(sum_of_weights(ck)));  // SIGBUS on the lost pages, turned into zeros
    CHECK_THROWS_WITH(ck.check_unchanged(),
                      weights.string() +
                          ": was truncated while mapped (a read past its new end raised SIGBUS): "
                          "results since then are void; load the model again");
  }
  SECTION("written over in place, same size") {
    const auto ck = Checkpoint::open(dir);
    const std::string bytes = slurp(weights);
    ::usleep(20000);  // a later modification time on filesystems with coarse timestamps
    {
      std::ofstream over(weights, std::ios::binary | std::ios::in | std::ios::out);
      over.seekp(std::streamoff(size - 64));
      over.write(bytes.data(), 64);
    }
    CHECK_THROWS_WITH(ck.check_unchanged(),
                      weights.string() + ": changed on disk while mapped (" + std::to_string(size) +
                          " bytes when opened, " + std::to_string(size) +
                          " now, modification time changed): its weights can no longer be "
                          "trusted; load the model again");
  }
  SECTION("a copy in huge pages never changes") {
    const auto ck = Checkpoint::open(dir, Residency::HugePages);
    const float before = sum_of_weights(ck);
    REQUIRE(::truncate(weights.c_str(), 4096) == 0);
    CHECK(sum_of_weights(ck) == before);
    CHECK_NOTHROW(ck.check_unchanged());
  }
}

TEST_CASE("faults: .npy outputs are whole, and dumps and their readers check the completion stamp",
          "[faults][io]") {
  const auto root = test::scratch_dir("faults_npy");
  const float values[3] = {1, 2, 3};
  {
    OutputDirectory out(root / "dump");
    write_npy(out.path() / "x.npy", {3}, values);
    CHECK_FALSE(fs::exists(root / "dump"));  // nothing under the final name before commit
    out.commit({{"tokens", 3}});
  }
  CHECK(check_completion_stamp(root / "dump"));
  CHECK(read_npy(root / "dump" / "x.npy").values<float>() == std::vector<float>{1, 2, 3});
  // An abandoned dump into the same place leaves the complete one.
  {
    OutputDirectory out(root / "dump");
    write_npy(out.path() / "y.npy", {3}, values);
  }
  CHECK(listing(root / "dump") == std::vector<std::string>{kCompletionStamp, "x.npy"});
  CHECK(listing(root) == std::vector<std::string>{"dump"});
  // A listed file missing: named.
  fs::remove(root / "dump" / "x.npy");
  CHECK_THROWS_WITH(check_completion_stamp(root / "dump"),
                    Catch::StartsWith((root / "dump" / "x.npy").string() + ": listed in " +
                                      kCompletionStamp + " but cannot be read"));
}

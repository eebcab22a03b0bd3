// Shared helpers of the test suite: where the bundled fixtures are, and scratch directories.
#pragma once

#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <gemma3/io/npy.hpp>

namespace test {

inline std::filesystem::path data_dir() {
  return GEMMA3_TEST_DATA;
}
inline std::filesystem::path fixture(const std::string& name) {
  return data_dir() / "reference" / name;
}

inline const std::vector<std::string>& text_fixtures() {
  static const std::vector<std::string> names{"text-tiny-a", "text-tiny-b"};
  return names;
}

inline nlohmann::json manifest(const std::string& name) {
  std::ifstream in(fixture(name) / "manifest.json");
  return nlohmann::json::parse(in);
}

// A fresh, empty scratch directory under the system temp dir.
inline std::filesystem::path scratch_dir(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() /
             ("gemma3_test_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

// "p3_": the file-name prefix of a fixture's prompt k. (Built by appending: GCC 12 warns falsely,
// -Wrestrict, on "p" + std::to_string(k).)
inline std::string prompt_prefix(int k) {
  std::string p = "p";
  p += std::to_string(k);
  p += '_';
  return p;
}

// How many prompts a fixture case has (p0_, p1_, ... with an input_ids file).
inline int prompt_count(const std::filesystem::path& dir) {
  int k = 0;
  while (std::filesystem::exists(dir / (prompt_prefix(k) + "input_ids.npy"))) ++k;
  return k;
}

inline std::vector<int32_t> read_ids(const std::filesystem::path& path) {
  return gemma3::read_npy(path).values<int32_t>();
}

template <typename A, typename B>
double max_abs_diff(const A& a, const B& b) {
  return (a.template cast<double>() - b.template cast<double>()).cwiseAbs().maxCoeff();
}

}  // namespace test

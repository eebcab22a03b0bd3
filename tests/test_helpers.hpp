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

inline std::filesystem::path data_dir() { return GEMMA3_TEST_DATA; }
inline std::filesystem::path fixture(const std::string& name) { return data_dir() / "reference" / name; }

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
  auto dir = std::filesystem::temp_directory_path() / ("gemma3_test_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

inline std::vector<int32_t> read_ids(const std::filesystem::path& path) {
  return gemma3::read_npy(path).values<int32_t>();
}

template <typename A, typename B>
double max_abs_diff(const A& a, const B& b) {
  return (a.template cast<double>() - b.template cast<double>()).cwiseAbs().maxCoeff();
}

}  // namespace test

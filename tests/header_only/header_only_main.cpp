// header_only_consumer REFERENCE_DIR — the header-only mode reproduces the fixtures and says which
// instruction set its kernels ran (the program links no compiled part of gemma3).
#include <cstdio>

#include "header_only_model.hpp"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: header_only_consumer REFERENCE_DIR\n");
    return 2;
  }
  std::printf("header-only gemma3, kernels compiled for %s\n", consumer::header_only_isa().c_str());
  return consumer::check_text_fixtures(argv[1]);
}

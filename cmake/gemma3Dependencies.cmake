# Finds gemma3's dependencies (all from Debian packages) and defines the imported targets the
# gemma3::gemma3 interface target links to. Used by the source tree and by the installed package
# (gemma3Config.cmake includes it), so both resolve dependencies the same way.
include(CMakeFindDependencyMacro)

find_dependency(Eigen3 3.4 NO_MODULE)   # libeigen3-dev
find_dependency(xtl)                    # xtl-dev: xsimd's exported target links "xtl"
find_dependency(xsimd)                  # libxsimd-dev
find_dependency(OpenMP)                 # libgomp (gcc) or libomp-dev (clang)
find_dependency(nlohmann_json 3)        # nlohmann-json3-dev

# libsentencepiece-dev ships only a pkg-config file.
find_dependency(PkgConfig)
if(NOT TARGET PkgConfig::sentencepiece)
  pkg_check_modules(sentencepiece REQUIRED IMPORTED_TARGET GLOBAL sentencepiece)
endif()

# libstb-dev installs headers under <prefix>/include/stb; we include them as <stb/stb_image.h>.
if(NOT TARGET gemma3_stb)
  find_path(GEMMA3_STB_INCLUDE_DIR stb/stb_image.h REQUIRED)
  add_library(gemma3_stb INTERFACE IMPORTED GLOBAL)
  set_target_properties(gemma3_stb PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${GEMMA3_STB_INCLUDE_DIR}")
endif()

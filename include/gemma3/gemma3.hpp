// gemma3: a header-only C++20 CPU reference implementation of Google DeepMind's Gemma 3.
// Including this header brings in the whole library.
#pragma once

#include "gemma3/checkpoint.hpp"
#include "gemma3/config.hpp"
#include "gemma3/error.hpp"
#include "gemma3/io/hf_names.hpp"
#include "gemma3/io/mapped_file.hpp"
#include "gemma3/io/npy.hpp"
#include "gemma3/io/safetensors.hpp"
#include "gemma3/kernels/reference.hpp"
#include "gemma3/observer.hpp"
#include "gemma3/synth.hpp"
#include "gemma3/tensor.hpp"
#include "gemma3/text/attention.hpp"
#include "gemma3/text/decoder_layer.hpp"
#include "gemma3/text/kv_cache.hpp"
#include "gemma3/text/mask.hpp"
#include "gemma3/text/mlp.hpp"
#include "gemma3/text/model.hpp"
#include "gemma3/text/rope.hpp"
#include "gemma3/weights.hpp"

// Declares the common instantiations of the model templates (float and double models, sessions,
// steppers) as compiled elsewhere — in gemma3::kernels, by src/model_instances.cpp — when
// GEMMA3_COMPILED_MODELS is set (the CMake target gemma3::kernels sets it for its users). Then a
// program that includes the headers parses them but compiles none of the model code: the
// one-file research program builds in a fraction of the time. Without it (header-only), every
// translation unit instantiates what it uses, as before.
#pragma once

#include "gemma3/multimodal.hpp"
#include "gemma3/session.hpp"
#include "gemma3/stepper.hpp"
#include "gemma3/text/decoder_layer.hpp"
#include "gemma3/text/model.hpp"

#if GEMMA3_COMPILED_MODELS
namespace gemma3 {
extern template class DecoderLayer<float>;
extern template class DecoderLayer<double>;
extern template class TextModel<float>;
extern template class TextModel<double>;
extern template class Gemma3<float>;
extern template class Gemma3<double>;
extern template class Session<float>;
extern template class Session<double>;
extern template class Stepper<float>;
extern template class Stepper<double>;
}  // namespace gemma3
#endif

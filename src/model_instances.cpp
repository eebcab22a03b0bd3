// The common instantiations of the model templates, compiled once into gemma3::kernels so that a
// program linking it compiles none of them (the headers declare them `extern template` when
// GEMMA3_COMPILED_MODELS is defined, as the CMake package defines it for gemma3::kernels).
#include "gemma3/instances.hpp"

namespace gemma3 {
template class DecoderLayer<float>;
template class DecoderLayer<double>;
template class TextModel<float>;
template class TextModel<double>;
template class Gemma3<float>;
template class Gemma3<double>;
template class Session<float>;
template class Session<double>;
template class Stepper<float>;
template class Stepper<double>;
}  // namespace gemma3

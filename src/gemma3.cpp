// The compiled part of gemma3::kernels (include/gemma3/build_mode.hpp): the checkpoint loader and
// the model templates for float and double, compiled once so that programs linking gemma3::kernels
// compile none of them.
#define GEMMA3_BUILDING_LIBRARY 1
#include "gemma3/gemma3.hpp"

namespace gemma3::inline GEMMA3_MODE {
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
template class Capture<float>;
template class Capture<double>;
template class Hooks<float>;
template class Hooks<double>;
}  // namespace gemma3::inline GEMMA3_MODE

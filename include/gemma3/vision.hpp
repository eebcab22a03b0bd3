// The Gemma 3 image path: decoding, preprocessing, the SigLIP tower, the projector.
#pragma once

#include "gemma3/vision/encoder.hpp"
#include "gemma3/vision/image.hpp"
#include "gemma3/vision/preprocess.hpp"
#include "gemma3/vision/projector.hpp"
#include "gemma3/vision/siglip.hpp"

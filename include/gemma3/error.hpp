// gemma3::Error and its subclasses: every failure the library reports on bad input.
//
// Each error carries the thing it is about (a file path, a tensor name, a config field or an
// argument name) so that a caller, or the CLI's one-line message, can say exactly what was wrong.
#pragma once

#include "gemma3/build_mode.hpp"

#include <stdexcept>
#include <string>
#include <utility>

namespace gemma3::inline GEMMA3_MODE {

// Base of every exception the library throws on purpose.
class Error : public std::runtime_error {
 public:
  Error(std::string subject, const std::string& message)
      : std::runtime_error(subject.empty() ? message : subject + ": " + message),
        subject_(std::move(subject)) {}
  // What the error is about: a path, a tensor name, a field or an argument.
  const std::string& subject() const noexcept { return subject_; }

 private:
  std::string subject_;
};

// A file could not be opened, mapped, read or written.
class IoError : public Error {
 public:
  using Error::Error;
};

// A file's contents are malformed (safetensors header, JSON, .npy header, ...).
class FormatError : public Error {
 public:
  using Error::Error;
};

// A config.json field has an impossible or unsupported value.
class ConfigError : public Error {
 public:
  using Error::Error;
};

// A checkpoint tensor is missing, unexpected, or has the wrong shape or dtype.
class TensorError : public Error {
 public:
  using Error::Error;
};

// A caller passed an invalid argument (token id out of range, empty sequence, full cache, ...).
class InvalidArgument : public Error {
 public:
  using Error::Error;
};

}  // namespace gemma3::inline GEMMA3_MODE

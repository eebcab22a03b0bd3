// CHECK_ERROR: asserts the exact gemma3::Error (class, subject and message) an expression throws.
#pragma once

#include <string>

#include <catch2/catch.hpp>

// Runs `expr`, which must throw exactly E (or a subclass) with this subject and message; what() is
// then "subject: message" (the message alone for an empty subject).
#define CHECK_ERROR(E, expr, subject_, message_)                                         \
  do {                                                                                   \
    INFO("expected " #E ": " << (subject_) << ": " << (message_));                       \
    try {                                                                                \
      (void)(expr);                                                                      \
      FAIL_CHECK("no exception");                                                        \
    } catch (const E& e) {                                                               \
      CHECK(e.subject() == (subject_));                                                  \
      CHECK(std::string(e.what()) == (std::string(subject_).empty()                      \
                                          ? std::string(message_)                        \
                                          : std::string(subject_) + ": " + (message_))); \
    }                                                                                    \
  } while (0)

// The same where part of the message depends on the machine or a dependency: a Catch matcher.
#define CHECK_ERROR_THAT(E, expr, subject_, matcher) \
  do {                                               \
    try {                                            \
      (void)(expr);                                  \
      FAIL_CHECK("no exception");                    \
    } catch (const E& e) {                           \
      CHECK(e.subject() == (subject_));              \
      CHECK_THAT(std::string(e.what()), matcher);    \
    }                                                \
  } while (0)

// What the config tests share: applying a TOML text, and checking that a
// status is the reader's InvalidArgument with every expected part in it.
#pragma once

#include <initializer_list>
#include <string>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "sluice/config/config.h"

namespace sluice::config::test_util {

// True if `status` is InvalidArgument and its message holds every one of `parts`.
inline ::testing::AssertionResult IsError(const absl::Status& status,
                                          std::initializer_list<std::string> parts) {
  if (status.code() != absl::StatusCode::kInvalidArgument) {
    return ::testing::AssertionFailure() << "want INVALID_ARGUMENT, got " << status;
  }
  const std::string message(status.message());
  for (const std::string& part : parts) {
    if (message.find(part) == std::string::npos) {
      return ::testing::AssertionFailure() << "'" << part << "' missing from: " << message;
    }
  }
  return ::testing::AssertionSuccess();
}

inline absl::Status Apply(const std::string& toml, Config& config) {
  return ApplyToml(toml, "sluice.toml", config);
}

inline absl::Status Apply(const std::string& toml) {
  Config config;
  return Apply(toml, config);
}

}  // namespace sluice::config::test_util

// The fixture the spool writer tests share: a one-shard spool in a fresh
// temporary directory, a real io_uring with 16 provided 4 KiB buffers, a
// SpoolWriter, and a loop that runs the way a shard's does.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "sluice/io/ring.h"
#include "sluice/spool/spool_directory.h"
#include "sluice/spool/spool_writer.h"

namespace sluice::spool {

class SpoolWriterFixture : public testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/sluice-spool-test-XXXXXX";
    root_ = mkdtemp(tmpl);
    ASSERT_TRUE(PrepareSpool(root_, 1).ok());
    dir_fd_ = open((root_ + "/0").c_str(), O_RDONLY | O_DIRECTORY);
    ASSERT_GE(dir_fd_, 0);
    ring_ = std::move(*io::Ring::Create(256));
    buffers_ = std::move(*ring_->CreateBufferRing(1, 16, 4096));
    writer_ = std::make_unique<SpoolWriter>(*ring_, *buffers_, dir_fd_,
                                            [this] { return ids_.Next(++clock_); });
  }
  void TearDown() override {
    writer_.reset();
    buffers_.reset();
    ring_.reset();
    close(dir_fd_);
    std::filesystem::remove_all(root_);
  }

  // Runs the loop the way a shard does until `done` or a bounded number of turns.
  void RunUntil(const bool& done) {
    for (int i = 0; i < 1000 && !done; ++i) {
      ring_->RunOnce(100);
      writer_->Flush();
    }
    ASSERT_TRUE(done);
  }

  // A one-recipient envelope.
  static Envelope MakeEnvelope() {
    Envelope e;
    e.arrival_micros = 1;
    e.sender = "s@example.com";
    e.protocol = "ESMTP";
    e.recipients = {{"r@example.net"}};
    return e;
  }

  std::string root_;
  int dir_fd_ = -1;
  std::unique_ptr<io::Ring> ring_;
  std::unique_ptr<io::BufferRing> buffers_;
  std::unique_ptr<SpoolWriter> writer_;
  base::QueueIdGenerator ids_{0};
  uint64_t clock_ = 1'000'000;
};

}  // namespace sluice::spool

// The delivery engine's interned record file names: a queued message keeps
// a 4-byte index instead of its "<id>.seg" / "<id>.msg" name (a segment holds
// thousands of records).
//
// Each name counts the queued messages that use it and goes when the last
// one finishes; its index is reused. Before, the table only grew: every
// message big enough for its own "<id>.msg" file (over 128 KiB) left its
// name behind, about 100 bytes of RSS per such message for the life of the
// process.
//
// Pure bookkeeping on one shard's thread; trusts its caller to release each
// index exactly as often as it acquired it (checked).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"

namespace sluice::delivery {

class FileNames {
 public:
  // The index of `name`, with one more user.
  uint32_t Acquire(std::string_view name);
  // One user of `index` less; the name goes with its last user.
  void Release(uint32_t index);
  // The name at a held index.
  const std::string& name(uint32_t index) const;

  size_t size() const { return index_.size(); }  // names in use
  size_t users(uint32_t index) const;

 private:
  struct Slot {
    std::string name;
    uint32_t users = 0;  // 0: free, on free_
  };
  std::vector<Slot> slots_;
  std::vector<uint32_t> free_;
  absl::flat_hash_map<std::string, uint32_t> index_;
};

}  // namespace sluice::delivery

// Interned record file names with user counts; see sluice/delivery/file_names.h.
#include "sluice/delivery/file_names.h"

#include "sluice/base/check.h"

namespace sluice::delivery {

uint32_t FileNames::Acquire(std::string_view name) {
  auto it = index_.find(absl::string_view(name.data(), name.size()));
  if (it == index_.end()) {
    uint32_t slot;
    if (!free_.empty()) {
      slot = free_.back();
      free_.pop_back();
    } else {
      SLUICE_CHECK(slots_.size() < UINT32_MAX);
      slot = static_cast<uint32_t>(slots_.size());
      slots_.emplace_back();
    }
    slots_[slot].name.assign(name);
    it = index_.emplace(slots_[slot].name, slot).first;
  }
  ++slots_[it->second].users;
  return it->second;
}

void FileNames::Release(uint32_t index) {
  SLUICE_CHECK(index < slots_.size() && slots_[index].users > 0);
  Slot& s = slots_[index];
  if (--s.users > 0) return;
  index_.erase(s.name);
  // Freed, not just cleared: a .msg name is used once, and keeping its
  // capacity would keep the bytes this table exists to give back.
  std::string().swap(s.name);
  free_.push_back(index);
  if (index_.empty()) {  // nothing queued: the vectors go too
    slots_.clear();
    slots_.shrink_to_fit();
    free_.clear();
    free_.shrink_to_fit();
  }
}

const std::string& FileNames::name(uint32_t index) const {
  SLUICE_CHECK(index < slots_.size() && slots_[index].users > 0);
  return slots_[index].name;
}

size_t FileNames::users(uint32_t index) const {
  return index < slots_.size() ? slots_[index].users : 0;
}

}  // namespace sluice::delivery

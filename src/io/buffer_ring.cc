// io::BufferRing's reference counting, common to every backend; the
// backend's Provider hands released buffers back (see loop.h).
#include "sluice/base/check.h"
#include "sluice/io/loop.h"

namespace sluice::io {

BufferRing::BufferRing(uint16_t group_id, uint32_t count, uint32_t size)
    : group_id_(group_id),
      count_(count),
      size_(size),
      storage_(new char[static_cast<size_t>(count) * size]),
      refs_(count, 0) {
  SLUICE_CHECK(count > 0 && (count & (count - 1)) == 0 && count <= 32768);
}

BufferRing::~BufferRing() = default;

void BufferRing::Release(uint16_t id) {
  SLUICE_CHECK(refs_[id] > 0);
  if (--refs_[id] > 0) return;
  --in_use_;
  provider_->Add(data(id), size_, id, pending_);
  ++pending_;
}

void BufferRing::Publish() {
  if (pending_ == 0) return;
  provider_->Publish(pending_);
  pending_ = 0;
}

}  // namespace sluice::io

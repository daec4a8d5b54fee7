// Ring::CreateBufferRing: a BufferRing registered with the kernel as a
// provided-buffer ring (IORING_REGISTER_PBUF_RING, Linux 5.19+), so
// multishot receives pick a buffer per completion.
#include <sys/mman.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "ring_state.h"
#include "sluice/io/ring.h"

namespace sluice::io {
namespace {

class UringProvider final : public BufferRing::Provider {
 public:
  UringProvider(io_uring* ring, io_uring_buf_ring* br, uint16_t group, uint32_t count)
      : ring_(ring), br_(br), group_(group), count_(count) {}
  ~UringProvider() override {
    io_uring_unregister_buf_ring(ring_, group_);
    munmap(br_, count_ * sizeof(io_uring_buf));
  }
  void Add(char* data, uint32_t size, uint16_t id, uint32_t pending) override {
    io_uring_buf_ring_add(br_, data, size, id, io_uring_buf_ring_mask(count_),
                          static_cast<int>(pending));
  }
  void Publish(uint32_t count) override { io_uring_buf_ring_advance(br_, static_cast<int>(count)); }

 private:
  io_uring* ring_;
  io_uring_buf_ring* br_;
  uint16_t group_;
  uint32_t count_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<BufferRing>> Ring::CreateBufferRing(uint16_t group_id,
                                                                   uint32_t count, uint32_t size) {
  auto b = std::make_unique<BufferRing>(group_id, count, size);
  const size_t ring_bytes = count * sizeof(io_uring_buf);
  void* mem = mmap(nullptr, ring_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  if (mem == MAP_FAILED) return absl::ResourceExhaustedError("mmap of buffer ring failed");
  auto* br = static_cast<io_uring_buf_ring*>(mem);
  io_uring_buf_ring_init(br);
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<uint64_t>(mem);
  reg.ring_entries = count;
  reg.bgid = group_id;
  int rc = io_uring_register_buf_ring(&s_->ring, &reg, 0);
  if (rc < 0) {
    munmap(mem, ring_bytes);
    return absl::Status(
        absl::ErrnoToStatusCode(-rc),
        absl::StrCat("io_uring_register_buf_ring (needs Linux 5.19+): ", std::strerror(-rc)));
  }
  auto provider = std::make_unique<UringProvider>(&s_->ring, br, group_id, count);
  for (uint32_t i = 0; i < count; ++i) {
    provider->Add(b->data(static_cast<uint16_t>(i)), size, static_cast<uint16_t>(i), i);
  }
  provider->Publish(count);
  b->set_provider(std::move(provider));
  return b;
}

}  // namespace sluice::io

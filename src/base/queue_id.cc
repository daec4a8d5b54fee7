#include "sluice/base/queue_id.h"

#include "sluice/base/check.h"
#include "sluice/base/limits.h"

namespace sluice::base {
namespace {

constexpr char kAlphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

int DecodeChar(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  for (int i = 10; i < 32; ++i) {
    if (kAlphabet[i] == c) return i;
  }
  return -1;
}

}  // namespace

void QueueId::Format(char* out) const {
  // 13 * 5 = 65 bits; the top character carries the top 4 bits.
  uint64_t v = value_;
  for (int i = kTextSize - 1; i >= 0; --i) {
    out[i] = kAlphabet[v & 31];
    v >>= 5;
  }
}

std::string QueueId::ToString() const {
  std::string s(kTextSize, '0');
  Format(s.data());
  return s;
}

std::optional<QueueId> QueueId::Parse(std::string_view text) {
  if (text.size() != kTextSize) return std::nullopt;
  uint64_t v = 0;
  for (size_t i = 0; i < kTextSize; ++i) {
    int d = DecodeChar(text[i]);
    if (d < 0) return std::nullopt;
    if (i == 0 && d > 15) return std::nullopt;  // would overflow 64 bits
    v = (v << 5) | static_cast<uint64_t>(d);
  }
  return QueueId(v);
}

QueueIdGenerator::QueueIdGenerator(int shard) : shard_(static_cast<uint64_t>(shard)) {
  SLUICE_CHECK(shard >= 0 && shard < limits::kShardsMax);
}

void QueueIdGenerator::RaiseFloor(QueueId floor) {
  if (floor.micros() > last_micros_) last_micros_ = floor.micros();
}

QueueId QueueIdGenerator::Next(uint64_t now_micros) {
  last_micros_ = now_micros > last_micros_ ? now_micros : last_micros_ + 1;
  return QueueId((last_micros_ << 8) | shard_);
}

}  // namespace sluice::base

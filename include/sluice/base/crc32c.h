// CRC-32C (Castagnoli), used to seal spool files. Uses the SSE4.2 crc32
// instruction when the CPU has it (chosen once at start-up), a table
// otherwise. Incremental: Crc32c(Crc32c(0, a), b) == Crc32c(0, a + b).
#pragma once

#include <cstddef>
#include <cstdint>

namespace sluice::base {

uint32_t Crc32c(uint32_t crc, const void* data, size_t size);

}  // namespace sluice::base

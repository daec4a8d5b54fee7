// base::Crc32c (seals every spool file) against memcpy of the same bytes:
// compare the bytes_per_second of the two at the same size.
#include <benchmark/benchmark.h>

#include <cstring>
#include <vector>

#include "sluice/base/crc32c.h"

namespace sluice::base {
namespace {

std::vector<char> Data(size_t size) {
  std::vector<char> v(size);
  for (size_t i = 0; i < size; ++i) v[i] = static_cast<char>(i * 131 + (i >> 7));
  return v;
}

void BM_Crc32c(benchmark::State& state) {
  const std::vector<char> data = Data(static_cast<size_t>(state.range(0)));
  uint32_t crc = 0;
  for (auto _ : state) {
    crc = Crc32c(crc, data.data(), data.size());
    benchmark::DoNotOptimize(crc);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * data.size()));
}
BENCHMARK(BM_Crc32c)->Arg(64)->Arg(4 * 1024)->Arg(64 * 1024)->Arg(1024 * 1024);

void BM_CrcMemcpy(benchmark::State& state) {
  const std::vector<char> data = Data(static_cast<size_t>(state.range(0)));
  std::vector<char> dst(data.size());
  for (auto _ : state) {
    std::memcpy(dst.data(), data.data(), data.size());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * data.size()));
}
BENCHMARK(BM_CrcMemcpy)->Arg(64)->Arg(4 * 1024)->Arg(64 * 1024)->Arg(1024 * 1024);

}  // namespace
}  // namespace sluice::base

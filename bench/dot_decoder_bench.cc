// DotDecoder throughput on a realistic body, next to memcpy of the same bytes
// in the same pieces. Both report bytes/s (SetBytesProcessed), so
//
//   decoder speed as a fraction of memcpy =
//       BM_DotDecoder/N bytes_per_second / BM_MemcpyPieces/N bytes_per_second
//
// and BM_DotDecoder also times memcpy itself (thread CPU time, like the
// library's own rates) before its loop and reports that fraction as the
// `vs_memcpy` counter (1.0 = as fast as memcpy).
#include <benchmark/benchmark.h>

#include <cstring>
#include <ctime>
#include <string>
#include <vector>

#include "sluice/smtp/dot_decoder.h"

namespace sluice::smtp {
namespace {

constexpr size_t kPiece = 16 * 1024;  // limits::kRecvBufferSize

// About `size` bytes as they travel on the wire after DATA: a header section,
// then 76-character lines, every 25th starting with a (stuffed) dot, then
// CRLF.CRLF.
std::string WireBody(size_t size) {
  std::string s =
      "Received: from mail-out.client.example.com ([192.0.2.10])\r\n"
      "From: \"Example Newsletter\" <newsletter@lists.example.com>\r\n"
      "To: alice@example.org\r\n"
      "Subject: Your weekly digest\r\n"
      "Date: Mon, 01 Jan 2024 10:00:00 +0000\r\n"
      "Message-ID: <20240101100000.12345@lists.example.com>\r\n"
      "MIME-Version: 1.0\r\n"
      "Content-Type: text/plain; charset=utf-8\r\n"
      "\r\n";
  const std::string text =
      "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor "
      "incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud";
  for (size_t line = 0; s.size() + 78 + 5 <= size; ++line) {
    std::string l = text.substr(line % 7, 76);
    if (line % 25 == 24) l = ".." + l.substr(2);  // a line that began with '.'
    s += l;
    s += "\r\n";
  }
  s += ".\r\n";
  return s;
}

template <typename F>
void InPieces(const std::string& wire, F&& f) {
  for (size_t off = 0; off < wire.size(); off += kPiece) {
    f(wire.data() + off, std::min(kPiece, wire.size() - off));
  }
}

double ThreadSeconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

void CopyInPieces(const std::string& wire, std::vector<char>& dst) {
  InPieces(wire,
           [&](const char* p, size_t n) { std::memcpy(dst.data() + (p - wire.data()), p, n); });
  benchmark::ClobberMemory();
}

// memcpy bytes/s of `wire` in pieces, timed outside the benchmark loop.
double MemcpyRate(const std::string& wire, std::vector<char>& dst) {
  for (int i = 0; i < 16; ++i) CopyInPieces(wire, dst);  // warm up
  size_t bytes = 0;
  const double start = ThreadSeconds();
  double now = start;
  while (now - start < 0.05) {
    for (int i = 0; i < 16; ++i) CopyInPieces(wire, dst);
    bytes += 16 * wire.size();
    now = ThreadSeconds();
  }
  return static_cast<double>(bytes) / (now - start);
}

void BM_DotDecoder(benchmark::State& state) {
  const std::string wire = WireBody(static_cast<size_t>(state.range(0)));
  std::vector<char> dst(wire.size());
  const double memcpy_rate = MemcpyRate(wire, dst);
  DotDecoder decoder;
  size_t body = 0;
  const double start = ThreadSeconds();
  for (auto _ : state) {
    decoder.Reset(1000);
    bool done = false;
    InPieces(wire, [&](const char* p, size_t n) {
      auto r = decoder.Decode(p, n, [&](const char*, size_t m) { body += m; });
      done = r.done;
    });
    if (!done || decoder.bare_line_ending()) state.SkipWithError("decoder did not find the end");
    benchmark::DoNotOptimize(body);
  }
  const double seconds = ThreadSeconds() - start;
  const double bytes = static_cast<double>(state.iterations()) * static_cast<double>(wire.size());
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
  state.counters["vs_memcpy"] = bytes / seconds / memcpy_rate;
}
BENCHMARK(BM_DotDecoder)->Arg(20 * 1024)->Arg(1024 * 1024);

void BM_MemcpyPieces(benchmark::State& state) {
  const std::string wire = WireBody(static_cast<size_t>(state.range(0)));
  std::vector<char> dst(wire.size());
  for (auto _ : state) CopyInPieces(wire, dst);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * wire.size()));
}
BENCHMARK(BM_MemcpyPieces)->Arg(20 * 1024)->Arg(1024 * 1024);

}  // namespace
}  // namespace sluice::smtp

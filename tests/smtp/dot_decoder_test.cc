// The DATA decoder against a plain reference, at every split point of every
// input and at random multi-split points, byte for byte.
#include "sluice/smtp/dot_decoder.h"

#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace sluice::smtp {
namespace {

struct Decoded {
  bool done = false;
  size_t consumed = 0;
  std::string body;
  bool bare = false;
  bool too_long = false;
};

// Written differently from the decoder on purpose: search, then transform.
Decoded Reference(const std::string& in, size_t max_line) {
  Decoded d;
  const std::string prefixed = "\r\n" + in;
  const size_t k = prefixed.find("\r\n.\r\n");
  const size_t raw_end = k == std::string::npos ? in.size() : k + 3;
  d.done = k != std::string::npos;
  d.consumed = raw_end;
  const std::string raw = in.substr(0, raw_end);
  for (size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] == '\r' && (i + 1 >= raw.size() ? false : raw[i + 1] != '\n')) d.bare = true;
    if (raw[i] == '\n' && (i == 0 || raw[i - 1] != '\r')) d.bare = true;
  }
  if (!d.done) {
    // An unfinished message: only what is certain is checked by callers.
    return d;
  }
  const std::string body = in.substr(0, k);
  for (size_t i = 0; i < body.size(); ++i) {
    const bool line_start = i == 0 || (i >= 2 && body[i - 2] == '\r' && body[i - 1] == '\n');
    if (line_start && body[i] == '.') continue;
    d.body += body[i];
  }
  size_t start = 0;
  while (start < body.size()) {
    size_t crlf = body.find("\r\n", start);
    if (crlf == std::string::npos) break;
    if (crlf + 2 - start > max_line) d.too_long = true;
    start = crlf + 2;
  }
  return d;
}

Decoded Decode(const std::string& in, const std::vector<size_t>& cuts, size_t max_line) {
  DotDecoder decoder(max_line);
  Decoded d;
  size_t pos = 0;
  std::vector<size_t> bounds = cuts;
  bounds.push_back(in.size());
  for (size_t end : bounds) {
    if (end < pos) continue;
    // Each piece lives in its own allocation, as receive buffers do.
    std::string piece = in.substr(pos, end - pos);
    auto r = decoder.Decode(piece.data(), piece.size(), [&](const char* p, size_t n) {
      EXPECT_GE(p, piece.data());
      EXPECT_LE(p + n, piece.data() + piece.size());
      d.body.append(p, n);
    });
    d.consumed += r.consumed;
    if (r.done) {
      d.done = true;
      break;
    }
    pos = end;
  }
  d.bare = decoder.bare_line_ending();
  d.too_long = decoder.line_too_long();
  return d;
}

void ExpectSame(const std::string& in, const std::vector<size_t>& cuts, size_t max_line) {
  const Decoded want = Reference(in, max_line);
  const Decoded got = Decode(in, cuts, max_line);
  ASSERT_EQ(got.done, want.done) << testing::PrintToString(in);
  ASSERT_EQ(got.consumed, want.consumed) << testing::PrintToString(in);
  if (!want.done) return;
  ASSERT_EQ(got.bare, want.bare) << testing::PrintToString(in);
  if (want.bare) return;  // rejected anyway: content and lengths do not matter
  ASSERT_EQ(got.body, want.body) << testing::PrintToString(in);
  ASSERT_EQ(got.too_long, want.too_long) << testing::PrintToString(in);
}

std::vector<std::string> Corpus() {
  std::string long_body;
  for (int i = 0; i < 200; ++i) {
    long_body += (i % 7 == 0) ? ".leading dot line " : "plain text line number ";
    long_body += std::to_string(i) + " with some padding to cross sixteen byte blocks\r\n";
  }
  return {
      ".\r\n",
      "\r\n.\r\n",
      "Subject: hi\r\n\r\nbody\r\n.\r\n",
      "..\r\n.\r\n",
      "...\r\n..x\r\n.\r\n",
      ".a\r\n.b\r\n..\r\n.\r\nQUIT\r\n",
      long_body + ".\r\n",
      long_body + ".\r\nMAIL FROM:<x@y.z>\r\n",
      "line\n.\nnot the end\r\n.\r\n",    // <LF>.<LF>
      "line\n.\r\nnot the end\r\n.\r\n",  // <LF>.<CRLF>
      "line\r\n.\nnot the end\r\n.\r\n",  // <CRLF>.<LF>
      "line\r.\rnot the end\r\n.\r\n",    // <CR>.<CR>
      "line\r\n.\rX\r\n.\r\n",            // <CRLF>.<CR>X
      "line\r\r\n.\r\n",                  // CR CR LF
      "a\r\n.\r\r\n.\r\n",
      std::string(999, 'x') + "\r\n" + ".\r\n",  // a line at the limit + 1
      std::string(998, 'x') + "\r\n" + ".\r\n",  // exactly the limit
      std::string(3000, 'y') + "\r\n" + ".\r\n",
      "." + std::string(998, 'z') + "\r\n.\r\n",  // stuffed line, counted raw
      "no end in sight\r\n..\r\n",
      "",
      std::string(40, '.') + "\r\n.\r\n",
      std::string("bin\0ary\x80\xff\r\n.\r\n", 15),
  };
}

TEST(DotDecoder, EverySplitPoint) {
  for (const std::string& in : Corpus()) {
    ExpectSame(in, {}, 1000);
    for (size_t cut = 0; cut <= in.size(); ++cut) ExpectSame(in, {cut}, 1000);
  }
}

TEST(DotDecoder, RandomMultiSplits) {
  std::mt19937_64 rng(42);
  for (const std::string& in : Corpus()) {
    for (int round = 0; round < 50; ++round) {
      std::vector<size_t> cuts;
      size_t pos = 0;
      while (pos < in.size()) {
        pos += 1 + rng() % 40;
        cuts.push_back(pos);
      }
      ExpectSame(in, cuts, 1000);
    }
  }
}

TEST(DotDecoder, RandomInputsFromATinyAlphabet) {
  // Dots, CRs and LFs dense enough that every state meets every byte.
  std::mt19937_64 rng(7);
  const char alphabet[] = {'.', '\r', '\n', 'a', '\r', '\n', '.', 'b'};
  for (int round = 0; round < 3000; ++round) {
    std::string in;
    const size_t len = rng() % 80;
    for (size_t i = 0; i < len; ++i) in += alphabet[rng() % sizeof alphabet];
    if (round % 2) in += "\r\n.\r\n";
    std::vector<size_t> cuts;
    for (size_t pos = 0; pos < in.size();) {
      pos += 1 + rng() % 20;
      cuts.push_back(pos);
    }
    ExpectSame(in, cuts, 20);
  }
}

TEST(DotDecoder, LongLineFlagAtTheEdge) {
  for (size_t len : {998u, 999u}) {
    std::string in = std::string(len, 'x') + "\r\n.\r\n";
    Decoded d = Decode(in, {}, 1000);
    EXPECT_EQ(d.too_long, len + 2 > 1000) << len;
  }
}

}  // namespace
}  // namespace sluice::smtp

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

// Every cut of `in`, plus a few multi-splits that put a cut at each block
// edge (16, 32, 64 bytes) near position `at`.
void ExpectSameEverywhere(const std::string& in, size_t max_line) {
  ExpectSame(in, {}, max_line);
  for (size_t cut = 0; cut <= in.size(); ++cut) ExpectSame(in, {cut}, max_line);
  for (size_t piece : {16u, 32u, 63u, 64u, 65u, 100u}) {
    std::vector<size_t> cuts;
    for (size_t pos = piece; pos < in.size(); pos += piece) cuts.push_back(pos);
    ExpectSame(in, cuts, max_line);
  }
}

// The block scanner's edges: whatever needs a look at the neighbouring byte
// (a dot at a line start, CR then LF, a bare CR or LF, the end marker) placed
// at each offset around the first, second and third 64-byte block boundary,
// after clean blocks so that the fast loops are running when they meet it.
TEST(DotDecoder, SpecialBytesAtBlockEdges) {
  const std::vector<std::string> specials = {
      "\r\n.x\r\n",    // stuffing dot
      "\r\n..\r\n",    // stuffing dot, then a dot
      "\r\n.\r\n",     // the end
      "\r\n.\rX\r\n",  // ".\r" then not LF
      "\r\n.\nX\r\n",  // "." then a bare LF
      "\rX\r\n",       // bare CR
      "X\nX\r\n",      // bare LF
      "\r\r\n",        // CR CR LF
      "\r\n\r\n",      // an empty line
      "\n.\r\n",       // <LF>.<CRLF> is not the end
  };
  for (const std::string& special : specials) {
    for (size_t block_edge : {64u, 128u, 192u}) {
      for (size_t at = block_edge - 5; at <= block_edge + 3; ++at) {
        // Lines of 30 bytes up to `at`, then the special bytes, then more
        // lines (a third of them stuffed) and the end.
        std::string in;
        while (in.size() + 32 <= at) in += std::string(28, 'a') + "\r\n";
        in += std::string(at - in.size(), 'b');
        in += special;
        for (int k = 0; k < 6; ++k) {
          in.append(k % 3 == 2 ? ".." : "c");
          in.append(40, 'c');
          in.append("\r\n");
        }
        in += ".\r\n";
        ExpectSameEverywhere(in, 1000);
        ExpectSameEverywhere(in, 64);
      }
    }
  }
}

// Lines of exactly the limit and one byte more, starting at every offset of
// a block, for limits that put the line's end at every offset too. The line
// is preceded by short lines and followed by a stuffed one.
TEST(DotDecoder, LinesAtTheLimitInEveryAlignment) {
  for (size_t max_line : {64u, 78u, 126u, 127u, 128u, 191u, 200u, 1000u}) {
    for (size_t offset = 0; offset < 70; ++offset) {
      for (size_t extra : {0u, 1u}) {
        std::string in(offset, 'p');
        in += "\r\n";
        in += std::string(max_line + extra - 2, 'L') + "\r\n";
        in += "..stuffed\r\n.\r\n";
        const Decoded got = Decode(in, {}, max_line);
        ASSERT_TRUE(got.done);
        ASSERT_FALSE(got.bare);
        EXPECT_EQ(got.too_long, extra == 1 || offset + 2 > max_line) << max_line << " " << offset;
        ExpectSame(in, {}, max_line);
        ExpectSame(in, {offset + 1}, max_line);
        ExpectSame(in, {offset + 2 + max_line / 2}, max_line);
        ExpectSame(in,
                   {64, 128, 192, 256, 320, 384, 448, 512, 576, 640, 704, 768, 832, 896, 960, 1024},
                   max_line);
      }
    }
  }
}

// A line carried across pieces: its length must survive the piece boundary
// whichever path (fast loop, block, byte) each piece ends in.
TEST(DotDecoder, LongLineAcrossManyPieces) {
  for (size_t len : {1000u, 1001u, 3000u}) {
    std::string in = "head\r\n";
    in.append(len - 2, 'z');
    in.append("\r\n.\r\n");
    for (size_t piece : {1u, 7u, 16u, 63u, 64u, 65u, 200u, 999u}) {
      std::vector<size_t> cuts;
      for (size_t pos = piece; pos < in.size(); pos += piece) cuts.push_back(pos);
      ExpectSame(in, cuts, 1000);
      EXPECT_EQ(Decode(in, cuts, 1000).too_long, len > 1000) << len << " " << piece;
    }
  }
}

// Differential: random messages that are mostly ordinary text (so the fast
// paths run) with rare dots at line starts, bare CRs and LFs, long lines and
// end markers, in random pieces and under random limits, against Reference().
TEST(DotDecoder, RandomTextAgainstTheReference) {
  std::mt19937_64 rng(20240607);
  for (int round = 0; round < 4000; ++round) {
    std::string in;
    const size_t lines = 1 + rng() % 40;
    for (size_t l = 0; l < lines; ++l) {
      const uint64_t r = rng() % 100;
      size_t len = rng() % 90;
      if (r < 3) len = 100 + rng() % 1100;  // long, maybe too long
      std::string line;
      if (r >= 3 && r < 13) line += '.';  // stuffed, or a lone dot
      for (size_t k = 0; k < len; ++k) line += static_cast<char>('a' + rng() % 26);
      if (r == 13 && !line.empty()) line[rng() % line.size()] = '\r';  // bare CR
      if (r == 14 && !line.empty()) line[rng() % line.size()] = '\n';  // bare LF
      if (r == 15) line += '.';
      in.append(line);
      in.append(r == 16 ? "\n" : "\r\n");
    }
    if (rng() % 4 != 0) in += ".\r\n";
    if (rng() % 4 == 0) in += "MAIL FROM:<a@b>\r\n";
    std::vector<size_t> cuts;
    const size_t mode = rng() % 3;
    for (size_t pos = 0; pos < in.size();) {
      pos += mode == 0 ? 1 + rng() % 20 : mode == 1 ? 1 + rng() % 300 : 64 * (1 + rng() % 4);
      cuts.push_back(pos);
    }
    const size_t limits[] = {64, 78, 127, 128, 200, 1000};
    ExpectSame(in, cuts, limits[rng() % 6]);
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

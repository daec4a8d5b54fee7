// The JSON string escaper against every class of ill-formed UTF-8 (Unicode
// table 3-7), control characters, and random byte strings: the output is
// always one strict JSON string literal (checked by strict_json.h, written
// apart from the escaper) that decodes to the input's well-formed characters
// and, for every other byte b, U+00b. Python's json module checks a sample.
#include "sluice/log/json.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "strict_json.h"

namespace sluice::log {
namespace {

std::string Json(std::string_view s) {
  std::string out;
  AppendJsonString(out, s);
  return out;
}

// Escaped and still decodes to what the input means.
void ExpectRoundTrip(std::string_view in) {
  const std::string out = Json(in);
  ASSERT_TRUE(strict::IsUtf8(out)) << out;
  for (char c : out) ASSERT_GE(static_cast<unsigned char>(c), 0x20) << out;
  const auto text = strict::DecodeString(out);
  ASSERT_TRUE(text.has_value()) << out;
  ASSERT_EQ(*text, strict::ExpectedText(in)) << out;
}

// Each case: the input bytes and the exact literal expected.
struct Case {
  std::string in;
  std::string out;
};

TEST(JsonUtf8, EveryClassOfIllFormedSequenceIsEscapedByteByByte) {
  const std::vector<Case> cases = {
      // Overlong encodings of '/', of U+07FF and of U+FFFF.
      {"\xc0\xaf", "\\u00c0\\u00af"},
      {"\xc1\xbf", "\\u00c1\\u00bf"},
      {"\xe0\x80\xaf", "\\u00e0\\u0080\\u00af"},
      {"\xe0\x9f\xbf", "\\u00e0\\u009f\\u00bf"},
      {"\xf0\x80\x80\xaf", "\\u00f0\\u0080\\u0080\\u00af"},
      {"\xf0\x8f\xbf\xbf", "\\u00f0\\u008f\\u00bf\\u00bf"},
      // UTF-16 surrogates, alone and as a CESU-8 pair.
      {"\xed\xa0\x80", "\\u00ed\\u00a0\\u0080"},
      {"\xed\xbf\xbf", "\\u00ed\\u00bf\\u00bf"},
      {"\xed\xa0\xbd\xed\xb2\xa9", "\\u00ed\\u00a0\\u00bd\\u00ed\\u00b2\\u00a9"},
      // Past U+10FFFF, and the old 5- and 6-byte forms.
      {"\xf4\x90\x80\x80", "\\u00f4\\u0090\\u0080\\u0080"},
      {"\xf5\x80\x80\x80", "\\u00f5\\u0080\\u0080\\u0080"},
      {"\xf7\xbf\xbf\xbf", "\\u00f7\\u00bf\\u00bf\\u00bf"},
      {"\xf8\x88\x80\x80\x80", "\\u00f8\\u0088\\u0080\\u0080\\u0080"},
      {"\xfc\x84\x80\x80\x80\x80", "\\u00fc\\u0084\\u0080\\u0080\\u0080\\u0080"},
      // Truncated: at the end, before ASCII, before another lead byte.
      {"\xc3", "\\u00c3"},
      {"\xe2\x82", "\\u00e2\\u0082"},
      {"\xf0\x9f\x93", "\\u00f0\\u009f\\u0093"},
      {"\xe2\x82(", "\\u00e2\\u0082("},
      {"\xf0\x9f\x93\xc3\xa9", "\\u00f0\\u009f\\u0093\xc3\xa9"},
      {"\xe2\xf0\x9f\x93\xa7", "\\u00e2\xf0\x9f\x93\xa7"},
      // Stray continuation bytes, alone and after a whole character.
      {"\x80", "\\u0080"},
      {"\xbf\xbf", "\\u00bf\\u00bf"},
      {"\xc3\xa9\xa9", "\xc3\xa9\\u00a9"},
      // Bytes that never appear in UTF-8.
      {"\xfe\xff", "\\u00fe\\u00ff"},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(Json(c.in), "\"" + c.out + "\"");
    ExpectRoundTrip(c.in);
  }
}

TEST(JsonUtf8, WellFormedBoundariesPassThrough) {
  // U+00A0, U+07FF, U+0800, U+D7FF, U+E000, U+FFFD, U+FFFF, U+10000, U+10FFFF.
  for (std::string s : {"\xc2\xa0", "\xdf\xbf", "\xe0\xa0\x80", "\xed\x9f\xbf", "\xee\x80\x80",
                        "\xef\xbf\xbd", "\xef\xbf\xbf", "\xf0\x90\x80\x80", "\xf4\x8f\xbf\xbf"}) {
    EXPECT_EQ(Json(s), "\"" + s + "\"");
    EXPECT_EQ(WellFormedUtf8Length(s, 0), s.size());
    ExpectRoundTrip(s);
  }
  EXPECT_EQ(Json("caf\xc3\xa9 \xe7\x94\xa8 \xf0\x9f\x93\xa7"),
            "\"caf\xc3\xa9 \xe7\x94\xa8 \xf0\x9f\x93\xa7\"");
}

TEST(JsonUtf8, ControlCharactersAndLineSeparatorsAreEscaped) {
  for (int c = 0; c < 0x20; ++c) {
    const std::string out = Json(std::string(1, static_cast<char>(c)));
    ASSERT_EQ(out.front(), '"');
    ASSERT_EQ(out[1], '\\') << c;
    ExpectRoundTrip(std::string(1, static_cast<char>(c)));
  }
  EXPECT_EQ(Json("\x7f"), "\"\\u007f\"");
  // C1 controls (U+0080..U+009F), well formed but acted on by terminals.
  EXPECT_EQ(Json("\xc2\x80\xc2\x9b[31m\xc2\x9f"), "\"\\u0080\\u009b[31m\\u009f\"");
  ExpectRoundTrip("\xc2\x80\xc2\x9b[31m\xc2\x9f");
  // U+2028, U+2029 break lines for some readers; U+2027 and U+202A do not.
  EXPECT_EQ(Json("a\xe2\x80\xa8"
                 "b\xe2\x80\xa9"
                 "c"),
            "\"a\\u2028b\\u2029c\"");
  EXPECT_EQ(Json("\xe2\x80\xa7\xe2\x80\xaa"), "\"\xe2\x80\xa7\xe2\x80\xaa\"");
  ExpectRoundTrip(
      "a\xe2\x80\xa8"
      "b\xe2\x80\xa9"
      "c");
}

// The checker has to be able to say no, or the tests above prove nothing.
TEST(StrictJson, CheckerRejectsWhatAStrictParserRejects) {
  EXPECT_FALSE(strict::DecodeString("\"\xc0\xaf\""));          // raw overlong
  EXPECT_FALSE(strict::DecodeString("\"\xed\xa0\x80\""));      // raw surrogate
  EXPECT_FALSE(strict::DecodeString("\"\xf4\x90\x80\x80\""));  // raw past U+10FFFF
  EXPECT_FALSE(strict::DecodeString("\"\xe2\x82\""));          // raw truncated
  EXPECT_FALSE(strict::DecodeString("\"a\nb\""));              // raw control
  EXPECT_FALSE(strict::DecodeString("\"\\ud800\""));           // lone surrogate escape
  EXPECT_FALSE(strict::DecodeString("\"\\x41\""));             // no such escape
  EXPECT_FALSE(strict::DecodeString("\"a\"b"));                // trailing bytes
  EXPECT_FALSE(strict::DecodeString("\"open"));
  EXPECT_EQ(strict::DecodeString("\"\\ud83d\\udce7\\u00e9\""), std::u32string(U"\U0001F4E7\u00e9"));
  EXPECT_TRUE(strict::IsObjectLine("{\"a\":[1,-2.5e3,true,null,{}],\"b\":\"x\"}"));
  EXPECT_FALSE(strict::IsObjectLine("{\"type\":\"Recepti{\"type\":\"Reception\"}"));
  EXPECT_FALSE(strict::IsObjectLine("{\"a\":1}{\"b\":2}"));
  EXPECT_FALSE(strict::IsObjectLine("{\"a\":01}"));
  EXPECT_FALSE(strict::IsObjectLine("{\"a\":NaN}"));
}

// Random byte strings, biased towards the interesting bytes: the output
// always parses strictly and decodes to what the input means.
TEST(JsonUtf8, RandomBytesAlwaysGiveStrictJson) {
  std::mt19937_64 rng(20261207);
  static constexpr char kInteresting[] =
      "\x00\x01\x1f\x7f\"\\\n\r\t\x80\x8f\x90\x9f\xa0\xa8\xa9\xbf\xc0\xc1\xc2\xdf\xe0\xe2"
      "\xed\xee\xef\xf0\xf4\xf5\xf8\xfe\xff aZ";
  const std::string_view interesting(kInteresting, sizeof kInteresting - 1);
  const std::vector<std::string> pieces = {"\xc3\xa9",        "\xe7\x94\xa8", "\xf0\x9f\x93\xa7",
                                           "\xe2\x80\xa8",    "\xc2\x9b",     "\xed\x9f\xbf",
                                           "\xf4\x8f\xbf\xbf"};
  for (int round = 0; round < 200'000; ++round) {
    std::string in;
    const size_t n = rng() % 24;
    for (size_t k = 0; k < n; ++k) {
      switch (rng() % 3) {
        case 0:
          in.push_back(static_cast<char>(rng() & 0xff));
          break;
        case 1:
          in.push_back(interesting[rng() % interesting.size()]);
          break;
        default:
          in += pieces[rng() % pieces.size()];
      }
    }
    ExpectRoundTrip(in);
    if (HasFatalFailure()) return;
  }
}

// Python's json module, strict about UTF-8 and control characters, reads
// every hostile sample back as the expected text.
TEST(JsonUtf8, PythonReadsEveryHostileSample) {
  const char* python = "/usr/bin/python3";
  if (access(python, X_OK) != 0) GTEST_SKIP() << "no " << python;
  std::mt19937_64 rng(7);
  char path[] = "/tmp/sluice-json-test-XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  std::string lines;
  for (int i = 0; i < 2000; ++i) {
    std::string in;
    for (size_t k = rng() % 16; k > 0; --k) in.push_back(static_cast<char>(rng() & 0xff));
    // {"in":[bytes...],"out":"escaped"}: Python rebuilds the expected text.
    lines += "{\"in\":[";
    for (size_t k = 0; k < in.size(); ++k) {
      lines += (k ? "," : "") + std::to_string(static_cast<unsigned char>(in[k]));
    }
    lines += "],\"out\":";
    AppendJsonString(lines, in);
    lines += "}\n";
  }
  ASSERT_EQ(write(fd, lines.data(), lines.size()), static_cast<ssize_t>(lines.size()));
  close(fd);
  const std::string command = std::string(python) +
                              " -c 'import json,sys\n"
                              "def expect(b):\n"
                              "  out, i = [], 0\n"
                              "  while i < len(b):\n"
                              "    for n in (4, 3, 2, 1):\n"
                              "      try:\n"
                              "        out.append(b[i:i+n].decode(\"utf-8\")); i += n; break\n"
                              "      except UnicodeDecodeError:\n"
                              "        pass\n"
                              "    else:\n"
                              "      out.append(chr(b[i])); i += 1\n"
                              "  return \"\".join(out)\n"
                              "for raw in open(sys.argv[1], \"rb\"):\n"
                              "  r = json.loads(raw.decode(\"utf-8\", \"strict\"))\n"
                              "  assert r[\"out\"] == expect(bytes(r[\"in\"])), (raw, r)\n"
                              "' " +
                              path;
  EXPECT_EQ(std::system(command.c_str()), 0);
  unlink(path);
}

}  // namespace
}  // namespace sluice::log

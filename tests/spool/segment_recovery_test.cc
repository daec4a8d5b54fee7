// Recovery of damaged segments on real files: every single bit of a small
// spool flipped in turn, each in a fresh copy; torn tails in the newest and
// in an older segment; unreadable bytes; empty segments. Records are made
// with the real encoder (EncodePreamble/EncodeTrailer), as the writer does.
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "segment_map.h"
#include "sluice/base/crc32c.h"
#include "sluice/spool/spool_directory.h"

namespace sluice::spool {
namespace {

namespace fs = std::filesystem;

constexpr int kSegments = 3;
constexpr int kRecordsPerSegment = 5;
constexpr int kRetiredIndex = 2;  // in every segment, this record was delivered

struct Record {
  int segment = 0;
  uint64_t offset = 0;
  std::string bytes;  // as written
  base::QueueId id;
  bool retired = false;
};

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void WriteFile(const std::string& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// A pristine spool image: segment names and contents, and every record.
class SpoolImage {
 public:
  SpoolImage() {
    base::QueueIdGenerator ids(0);
    uint64_t clock = 1'700'000'000'000'000;
    for (int s = 0; s < kSegments; ++s) {
      names_.push_back(SegmentFileName(ids.Next(++clock)));
      std::string segment;
      for (int r = 0; r < kRecordsPerSegment; ++r) {
        Record rec;
        rec.segment = s;
        rec.offset = segment.size();
        rec.id = ids.Next(++clock);
        rec.retired = r == kRetiredIndex;
        rec.bytes = MakeRecord(
            rec.id, "Subject: " + std::to_string(s) + "/" + std::to_string(r) + "\r\n\r\nbody\r\n");
        if (rec.retired) rec.bytes.replace(0, kTombstone.size(), kTombstone);
        segment += rec.bytes;
        records_.push_back(rec);
      }
      contents_.push_back(segment);
    }
  }

  static std::string MakeRecord(base::QueueId id, const std::string& body) {
    Envelope e;
    e.id = id;
    e.arrival_micros = 1;
    e.protocol = "ESMTP";
    e.sender = "s@example.com";
    e.recipients = {{"r@example.net"}};
    e.body_size = body.size();
    e.body_crc = base::Crc32c(0, body.data(), body.size());
    const std::string trailer = EncodeTrailer(e);
    return EncodePreamble(kPreambleSize + body.size() + trailer.size()) + body + trailer;
  }

  // Writes the image into a fresh spool at `root`, shard directory 0.
  void WriteTo(const std::string& root, const std::vector<std::string>& contents) const {
    fs::remove_all(root);
    ASSERT_TRUE(PrepareSpool(root, 1).ok());
    for (size_t s = 0; s < names_.size(); ++s) WriteFile(SegmentPath(root, s), contents[s]);
  }
  // The same, cheaper, over a spool WriteTo made: the segments rewritten,
  // corrupt/ emptied (thousands of runs; each run checks that no segment
  // was removed, so nothing is left over from the previous one).
  void ResetTo(const std::string& root, const std::vector<std::string>& contents) const {
    for (const auto& e : fs::directory_iterator(root + "/corrupt")) fs::remove(e.path());
    for (size_t s = 0; s < names_.size(); ++s) WriteFile(SegmentPath(root, s), contents[s]);
  }
  std::string SegmentPath(const std::string& root, size_t s) const {
    return root + "/0/" + names_[s];
  }

  const std::vector<std::string>& contents() const { return contents_; }
  const std::vector<Record>& records() const { return records_; }

 private:
  std::vector<std::string> names_;
  std::vector<std::string> contents_;
  std::vector<Record> records_;
};

class SegmentRecoveryTest : public testing::Test {
 protected:
  void SetUp() override {
    // tmpfs when there is one: thousands of scans, each with fsyncs.
    const char* base = fs::is_directory("/dev/shm") ? "/dev/shm" : "/tmp";
    std::string tmpl = std::string(base) + "/sluice-recovery-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    root_ = dir_ + "/spool";
  }
  void TearDown() override { fs::remove_all(dir_); }

  static absl::StatusOr<RecoveryReport> Recover(const std::string& root) {
    return ScanSpool(root, ScanOptions{.repair = true, .verify_body = true});
  }

  // The files recovery set aside: ".rec" name -> bytes; each has a note.
  std::map<std::string, std::string> SetAside() const {
    std::map<std::string, std::string> out;
    for (const auto& e : fs::directory_iterator(root_ + "/corrupt")) {
      if (e.path().extension() != ".rec") continue;
      EXPECT_TRUE(fs::exists(e.path().string() + ".why")) << e.path();
      out[e.path().filename()] = ReadFile(e.path());
    }
    return out;
  }

  // Every queued record of `image` except those in `skip` was recovered,
  // at a location that reads back exactly the bytes written.
  void ExpectQueued(const SpoolImage& image, const RecoveryReport& report,
                    const std::set<int>& skip, const std::string& context) {
    std::map<base::QueueId, RecordLocation> found;
    for (const QueuedMessage& m : report.messages) found[m.envelope.id] = m.where;
    const auto& records = image.records();
    for (int i = 0; i < static_cast<int>(records.size()); ++i) {
      const Record& r = records[i];
      if (skip.contains(i)) continue;
      if (r.retired) {
        EXPECT_FALSE(found.contains(r.id)) << context << ": retired record " << i << " came back";
        continue;
      }
      auto it = found.find(r.id);
      ASSERT_TRUE(it != found.end()) << context << ": record " << i << " lost";
      auto bytes = ReadRecord(it->second);
      ASSERT_TRUE(bytes.ok()) << context;
      EXPECT_EQ(*bytes, r.bytes) << context << ": record " << i << " changed";
    }
  }

  std::string dir_;
  std::string root_;
};

// Which record of segment `s` holds byte `at`.
int RecordAt(const SpoolImage& image, int s, uint64_t at) {
  const auto& records = image.records();
  for (int i = 0; i < static_cast<int>(records.size()); ++i) {
    const Record& r = records[i];
    if (r.segment == s && at >= r.offset && at < r.offset + r.bytes.size()) return i;
  }
  return -1;
}

TEST_F(SegmentRecoveryTest, EverySingleBitFlip) {
  const SpoolImage image;
  const auto started = std::chrono::steady_clock::now();
  size_t flips = 0, intact = 0, set_aside = 0, retired_kept = 0;
  for (int s = 0; s < kSegments; ++s) {
    const std::string& pristine = image.contents()[static_cast<size_t>(s)];
    for (uint64_t byte = 0; byte < pristine.size(); ++byte) {
      for (int bit = 0; bit < 8; ++bit) {
        std::vector<std::string> contents = image.contents();
        contents[static_cast<size_t>(s)][byte] ^= static_cast<char>(1 << bit);
        if (flips == 0) {
          image.WriteTo(root_, contents);
        } else {
          image.ResetTo(root_, contents);
        }
        const std::string context = "segment " + std::to_string(s) + " byte " +
                                    std::to_string(byte) + " bit " + std::to_string(bit);
        auto report = Recover(root_);
        ASSERT_TRUE(report.ok()) << context << ": " << report.status();
        ++flips;
        const int victim = RecordAt(image, s, byte);
        ASSERT_GE(victim, 0);
        const Record& v = image.records()[static_cast<size_t>(victim)];
        ExpectQueued(image, *report, {victim}, context);
        // No file deleted or cut: nothing here is an unfinished write.
        for (size_t k = 0; k < kSegments; ++k) {
          ASSERT_EQ(fs::file_size(image.SegmentPath(root_, k)), contents[k].size()) << context;
        }
        EXPECT_EQ(report->counts.unfinished_tails, 0u) << context;
        EXPECT_EQ(report->counts.unreadable_spans, 0u) << context;
        // The damaged record: recovered intact, or its bytes alone set aside.
        const auto aside = SetAside();
        const QueuedMessage* recovered = nullptr;
        for (const QueuedMessage& m : report->messages) {
          if (m.envelope.id == v.id) recovered = &m;
        }
        if (recovered != nullptr) {
          ASSERT_FALSE(v.retired) << context;
          ASSERT_TRUE(aside.empty()) << context;
          auto bytes = ReadRecord(recovered->where);
          ASSERT_TRUE(bytes.ok()) << context;
          ASSERT_EQ(*bytes, v.bytes) << context << ": recovered, but not repaired to its bytes";
          ++intact;
        } else if (!aside.empty()) {
          ASSERT_EQ(aside.size(), 1u) << context;
          const std::string damaged =
              contents[static_cast<size_t>(s)].substr(v.offset, v.bytes.size());
          ASSERT_EQ(aside.begin()->second, damaged) << context << ": set aside the wrong bytes";
          ++set_aside;
        } else {
          ASSERT_TRUE(v.retired) << context << ": queued record neither recovered nor set aside";
          ++retired_kept;
        }
        // A second start finds the same queue and nothing new.
        if (byte % 7 == 0) {
          auto again = Recover(root_);
          ASSERT_TRUE(again.ok()) << context;
          EXPECT_EQ(again->messages.size(), report->messages.size()) << context;
          EXPECT_TRUE(again->corrupt.empty()) << context;
          EXPECT_EQ(again->counts.repaired_preambles, 0u) << context;
        }
      }
    }
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::printf("%zu flips in %.1f s: %zu recovered intact, %zu set aside, %zu retired left alone\n",
              flips, seconds, intact, set_aside, retired_kept);
  EXPECT_GT(intact, 0u);     // preamble flips: magic and length
  EXPECT_GT(set_aside, 0u);  // body, envelope and footer flips
}

// Several faults at once, at random (flipped bits, zeroed runs, random
// runs, in any segment): whatever else happened, a record none of whose
// bytes changed is recovered byte for byte, and an untouched retired record
// stays retired. Only the newest segment may get shorter.
TEST_F(SegmentRecoveryTest, RandomMultipleFaults) {
  const SpoolImage image;
  std::mt19937_64 rng(20261207);
  constexpr int kRuns = 1500;
  for (int run = 0; run < kRuns; ++run) {
    std::vector<std::string> contents = image.contents();
    std::vector<std::vector<bool>> touched;
    for (const std::string& c : contents) touched.emplace_back(c.size(), false);
    const int faults = 1 + static_cast<int>(rng() % 6);
    for (int f = 0; f < faults; ++f) {
      const size_t s = rng() % contents.size();
      std::string& c = contents[s];
      const size_t at = rng() % c.size();
      const size_t len = std::min<size_t>(c.size() - at, 1 + rng() % 64);
      switch (rng() % 3) {
        case 0:
          c[at] ^= static_cast<char>(1 << (rng() % 8));
          touched[s][at] = true;
          continue;
        case 1:
          for (size_t i = at; i < at + len; ++i) c[i] = '\0';
          break;
        default:
          for (size_t i = at; i < at + len; ++i) c[i] = static_cast<char>(rng());
      }
      for (size_t i = at; i < at + len; ++i) touched[s][i] = true;
    }
    if (run == 0) {
      image.WriteTo(root_, contents);
    } else {
      image.ResetTo(root_, contents);
    }
    const std::string context = "run " + std::to_string(run);
    auto report = Recover(root_);
    ASSERT_TRUE(report.ok()) << context << ": " << report.status();
    std::set<int> damaged;
    const auto& records = image.records();
    for (int i = 0; i < static_cast<int>(records.size()); ++i) {
      const Record& r = records[static_cast<size_t>(i)];
      const auto& t = touched[static_cast<size_t>(r.segment)];
      for (uint64_t k = r.offset; k < r.offset + r.bytes.size(); ++k) {
        if (t[k]) {
          damaged.insert(i);
          break;
        }
      }
    }
    // Damaged ones are skipped (a twice-damaged magic may be read either
    // way); untouched retired ones must not come back.
    ExpectQueued(image, *report, damaged, context);
    for (size_t k = 0; k + 1 < kSegments; ++k) {
      ASSERT_EQ(fs::file_size(image.SegmentPath(root_, k)), contents[k].size()) << context;
    }
    auto again = Recover(root_);
    ASSERT_TRUE(again.ok()) << context;
    EXPECT_EQ(again->messages.size(), report->messages.size()) << context;
    EXPECT_TRUE(again->corrupt.empty()) << context;
  }
}

// The case: a length field that points far past the end used to
// make the rest of the segment an "unfinished tail" and cut it.
TEST_F(SegmentRecoveryTest, DamagedLengthLosesNothing) {
  const SpoolImage image;
  std::vector<std::string> contents = image.contents();
  const Record& r = image.records()[1];
  contents[0][r.offset + kMagic.size() + 6] ^= 0x40;
  image.WriteTo(root_, contents);
  auto report = Recover(root_);
  ASSERT_TRUE(report.ok());
  ExpectQueued(image, *report, {}, "length");
  EXPECT_EQ(report->counts.repaired_preambles, 1u);
  EXPECT_TRUE(report->corrupt.empty());
  EXPECT_EQ(ReadFile(image.SegmentPath(root_, 0)), image.contents()[0]);  // repaired in place
}

TEST_F(SegmentRecoveryTest, TornTailOfNewestSegmentIsCut) {
  const SpoolImage image;
  std::vector<std::string> contents = image.contents();
  const Record& last = image.records().back();
  contents.back().resize(last.offset + last.bytes.size() / 2);
  image.WriteTo(root_, contents);
  auto report = Recover(root_);
  ASSERT_TRUE(report.ok());
  ExpectQueued(image, *report, {static_cast<int>(image.records().size()) - 1}, "torn newest");
  EXPECT_EQ(report->counts.unfinished_tails, 1u);
  EXPECT_TRUE(report->corrupt.empty());
  EXPECT_TRUE(SetAside().empty());
  EXPECT_EQ(fs::file_size(image.SegmentPath(root_, kSegments - 1)), last.offset);
}

TEST_F(SegmentRecoveryTest, ZeroFilledTailOfNewestSegmentIsCut) {
  const SpoolImage image;
  std::vector<std::string> contents = image.contents();
  contents.back() += std::string(4096, '\0');
  image.WriteTo(root_, contents);
  auto report = Recover(root_);
  ASSERT_TRUE(report.ok());
  ExpectQueued(image, *report, {}, "zero tail");
  EXPECT_EQ(report->counts.unfinished_tails, 1u);
  EXPECT_EQ(ReadFile(image.SegmentPath(root_, kSegments - 1)), image.contents().back());
}

TEST_F(SegmentRecoveryTest, TornRecordInOlderSegmentIsSetAsideNotCut) {
  const SpoolImage image;
  std::vector<std::string> contents = image.contents();
  const Record& last = image.records()[kRecordsPerSegment - 1];  // segment 0's last
  contents[0].resize(last.offset + last.bytes.size() / 2);
  image.WriteTo(root_, contents);
  auto report = Recover(root_);
  ASSERT_TRUE(report.ok());
  ExpectQueued(image, *report, {kRecordsPerSegment - 1}, "torn older");
  EXPECT_EQ(report->counts.unfinished_tails, 0u);
  EXPECT_EQ(report->counts.unreadable_spans, 1u);
  const auto aside = SetAside();
  ASSERT_EQ(aside.size(), 1u);
  EXPECT_EQ(aside.begin()->second, contents[0].substr(last.offset));
  EXPECT_EQ(fs::file_size(image.SegmentPath(root_, 0)), contents[0].size());  // not cut
  auto again = Recover(root_);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->corrupt.empty());  // neutralised in place
  ExpectQueued(image, *again, {kRecordsPerSegment - 1}, "torn older, again");
}

// Bytes that are no record at all, mid-segment (two damaged neighbours, a
// stray block): set aside as one span; the record after them is found.
TEST_F(SegmentRecoveryTest, UnreadableBytesBetweenRecords) {
  const SpoolImage image;
  std::vector<std::string> contents = image.contents();
  const Record& a = image.records()[kRecordsPerSegment + 0];
  const Record& b = image.records()[kRecordsPerSegment + 1];
  // Both preambles and b's footer gone: no boundary is left between them.
  for (uint64_t i = 0; i < kPreambleSize; ++i) contents[1][a.offset + i] = 'x';
  for (uint64_t i = 0; i < kPreambleSize; ++i) contents[1][b.offset + i] = 'y';
  contents[1][b.offset + b.bytes.size() - 3] ^= 1;
  image.WriteTo(root_, contents);
  auto report = Recover(root_);
  ASSERT_TRUE(report.ok());
  // a verifies by its footer but its magic is unreadable: set aside alone.
  EXPECT_EQ(report->counts.damaged_records, 1u);
  EXPECT_EQ(report->counts.unreadable_spans, 1u);
  ExpectQueued(image, *report, {kRecordsPerSegment, kRecordsPerSegment + 1}, "unreadable");
  for (const QueuedMessage& m : report->messages) {
    EXPECT_NE(m.envelope.id, a.id);
    EXPECT_NE(m.envelope.id, b.id);
  }
  EXPECT_EQ(SetAside().size(), 2u);
  EXPECT_EQ(fs::file_size(image.SegmentPath(root_, 1)), contents[1].size());
  auto again = Recover(root_);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->corrupt.empty());
  ExpectQueued(image, *again, {kRecordsPerSegment, kRecordsPerSegment + 1}, "unreadable, again");
}

// A message whose body holds a complete, valid record image (someone
// mailed a spool segment): the image is never queued, whether the record
// around it is intact, damaged in its body, or follows a damaged one.
TEST_F(SegmentRecoveryTest, RecordImageInsideABodyIsNeverQueued) {
  base::QueueIdGenerator ids(0);
  const base::QueueId before = ids.Next(10), outer = ids.Next(20), inner = ids.Next(30);
  const std::string image = SpoolImage::MakeRecord(inner, "Subject: inner\r\n\r\nhi\r\n");
  const std::string first = SpoolImage::MakeRecord(before, "Subject: before\r\n\r\nx\r\n");
  const std::string second =
      SpoolImage::MakeRecord(outer, "Subject: outer\r\n\r\n" + image + "\r\ntail\r\n");
  const std::string name = SegmentFileName(ids.Next(40));
  for (int damage = 0; damage < 3; ++damage) {
    std::string segment = first + second;
    if (damage == 1) segment[first.size() + kPreambleSize + 2] ^= 1;  // outer's body
    if (damage == 2) segment[kPreambleSize + 2] ^= 1;                 // the record before
    fs::remove_all(root_);
    ASSERT_TRUE(PrepareSpool(root_, 1).ok());
    WriteFile(root_ + "/0/" + name, segment);
    auto report = Recover(root_);
    ASSERT_TRUE(report.ok());
    std::set<base::QueueId> got;
    for (const QueuedMessage& m : report->messages) got.insert(m.envelope.id);
    EXPECT_FALSE(got.contains(inner)) << "damage " << damage;
    EXPECT_EQ(got.contains(outer), damage != 1) << "damage " << damage;
    EXPECT_EQ(got.contains(before), damage != 2) << "damage " << damage;
    EXPECT_EQ(report->counts.damaged_records, damage == 0 ? 0u : 1u) << "damage " << damage;
    EXPECT_EQ(report->counts.unreadable_spans, 0u) << "damage " << damage;
  }
}

// A body full of crafted footers (valid footer and envelope CRCs, each
// claiming a record from the segment's start, so each check would read
// megabytes) after a damaged record: the search after the break is bounded,
// and the walk along the preambles still finds the record holding them.
TEST_F(SegmentRecoveryTest, CraftedFootersCannotStallRecovery) {
  base::QueueIdGenerator ids(0);
  const base::QueueId first_id = ids.Next(10), holder_id = ids.Next(20);
  std::string first = SpoolImage::MakeRecord(first_id, "Subject: first\r\n\r\nx\r\n");
  first[kPreambleSize + 2] ^= 1;  // the break
  const std::string prefix = "Subject: crafted\r\n\r\n";
  std::string body = prefix;
  Envelope fake;
  fake.id = ids.Next(30);
  fake.protocol = "ESMTP";
  fake.recipients = {{"victim@example.net"}};
  constexpr int kCrafted = 20000;
  for (int i = 0; i < kCrafted; ++i) {
    // Where the next envelope will sit in the segment: it claims a record
    // starting at 0 whose body runs up to it.
    const uint64_t at = first.size() + kPreambleSize + body.size();
    fake.body_size = at - kPreambleSize;
    const std::string env = EncodeEnvelope(fake);
    Footer f;
    f.envelope_offset = at;
    f.envelope_size = static_cast<uint32_t>(env.size());
    f.envelope_crc = base::Crc32c(0, env.data(), env.size());
    f.body_crc = 0;
    body += env + EncodeFooter(f);
  }
  const std::string holder = SpoolImage::MakeRecord(holder_id, body);
  const std::string segment = first + holder;
  ASSERT_TRUE(PrepareSpool(root_, 1).ok());
  const std::string path = root_ + "/0/" + SegmentFileName(ids.Next(40));
  WriteFile(path, segment);
  const std::clock_t started = std::clock();
  auto report = Recover(root_);
  const double cpu = static_cast<double>(std::clock() - started) / CLOCKS_PER_SEC;
  ASSERT_TRUE(report.ok());
  std::printf("%zu MB segment, %d crafted footers: %.2f s of CPU\n", segment.size() >> 20, kCrafted,
              cpu);
  EXPECT_LT(cpu, 1.0);
  ASSERT_EQ(report->messages.size(), 1u);
  EXPECT_EQ(report->messages[0].envelope.id, holder_id);
  EXPECT_EQ(report->counts.damaged_records, 1u);
  EXPECT_EQ(fs::file_size(path), segment.size());
}

// The same bytes set aside twice (damaged, neutralised, damaged again):
// the second copy never replaces the first.
TEST_F(SegmentRecoveryTest, SecondCopyOfASpanKeepsTheFirst) {
  const SpoolImage image;
  std::vector<std::string> contents = image.contents();
  const Record& r = image.records()[1];
  contents[0][r.offset + kPreambleSize + 1] ^= 1;  // body
  image.WriteTo(root_, contents);
  auto report = Recover(root_);
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(report->counts.damaged_records, 1u);
  // Now neutralised; its retired magic loses a bit ('X' -> 'P', as near
  // the queued magic as the retired one): set aside again.
  std::string now = ReadFile(image.SegmentPath(root_, 0));
  ASSERT_EQ(now.substr(r.offset, kTombstone.size()), kTombstone);
  now[r.offset + 6] ^= 0x08;
  WriteFile(image.SegmentPath(root_, 0), now);
  // Its body is damaged, so it does not verify: a retired-looking preamble
  // with a bad magic is damage, copied again.
  auto again = Recover(root_);
  ASSERT_TRUE(again.ok());
  const auto aside = SetAside();
  ASSERT_EQ(aside.size(), 2u);
  bool first_kept = false;
  for (const auto& [name, bytes] : aside) {
    first_kept |= bytes == contents[0].substr(r.offset, r.bytes.size());
  }
  EXPECT_TRUE(first_kept) << "the first copy was overwritten";
  ExpectQueued(image, *again, {1}, "twice");
}

TEST_F(SegmentRecoveryTest, EmptySegmentsAreRemoved) {
  const SpoolImage image;
  std::vector<std::string> contents = image.contents();
  contents[0].clear();  // an older one
  contents[2].clear();  // the newest
  image.WriteTo(root_, contents);
  auto report = Recover(root_);
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(report->counts.empty_segments, 2u);
  EXPECT_FALSE(fs::exists(image.SegmentPath(root_, 0)));
  EXPECT_TRUE(fs::exists(image.SegmentPath(root_, 1)));
  EXPECT_FALSE(fs::exists(image.SegmentPath(root_, 2)));
  EXPECT_EQ(report->messages.size(), kRecordsPerSegment - 1u);
}

// A segment whose records were all delivered before a stop (the ledger
// keeps the current segment while it runs) goes at the next start; one
// with a queued record left stays, byte for byte.
TEST_F(SegmentRecoveryTest, SegmentOfRetiredRecordsOnlyIsRemoved) {
  const SpoolImage image;
  std::vector<std::string> contents = image.contents();
  for (const Record& r : image.records()) {
    if (r.segment == 0 || (r.segment == 1 && r.offset > 0)) {
      contents[static_cast<size_t>(r.segment)].replace(r.offset, kTombstone.size(), kTombstone);
    }
  }
  image.WriteTo(root_, contents);
  auto report = Recover(root_);
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(report->counts.retired_segments, 1u);
  EXPECT_FALSE(fs::exists(image.SegmentPath(root_, 0)));
  EXPECT_EQ(ReadFile(image.SegmentPath(root_, 1)), contents[1]);
  EXPECT_EQ(report->messages.size(), 1u + kRecordsPerSegment - 1u);
}

}  // namespace
}  // namespace sluice::spool

namespace sluice::spool {
namespace {

// A message file has one record; a damaged preamble (covered by no CRC) is
// rewritten, damage anywhere else moves the file to corrupt/.
TEST_F(SegmentRecoveryTest, MessageFilePreambleRepaired) {
  ASSERT_TRUE(PrepareSpool(root_, 1).ok());
  base::QueueIdGenerator ids(0);
  const base::QueueId good = ids.Next(100), bad = ids.Next(200);
  std::string record = SpoolImage::MakeRecord(good, "Subject: big\r\n\r\nbody\r\n");
  record.replace(0, kPreambleSize, EncodePreamble(0));  // as the writer makes .msg files
  const std::string pristine = record;
  record[3] ^= 0x04;  // magic
  record[9] ^= 0x01;  // length
  WriteFile(root_ + "/0/" + MessageFileName(good), record);
  std::string damaged = SpoolImage::MakeRecord(bad, "Subject: big\r\n\r\nbody\r\n");
  damaged.replace(0, kPreambleSize, EncodePreamble(0));
  damaged[kPreambleSize + 2] ^= 0x01;  // body
  WriteFile(root_ + "/0/" + MessageFileName(bad), damaged);
  auto report = Recover(root_);
  ASSERT_TRUE(report.ok());
  ASSERT_EQ(report->messages.size(), 1u);
  EXPECT_EQ(report->messages[0].envelope.id, good);
  EXPECT_EQ(report->counts.repaired_preambles, 1u);
  EXPECT_EQ(report->counts.damaged_message_files, 1u);
  EXPECT_EQ(ReadFile(root_ + "/0/" + MessageFileName(good)), pristine);
  EXPECT_FALSE(fs::exists(root_ + "/0/" + MessageFileName(bad)));
}

}  // namespace
}  // namespace sluice::spool

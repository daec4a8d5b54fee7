// JSON escaping of hostile text, the delivery record lines byte by byte, and
// the four record methods through a real io_uring write to a file (each line
// checked by Python's json module when Debian's python3 is there).
#include "sluice/log/accounting_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "gtest/gtest.h"
#include "sluice/base/limits.h"
#include "sluice/io/ring.h"
#include "sluice/log/json.h"

namespace sluice::log {
namespace {

std::string Json(std::string_view s) {
  std::string out;
  AppendJsonString(out, s);
  return out;
}

TEST(AppendJsonString, HostileText) {
  EXPECT_EQ(Json(""), "\"\"");
  EXPECT_EQ(Json("plain 250 ok"), "\"plain 250 ok\"");
  EXPECT_EQ(Json("say \"hi\""), "\"say \\\"hi\\\"\"");
  EXPECT_EQ(Json("C:\\path\\"), "\"C:\\\\path\\\\\"");
  EXPECT_EQ(Json("a\r\nb\tc"), "\"a\\r\\nb\\tc\"");
  EXPECT_EQ(Json(std::string_view("\0\x01\x1b\x1f\x7f", 5)),
            "\"\\u0000\\u0001\\u001b\\u001f\\u007f\"");
  // A line break cannot end the record early, nor a quote end the string.
  EXPECT_EQ(Json("x\"}\n{\"type\":\"Delivery"), "\"x\\\"}\\n{\\\"type\\\":\\\"Delivery\"");
  // Valid UTF-8 passes; invalid bytes become \u00XX.
  EXPECT_EQ(Json("caf\xc3\xa9 \xe7\x94\xa8 \xf0\x9f\x93\xa7"),
            "\"caf\xc3\xa9 \xe7\x94\xa8 \xf0\x9f\x93\xa7\"");
  EXPECT_EQ(Json("\xff\xfe"), "\"\\u00ff\\u00fe\"");
  EXPECT_EQ(Json("\xc3"), "\"\\u00c3\"");             // truncated sequence at the end
  EXPECT_EQ(Json("\xc3("), "\"\\u00c3(\"");           // bad continuation byte
  EXPECT_EQ(Json("\xc0\xaf"), "\"\\u00c0\\u00af\"");  // overlong '/'
  EXPECT_EQ(Json("\xe2\x82"), "\"\\u00e2\\u0082\"");
}

TEST(JsonLine, FieldsInOrderOnOneLine) {
  std::string out = "prefix ";
  JsonLine line(out);
  line.Str("a", "x\"y").StrIfSet("skipped", "").StrIfSet("b", "z").Uint("n", 18446744073709551615u);
  line.Int("neg", -5).Raw("list", "[1,2]");
  line.Key("built") += "true";
  line.End();
  EXPECT_EQ(out,
            "prefix {\"a\":\"x\\\"y\",\"b\":\"z\",\"n\":18446744073709551615,\"neg\":-5,"
            "\"list\":[1,2],\"built\":true}\n");
  std::string empty;
  JsonLine(empty).End();
  EXPECT_EQ(empty, "{}\n");
}

DeliveryRecord Sample() {
  DeliveryRecord r;
  r.ts_micros = 1772528707123456;  // 2026-03-03T09:05:07.123456Z
  r.id = "0ABCDEFGHJKMN";
  r.sender = "alice@example.com";
  r.recipient = "bob@example.net";
  r.domain = "example.net";
  r.mx = "mx1.example.net";
  r.ip = "192.0.2.25";
  r.code = 250;
  r.enhanced = "2.0.0";
  r.text = "Ok: queued as 4F1";
  r.attempt = 1;
  r.queue_time_micros = 3600125400;
  return r;
}

TEST(AccountingLog, DeliveryRecordLine) {
  std::string out;
  AccountingLog::FormatDelivery(out, DeliveryType::kDelivery, Sample());
  EXPECT_EQ(
      out,
      "{\"type\":\"Delivery\",\"ts\":\"2026-03-03T09:05:07.123456Z\",\"id\":\"0ABCDEFGHJKMN\","
      "\"sender\":\"alice@example.com\",\"recipient\":\"bob@example.net\","
      "\"domain\":\"example.net\",\"mx\":\"mx1.example.net\",\"ip\":\"192.0.2.25\","
      "\"code\":250,\"enhanced\":\"2.0.0\",\"text\":\"Ok: queued as 4F1\",\"attempt\":1,"
      "\"queue_time_s\":3600.125,\"tls\":\"\"}\n");
}

TEST(AccountingLog, QueueTimeMillisecondsRounded) {
  auto queue_time = [](uint64_t micros) {
    DeliveryRecord r;
    r.queue_time_micros = micros;
    std::string out;
    AccountingLog::FormatDelivery(out, DeliveryType::kDelivery, r);
    const size_t at = out.find("\"queue_time_s\":");
    return out.substr(at + 15, out.find(',', at) - at - 15);
  };
  EXPECT_EQ(queue_time(0), "0.000");
  EXPECT_EQ(queue_time(499), "0.000");
  EXPECT_EQ(queue_time(500), "0.001");
  EXPECT_EQ(queue_time(42000), "0.042");
  EXPECT_EQ(queue_time(999999), "1.000");
  EXPECT_EQ(queue_time(5 * 86400 * 1000000ULL + 7000), "432000.007");
  EXPECT_EQ(queue_time(UINT64_MAX), "18446744073709.552");
}

TEST(AccountingLog, LocalFailureHasCodeZero) {
  DeliveryRecord r = Sample();
  r.mx = "";
  r.ip = "";
  r.code = 0;
  r.enhanced = "";
  r.text = "Host or domain name not found";
  r.attempt = 3;
  r.tls = "TLSv1.3 TLS_AES_256_GCM_SHA384";
  std::string out;
  AccountingLog::FormatDelivery(out, DeliveryType::kTransientFailure, r);
  EXPECT_NE(out.find("\"mx\":\"\",\"ip\":\"\",\"code\":0,\"enhanced\":\"\","
                     "\"text\":\"Host or domain name not found\",\"attempt\":3,"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("\"tls\":\"TLSv1.3 TLS_AES_256_GCM_SHA384\"}\n"), std::string::npos) << out;
}

TEST(AccountingLog, HostileReplyTextStaysOneLine) {
  DeliveryRecord r = Sample();
  r.code = 550;
  r.enhanced = "5.1.1";
  const std::string text =
      std::string("550-5.1.1 \"quoted\" C:\\dir\\\r\n550 5.1.1 \x01\x1b[31mred\x7f ") +
      std::string(1, '\0') + "nul \xff\xfe bad utf-8 \xc3\xa9 good\n\"}{\"type\":\"Delivery\"";
  r.text = text;
  r.mx = "mx\"\n.example";
  std::string out;
  AccountingLog::FormatDelivery(out, DeliveryType::kBounce, r);
  EXPECT_EQ(out.find('\n'), out.size() - 1);  // one line
  EXPECT_EQ(out.find('\r'), std::string::npos);
  for (char c : out.substr(0, out.size() - 1)) {
    EXPECT_GE(static_cast<unsigned char>(c), 0x20) << out;
    EXPECT_NE(c, 0x7f) << out;
  }
  EXPECT_NE(out.find("\"text\":\"550-5.1.1 \\\"quoted\\\" C:\\\\dir\\\\\\r\\n550 5.1.1 "
                     "\\u0001\\u001b[31mred\\u007f \\u0000nul \\u00ff\\u00fe bad utf-8 \xc3\xa9 "
                     "good\\n\\\"}{\\\"type\\\":\\\"Delivery\\\"\""),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("\"mx\":\"mx\\\"\\n.example\""), std::string::npos) << out;
  EXPECT_EQ(out.rfind("{\"type\":\"Bounce\",", 0), 0u);
}

// The four methods through the real write path: one line each, in order,
// with their type, and valid JSON for Python.
TEST(AccountingLog, FourRecordTypesWritten) {
  auto ring = io::Ring::Create(64);
  ASSERT_TRUE(ring.ok()) << ring.status();
  char path[] = "/tmp/sluice-log-test-XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(fcntl(fd, F_SETFL, O_APPEND), 0);
  {
    AccountingLog log(**ring, fd);
    DeliveryRecord r = Sample();
    log.Write(DeliveryType::kDelivery, r);
    r.code = 451;
    r.enhanced = "4.7.1";
    r.text = "Greylisted \"try\" later\\\r\n";
    log.Write(DeliveryType::kTransientFailure, r);
    r.code = 550;
    r.enhanced = "5.1.1";
    r.text = "\xff user unknown";
    log.Write(DeliveryType::kBounce, r);
    r.code = 0;
    r.enhanced = "";
    r.text = "connect to 192.0.2.25:25: Connection timed out";
    log.Write(DeliveryType::kExpiration, r);
    log.Flush();
    for (int i = 0; i < 100 && !log.idle(); ++i) (*ring)->RunOnce(100);
    ASSERT_TRUE(log.idle());
  }
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string content = ss.str();
  std::vector<std::string> lines;
  std::istringstream split(content);
  for (std::string line; std::getline(split, line);) lines.push_back(line);
  ASSERT_EQ(lines.size(), 4u) << content;
  const char* types[] = {"Delivery", "TransientFailure", "Bounce", "Expiration"};
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(lines[i].rfind(std::string("{\"type\":\"") + types[i] + "\",\"ts\":", 0), 0u)
        << lines[i];
  }
  EXPECT_NE(lines[3].find("\"code\":0,\"enhanced\":\"\""), std::string::npos);

  const char* python = "/usr/bin/python3";
  if (access(python, X_OK) == 0) {
    const std::string command =
        std::string(python) +
        " -c 'import json,sys\n"
        "recs=[json.loads(l) for l in open(sys.argv[1],encoding=\"utf-8\")]\n"
        "assert [r[\"type\"] for r in recs]==[\"Delivery\",\"TransientFailure\",\"Bounce\","
        "\"Expiration\"], recs\n"
        "assert recs[1][\"text\"]==\"Greylisted \\\"try\\\" later\\\\\\r\\n\", recs[1]\n"
        "assert recs[2][\"text\"]==\"\\u00ff user unknown\", recs[2]\n"
        "assert all(r[\"queue_time_s\"]==3600.125 and r[\"attempt\"]==1 for r in recs)\n"
        "assert sorted(recs[0])==sorted([\"type\",\"ts\",\"id\",\"sender\",\"recipient\","
        "\"domain\",\"mx\",\"ip\",\"code\",\"enhanced\",\"text\",\"attempt\",\"queue_time_s\","
        "\"tls\"]), recs[0]\n"
        "' " +
        path;
    EXPECT_EQ(std::system(command.c_str()), 0) << command;
  }
  close(fd);
  unlink(path);
}

// Past the buffer's bound (limits::kLogBufferMax) with no Flush, as when the
// loop is far behind the disk: the buffer is written synchronously, whole,
// and no record is lost or cut.
TEST(AccountingLog, FullBufferIsWrittenNotDropped) {
  auto ring = io::Ring::Create(8);
  ASSERT_TRUE(ring.ok()) << ring.status();
  char path[] = "/tmp/sluice-log-full-XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(fcntl(fd, F_SETFL, O_APPEND), 0);
  const std::string text(4000, 'x');
  size_t records = 0;
  {
    AccountingLog log(**ring, fd);
    DeliveryRecord r = Sample();
    r.text = text;
    while (records * 4096 < 3 * limits::kLogBufferMax) {
      log.Write(DeliveryType::kDelivery, r);
      ++records;
    }
    log.Flush();
    for (int i = 0; i < 100 && !log.idle(); ++i) (*ring)->RunOnce(100);
    ASSERT_TRUE(log.idle());
  }
  std::ifstream in(path);
  size_t lines = 0;
  for (std::string line; std::getline(in, line); ++lines) {
    ASSERT_EQ(line.rfind("{\"type\":\"Delivery\"", 0), 0u) << lines;
    ASSERT_NE(line.find(text), std::string::npos) << lines;
    ASSERT_EQ(line.back(), '}') << lines;
  }
  EXPECT_EQ(lines, records);
  close(fd);
  unlink(path);
}

TEST(AccountingLog, DisabledLogWritesNothing) {
  auto ring = io::Ring::Create(8);
  ASSERT_TRUE(ring.ok()) << ring.status();
  AccountingLog log(**ring, -1);
  log.Write(DeliveryType::kDelivery, Sample());
  log.Write(DeliveryType::kBounce, Sample());
  log.Flush();
  EXPECT_TRUE(log.idle());
}

}  // namespace
}  // namespace sluice::log

namespace sluice::log {
namespace {

// Batch ids travel on every delivery record of the batch, after "tls"; a
// record without them is byte for byte what it was before they existed.
TEST(AccountingLogBatch, DeliveryRecordCarriesCampaignAndTenant) {
  DeliveryRecord r = Sample();
  std::string plain;
  AccountingLog::FormatDelivery(plain, DeliveryType::kBounce, r);
  EXPECT_EQ(plain.find("campaign"), std::string::npos);
  EXPECT_EQ(plain.find("tenant"), std::string::npos);
  r.campaign = "nov-2026";
  r.tenant = "ac\"me";
  for (DeliveryType type : {DeliveryType::kDelivery, DeliveryType::kTransientFailure,
                            DeliveryType::kBounce, DeliveryType::kExpiration}) {
    std::string out;
    AccountingLog::FormatDelivery(out, type, r);
    EXPECT_NE(out.find(",\"tls\":\"\",\"campaign\":\"nov-2026\",\"tenant\":\"ac\\\"me\"}\n"),
              std::string::npos)
        << out;
  }
  r.tenant = "";
  std::string only_campaign;
  AccountingLog::FormatDelivery(only_campaign, DeliveryType::kDelivery, r);
  EXPECT_NE(only_campaign.find(",\"campaign\":\"nov-2026\"}\n"), std::string::npos);
  EXPECT_EQ(only_campaign.find("tenant"), std::string::npos);
}

// A batch past kReceptionRecipientsPerLine recipients: one line per that
// many, each a whole record with "part" and "parts", every recipient once,
// in order.
TEST(AccountingLogBatch, HugeBatchReceptionIsSplitIntoParts) {
  std::vector<std::string> addresses;
  const size_t n = 2 * kReceptionRecipientsPerLine + 1;
  for (size_t i = 0; i < n; ++i) addresses.push_back("r" + std::to_string(i) + "@example.net");
  const std::vector<std::string_view> views(addresses.begin(), addresses.end());
  ReceptionRecord r;
  r.ts_micros = 1772528707123456;
  r.id = "0ABCDEFGHJKMN";
  r.recipient_views = &views;
  r.size = 99;
  r.protocol = "pickup";
  r.campaign = "c1";
  r.skipped = 4;
  std::string out;
  AccountingLog::FormatReception(out, r);
  std::vector<std::string> lines;
  std::istringstream split(out);
  for (std::string line; std::getline(split, line);) lines.push_back(line);
  ASSERT_EQ(lines.size(), 3u);
  size_t next = 0;
  for (size_t part = 0; part < 3; ++part) {
    const std::string& line = lines[part];
    EXPECT_EQ(line.rfind("{\"type\":\"Reception\",\"ts\":\"2026-03-03T09:05:07.123456Z\","
                         "\"id\":\"0ABCDEFGHJKMN\",\"sender\":\"\",\"recipients\":[\"r" +
                             std::to_string(next) + "@",
                         0),
              0u)
        << part;
    EXPECT_NE(line.find("],\"part\":" + std::to_string(part + 1) +
                        ",\"parts\":3,\"size\":99,\"client\":\"\",\"helo\":\"\","
                        "\"protocol\":\"pickup\",\"campaign\":\"c1\",\"skipped\":4}"),
              std::string::npos)
        << part;
    const size_t in_line = static_cast<size_t>(std::count(line.begin(), line.end(), '@'));
    EXPECT_EQ(in_line, part < 2 ? kReceptionRecipientsPerLine : 1u);
    EXPECT_NE(line.find("\"r" + std::to_string(next + in_line - 1) + "@example.net\"]"),
              std::string::npos);
    next += in_line;
  }
  EXPECT_EQ(next, n);
  // Exactly the limit stays one line, without "part".
  const std::vector<std::string_view> exact(views.begin(),
                                            views.begin() + kReceptionRecipientsPerLine);
  r.recipient_views = &exact;
  std::string one;
  AccountingLog::FormatReception(one, r);
  EXPECT_EQ(std::count(one.begin(), one.end(), '\n'), 1);
  EXPECT_EQ(one.find("\"part\""), std::string::npos);
}

TEST(AccountingLogBatch, ReceptionOfABatch) {
  ReceptionRecord r;
  r.ts_micros = 1772528707123456;
  r.id = "0ABCDEFGHJKMN";
  r.sender = "news@example.com";
  const std::vector<std::string_view> views = {"a@example.net", "b@example.org"};
  r.recipient_views = &views;
  r.size = 123;
  r.protocol = "pickup";
  std::string out;
  AccountingLog::FormatReception(out, r);
  EXPECT_EQ(
      out,
      "{\"type\":\"Reception\",\"ts\":\"2026-03-03T09:05:07.123456Z\",\"id\":\"0ABCDEFGHJKMN\","
      "\"sender\":\"news@example.com\",\"recipients\":[\"a@example.net\",\"b@example.org\"],"
      "\"size\":123,\"client\":\"\",\"helo\":\"\",\"protocol\":\"pickup\"}\n");
  r.campaign = "c1";
  r.tenant = "t1";
  r.skipped = 0;
  out.clear();
  AccountingLog::FormatReception(out, r);
  EXPECT_NE(
      out.find(",\"protocol\":\"pickup\",\"campaign\":\"c1\",\"tenant\":\"t1\",\"skipped\":0}\n"),
      std::string::npos)
      << out;
}

}  // namespace
}  // namespace sluice::log

namespace sluice::log {
namespace {

// "tls_resumed" follows "tls" only when the handshake resumed a session; a
// record without it is byte for byte what it was before.
TEST(AccountingLogTls, ResumedHandshakeIsNotedAfterTls) {
  DeliveryRecord r = Sample();
  r.tls = "TLSv1.3 TLS_AES_256_GCM_SHA384";
  std::string full;
  AccountingLog::FormatDelivery(full, DeliveryType::kDelivery, r);
  EXPECT_EQ(full.find("tls_resumed"), std::string::npos) << full;
  r.tls_resumed = true;
  r.campaign = "c1";
  std::string resumed;
  AccountingLog::FormatDelivery(resumed, DeliveryType::kDelivery, r);
  EXPECT_NE(resumed.find(",\"tls\":\"TLSv1.3 TLS_AES_256_GCM_SHA384\",\"tls_resumed\":true,"
                         "\"campaign\":\"c1\"}\n"),
            std::string::npos)
      << resumed;
}

}  // namespace
}  // namespace sluice::log

// Batches: the manifest, the CSV reader, template compilation and rendering,
// and the recipients builder, at and past every limit.
#include "sluice/pickup/batch.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "sluice/merge/template.h"
#include "sluice/pickup/csv.h"
#include "sluice/spool/message_file.h"

namespace sluice::pickup {
namespace {

using merge::CompiledTemplate;
using merge::TemplateError;
using namespace std::string_literals;

// ---------------------------------------------------------------------------
// Template compilation and rendering

CompiledTemplate MustCompile(std::string_view text) {
  CompiledTemplate t;
  TemplateError e;
  EXPECT_TRUE(merge::Compile(text, t, e)) << e.ToString();
  return t;
}

TemplateError MustFail(std::string_view text) {
  CompiledTemplate t;
  TemplateError e;
  EXPECT_FALSE(merge::Compile(text, t, e)) << text;
  return e;
}

TEST(Template, PlaceholdersFieldsAndRender) {
  const CompiledTemplate t = MustCompile(
      "To: {{name}} <{{email}}>\r\nSubject: Hi {{ name }}\r\n\r\nDear {{name}}, {{city}}.\r\n");
  EXPECT_EQ(t.fields, (std::vector<std::string>{"name", "email", "city"}));
  EXPECT_EQ(t.uses, (std::vector<uint32_t>{3, 1, 1}));
  EXPECT_EQ(t.in_header, (std::vector<bool>{true, true, false}));
  EXPECT_EQ(t.first_use[0].line, 1u);
  EXPECT_EQ(t.first_use[0].column, 5u);
  EXPECT_EQ(t.first_use[2].line, 4u);
  EXPECT_EQ(t.first_use[2].column, 16u);
  const std::vector<std::string> values = {"Ann", "ann@example.net", "Oslo"};
  const std::string out = merge::Render(t, values);
  EXPECT_EQ(out, "To: Ann <ann@example.net>\r\nSubject: Hi Ann\r\n\r\nDear Ann, Oslo.\r\n");
  const std::vector<std::string_view> views(values.begin(), values.end());
  EXPECT_EQ(merge::RenderedSize(t, views), out.size());
  EXPECT_EQ(merge::Render(t, views), out);
  // The longest line holding a placeholder, with its CRLF.
  EXPECT_EQ(merge::LongestMergedLine(t, views),
            std::string("To: Ann <ann@example.net>\r\n").size());
}

TEST(Template, EscapesAndLoneBraces) {
  const CompiledTemplate t = MustCompile("S: x\n\n{{{{literal}} { } }} {{{{{{{{ {{v}}}}\n");
  EXPECT_EQ(t.fields, std::vector<std::string>{"v"});
  EXPECT_EQ(merge::Render(t, std::vector<std::string>{"V"}),
            "S: x\n\n{{literal}} { } }} {{{{ V}}\n");
  // No placeholders at all: the literals are the message.
  const CompiledTemplate plain = MustCompile("S: {{{{x}}\n\nbody {{{{\n");
  EXPECT_FALSE(plain.has_placeholders());
  EXPECT_EQ(plain.literals, "S: {{x}}\n\nbody {{\n");
  EXPECT_EQ(merge::Render(plain, std::vector<std::string>{}), plain.literals);
}

TEST(Template, ErrorsNameLineAndColumn) {
  TemplateError e = MustFail("S: a\n\nline two\nsee {{name here\n");
  EXPECT_EQ(e.line, 4u);
  EXPECT_EQ(e.column, 5u);
  EXPECT_NE(e.reason.find("unterminated placeholder"), std::string::npos) << e.reason;
  EXPECT_EQ(e.ToString().rfind("line 4, column 5: ", 0), 0u) << e.ToString();

  e = MustFail("S: a\n\nx {{}} y\n");
  EXPECT_EQ(e.line, 3u);
  EXPECT_NE(e.reason.find("empty placeholder"), std::string::npos);
  e = MustFail("S: a\n\n{{first name}}\n");
  EXPECT_NE(e.reason.find("bad placeholder"), std::string::npos);
  e = MustFail("S: a\n\n{{9lives}}\n");
  EXPECT_NE(e.reason.find("bad placeholder"), std::string::npos);
  e = MustFail("S: a\n\n{{{x}}\n");  // three braces: "{{" then "{x}}"
  EXPECT_NE(e.reason.find("bad placeholder"), std::string::npos);
  // A placeholder never spans lines.
  e = MustFail("S: a\n\n{{name\n}}\n");
  EXPECT_EQ(e.line, 3u);
  // In a header field name; in a header value (and continuation) it is fine.
  e = MustFail("X-{{n}}: v\n\nb\n");
  EXPECT_EQ(e.line, 1u);
  EXPECT_NE(e.reason.find("header field name"), std::string::npos);
  MustCompile("X-A: {{n}}\n\t{{n}}\n\nX-{{n}}: in the body is fine\n");
}

TEST(Template, FieldNameLengthEdge) {
  const std::string ok(merge::kMaxFieldNameLength, 'a');
  MustCompile("S: x\n\n{{" + ok + "}}\n");
  const TemplateError e = MustFail("S: x\n\n{{" + ok + "a}}\n");
  EXPECT_NE(e.reason.find("longer than 64"), std::string::npos) << e.reason;
}

TEST(Template, DistinctFieldsEdge) {
  std::string body;
  for (size_t i = 0; i < merge::kMaxFields; ++i) body += "{{f" + std::to_string(i) + "}}";
  EXPECT_EQ(MustCompile("S: x\n\n" + body + "\n").fields.size(), merge::kMaxFields);
  const TemplateError e = MustFail("S: x\n\n" + body + "{{one_more}}\n");
  EXPECT_NE(e.reason.find("more than 64 distinct fields"), std::string::npos) << e.reason;
}

TEST(Template, PlaceholderCountEdge) {
  std::string body;
  for (size_t i = 0; i < merge::kMaxPlaceholders; ++i) body += (i % 50 == 49) ? "{{a}}\n" : "{{a}}";
  const CompiledTemplate t = MustCompile("S: x\n\n" + body + "\n");
  EXPECT_EQ(t.uses[0], merge::kMaxPlaceholders);
  const TemplateError e = MustFail("S: x\n\n" + body + "{{a}}\n");
  EXPECT_NE(e.reason.find("more than 10000 placeholders"), std::string::npos) << e.reason;
}

TEST(Template, MissingValuesRenderEmpty) {
  const CompiledTemplate t = MustCompile("S: {{a}}\n\n{{b}}!\n");
  EXPECT_EQ(merge::Render(t, std::vector<std::string>{"A"}), "S: A\n\n!\n");
}

TEST(Template, CompileStoredChecksTheFields) {
  const std::string body = "Subject: {{a}}\r\n\r\n{{b}}\r\n";
  EXPECT_TRUE(merge::CompileStored(body, {"a", "b"}).ok());
  EXPECT_FALSE(merge::CompileStored(body, {"b", "a"}).ok());
  EXPECT_FALSE(merge::CompileStored(body, {"a"}).ok());
  EXPECT_FALSE(merge::CompileStored("S: {{\r\n\r\n", {}).ok());
  auto one = merge::RenderStored(body, {"a", "b"}, {"x", "y"});
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_EQ(*one, "Subject: x\r\n\r\ny\r\n");
  EXPECT_FALSE(merge::RenderStored(body, {"a", "b"}, {"x"}).ok());
}

// ---------------------------------------------------------------------------
// PrepareTemplate: the template as a message

BatchLimits SmallLimits() {
  BatchLimits l;
  l.max_template_size = 4096;
  l.max_message_size = 4096;
  l.max_line_length = 100;
  l.max_recipients = 10;
  l.max_record_size = 200;
  l.max_columns = 5;
  l.max_value_length = 20;
  l.max_reported_lines = 3;
  return l;
}

BatchError PrepareFails(std::string_view bytes, const BatchLimits& limits = SmallLimits()) {
  PreparedTemplate t;
  BatchError e;
  EXPECT_FALSE(PrepareTemplate("t.eml", bytes, limits, t, e)) << bytes;
  return e;
}

TEST(PrepareTemplate, NormalisesAndKeepsPlaceholders) {
  PreparedTemplate t;
  BatchError e;
  ASSERT_TRUE(PrepareTemplate("t.eml", "From: a@example.com\nSubject: {{s}}\n\nHi {{{{x}}\n",
                              SmallLimits(), t, e))
      << e.ToString();
  EXPECT_EQ(t.stored, "From: a@example.com\r\nSubject: {{s}}\r\n\r\nHi {{{{x}}\r\n");
  EXPECT_EQ(t.compiled.fields, std::vector<std::string>{"s"});
  EXPECT_FALSE(t.has_date);
  // Without placeholders the stored body is the message, escapes resolved.
  ASSERT_TRUE(PrepareTemplate("t.eml", "Date: x\r\nMessage-ID: <a@b>\r\n\r\n{{{{ok}}\r\n",
                              SmallLimits(), t, e));
  EXPECT_EQ(t.stored, "Date: x\r\nMessage-ID: <a@b>\r\n\r\n{{ok}}\r\n");
  EXPECT_TRUE(t.has_date && t.has_message_id);
  EXPECT_FALSE(t.compiled.has_placeholders());
}

TEST(PrepareTemplate, RejectsWithLineNumbers) {
  EXPECT_EQ(PrepareFails("").ToString(), "t.eml: empty file");
  BatchError e = PrepareFails("S: a\n\nx\0y\n"s);
  EXPECT_EQ(e.line, 3u);
  EXPECT_NE(e.reason.find("NUL"), std::string::npos);
  e = PrepareFails("S: a\rT: b\n\nx\n");
  EXPECT_NE(e.reason.find("bare CR"), std::string::npos);
  e = PrepareFails("S: a\nT: b\n");  // truncated: no empty line
  EXPECT_NE(e.reason.find("truncated"), std::string::npos);
  e = PrepareFails("S: a\nnot a header\n\nx\n");
  EXPECT_EQ(e.line, 2u);
  e = PrepareFails("S: a\nBcc: x@example.com\n\nx\n");
  EXPECT_NE(e.reason.find("Bcc"), std::string::npos);
  e = PrepareFails("X-Sluice-Envelope-To: <x@example.com>\n\nx\n");
  EXPECT_NE(e.reason.find("X-Sluice-Envelope-To"), std::string::npos);
  e = PrepareFails("\nbody only\n");
  EXPECT_NE(e.reason.find("no header fields"), std::string::npos);
  e = PrepareFails("S: a\n\nsee {{oops\n");
  EXPECT_EQ(e.ToString().rfind("t.eml line 3, column 5: unterminated placeholder", 0), 0u)
      << e.ToString();
}

TEST(PrepareTemplate, LineLengthAndSizeEdges) {
  const BatchLimits l = SmallLimits();  // lines of at most 100 bytes with CRLF
  PreparedTemplate t;
  BatchError e;
  const std::string line98(98, 'x');
  EXPECT_TRUE(PrepareTemplate("t.eml", "S: a\n\n" + line98 + "\n", l, t, e)) << e.ToString();
  e = PrepareFails("S: a\n\n" + line98 + "y\n", l);
  EXPECT_EQ(e.line, 3u);
  EXPECT_NE(e.reason.find("line length"), std::string::npos);
  std::string big = "S: a\r\n\r\n";
  while (big.size() < l.max_template_size) big += std::string(60, 'z') + "\r\n";
  big.resize(l.max_template_size - 2);
  big += "\r\n";
  EXPECT_TRUE(PrepareTemplate("t.eml", big, l, t, e)) << e.ToString();
  e = PrepareFails(big + "x", l);
  EXPECT_NE(e.reason.find("exceeds the message size limit"), std::string::npos);
}

// ---------------------------------------------------------------------------
// The manifest

TEST(Manifest, FullAndMinimal) {
  Manifest m;
  BatchError e;
  ASSERT_TRUE(
      ParseManifest("# a batch\nsender = \"<news@example.com>\"\n"
                    "template = \"t.eml\"\nrecipients = \"r.csv\"\n"
                    "campaign = \"nov-2026\"\ntenant = \"acme\"\n",
                    BatchLimits{}, m, e))
      << e.ToString();
  EXPECT_EQ(m.sender, "news@example.com");
  EXPECT_EQ(m.template_file, "t.eml");
  EXPECT_EQ(m.recipients_file, "r.csv");
  EXPECT_EQ(m.campaign, "nov-2026");
  EXPECT_EQ(m.tenant, "acme");
  for (const char* null_sender : {"\"\"", "\"<>\""}) {
    ASSERT_TRUE(ParseManifest(
        std::string("sender = ") + null_sender + "\ntemplate = \"a\"\nrecipients = \"b\"\n",
        BatchLimits{}, m, e))
        << e.ToString();
    EXPECT_EQ(m.sender, "");
    EXPECT_EQ(m.campaign, "");
  }
}

BatchError ManifestFails(std::string_view text, const BatchLimits& limits = BatchLimits{}) {
  Manifest m;
  BatchError e;
  EXPECT_FALSE(ParseManifest(text, limits, m, e)) << text;
  EXPECT_EQ(e.file, "manifest.toml");
  return e;
}

TEST(Manifest, Errors) {
  const std::string base = "template = \"t\"\nrecipients = \"r\"\n";
  EXPECT_NE(ManifestFails(base).reason.find("no sender"), std::string::npos);
  EXPECT_NE(ManifestFails("sender = \"\"\nrecipients = \"r\"\n").reason.find("no template"),
            std::string::npos);
  EXPECT_NE(ManifestFails("sender = \"\"\ntemplate = \"t\"\n").reason.find("no recipients"),
            std::string::npos);
  BatchError e = ManifestFails("sender = \"a@b.c\"\n" + base + "colour = \"red\"\n");
  EXPECT_EQ(e.line, 4u);
  EXPECT_NE(e.reason.find("unknown key 'colour'"), std::string::npos) << e.reason;
  e = ManifestFails("sender = 42\n" + base);
  EXPECT_EQ(e.line, 1u);
  EXPECT_NE(e.reason.find("must be a string"), std::string::npos);
  e = ManifestFails("sender = \"not an address\"\n" + base);
  EXPECT_NE(e.reason.find("bad address"), std::string::npos);
  e = ManifestFails("sender = \"a@b.c\"\ntemplate = \"t\nrecipients = \"r\"\n");  // TOML syntax
  EXPECT_EQ(e.line, 2u);
  for (const char* bad : {"../t", "a/b", ".hidden", "manifest.toml", ""}) {
    e = ManifestFails(std::string("sender = \"\"\ntemplate = \"") + bad +
                      "\"\nrecipients = \"r\"\n");
    EXPECT_NE(e.reason.find("plain file name"), std::string::npos) << bad << ": " << e.reason;
  }
  EXPECT_NE(ManifestFails("sender = \"\"\ntemplate = \"x\"\nrecipients = \"x\"\n")
                .reason.find("same file"),
            std::string::npos);
  e = ManifestFails("sender = \"\"\n" + base + "[table]\nk = 1\n");
  EXPECT_NE(e.reason.find("unknown key 'table'"), std::string::npos) << e.reason;
  EXPECT_NE(ManifestFails("").reason.find("empty"), std::string::npos);
  EXPECT_NE(ManifestFails("sender = \"\0\"\n"s).reason.find("NUL"), std::string::npos);
  e = ManifestFails("\x89PNG\r\n\x1a\n\xff\xfe");  // binary
  EXPECT_GE(e.line, 1u);
}

TEST(Manifest, IdAndSizeEdges) {
  Manifest m;
  BatchError e;
  const std::string base = "sender = \"\"\ntemplate = \"t\"\nrecipients = \"r\"\n";
  const std::string id128(128, 'c');
  EXPECT_TRUE(ParseManifest(base + "campaign = \"" + id128 + "\"\n", BatchLimits{}, m, e));
  EXPECT_NE(ManifestFails(base + "campaign = \"" + id128 + "c\"\n").reason.find("1 to 128"),
            std::string::npos);
  EXPECT_NE(ManifestFails(base + "tenant = \"a b\"\n").reason.find("without spaces"),
            std::string::npos);
  EXPECT_NE(ManifestFails(base + "tenant = \"\"\n").reason.find("1 to 128"), std::string::npos);
  BatchLimits l;
  std::string padded = base;
  padded += "#" + std::string(l.max_manifest_size - padded.size() - 2, ' ') + "\n";
  ASSERT_EQ(padded.size(), l.max_manifest_size);
  EXPECT_TRUE(ParseManifest(padded, l, m, e)) << e.ToString();
  EXPECT_NE(ManifestFails(padded + "\n", l).reason.find("exceeds the limit"), std::string::npos);
}

// ---------------------------------------------------------------------------
// CSV

struct Got {
  size_t line;
  std::vector<std::string> fields;
  std::string error;
  bool operator==(const Got&) const = default;
};

std::ostream& operator<<(std::ostream& o, const Got& g) {
  o << "{line " << g.line << ", [";
  for (const std::string& f : g.fields) o << "'" << f << "' ";
  return o << "], '" << g.error << "'}";
}

std::vector<Got> ReadCsv(std::string_view in, CsvLimits limits = CsvLimits{}, size_t chunk = 0) {
  std::vector<Got> out;
  CsvReader r(limits, [&](const CsvRecord& rec) {
    Got g{rec.line, {}, rec.error};
    for (std::string_view f : rec.fields) g.fields.emplace_back(f);
    out.push_back(std::move(g));
  });
  if (chunk == 0) {
    r.Feed(in);
  } else {
    for (size_t i = 0; i < in.size(); i += chunk) r.Feed(in.substr(i, chunk));
  }
  r.Finish();
  return out;
}

TEST(Csv, Rfc4180) {
  const std::string in =
      "email,name,note\r\n"
      "a@x.test,\"Smith, Ann\",\"says \"\"hi\"\"\"\r\n"
      "b@x.test,Bob,\"two\r\nlines\"\n"
      "c@x.test,,\n"
      "\n"
      "d@x.test,O\"Neil,last";
  const std::vector<Got> want = {
      {1, {"email", "name", "note"}, ""},
      {2, {"a@x.test", "Smith, Ann", "says \"hi\""}, ""},
      {3, {"b@x.test", "Bob", "two\r\nlines"}, ""},
      {5, {"c@x.test", "", ""}, ""},
      {6, {""}, ""},
      {7, {"d@x.test", "O\"Neil", "last"}, ""},
  };
  EXPECT_EQ(ReadCsv(in), want);
  // Any split of the input gives the same records.
  for (size_t chunk : {1, 2, 3, 5, 7, 64})
    EXPECT_EQ(ReadCsv(in, CsvLimits{}, chunk), want) << chunk;
}

TEST(Csv, ByteOrderMark) {
  const std::vector<Got> want = {{1, {"email"}, ""}, {2, {"a@b.c"}, ""}};
  for (size_t chunk : {0, 1, 2}) {
    EXPECT_EQ(ReadCsv("\xEF\xBB\xBF"
                      "email\na@b.c\n",
                      CsvLimits{}, chunk),
              want)
        << chunk;
  }
  // Not a BOM: kept.
  EXPECT_EQ(ReadCsv("\xEF\xBBx\n", CsvLimits{}, 1), (std::vector<Got>{{1, {"\xEF\xBBx"}, ""}}));
  EXPECT_EQ(ReadCsv("\xEF"), (std::vector<Got>{{1, {"\xEF"}, ""}}));
  EXPECT_TRUE(ReadCsv("").empty());
  EXPECT_TRUE(ReadCsv("\xEF\xBB\xBF").empty());
}

TEST(Csv, MalformedRecordsAreReportedAndSkipped) {
  const std::vector<Got> got = ReadCsv(
      "a,\"b\"x,c\n"  // text after a closing quote
      "ok,1\n"
      "bad\rcr\n"  // bare CR
      "ok,2\n"
      "\"open,quote");  // truncated inside quotes
  const std::vector<Got> want = {
      {1, {}, "text after the closing quote of a field"},
      {2, {"ok", "1"}, ""},
      {3, {}, "CR not followed by LF"},
      {4, {"ok", "2"}, ""},
      {5, {}, "unterminated quoted field at the end of the file (truncated file?)"},
  };
  EXPECT_EQ(got, want);
}

TEST(Csv, RecordSizeAndFieldCountEdges) {
  CsvLimits l;
  l.max_record_size = 10;  // bytes with the line end
  l.max_fields = 3;
  EXPECT_EQ(ReadCsv("123456789\nx\n", l),
            (std::vector<Got>{{1, {"123456789"}, ""}, {2, {"x"}, ""}}));
  EXPECT_EQ(ReadCsv("1234567890\nx\n", l),
            (std::vector<Got>{{1, {}, "record longer than 10 bytes"}, {2, {"x"}, ""}}));
  // Long quoted content with newlines inside counts too; lines stay right.
  EXPECT_EQ(ReadCsv("\"12\n34\n56\n78\"\ny\n", l),
            (std::vector<Got>{{1, {}, "record longer than 10 bytes"}, {5, {"y"}, ""}}));
  EXPECT_EQ(ReadCsv("a,b,c\n", l), (std::vector<Got>{{1, {"a", "b", "c"}, ""}}));
  EXPECT_EQ(ReadCsv("a,b,c,d\nz\n", l),
            (std::vector<Got>{{1, {}, "more than 3 fields"}, {2, {"z"}, ""}}));
  EXPECT_EQ(ReadCsv("a,b,c,\nz\n", l),
            (std::vector<Got>{{1, {}, "more than 3 fields"}, {2, {"z"}, ""}}));
  // Where an over-long record is cut, and so where skipping resumes, does
  // not depend on how the input is chunked (found by fuzz/csv_fuzzer: a
  // long quoted field with line breaks, cut at a chunk boundary).
  for (const std::string in : {"\"a\nb\nc\nd\ne\nf\ng\"\nz\n", "abcdefghijkl\nm\n",
                               "\"ab\"\"cdefghij\"\nq\r\n", "x,\"1\n2\n3\n4\"\n"}) {
    const std::vector<Got> whole = ReadCsv(in, l);
    for (size_t chunk = 1; chunk <= in.size(); ++chunk) {
      EXPECT_EQ(ReadCsv(in, l, chunk), whole) << "chunk " << chunk;
    }
  }
  // An enormous line is skipped in bounded memory, whatever the chunking.
  const std::string huge = "x" + std::string(1 << 20, 'y') + "\nnext\n";
  for (size_t chunk : {0, 4096}) {
    EXPECT_EQ(ReadCsv(huge, l, chunk),
              (std::vector<Got>{{1, {}, "record longer than 10 bytes"}, {2, {"next"}, ""}}));
  }
}

// ---------------------------------------------------------------------------
// The recipients builder

PreparedTemplate Prepare(std::string_view text, const BatchLimits& limits = SmallLimits()) {
  PreparedTemplate t;
  BatchError e;
  EXPECT_TRUE(PrepareTemplate("t.eml", text, limits, t, e)) << e.ToString();
  return t;
}

struct Built {
  bool ok = false;
  BatchError error;
  uint32_t accepted = 0;
  size_t skipped = 0;
  std::vector<std::string> notes;
  std::vector<std::string> addresses;
  std::vector<spool::Recipient> recipients;  // decoded from the packed bytes
};

Built Build(const PreparedTemplate& t, std::string_view csv,
            const BatchLimits& limits = SmallLimits(), size_t chunk = 0) {
  BatchBuilder b(t, "t.eml", "r.csv", limits);
  Built out;
  bool fed = true;
  if (chunk == 0) {
    fed = b.Feed(csv);
  } else {
    for (size_t i = 0; i < csv.size() && fed; i += chunk) fed = b.Feed(csv.substr(i, chunk));
  }
  out.ok = fed && b.Finish();
  out.error = b.error();
  if (!out.ok) return out;
  out.accepted = b.accepted();
  out.skipped = b.skipped();
  out.notes = b.notes();
  for (std::string_view a : b.Addresses()) out.addresses.emplace_back(a);
  spool::Envelope e;
  e.id = base::QueueId(uint64_t{1} << 20);
  e.merge_fields = t.compiled.fields;
  e.packed_recipients = b.TakePacked();
  e.packed_count = out.accepted;
  auto decoded = spool::DecodeEnvelope(spool::EncodeEnvelope(std::move(e)));
  EXPECT_TRUE(decoded.ok()) << decoded.status();
  if (decoded.ok()) out.recipients = decoded->recipients;
  return out;
}

const char kMergeTemplate[] = "To: {{name}} <{{email}}>\nSubject: For {{name}}\n\nCity: {{city}}\n";

TEST(BatchBuilder, RowsValuesAndNotes) {
  const PreparedTemplate t = Prepare(kMergeTemplate);
  ASSERT_EQ(t.compiled.fields, (std::vector<std::string>{"name", "email", "city"}));
  const std::string csv =
      "email, name ,city,unused\r\n"  // names are trimmed
      "ann@example.net,Ann,Oslo,x\r\n"
      "not-an-address,Bad,Rome,x\r\n"  // line 3
      "bob@example.org,Bob,\"Rio, RJ\",x\r\n"
      "\r\n"                                  // blank: ignored, not counted
      "carol@example.com,Carol\r\n"           // line 6: too few fields
      "ann@example.net,Ann again,Oslo,x\r\n"  // line 7: duplicate
      ",Nobody,Nowhere,x\r\n"                 // line 8: empty email
      "dan@example.com,\"Dan\nD\",x,x\r\n"    // line 9: line break in a value
      "eve@example.com,Eve,Paris,x";          // no final line end
  for (size_t chunk : {0, 1, 7}) {
    const Built b = Build(t, csv, SmallLimits(), chunk);
    ASSERT_TRUE(b.ok) << b.error.ToString();
    EXPECT_EQ(b.accepted, 3u);
    EXPECT_EQ(b.skipped, 5u);
    EXPECT_EQ(b.addresses,
              (std::vector<std::string>{"ann@example.net", "bob@example.org", "eve@example.com"}));
    ASSERT_EQ(b.recipients.size(), 3u);
    EXPECT_EQ(b.recipients[1].address, "bob@example.org");
    EXPECT_EQ(b.recipients[1].values,
              (std::vector<std::string>{"Bob", "bob@example.org", "Rio, RJ"}));
    // Only the first max_reported_lines (3) skipped rows are listed.
    ASSERT_EQ(b.notes.size(), 3u);
    EXPECT_EQ(b.notes[0].rfind("line 3: bad address 'not-an-address'", 0), 0u) << b.notes[0];
    EXPECT_EQ(b.notes[1], "line 6: 2 fields, the header row has 4");
    EXPECT_EQ(b.notes[2], "line 7: duplicate recipient <ann@example.net>");
  }
  const Built all = Build(t, csv, [] {
    BatchLimits l = SmallLimits();
    l.max_reported_lines = 100;
    return l;
  }());
  ASSERT_EQ(all.notes.size(), 5u);
  EXPECT_EQ(all.notes[3], "line 8: empty email");
  EXPECT_NE(all.notes[4].find("line 9: field 'name': a line break"), std::string::npos)
      << all.notes[4];
}

TEST(BatchBuilder, NoPlaceholdersMeansNoValues) {
  const PreparedTemplate t = Prepare("Subject: same for all\n\nHello\n");
  const Built b = Build(t, "email,name\na@example.net,A\nb@example.net,B\n");
  ASSERT_TRUE(b.ok) << b.error.ToString();
  ASSERT_EQ(b.recipients.size(), 2u);
  EXPECT_TRUE(b.recipients[0].values.empty());
}

TEST(BatchBuilder, RejectedWhole) {
  const PreparedTemplate t = Prepare(kMergeTemplate);
  Built b = Build(t, "name,city\nAnn,Oslo\n");
  EXPECT_FALSE(b.ok);
  EXPECT_EQ(b.error.ToString(),
            "r.csv line 1: header row has no 'email' column (columns: name, city)");
  b = Build(t, "email,name\na@example.net,Ann\n");  // the template wants {{city}}
  EXPECT_FALSE(b.ok);
  EXPECT_EQ(b.error.ToString(),
            "t.eml line 4, column 7: unknown field 'city' (r.csv has the columns email, name)");
  b = Build(t, "");
  EXPECT_EQ(b.error.ToString(), "r.csv: empty file: no header row");
  b = Build(t, "email,name,city\n");
  EXPECT_EQ(b.error.ToString(), "batch: no valid recipient in r.csv");
  b = Build(t, "email,name,city\nx,y,z\n");
  EXPECT_EQ(b.error.ToString(), "batch: no valid recipient in r.csv (1 rows skipped)");
  b = Build(t, "email,name,email,city\n");
  EXPECT_NE(b.error.reason.find("appears twice"), std::string::npos);
  b = Build(t, "\nemail,name,city\n");
  EXPECT_NE(b.error.reason.find("first line must be the header row"), std::string::npos);
  b = Build(t, "email,\"name\n");
  EXPECT_NE(b.error.reason.find("header row: unterminated"), std::string::npos) << b.error.reason;
  // Binary junk: no header row worth the name.
  b = Build(t, std::string("\x7f"
                           "ELF\x02\x01\x01\x00\x00\xff\xfe",
                           12));
  EXPECT_FALSE(b.ok);
  EXPECT_NE(b.error.reason.find("no 'email' column"), std::string::npos) << b.error.reason;
}

TEST(BatchBuilder, RecipientCountEdge) {
  const PreparedTemplate t = Prepare("Subject: {{n}}\n\nx\n");
  BatchLimits l = SmallLimits();  // max_recipients = 10
  std::string csv = "email,n\n";
  for (int i = 0; i < 10; ++i)
    csv += "r" + std::to_string(i) + "@example.net," + std::to_string(i) + "\n";
  Built b = Build(t, csv, l);
  ASSERT_TRUE(b.ok) << b.error.ToString();
  EXPECT_EQ(b.accepted, 10u);
  // Duplicates and bad rows do not count against the limit.
  b = Build(t, csv + "r0@example.net,dup\nbad,x\n", l);
  ASSERT_TRUE(b.ok) << b.error.ToString();
  EXPECT_EQ(b.accepted, 10u);
  b = Build(t, csv + "r10@example.net,10\n", l);
  EXPECT_FALSE(b.ok);
  EXPECT_NE(b.error.reason.find("more than 10 recipients"), std::string::npos);
}

TEST(BatchBuilder, ValueAndRenderedLineEdges) {
  const PreparedTemplate t = Prepare("Subject: {{v}}\n\nx\n");
  const BatchLimits l = SmallLimits();  // values of at most 20 bytes, lines of 100
  const std::string v20(20, 'v');
  Built b = Build(t, "email,v\na@example.net," + v20 + "\nb@example.net," + v20 + "w\n", l);
  ASSERT_TRUE(b.ok);
  EXPECT_EQ(b.accepted, 1u);
  ASSERT_EQ(b.notes.size(), 1u);
  EXPECT_EQ(b.notes[0], "line 3: field 'v': value of 21 bytes exceeds the limit (20)");
  // A line with several placeholders: "Subject: " (9) + 5 x 20 + CRLF > 100.
  const PreparedTemplate five = Prepare("Subject: {{v}}{{v}}{{v}}{{v}}{{v}}\n\nx\n");
  b = Build(five, "email,v\na@example.net,short\nb@example.net," + v20 + "\n", l);
  ASSERT_TRUE(b.ok);
  EXPECT_EQ(b.accepted, 1u);
  ASSERT_EQ(b.notes.size(), 1u);
  EXPECT_NE(b.notes[0].find("a line of 111 bytes, over the line length limit (100)"),
            std::string::npos)
      << b.notes[0];
}

TEST(BatchBuilder, PackedSizeIsBounded) {
  const PreparedTemplate t = Prepare("Subject: {{v}}\n\nx\n");
  BatchLimits l = SmallLimits();
  l.max_packed_size = 90;  // 32 bytes per recipient here
  const Built b = Build(t, "email,v\na@example.net,1\nb@example.net,2\nc@example.net,3\n", l);
  EXPECT_FALSE(b.ok);
  EXPECT_NE(b.error.reason.find("exceed 90 bytes"), std::string::npos) << b.error.reason;
}

}  // namespace
}  // namespace sluice::pickup

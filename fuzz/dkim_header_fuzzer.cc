// DKIM's header parser and canonicalizers on arbitrary bytes: the fields
// tile the header block; relaxed output is one CRLF-terminated line with a
// lower-case name, single blanks and none at the end; simple output keeps
// every byte that is not a line ending; the body canonicalizer gives the
// same bytes however the body is split; the author domain is a lower-case
// host name; h= selection covers only fields of the right name.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "sluice/dkim/canon.h"
#include "sluice/dkim/header_fields.h"

#define FUZZ_CHECK(c) ((c) ? (void)0 : std::abort())

using namespace sluice::dkim;

namespace {

void CheckRelaxed(const std::string& out) {
  FUZZ_CHECK(out.size() >= 3 && out.substr(out.size() - 2) == "\r\n");
  const std::string_view line(out.data(), out.size() - 2);
  FUZZ_CHECK(line.find_first_of("\r\n") == std::string_view::npos);
  FUZZ_CHECK(line.find("  ") == std::string_view::npos &&
             line.find('\t') == std::string_view::npos);
  FUZZ_CHECK(line.back() != ' ');
  const size_t colon = line.find(':');
  FUZZ_CHECK(colon != std::string_view::npos);
  for (char c : line.substr(0, colon)) FUZZ_CHECK(!(c >= 'A' && c <= 'Z'));
}

std::string Body(Canon canon, std::string_view body, size_t split) {
  BodyCanonicalizer c(canon);
  std::string out;
  c.Feed(body.substr(0, split), out);
  c.Feed(body.substr(split), out);
  c.Finish(out);
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const size_t block_size = HeaderBlockSize(in);
  FUZZ_CHECK(block_size <= in.size());
  const std::string_view block = in.substr(0, block_size);
  const std::vector<HeaderField> fields = ParseHeaderFields(block);
  size_t pos = 0;
  for (const HeaderField& f : fields) {
    FUZZ_CHECK(f.raw.data() == block.data() + pos && !f.raw.empty());  // contiguous
    pos += f.raw.size();
    std::string relaxed, simple;
    if (!f.name.empty()) {
      CanonicalizeHeader(Canon::kRelaxed, f.raw, relaxed);
      CheckRelaxed(relaxed);
    }
    CanonicalizeHeader(Canon::kSimple, f.raw, simple);
    std::string kept;
    for (char c : f.raw) {
      if (c != '\r' && c != '\n') kept += c;
    }
    std::string simple_kept;
    for (char c : simple) {
      if (c != '\r' && c != '\n') simple_kept += c;
    }
    FUZZ_CHECK(kept == simple_kept);
  }
  FUZZ_CHECK(pos <= block_size);
  if (const auto domain = AuthorDomain(fields)) {
    FUZZ_CHECK(!domain->empty() && domain->back() != '.');
    for (char c : *domain)
      FUZZ_CHECK(!(c >= 'A' && c <= 'Z') && static_cast<unsigned char>(c) < 128);
  }
  const std::vector<std::string> h = SelectHeaders(fields, {"From", "To", "Subject"}, {"From"});
  const std::vector<const HeaderField*> covered = CoveredFields(fields, h);
  FUZZ_CHECK(covered.size() == h.size());
  for (size_t i = 0; i < h.size(); ++i) {
    if (covered[i] != nullptr) FUZZ_CHECK(SameName(covered[i]->name, h[i]));
  }
  const std::string_view body = in.substr(block_size);
  const size_t split = size == 0 ? 0 : data[0] % (body.size() + 1);
  for (Canon canon : {Canon::kSimple, Canon::kRelaxed}) {
    const std::string whole = Body(canon, body, body.size());
    FUZZ_CHECK(Body(canon, body, split) == whole);
    FUZZ_CHECK(whole.empty() || whole.substr(whole.size() - 2) == "\r\n");
    FUZZ_CHECK(whole.size() < 4 || whole.substr(whole.size() - 4) != "\r\n\r\n");
  }
  return 0;
}

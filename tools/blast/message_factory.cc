#include "tools/blast/message_factory.h"

#include <dirent.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "tools/common/digest.h"

namespace sluice::tools {
namespace {

uint64_t SplitMix(uint64_t& s) {
  uint64_t z = (s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

}  // namespace

std::string DotStuff(std::string_view text) {
  std::string out;
  out.reserve(text.size() + text.size() / 32);
  bool line_start = true;
  for (char c : text) {
    if (line_start && c == '.') out.push_back('.');
    out.push_back(c);
    line_start = c == '\n';
  }
  return out;
}

std::string NormalizeCrlf(std::string_view text) {
  std::string out;
  out.reserve(text.size() + text.size() / 40 + 2);
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '\n' && (i == 0 || text[i - 1] != '\r')) out.push_back('\r');
    if (c == '\r' && (i + 1 == text.size() || text[i + 1] != '\n')) {
      out += "\r\n";
      continue;
    }
    out.push_back(c);
  }
  if (out.size() < 2 || out.compare(out.size() - 2, 2, "\r\n") != 0) out += "\r\n";
  return out;
}

std::shared_ptr<SharedBody> MessageFactory::Seal(std::string rest) {
  // rest: header lines, empty line, body. The digest covers what follows
  // the first empty line of the whole message, i.e. of `rest`.
  size_t end = rest.find("\r\n\r\n");
  if (rest.compare(0, 2, "\r\n") == 0) end = std::string::npos;  // no headers at all
  std::string body_part;
  if (end == std::string::npos) {
    rest.insert(0, "\r\n");  // treat the whole file as body
    end = 0;
    body_part = rest.substr(2);
  } else {
    body_part = rest.substr(end + 4);
  }
  auto b = std::make_shared<SharedBody>();
  b->raw = DigestHeaderFor(body_part) + rest;
  b->stuffed = DotStuff(b->raw);
  return b;
}

absl::StatusOr<std::unique_ptr<MessageFactory>> MessageFactory::Create(const FactoryOptions& o) {
  std::unique_ptr<MessageFactory> f(new MessageFactory(o));
  if (o.recipients == 0 || o.domains == 0)
    return absl::InvalidArgumentError("need recipients and domains");
  if (!o.domain_weights.empty()) {
    if (o.domain_weights.size() != o.domains) {
      return absl::InvalidArgumentError("--domain-weights needs one weight per domain");
    }
    double sum = 0;
    for (double w : o.domain_weights) {
      if (w < 0) return absl::InvalidArgumentError("negative domain weight");
      sum += w;
      f->cumulative_.push_back(sum);
    }
    if (sum <= 0) return absl::InvalidArgumentError("domain weights sum to zero");
    for (double& c : f->cumulative_) c /= sum;
  }
  if (!o.sample_dir.empty()) {
    DIR* d = opendir(o.sample_dir.c_str());
    if (d == nullptr) return absl::NotFoundError(absl::StrCat("cannot open ", o.sample_dir));
    std::vector<std::string> names;
    while (dirent* e = readdir(d)) {
      std::string n = e->d_name;
      if (n.size() > 4 && n.compare(n.size() - 4, 4, ".eml") == 0) names.push_back(n);
    }
    closedir(d);
    std::sort(names.begin(), names.end());
    for (const std::string& n : names) {
      std::ifstream in(o.sample_dir + "/" + n, std::ios::binary);
      std::stringstream ss;
      ss << in.rdbuf();
      f->bodies_.push_back(Seal(NormalizeCrlf(ss.str())));
    }
    if (f->bodies_.empty())
      return absl::NotFoundError(absl::StrCat("no .eml files in ", o.sample_dir));
    return f;
  }
  uint64_t s = o.seed * 0x2545f4914f6cdd1dull + 7;
  static constexpr char kChars[] =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789      ,.;-";
  const size_t per_message = 120;  // Message-ID + X-Blast-Id, roughly
  for (size_t k = 0; k < std::max<size_t>(o.pool, 1); ++k) {
    std::string rest = absl::StrCat("From: <", o.sender, ">\r\nSubject: sluice-blast ", k,
                                    "\r\nMIME-Version: 1.0\r\n\r\n");
    const size_t digest_len = 48;
    const size_t target = o.size > per_message + digest_len + rest.size() + 2
                              ? o.size - per_message - digest_len
                              : rest.size() + 2;
    while (rest.size() + 2 < target) {
      size_t len = 10 + SplitMix(s) % 69;
      if (rest.size() + len + 2 > target) len = target - rest.size() - 2;
      const uint64_t kind = SplitMix(s) % 12;
      // Some lines start with "." or ".." so that DATA carries stuffed dots.
      size_t dots = kind == 0 ? 1 : kind == 1 ? 2 : 0;
      if (dots >= len) dots = 0;
      rest.append(dots, '.');
      for (size_t i = dots; i < len; ++i) rest.push_back(kChars[SplitMix(s) % (sizeof kChars - 1)]);
      rest += "\r\n";
    }
    f->bodies_.push_back(Seal(std::move(rest)));
  }
  return f;
}

void MessageFactory::Make(uint64_t id, OutMessage& out) const {
  uint64_t s = o_.seed * 0x9e3779b97f4a7c15ull ^ (id * 0xd1b54a32d192ed03ull);
  out.id = id;
  out.sender = o_.sender;
  out.recipients.clear();
  for (size_t i = 0; i < o_.recipients; ++i) {
    size_t dom;
    if (cumulative_.empty()) {
      dom = static_cast<size_t>(SplitMix(s) % o_.domains);
    } else {
      const double u = static_cast<double>(SplitMix(s) >> 11) * 0x1.0p-53;
      dom = static_cast<size_t>(std::lower_bound(cumulative_.begin(), cumulative_.end(), u) -
                                cumulative_.begin());
      if (dom >= o_.domains) dom = o_.domains - 1;
    }
    out.recipients.push_back(absl::StrCat("u", SplitMix(s) % 100000, "@d", dom, ".example"));
  }
  out.head = absl::StrCat("Message-ID: <", id, ".", o_.seed,
                          "@blast.sluice.test>\r\nX-Blast-Id: ", id, "\r\n");
  out.body = bodies_[id % bodies_.size()];
}

}  // namespace sluice::tools

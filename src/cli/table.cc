#include "table.h"

#include <algorithm>

namespace sluice::cli {
namespace {

// Display width: UTF-8 continuation bytes do not count.
size_t Width(const std::string& s) {
  size_t w = 0;
  for (unsigned char c : s) w += (c & 0xC0) != 0x80;
  return w;
}

}  // namespace

Table::Table(std::vector<std::string> headers, std::vector<bool> right)
    : headers_(std::move(headers)), right_(std::move(right)) {
  right_.resize(headers_.size(), false);
}

void Table::Add(std::vector<std::string> row) {
  row.resize(headers_.size());
  for (size_t i = 0; i + 1 < row.size(); ++i) {
    if (row[i].size() > kMaxCell) row[i] = row[i].substr(0, kMaxCell - 3) + "...";
  }
  rows_.push_back(std::move(row));
}

std::string Table::Render() const {
  std::vector<size_t> width(headers_.size());
  for (size_t i = 0; i < headers_.size(); ++i) width[i] = Width(headers_[i]);
  for (const auto& row : rows_) {
    for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], Width(row[i]));
  }
  std::string out;
  auto line = [&](const std::vector<std::string>& row) {
    std::string l;
    for (size_t i = 0; i < row.size(); ++i) {
      const size_t pad = width[i] - Width(row[i]);
      const bool last = i + 1 == row.size();
      if (right_[i]) l.append(pad, ' ');
      l += row[i];
      if (!right_[i] && !last) l.append(pad, ' ');
      if (!last) l += "  ";
    }
    while (!l.empty() && l.back() == ' ') l.pop_back();
    out += l;
    out += '\n';
  };
  line(headers_);
  for (const auto& row : rows_) line(row);
  return out;
}

}  // namespace sluice::cli

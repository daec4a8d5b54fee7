// Aligned text tables for `sluice queue ...`: a header row, columns padded
// to their widest cell (numbers right-aligned), the last column unpadded.
// Cells are cut at kMaxCell bytes so one long address cannot push every row
// off the screen (--json has the whole value).
#pragma once

#include <string>
#include <vector>

namespace sluice::cli {

class Table {
 public:
  // `right`: one flag per column, true for right-aligned (numbers).
  Table(std::vector<std::string> headers, std::vector<bool> right);
  void Add(std::vector<std::string> row);
  size_t rows() const { return rows_.size(); }
  std::string Render() const;

  static constexpr size_t kMaxCell = 48;

 private:
  std::vector<std::string> headers_;
  std::vector<bool> right_;
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace sluice::cli

#include "sluice/base/utc_time.h"

#include <cstdio>
#include <ctime>

namespace sluice::base {
namespace {

// The text of one UTC second, kept until the clock moves on.
struct SecondCache {
  int64_t second = -1;
  char text[64] = {};
  size_t size = 0;
};

// gmtime_r, or the epoch for a time it cannot represent.
struct tm BrokenDown(int64_t second) {
  const time_t t = static_cast<time_t>(second);
  struct tm tm;
  if (gmtime_r(&t, &tm) == nullptr || tm.tm_wday < 0 || tm.tm_wday > 6 || tm.tm_mon < 0 ||
      tm.tm_mon > 11) {
    const time_t zero = 0;
    gmtime_r(&zero, &tm);
  }
  return tm;
}

size_t Clamp(int n, size_t capacity) {
  return n < 0 ? 0 : static_cast<size_t>(n) < capacity ? static_cast<size_t>(n) : capacity - 1;
}

void FormatIsoSecond(SecondCache& c) {
  const struct tm tm = BrokenDown(c.second);
  c.size = Clamp(std::snprintf(c.text, sizeof c.text, "%04ld-%02d-%02dT%02d:%02d:%02d",
                               static_cast<long>(tm.tm_year) + 1900, tm.tm_mon + 1, tm.tm_mday,
                               tm.tm_hour, tm.tm_min, tm.tm_sec),
                 sizeof c.text);
}

// Names spelled out: strftime's %a and %b would follow the locale.
void FormatRfc5322Second(SecondCache& c) {
  static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  const struct tm tm = BrokenDown(c.second);
  c.size =
      Clamp(std::snprintf(c.text, sizeof c.text, "%s, %02d %s %04ld %02d:%02d:%02d +0000",
                          kDays[tm.tm_wday], tm.tm_mday, kMonths[tm.tm_mon],
                          static_cast<long>(tm.tm_year) + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec),
            sizeof c.text);
}

const SecondCache& Cached(SecondCache& cache, uint64_t micros, void (*format)(SecondCache&)) {
  const int64_t second = static_cast<int64_t>(micros / 1000000);
  if (cache.second != second) {
    cache.second = second;
    format(cache);
  }
  return cache;
}

}  // namespace

void AppendIso8601Micros(std::string& out, uint64_t micros_since_epoch) {
  thread_local SecondCache cache;
  const SecondCache& c = Cached(cache, micros_since_epoch, FormatIsoSecond);
  char tail[8] = {'.', '0', '0', '0', '0', '0', '0', 'Z'};
  uint32_t fraction = static_cast<uint32_t>(micros_since_epoch % 1000000);
  for (int i = 6; i >= 1; --i) {
    tail[i] = static_cast<char>('0' + fraction % 10);
    fraction /= 10;
  }
  out.append(c.text, c.size);
  out.append(tail, sizeof tail);
}

std::string Rfc5322Date(uint64_t micros_since_epoch) {
  thread_local SecondCache cache;
  const SecondCache& c = Cached(cache, micros_since_epoch, FormatRfc5322Second);
  return std::string(c.text, c.size);
}

}  // namespace sluice::base

// Every compile-time bound of Sluice, each with the reason it has the value
// it has. Run-time limits (message size, recipients, connections, timeouts)
// live in config::Config with their defaults; the constants here size the
// fixed structures those limits run in.
#pragma once

#include <cstddef>
#include <cstdint>

namespace sluice::limits {

// RFC 5321 4.5.3.1.4: a command line is at most 512 octets with CRLF. ESMTP
// extensions may add to it (RFC 1869 allows implementations to accept more);
// SMTPUTF8 addresses and SIZE/BODY parameters fit comfortably in 2,048.
inline constexpr size_t kCommandLineMax = 2048;

// RFC 5321 4.5.3.1: local part 64, domain 255, path 256 octets.
inline constexpr size_t kLocalPartMax = 64;
inline constexpr size_t kDomainMax = 255;
inline constexpr size_t kPathMax = 256;

// Receive buffers handed to the kernel through a provided-buffer ring. One
// page each: a 2 KB message fits in one, a pipelined command burst in a few,
// and the kernel touches no more memory than the data needs. 256 of them
// (1 MiB per shard) serve thousands of connections, because an idle multishot
// recv holds no buffer and a busy one gives its buffer back before the
// completion returns, except for body spans kept zero-copy until written,
// which are capped per message and stop when a quarter of the ring is all
// that is left (server/connection.h, docs/ARCHITECTURE.md "Receive memory").
inline constexpr size_t kRecvBufferSize = 4 * 1024;
inline constexpr uint32_t kRecvBufferCount = 256;  // power of two (ring mask)

// Shards: ids carry the shard number in 8 bits.
inline constexpr int kShardsMax = 256;

// Cross-shard mailboxes: slots per (source, target) pair.
inline constexpr size_t kMailboxSlots = 4096;

// Notes a shard keeps while a target's mailbox is full. Past this many the
// shard answers MAIL with 452 4.3.1 until the target catches up, rather
// than grow without bound (a note is ~64 bytes: 64 MiB at the limit).
inline constexpr size_t kOutboxMax = 1 << 20;

// io_uring submission queue entries per shard (the completion queue gets
// four times as many). A full SQ is flushed, not an error, and the kernel
// keeps overflowing completions (IORING_FEAT_NODROP), so this bounds memory,
// not load: 1,024 SQEs and 4,096 CQEs are 128 KiB of rings per shard.
inline constexpr unsigned kRingEntries = 1024;

// The accounting log buffers at most this much per shard between flushes;
// past it, records are written synchronously rather than dropped.
inline constexpr size_t kLogBufferMax = 1024 * 1024;

// The headers a message gets from Sluice (Received, Date, Message-ID).
inline constexpr size_t kAddedHeadersMax = 2048;

// The helper pool (io/helper_pool.h): threads for the work a shard must not
// block on. Two keep one slow check from delaying the next; the work is
// rare (fresh AUTH passwords at ~15 ms of PBKDF2 each, a statvfs per shard
// every 250 ms), so two threads give ~130 fresh AUTHs/s, and a cached
// password never leaves its shard. Jobs in flight per shard are bounded;
// past it a fresh AUTH gets 454 (try again) rather than queueing.
inline constexpr int kHelperThreads = 2;
inline constexpr size_t kHelperSlotsPerShard = 256;

// Header section scanned for Date: / Message-ID: presence.
inline constexpr size_t kHeaderScanMax = 64 * 1024;

}  // namespace sluice::limits

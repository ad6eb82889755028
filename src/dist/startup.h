// Starting (and failing to start) a job on N ranks without hangs.
//
// Start-up is a sequence of collective checks. At each one every rank says whether it got there
// without error and gives a fingerprint of what it loaded (recipe, data, checkpoint); rank 0
// gives a payload (e.g. which checkpoint to resume from). When a rank failed, or a fingerprint
// differs from rank 0's, every rank learns it at the same check: rank 0 prints one clear error,
// every rank stops with a non-zero status, and nobody waits forever for a peer that will never
// come. A rank that fails between two checks joins the next check as failed, so the rule is
// only: no other collective during start-up.
//
// After the last check the ranks run in lockstep; an error on one rank then ends the whole job
// (Communicator::abort) with that rank's message, since the others may be inside a collective.
#pragma once

#include <cstdint>
#include <exception>
#include <string>
#include <string_view>
#include <utility>

#include "core/error.h"
#include "dist/communicator.h"

namespace zoft::dist {

// An error every rank raises at the same point, so no rank waits for another: start-up failed
// on some rank or the ranks disagree, or a condition all ranks see alike (a non-finite loss).
// Rank 0 prints it; every rank stops with status 1.
class CollectiveError : public Error {
 public:
  using Error::Error;
};

// FNV-1a, 64 bits: a fingerprint of inputs that must be equal on every rank.
class Fingerprint {
 public:
  Fingerprint& add(const void* data, size_t bytes);
  Fingerprint& add(std::string_view text) { return add(text.data(), text.size()); }
  Fingerprint& add(int64_t v) { return add(&v, sizeof v); }
  uint64_t value() const { return h_; }

 private:
  uint64_t h_ = 0xcbf29ce484222325ull;
};

class Startup {
 public:
  explicit Startup(Communicator& comm) : comm_(comm) {}

  // A collective check named `stage` (for messages). Throws CollectiveError on every rank when a
  // rank failed or disagrees; returns rank 0's payload. `last`: start-up ends here.
  std::string check(const std::string& stage, uint64_t fingerprint, const std::string& payload = {},
                    bool last = false);
  bool done() const { return done_; }

  // Call from a catch block with the exception in flight. One process: rethrows it. Several:
  // during start-up, joins the next check as failed; then rank 0 prints the error and every
  // rank exits with status 1 (after a barrier, so that mpirun does not kill rank 0 before it
  // has printed). After start-up: aborts the job with this rank's message.
  [[noreturn]] void fail(std::exception_ptr error);

 private:
  std::string vote(bool ok, uint64_t fingerprint, const std::string& text, const std::string& stage,
                   bool last);

  Communicator& comm_;
  bool done_ = false;
};

// Runs body(Startup&) with the failure handling above.
template <class Body>
auto run(Communicator& comm, Body&& body) -> decltype(body(std::declval<Startup&>())) {
  Startup startup(comm);
  try {
    return body(startup);
  } catch (...) {
    startup.fail(std::current_exception());
  }
}

}  // namespace zoft::dist

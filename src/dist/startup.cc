#include "dist/startup.h"

#include <cstdio>
#include <cstdlib>

namespace zoft::dist {

Fingerprint& Fingerprint::add(const void* data, size_t bytes) {
  const auto* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < bytes; ++i) h_ = (h_ ^ p[i]) * 0x100000001b3ull;
  return *this;
}

std::string Startup::check(const std::string& stage, uint64_t fingerprint,
                           const std::string& payload, bool last) {
  return vote(true, fingerprint, payload, stage, last);
}

// ok: text is the payload (used from rank 0); failed: text is this rank's error message.
std::string Startup::vote(bool ok, uint64_t fingerprint, const std::string& text,
                          const std::string& stage, bool last) {
  const int size = comm_.size();
  int64_t mine[2] = {ok ? 1 : 0, int64_t(fingerprint)};
  std::vector<int64_t> votes(size_t(2 * size));
  comm_.all_gather(mine, votes.data(), std::vector<size_t>(size_t(size), sizeof mine));
  int first_failed = -1;
  for (int r = size - 1; r >= 0; --r)
    if (!votes[size_t(2 * r)]) first_failed = r;
  if (first_failed >= 0) {
    done_ = true;
    std::string message = broadcast_string(comm_, ok ? std::string() : text, first_failed);
    if (first_failed > 0) message = fmt::format("rank {} of {}: {}", first_failed, size, message);
    throw CollectiveError(message);
  }
  std::string differ;
  for (int r = 1; r < size; ++r)
    if (votes[size_t(2 * r + 1)] != votes[1])
      differ += (differ.empty() ? "" : ", ") + std::to_string(r);
  if (!differ.empty()) {
    done_ = true;
    throw CollectiveError(fmt::format(
        "the ranks disagree on the {}: rank(s) {} differ from rank 0. Every rank must run the same "
        "command (recipe, overrides) on the same data and checkpoints",
        stage, differ));
  }
  std::string result = broadcast_string(comm_, text, 0);
  if (last) done_ = true;
  return result;
}

void Startup::fail(std::exception_ptr error) {
  if (comm_.size() == 1) std::rethrow_exception(error);
  std::string what = "unknown error";
  bool start_error = false;
  try {
    std::rethrow_exception(error);
  } catch (const CollectiveError& e) {
    what = e.what();
    start_error = true;
  } catch (const std::bad_alloc&) {
    what = "out of memory";
  } catch (const std::exception& e) {
    what = e.what();
  } catch (...) {
  }
  if (!start_error && !done_) {
    try {
      vote(false, 0, what, "", true);
    } catch (const CollectiveError& e) {
      what = e.what();
      start_error = true;
    }
  }
  if (!start_error)
    comm_.abort(fmt::format("rank {} of {}: error: {}; stopping every rank", comm_.rank(),
                            comm_.size(), what));
  if (comm_.is_root()) std::fprintf(stderr, "zoft: error: %s\n", what.c_str());
  std::fflush(stdout);
  std::fflush(stderr);
  comm_.barrier();
  std::exit(1);
}

}  // namespace zoft::dist

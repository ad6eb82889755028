// Errors carry what failed, where, and what to do; the CLI prints the message on one line.
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace zoft {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Always inlined: a template instance is a weak symbol the linker merges across objects, and a
// copy compiled into an AVX-512 kernel object (CMakeLists.txt, tools/check_isa_objects.py) must
// never be the one the rest of the program calls.
template <class... Args>
[[noreturn, gnu::always_inline]] inline void fail(fmt::format_string<Args...> format,
                                                  Args&&... args) {
  throw Error(fmt::format(format, std::forward<Args>(args)...));
}

#define ZOFT_CHECK(cond, ...)               \
  do {                                      \
    if (!(cond)) ::zoft::fail(__VA_ARGS__); \
  } while (0)

}  // namespace zoft

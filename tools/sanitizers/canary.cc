// A program with one deliberate defect per mode, for tests/sanitizer_canary_test.py: it proves that
// the sanitizer configs (.bazelrc --config=asan / --config=tsan) really instrument the build and
// that their runtime options (tools/sanitizers/env.sh) turn each finding into a failed process.
//   canary config            prints the sanitizers compiled in: "asan", "tsan" or "none"
//   canary heap-overflow     reads one int past a heap array          (ASan)
//   canary signed-overflow   adds 1 to INT_MAX                        (UBSan)
//   canary leak              drops the only pointer to a heap block   (LeakSanitizer)
//   canary race              two threads write one int unsynchronized (TSan)
//   canary ok                does nothing wrong
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr char kConfig[] = "asan";
#elif defined(__SANITIZE_THREAD__)
constexpr char kConfig[] = "tsan";
#else
constexpr char kConfig[] = "none";
#endif

int shared_counter = 0;
void* volatile leaked = nullptr;

int HeapOverflow(int n) {
  int* a = new int[n];
  for (int i = 0; i < n; ++i) a[i] = i;
  int past_the_end = a[n];  // The defect.
  delete[] a;
  return past_the_end;
}

int SignedOverflow(int x) { return x + 1; }  // The defect when x == INT_MAX.

void Leak() {
  leaked = std::malloc(4096);
  leaked = nullptr;  // The defect: the only pointer is gone.
}

void Race() {
  std::thread a([] { shared_counter += 1; });  // The defect: no synchronization between a and b.
  std::thread b([] { shared_counter += 2; });
  a.join();
  b.join();
}

}  // namespace

int main(int argc, char** argv) {
  const char* mode = argc > 1 ? argv[1] : "";
  if (std::strcmp(mode, "config") == 0) {
    std::printf("%s\n", kConfig);
  } else if (std::strcmp(mode, "heap-overflow") == 0) {
    std::printf("%d\n", HeapOverflow(argc + 7));
  } else if (std::strcmp(mode, "signed-overflow") == 0) {
    std::printf("%d\n", SignedOverflow(argc > 2 ? std::atoi(argv[2]) : INT_MAX));
  } else if (std::strcmp(mode, "leak") == 0) {
    Leak();
  } else if (std::strcmp(mode, "race") == 0) {
    Race();
    std::printf("%d\n", shared_counter);
  } else if (std::strcmp(mode, "ok") != 0) {
    std::fprintf(stderr, "usage: canary config|heap-overflow|signed-overflow|leak|race|ok\n");
    return 2;
  }
  return 0;
}

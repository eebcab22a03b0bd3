// The threads the fast kernels run on: OpenMP's, either in a parallel region per kernel or, through
// a decode step, held in one region and handed each kernel's body (Team), and a barrier inside a
// body that spins instead of sleeping (Meeting).
//
// Why hold them: every fork and join of a libgomp region, and every barrier, ends in a futex system
// call whether or not a thread sleeps on it; 1.2-1.4 µs on the virtual machine of
// docs/performance.md, ~3.3 µs for an empty region of two threads. A 1b decode step runs about 130
// regions (five products and attention per layer, then the LM head), and the memory stream stops at
// each: 1b Q4_0 decode on two threads, held, was 5% faster (eight alternating pairs). Holding
// changes no result: a body runs on as many threads with the same split.
#pragma once

#include "gemma3/build_mode.hpp"

#include <atomic>
#include <cstdint>
#include <exception>
#include <thread>

#include <omp.h>

namespace gemma3::inline GEMMA3_MODE::fast {

namespace detail {
// A pause in a spin-wait loop: the CPU's hint that this is one, so that the other hyper-thread of
// the core runs and the loop does not flood the memory system with loads.
inline void spin_pause() {
#if defined(__x86_64__) || defined(_M_X64)
  __builtin_ia32_pause();
#endif
}

// Pauses before a waiting thread yields the core (or sleeps): 0.1-1 ms, by the CPU's pause latency;
// longer than any wait inside a step, shorter than a wait between steps.
inline constexpr int kSpins = 1 << 14;

// Waits until done() (a load of what other threads of the team are to store) is true: spinning,
// then yielding the core after kSpins pauses, should threads outnumber cores.
template <class Done>
void spin_until(Done&& done) {
  for (int spins = 0; !done(); ++spins) {
    if (spins < kSpins)
      spin_pause();
    else
      std::this_thread::yield();
  }
}

// The threads of one parallel region (or one Team::parallel body) meeting once: each waits until
// all have arrived. They spin (and yield the core after a while, should threads outnumber cores)
// rather than sleep: OpenMP's barrier ends in a futex system call, more than the wait it ends
// between the two halves of a decode step's product.
class Meeting {
 public:
  void arrive_and_wait() {
    const int team = omp_get_num_threads();
    arrived_.fetch_add(1, std::memory_order_acq_rel);
    spin_until([&] { return arrived_.load(std::memory_order_acquire) >= team; });
  }

 private:
  std::atomic<int> arrived_{0};
};
}  // namespace detail

// OpenMP's threads held in one parallel region while a thread runs a sequence of kernels (hold),
// each kernel's body handed to all of them (parallel). The held threads spin between bodies, and
// sleep (an atomic wait) only after kSpins pauses, so that a body starts and ends with a store and
// a load of one cache line each, not a system call. Outside hold, parallel() is a parallel region.
//
// Inside a body, OpenMP's thread number and team size are the held region's, and its orphaned
// worksharing loops (`omp for`) split over the held threads, as in a region of its own; every
// thread runs every body, so all of them meet every loop. A parallel region that a held thread
// opens (a kernel not written as a parallel() body) is nested, so it runs on that thread alone:
// correct, only slower.
class Team {
 public:
  // Runs work() on this thread while the other threads of a new parallel region wait to run the
  // bodies of its parallel() calls; work's exception, if any, is rethrown after the region.
  // Inside a parallel region already, holding a team already, or with one thread: just work().
  // With more threads than cores also just work(): a held thread spinning would keep the core
  // from a thread with work (1b Q4_0 decode, four threads on two cores: 16.9 tok/s in regions,
  // 9.6 held).
  template <class Work>
  static void hold(Work&& work) {
    const int threads = omp_get_max_threads();
    if (omp_in_parallel() || held() || threads == 1 || threads > omp_get_num_procs()) {
      work();
      return;
    }
    Held team;
    std::exception_ptr error;
#pragma omp parallel
    {
      if (omp_get_thread_num() == 0) {
        team.threads = omp_get_num_threads();
        held() = &team;
        try {
          work();
        } catch (...) {
          error = std::current_exception();
        }
        held() = nullptr;
        team.dismiss();
      } else {
        team.serve();
      }
    }
    if (error) std::rethrow_exception(error);
  }

  // body() on every thread of the team this thread holds, or else of a parallel region of its own;
  // returns when every thread has returned from it. body must not throw.
  template <class Body>
  static void parallel(Body&& body) {
    if (Held* team = held()) {
      team->run(body);
      return;
    }
#pragma omp parallel
    body();
  }

  // The threads parallel() runs a body on.
  static int size() {
    if (const Held* team = held()) return team->threads;
    return omp_in_parallel() ? 1 : omp_get_max_threads();
  }

 private:
  struct Held {
    int threads = 1;
    // Bumped for each body, and once more to dismiss the team: a held thread runs what it sees
    // published when the generation changes.
    std::atomic<uint32_t> generation{0};
    std::atomic<int> sleepers{0};  // held threads asleep on `generation`
    std::atomic<int> running{0};   // held threads still in the current body
    void (*call)(void*) = nullptr;
    void* body = nullptr;
    bool dismissed = false;

    void publish() {
      generation.fetch_add(1, std::memory_order_seq_cst);
      if (sleepers.load(std::memory_order_seq_cst) > 0) generation.notify_all();
    }
    template <class Body>
    void run(Body& b) {
      call = [](void* p) { (*static_cast<Body*>(p))(); };
      body = &b;
      running.store(threads - 1, std::memory_order_relaxed);
      publish();
      b();
      detail::spin_until([&] { return running.load(std::memory_order_acquire) == 0; });
    }
    void dismiss() {
      dismissed = true;
      publish();
    }
    // A held thread: waits for each generation, runs its body, until dismissed.
    void serve() {
      for (uint32_t seen = 0;;) {
        int spins = 0;
        while (generation.load(std::memory_order_acquire) == seen) {
          if (spins++ < detail::kSpins) {
            detail::spin_pause();
          } else {
            sleepers.fetch_add(1, std::memory_order_seq_cst);
            generation.wait(seen, std::memory_order_seq_cst);
            sleepers.fetch_sub(1, std::memory_order_relaxed);
          }
        }
        seen = generation.load(std::memory_order_acquire);
        if (dismissed) return;
        call(body);
        running.fetch_sub(1, std::memory_order_release);
      }
    }
  };

  // The team this thread holds, if any.
  static Held*& held() {
    static thread_local Held* team = nullptr;
    return team;
  }
};

}  // namespace gemma3::inline GEMMA3_MODE::fast

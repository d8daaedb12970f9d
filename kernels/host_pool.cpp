// The threads the CPU kernels split a large region over (gpuad_split in kernels/host_prelude.h):
// one pool per process, in a library of its own (built and loaded by gpuad/kernels/host.py), its
// run function handed to every kernel library when it loads.
//
// Why not OpenMP: its parallel region ends at a barrier every thread of the team must reach. On a
// busy machine a thread that is not running yet (its core taken by another process) holds the
// caller there for a scheduler's time slice: a 0.3 ms region took 25-50 ms on 2 loaded cores.
// Here the caller takes chunks itself, and a worker joins a job only if it wakes while chunks
// remain: the caller waits only for chunks a worker actually took. A worker that cannot be
// created (no room for its stack) is simply not there: libgomp ends the process instead.
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <pthread.h>
#include <thread>

typedef void (*gpuad_range)(void* context, long long begin, long long end);

namespace {
struct Job {
    gpuad_range range;
    void* context;
    long long units, chunks;
    std::atomic<long long> next{0};
    int joined = 0;  // workers inside work(), under Pool::lock
};

struct Pool {  // never destroyed: its workers wait on it until the process ends
    std::mutex lock, running;  // running: one job at a time (another caller meanwhile runs alone)
    std::condition_variable wake, left;
    Job* current = nullptr;
    unsigned long long generation = 0;
    int workers = 0, threads = 1;
};
Pool* state = new Pool;

// A forked child has none of the workers, and its locks may be held by threads it does not have:
// it starts a pool of its own (the parent's is left, unused).
void forked() {
    const int threads = state->threads;
    state = new Pool;
    state->threads = threads;
}
const int registered = pthread_atfork(nullptr, nullptr, forked);

void work(Job* job) {
    for (long long c; (c = job->next.fetch_add(1)) < job->chunks;) {
        job->range(job->context, job->units * c / job->chunks, job->units * (c + 1) / job->chunks);
    }
}

void serve() {
    unsigned long long seen = 0;
    for (;;) {
        Job* job;
        {
            std::unique_lock<std::mutex> hold(state->lock);
            state->wake.wait(hold, [&] { return state->generation != seen; });
            seen = state->generation;
            job = state->current;
            if (job == nullptr) continue;
            ++job->joined;
        }
        work(job);
        std::lock_guard<std::mutex> hold(state->lock);
        if (--job->joined == 0) state->left.notify_all();
    }
}

void grow(int count) {  // to count - 1 workers (the caller is the other), as far as they can be made
    for (; state->workers < count - 1; ++state->workers) {
        try {
            std::thread(serve).detach();
        } catch (...) {
            return;
        }
    }
}
}  // namespace

extern "C" void gpuad_pool_threads(int count) { state->threads = count < 1 ? 1 : count; }

// range(context, begin, end) over [0, units), in 8 chunks per thread taken in turn.
extern "C" void gpuad_pool_run(gpuad_range range, void* context, long long units) {
    std::unique_lock<std::mutex> alone(state->running, std::try_to_lock);
    const int threads = state->threads;
    if (!alone || threads < 2) {
        range(context, 0, units);
        return;
    }
    grow(threads);
    Job job;
    job.range = range, job.context = context, job.units = units;
    job.chunks = units < 8LL * threads ? units : 8LL * threads;
    {
        std::lock_guard<std::mutex> hold(state->lock);
        state->current = &job;
        ++state->generation;
    }
    state->wake.notify_all();
    work(&job);
    std::unique_lock<std::mutex> hold(state->lock);
    state->current = nullptr;
    state->left.wait(hold, [&] { return job.joined == 0; });
}

/* A glibc heap workload for tests/live/test_heap_live.py and benchmarks/bench_heap.py.
 *
 *   heapwork MODE WHERE [N]
 *     MODE  leak   allocate N JSON-filled chunks of mixed sizes, keep them all
 *           burst  allocate N chunks, free all but every 16th (the kept ones pin the heap)
 *           mix    sizes across tcache / fastbin / smallbin / largebin ranges, free 2 of 3
 *           fill   fill one non-main arena heap with ~N MiB of JSON copies, free 1 of 4
 *     WHERE thread (a new thread: a non-main arena) | main ([heap], the main arena)
 *
 * It then writes one line with its own accounting, in chunk bytes (malloc_usable_size + 8,
 * which is the chunk size of a non-mmapped chunk), and sleeps until killed:
 *   ptr=0x... live=BYTES freed=BYTES live_chunks=N freed_chunks=N fast_freed=BYTES
 * The line is written with write(2) from a stack buffer so stdio allocates nothing.
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static const char *mode;
static long count;
static unsigned long long live_bytes, freed_bytes, live_chunks, freed_chunks, fast_freed;
static void *first;

static unsigned rng = 12345;
static unsigned next_rand(void) { rng = rng * 1103515245u + 12345u; return (rng >> 8) & 0xffffff; }

static void *take(size_t n) {
    char *p = malloc(n);
    if (!p) { perror("malloc"); exit(1); }
    /* A JSON payload like the push messages of the incident, repeated to fill the chunk. */
    int len = snprintf(p, n, "{\"uid\":%u,\"unread_count\":%u,\"type\":\"push\",\"body\":\"",
                       next_rand() % 100000, next_rand() % 50);
    for (size_t i = (len > 0 && (size_t)len < n) ? (size_t)len : n; i + 1 < n; i++) p[i] = 'a' + (i % 26);
    if (n) p[n - 1] = 0;
    if (!first) first = p;
    return p;
}

static void keep(void *p) { live_bytes += malloc_usable_size(p) + 8; live_chunks++; }
static void drop(void *p) {
    size_t chunk = malloc_usable_size(p) + 8;
    freed_bytes += chunk; freed_chunks++;
    if (chunk <= 0x80) fast_freed += chunk;  /* fastbin-sized: the main arena's fastbins are not in [heap] */
    free(p);
}

/* The pointer arrays come from mmap, not malloc, so they do not disturb the heap. */
static void **ptr_array(long n) {
    void *p = mmap(NULL, (size_t)n * sizeof(void *), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) { perror("mmap"); exit(1); }
    return p;
}

static void run(void) {
    void **ptrs = NULL;
    long n = count;
    if (strcmp(mode, "leak") == 0) {
        for (long i = 0; i < n; i++) keep(take(64 + next_rand() % 4000));
    } else if (strcmp(mode, "burst") == 0) {
        /* Sizes above the fastbin range: every free goes to tcache (7 per size) or a bin. */
        ptrs = ptr_array(n);
        for (long i = 0; i < n; i++) ptrs[i] = take(200 + next_rand() % 3000);
        for (long i = 0; i < n; i++) {
            if (i % 16 == 15 || i == n - 1) keep(ptrs[i]); else drop(ptrs[i]);
        }
    } else if (strcmp(mode, "mix") == 0) {
        static const size_t sizes[] = {24, 40, 56, 72, 200, 500, 900, 1500, 3000, 20000};
        const int ns = sizeof sizes / sizeof sizes[0];
        ptrs = ptr_array(n);
        for (long i = 0; i < n; i++) ptrs[i] = take(sizes[i % ns]);
        /* Free 2 of 3 of the bin-sized chunks, then a large request sorts the unsorted bin
           into small and large bins; the fast-sized frees come last so that no
           malloc_consolidate empties the fastbins again. */
        for (long i = 0; i < n; i++)
            if (sizes[i % ns] > 128 && i % 3 != 2 && i != n - 1) { drop(ptrs[i]); ptrs[i] = NULL; }
        for (int k = 0; k < 4; k++) keep(take(30000));
        for (long i = 0; i < n; i++)
            if (ptrs[i] && sizes[i % ns] <= 128 && i % 3 != 2 && i != n - 1) { drop(ptrs[i]); ptrs[i] = NULL; }
        for (long i = 0; i < n; i++) if (ptrs[i]) keep(ptrs[i]);
    } else if (strcmp(mode, "fill") == 0) {
        unsigned long long target = (unsigned long long)n << 20, total = 0;
        long cap = (long)(target / 100) + 1, m = 0;
        ptrs = ptr_array(cap);
        while (total < target && m < cap) {
            void *p = take(100 + next_rand() % 1900);
            total += malloc_usable_size(p) + 8;
            ptrs[m++] = p;
        }
        for (long i = 0; i < m; i++) {
            if (i % 4 == 1 && i != m - 1) drop(ptrs[i]); else keep(ptrs[i]);
        }
    } else {
        fprintf(stderr, "unknown mode %s\n", mode);
        exit(2);
    }
    char line[256];
    int len = snprintf(line, sizeof line,
                       "ptr=%p live=%llu freed=%llu live_chunks=%llu freed_chunks=%llu fast_freed=%llu\n",
                       first, live_bytes, freed_bytes, live_chunks, freed_chunks, fast_freed);
    if (write(1, line, (size_t)len) != len) exit(1);
    for (;;) pause();
}

static void *thread_main(void *arg) { (void)arg; run(); return NULL; }

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: heapwork leak|burst|mix|fill thread|main [N]\n"); return 2; }
    mode = argv[1];
    count = argc > 3 ? atol(argv[3]) : 2000;
    if (count < 1) count = 1;
    if (strcmp(argv[2], "main") == 0) { run(); return 0; }
    pthread_t t;
    if (pthread_create(&t, NULL, thread_main, NULL) != 0) { perror("pthread_create"); return 1; }
    pthread_join(t, NULL);
    return 0;
}

/* leaky: a small native-memory leaker that offheap's live tests and benchmarks start and kill.
 *
 * Threads malloc copies of JSON push notifications and never free them, the way the seed's
 * websocket server leaked: each thread gets its own glibc arena, so N threads fill N arena heaps.
 * Optionally it maps an anonymous region and touches only some of its pages, for pagemap tests.
 * When everything is allocated it prints one line, "ready {json stats}", and sleeps until killed.
 *
 *   leaky [-t THREADS] [-k KIB_PER_THREAD] [-s SPARSE_KIB] [-e TOUCH_EVERY_NTH_PAGE] [-f]
 *
 * -f frees every second payload of each thread after allocating (freed chunks for heap tests).
 * Build: gcc -O1 -pthread -o leaky leaky.c
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define MAX_THREADS 64

struct worker {
    int index;
    size_t target_bytes;
    size_t allocated_bytes;
    size_t payloads;
    size_t freed;
    void *first;
    int free_half;
};

static pthread_barrier_t all_allocated;

static void *work(void *arg)
{
    struct worker *w = arg;
    char **kept = NULL;
    size_t kept_cap = 0;
    char body[512];
    unsigned seed = 12345u + (unsigned)w->index;

    while (w->allocated_bytes < w->target_bytes) {
        /* Sizes vary like real messages: 40..400 body bytes, so chunks land in many bins. */
        size_t body_len = 40 + (size_t)(rand_r(&seed) % 360);
        for (size_t i = 0; i < body_len; i++)
            body[i] = (char)('a' + (i + w->payloads) % 26);
        body[body_len] = '\0';
        char *p;
        int n = asprintf(&p,
                         "{\"type\":\"push\",\"thread\":%d,\"seq\":%zu,\"uid\":%u,"
                         "\"unread_count\":%u,\"title\":\"New message\",\"body\":\"%s\"}",
                         w->index, w->payloads, rand_r(&seed) % 1000000u, rand_r(&seed) % 100u, body);
        if (n < 0) {
            perror("asprintf");
            exit(2);
        }
        if (w->first == NULL)
            w->first = p;
        if (w->free_half) {
            if (w->payloads == kept_cap) {
                kept_cap = kept_cap ? kept_cap * 2 : 1024;
                kept = realloc(kept, kept_cap * sizeof *kept);
            }
            kept[w->payloads] = p;
        }
        w->payloads++;
        w->allocated_bytes += (size_t)n + 1;
    }
    if (w->free_half) {
        for (size_t i = 1; i < w->payloads; i += 2) {
            free(kept[i]);
            w->freed++;
        }
    }
    pthread_barrier_wait(&all_allocated);
    for (;;)
        pause();
    return NULL;
}

int main(int argc, char **argv)
{
    int threads = 2, opt, free_half = 0;
    size_t kib_per_thread = 4096, sparse_kib = 0, touch_every = 16;

    while ((opt = getopt(argc, argv, "t:k:s:e:f")) != -1) {
        switch (opt) {
        case 't': threads = atoi(optarg); break;
        case 'k': kib_per_thread = strtoull(optarg, NULL, 10); break;
        case 's': sparse_kib = strtoull(optarg, NULL, 10); break;
        case 'e': touch_every = strtoull(optarg, NULL, 10); break;
        case 'f': free_half = 1; break;
        default:
            fprintf(stderr, "usage: %s [-t THREADS] [-k KIB_PER_THREAD] [-s SPARSE_KIB] [-e N] [-f]\n", argv[0]);
            return 2;
        }
    }
    if (threads < 0 || threads > MAX_THREADS || touch_every == 0) {
        fprintf(stderr, "bad arguments\n");
        return 2;
    }

    long page = sysconf(_SC_PAGESIZE);
    char *sparse = NULL;
    size_t touched = 0;
    if (sparse_kib) {
        /* Untouched pages of this mapping are never faulted in: pagemap shows them absent. */
        sparse = mmap(NULL, sparse_kib * 1024, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (sparse == MAP_FAILED) {
            perror("mmap");
            return 2;
        }
        for (size_t off = 0; off < sparse_kib * 1024; off += (size_t)page * touch_every) {
            snprintf(sparse + off, (size_t)page, "SPARSE-PAGE-%zu", off / (size_t)page);
            touched++;
        }
    }

    static struct worker workers[MAX_THREADS];
    pthread_t tids[MAX_THREADS];
    pthread_barrier_init(&all_allocated, NULL, (unsigned)threads + 1);
    for (int i = 0; i < threads; i++) {
        workers[i].index = i;
        workers[i].target_bytes = kib_per_thread * 1024;
        workers[i].free_half = free_half;
        if (pthread_create(&tids[i], NULL, work, &workers[i]) != 0) {
            perror("pthread_create");
            return 2;
        }
    }
    pthread_barrier_wait(&all_allocated);

    printf("ready {\"pid\":%d,\"threads\":%d,\"page_size\":%ld,\"payloads\":[", (int)getpid(), threads, page);
    for (int i = 0; i < threads; i++)
        printf("%s%zu", i ? "," : "", workers[i].payloads);
    printf("],\"freed\":[");
    for (int i = 0; i < threads; i++)
        printf("%s%zu", i ? "," : "", workers[i].freed);
    printf("],\"bytes\":[");
    for (int i = 0; i < threads; i++)
        printf("%s%zu", i ? "," : "", workers[i].allocated_bytes);
    printf("],\"first\":[");
    for (int i = 0; i < threads; i++)
        printf("%s%ju", i ? "," : "", (uintmax_t)(uintptr_t)workers[i].first);
    printf("],\"sparse_addr\":%ju,\"sparse_len\":%zu,\"sparse_touched_pages\":%zu,\"touch_every\":%zu}\n",
           (uintmax_t)(uintptr_t)sparse, sparse_kib * 1024, touched, touch_every);
    fflush(stdout);
    for (;;)
        pause();
}

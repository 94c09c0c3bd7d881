// placement.c: where this process's threads run: named helper threads (libzmq's I/O thread) kept off the CPU of
// the thread that wakes them, and a whole process restricted to given CPUs (a worker pinned to its cores).
//
// When a coordinator sends its expert requests, the send wakes the process's ZeroMQ I/O thread. On this VM Linux
// often wakes it on the sender's own CPU even with the other core idle (an idle vCPU can look "preempted" to the
// guest), so the I/O thread preempts the sender between two requests and the second worker starts late; `perf`
// showed that in ~1 of 4 context switches of a coordinator. Restricting the named threads to every allowed CPU
// but the caller's makes the wake-up land on another core. The mask is rewritten only when the caller moved.
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE
#endif
#include "ckernels.h"
#ifdef __linux__
#include <dirent.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define JC_STEER_MAX 16

int jc_steer_named_threads(const char *name_prefix, int off_this_cpu) {
    static int last_cpu = -1, count = -1;
    static pid_t tids[JC_STEER_MAX];
    static char prefix[16];
    const int cpu = sched_getcpu();
    if (cpu < 0) return 0;
    /* Find the threads once per prefix (thread names are at most 15 characters): libzmq starts its I/O threads
       with the context, before any request is sent. */
    if (count < 0 || strncmp(prefix, name_prefix, sizeof prefix - 1) != 0) {
        strncpy(prefix, name_prefix, sizeof prefix - 1);
        count = 0;
        last_cpu = -1;
        DIR *d = opendir("/proc/self/task");
        if (!d) return 0;
        struct dirent *e;
        while ((e = readdir(d)) && count < JC_STEER_MAX) {
            if (e->d_name[0] == '.') continue;
            char path[64], name[32] = {0};
            snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
            FILE *f = fopen(path, "r");
            if (!f) continue;
            if (fgets(name, sizeof name, f) && strncmp(name, prefix, strlen(prefix)) == 0) {
                tids[count++] = (pid_t)atoi(e->d_name);
            }
            fclose(f);
        }
        closedir(d);
    }
    const int want = off_this_cpu ? cpu : -1;
    if (count == 0 || want == last_cpu) return count;
    cpu_set_t mask;
    if (sched_getaffinity(0, sizeof mask, &mask) != 0 || CPU_COUNT(&mask) < 2 || !CPU_ISSET(cpu, &mask)) return count;
    if (off_this_cpu) CPU_CLR(cpu, &mask);
    for (int i = 0; i < count; i++) sched_setaffinity(tids[i], sizeof mask, &mask);
    last_cpu = want;
    return count;
}

int jc_restrict_process_cpus(const int *cpus, int count) {
    cpu_set_t mask;
    CPU_ZERO(&mask);
    for (int i = 0; i < count; i++) {
        if (cpus[i] < 0 || cpus[i] >= CPU_SETSIZE) return -1;
        CPU_SET(cpus[i], &mask);
    }
    if (count < 1 || sched_setaffinity(0, sizeof mask, &mask) != 0) return -1;
    /* Threads already started (the runtime's) follow; threads started later inherit the caller's mask. */
    DIR *d = opendir("/proc/self/task");
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (e->d_name[0] != '.') sched_setaffinity((pid_t)atoi(e->d_name), sizeof mask, &mask);
        }
        closedir(d);
    }
    return 0;
}

int jc_allowed_cpus(int *cpus, int capacity) {
    cpu_set_t mask;
    if (sched_getaffinity(0, sizeof mask, &mask) != 0) return -1;
    int n = 0;
    for (int c = 0; c < CPU_SETSIZE && n < capacity; c++)
        if (CPU_ISSET(c, &mask)) cpus[n++] = c;
    return n;
}

int jc_current_cpu(void) { return sched_getcpu(); }
int jc_thread_id(void) { return (int)gettid(); }
void jc_set_thread_name(const char *name) { pthread_setname_np(pthread_self(), name); }
#else
int jc_restrict_process_cpus(const int *cpus, int count) {
    (void)cpus;
    (void)count;
    return -1;
}
int jc_allowed_cpus(int *cpus, int capacity) {
    (void)cpus;
    (void)capacity;
    return -1;
}
int jc_current_cpu(void) { return -1; }
int jc_thread_id(void) { return -1; }
void jc_set_thread_name(const char *name) { (void)name; }
int jc_steer_named_threads(const char *name_prefix, int off_this_cpu) {
    (void)name_prefix;
    (void)off_this_cpu;
    return 0;
}
#endif

/* The C side of the cost-per-value figure: the same calls as the C# figure (single
 * theta_session_set and theta_session_set_batch on a host session, a 28-byte component,
 * every value changed each round, the fastest round). Usage: bench_set ENTITIES ROUNDS */
#define _POSIX_C_SOURCE 199309L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "theta.h"

typedef struct {
    float position[3];
    float rotation[4];
} Transform;

static double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

#define CHECK(call)                                                     \
    do {                                                                \
        if ((call) != THETA_STATUS_OK) {                                \
            fprintf(stderr, "%s failed\n", #call);                      \
            return 1;                                                   \
        }                                                               \
    } while (0)

int main(int argc, char **argv) {
    const size_t entities = argc > 1 ? (size_t)strtoul(argv[1], NULL, 10) : 10000;
    const int rounds = argc > 2 ? atoi(argv[2]) : 20;
    ThetaWorld world = {0};
    ThetaSession host = {0};
    uint32_t transform = 0;
    CHECK(theta_world_new(NULL, &world));
    CHECK(theta_world_register_fixed(world, (const uint8_t *)"test.Transform", 14, sizeof(Transform), &transform));
    const char *bind = "127.0.0.1:0";
    CHECK(theta_session_host((const uint8_t *)bind, 11, world, NULL, 0, NULL, &host));
    uint64_t *ids = calloc(entities, sizeof(uint64_t));
    Transform *values = calloc(entities, sizeof(Transform));
    if (ids == NULL || values == NULL) return 1;
    for (size_t i = 0; i < entities; i++) CHECK(theta_session_spawn(host, &ids[i]));
    CHECK(theta_session_set_batch(host, transform, ids, (const uint8_t *)values, sizeof(Transform), entities, NULL));
    /* The fastest round of each: other work on the machine only slows a round down. */
    double single = 1e300, batch = 1e300;
    for (int round = 1; round <= rounds; round++) {
        Transform value = {{(float)round, 1, 2}, {0, 0, 0, 1}};
        double start = now_ns();
        for (size_t i = 0; i < entities; i++)
            CHECK(theta_session_set(host, ids[i], transform, (const uint8_t *)&value, sizeof value, NULL));
        double took = now_ns() - start;
        single = took < single ? took : single;
    }
    for (int round = 1; round <= rounds; round++) {
        for (size_t i = 0; i < entities; i++) values[i].position[0] = (float)-round;
        double start = now_ns();
        CHECK(theta_session_set_batch(host, transform, ids, (const uint8_t *)values, sizeof(Transform), entities, NULL));
        double took = now_ns() - start;
        batch = took < batch ? took : batch;
    }
    printf("C:  single set %7.1f ns/value   batch set %6.1f ns/value\n", single / (double)entities,
           batch / (double)entities);
    free(ids);
    free(values);
    CHECK(theta_session_free(host));
    return 0;
}

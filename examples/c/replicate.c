/*
 * Replicates a host world into a replica through the C ABI alone: a chunked snapshot for
 * the late joiner, then 30 ticks of updates, inserts, removes, spawns and despawns sent
 * as delta frames. Exits non-zero unless the replica converges.
 *
 * Build: cc -std=c11 -Wall -Wextra -Werror -Iinclude examples/c/replicate.c \
 *           target/release/libtheta_net.a -lpthread -ldl -lm -o replicate
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "theta.h"

#define ENTITIES 1000
#define TICKS 30

/* Prints the failed call with the library's message and exits. */
static void check(ThetaStatus status, const char *call) {
    if (status == THETA_STATUS_OK) {
        return;
    }
    char message[512];
    size_t len = 0;
    theta_last_error((uint8_t *)message, sizeof message, &len);
    fprintf(stderr, "%s failed with status %d: %s\n", call, (int)status, message);
    exit(1);
}
#define CHECK(call) check((call), #call)

typedef struct Transform {
    float position[3];
    float rotation[4];
} Transform;

/* An engine-side object: the transform sits at an offset inside a larger struct, which
 * theta_world_set_batch reads through its stride. */
typedef struct Object {
    uint64_t entity;
    Transform transform;
    uint32_t color;
} Object;

static uint32_t rng_state = 12345;
static uint32_t next_random(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}

static size_t poll_all(ThetaReplica replica, size_t counts[6]) {
    ThetaEvent events[64];
    size_t total = 0, n = 0;
    do {
        CHECK(theta_replica_poll_events(replica, events, 64, &n));
        for (size_t i = 0; i < n; i++) {
            counts[events[i].kind] += 1;
        }
        total += n;
    } while (n > 0);
    return total;
}

int main(void) {
    if (theta_abi_version() != THETA_ABI_VERSION) {
        fprintf(stderr, "library ABI %u, header ABI %u\n", theta_abi_version(), THETA_ABI_VERSION);
        return 1;
    }
    printf("theta %s (ABI %u)\n", theta_version(), theta_abi_version());

    ThetaWorld world;
    uint32_t transform_id, color_id;
    CHECK(theta_world_new(NULL, &world));
    CHECK(theta_world_register_fixed(world, (const uint8_t *)"demo.Transform", 14, sizeof(Transform), &transform_id));
    CHECK(theta_world_register_fixed(world, (const uint8_t *)"demo.Color", 10, sizeof(uint32_t), &color_id));

    static Object objects[ENTITIES + TICKS * 4];
    static uint64_t ids[ENTITIES + TICKS * 4];
    size_t live = 0;
    for (; live < ENTITIES; live++) {
        CHECK(theta_world_spawn(world, &objects[live].entity));
        ids[live] = objects[live].entity;
        objects[live].transform = (Transform){{(float)live, 0.0f, 0.0f}, {0.0f, 0.0f, 0.0f, 1.0f}};
        objects[live].color = next_random();
    }
    ThetaBatchResult batch;
    CHECK(theta_world_set_batch(world, transform_id, ids, (const uint8_t *)&objects[0].transform, sizeof(Object), live, &batch));
    CHECK(theta_world_set_batch(world, color_id, ids, (const uint8_t *)&objects[0].color, sizeof(Object), live, NULL));

    /* Late join: the snapshot in chunks, delivered back to front. */
    ThetaSnapshot snapshot;
    size_t chunks = 0, snapshot_bytes = 0;
    CHECK(theta_world_snapshot(world, 0, &snapshot));
    CHECK(theta_snapshot_chunk_count(snapshot, &chunks));
    ThetaReplica replica;
    CHECK(theta_replica_new(&replica));
    for (size_t i = chunks; i-- > 0;) {
        const uint8_t *bytes;
        size_t len;
        CHECK(theta_snapshot_chunk(snapshot, i, &bytes, &len));
        CHECK(theta_replica_apply_snapshot_chunk(replica, bytes, len, NULL));
        snapshot_bytes += len;
    }
    ThetaTracker tracker;
    CHECK(theta_tracker_new_after_snapshot(snapshot, &tracker));
    CHECK(theta_snapshot_free(snapshot));

    size_t counts[6] = {0};
    size_t delta_bytes = 0;
    poll_all(replica, counts);
    for (int tick = 0; tick < TICKS; tick++) {
        /* 10 % of the objects move. */
        for (size_t i = 0; i < live / 10; i++) {
            Object *o = &objects[next_random() % live];
            o->transform.position[1] += 0.5f;
            CHECK(theta_world_set(world, o->entity, transform_id, (const uint8_t *)&o->transform, sizeof(Transform), NULL));
        }
        /* Two objects arrive, one leaves, one loses its color and one gets it back. */
        for (int k = 0; k < 2; k++) {
            Object *o = &objects[live];
            CHECK(theta_world_spawn(world, &o->entity));
            o->transform = (Transform){{0.0f, 1.0f, 2.0f}, {0.0f, 0.0f, 0.0f, 1.0f}};
            CHECK(theta_world_set(world, o->entity, transform_id, (const uint8_t *)&o->transform, sizeof(Transform), NULL));
            ids[live] = o->entity;
            live++;
        }
        size_t gone = next_random() % live;
        CHECK(theta_world_despawn(world, objects[gone].entity));
        objects[gone] = objects[live - 1];
        ids[gone] = ids[live - 1];
        live--;
        uint8_t removed = 0;
        CHECK(theta_world_remove(world, objects[next_random() % live].entity, color_id, &removed));
        uint32_t color = next_random();
        CHECK(theta_world_set(world, objects[next_random() % live].entity, color_id, (const uint8_t *)&color, sizeof color, NULL));

        ThetaDelta delta;
        const uint8_t *bytes;
        size_t len;
        CHECK(theta_tracker_diff(tracker, world, &delta));
        CHECK(theta_delta_bytes(delta, &bytes, &len));
        CHECK(theta_replica_apply_delta(replica, bytes, len, NULL));
        delta_bytes += len;
        CHECK(theta_delta_free(delta));
        CHECK(theta_world_advance(world, NULL));
        poll_all(replica, counts);
    }

    /* Wrong size and unknown entities are refused with a message; nothing changes. */
    uint8_t short_value[3] = {0};
    if (theta_world_set(world, objects[0].entity, transform_id, short_value, 3, NULL) != THETA_STATUS_WRONG_SIZE) {
        fprintf(stderr, "expected THETA_STATUS_WRONG_SIZE\n");
        return 1;
    }

    uint64_t host_hash = 0, replica_hash = 0;
    CHECK(theta_world_state_hash(world, &host_hash));
    CHECK(theta_replica_state_hash(replica, &replica_hash));
    ThetaWorldStats stats;
    CHECK(theta_world_stats(world, &stats));

    printf("snapshot: %zu chunks, %zu bytes\n", chunks, snapshot_bytes);
    printf("deltas:   %d frames, %zu bytes (%zu per frame)\n", TICKS, delta_bytes, delta_bytes / TICKS);
    printf("events:   %zu spawn, %zu insert, %zu update, %zu remove, %zu despawn\n", counts[THETA_EVENT_KIND_SPAWN],
           counts[THETA_EVENT_KIND_INSERT], counts[THETA_EVENT_KIND_UPDATE], counts[THETA_EVENT_KIND_REMOVE],
           counts[THETA_EVENT_KIND_DESPAWN]);
    printf("host:     %llu entities, %llu components\n", (unsigned long long)stats.entities,
           (unsigned long long)stats.components);
    printf("state:    host %016llx, replica %016llx: %s\n", (unsigned long long)host_hash,
           (unsigned long long)replica_hash, host_hash == replica_hash ? "converged" : "DIVERGED");

    CHECK(theta_tracker_free(tracker));
    CHECK(theta_replica_free(replica));
    CHECK(theta_world_free(world));
    return host_hash == replica_hash ? 0 : 1;
}

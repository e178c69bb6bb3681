/*
 * Declared fields from C (run by tests/c_abi_fields.rs, with warnings as errors and under
 * valgrind): a pose component (a quaternion at byte 0 to 0.1 degrees, a position at byte
 * 16 to 1 mm, a raw tag at byte 28) declared on a world; values written one by one and as
 * a batch read back within those precisions, the tag bit-exact; a NaN is
 * THETA_STATUS_NOT_QUANTISABLE and writes nothing; a standalone replica declaring the same
 * fields applies the world's snapshot to the world's hash. Then misuse: each call fails
 * with its status and changes nothing. Exits 1 on the first failure.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "theta.h"

_Static_assert(sizeof(ThetaField) == 32, "ThetaField is 32 bytes");
_Static_assert(THETA_STATUS_NOT_QUANTISABLE == 26, "NOT_QUANTISABLE is status 26");

static void fail(const char *what, int line) {
    char message[512] = "";
    size_t len = 0;
    theta_last_error((uint8_t *)message, sizeof message, &len);
    fprintf(stderr, "line %d: %s (last error: %s)\n", line, what, message);
    exit(1);
}

/* A call that must succeed. */
#define CHECK(call)                                   \
    do {                                              \
        if ((call) != THETA_STATUS_OK) fail(#call, __LINE__); \
    } while (0)

/* A condition that must hold. */
#define ASSERT(cond)                          \
    do {                                      \
        if (!(cond)) fail(#cond, __LINE__);   \
    } while (0)

/* A call that must fail with `status`, with a message naming `cause`. */
static void expect(ThetaStatus got, ThetaStatus status, const char *cause, const char *call, int line) {
    char message[512] = "";
    size_t len = 0;
    theta_last_error((uint8_t *)message, sizeof message, &len);
    if (got != status || strstr(message, cause) == NULL) {
        fprintf(stderr, "line %d: %s gave %d (%s), expected %d naming \"%s\"\n", line, call, (int)got, message,
                (int)status, cause);
        exit(1);
    }
}
#define EXPECT(call, status, cause) expect((call), (status), (cause), #call, __LINE__)

/* The engine's pose: OpenXR's XrPosef (orientation first) and a tag. */
typedef struct {
    float qx, qy, qz, qw;
    float px, py, pz;
    uint32_t tag;
} Pose;
_Static_assert(sizeof(Pose) == 32, "Pose is 32 bytes");

static ThetaField field(uint32_t kind, uint32_t offset, float precision) {
    ThetaField f;
    memset(&f, 0, sizeof f); /* unused members and reserved bytes must be 0 */
    f.kind = kind;
    f.offset = offset;
    f.precision = precision;
    return f;
}

static Pose pose_of(float angle, float x, float y, float z, uint32_t tag) {
    /* A rotation of `angle` radians about a tilted unit axis (0.48, 0.6, 0.64). */
    float s = sinf(angle / 2), c = cosf(angle / 2);
    Pose p = {0.48f * s, 0.6f * s, 0.64f * s, c, x, y, z, tag};
    return p;
}

/* Checks `got` is `sent` within 1 mm per axis and 0.1 degrees, the tag bit-exact. */
static void check_within(const Pose *sent, const Pose *got) {
    double dot = (double)sent->qx * got->qx + (double)sent->qy * got->qy + (double)sent->qz * got->qz +
                 (double)sent->qw * got->qw;
    double norm = sqrt((double)got->qx * got->qx + (double)got->qy * got->qy + (double)got->qz * got->qz +
                       (double)got->qw * got->qw);
    double cosine = fabs(dot) / norm;
    double degrees = 2 * acos(cosine > 1 ? 1 : cosine) * 180 / 3.14159265358979;
    ASSERT(degrees <= 0.1 + 1e-4);
    ASSERT(fabs((double)sent->px - got->px) <= 0.001 + 1e-6);
    ASSERT(fabs((double)sent->py - got->py) <= 0.001 + 1e-6);
    ASSERT(fabs((double)sent->pz - got->pz) <= 0.001 + 1e-6);
    ASSERT(sent->tag == got->tag);
}

static Pose get_pose(ThetaWorld world, uint64_t entity, uint32_t component) {
    Pose p;
    size_t len = 0;
    CHECK(theta_world_get(world, entity, component, (uint8_t *)&p, sizeof p, &len));
    ASSERT(len == sizeof p);
    return p;
}

int main(void) {
    ASSERT(theta_abi_version() == THETA_ABI_VERSION);
    ThetaWorld world;
    CHECK(theta_world_new(NULL, &world));
    uint32_t pose = 0, raw = 0, text = 0;
    CHECK(theta_world_register_fixed(world, (const uint8_t *)"c.Pose", 6, sizeof(Pose), &pose));
    CHECK(theta_world_register_fixed(world, (const uint8_t *)"c.Raw", 5, 12, &raw));
    CHECK(theta_world_register_variable(world, (const uint8_t *)"c.Text", 6, 32, &text));
    const ThetaField fields[2] = {
        field(THETA_FIELD_ROTATION, offsetof(Pose, qx), 0.1f),
        field(THETA_FIELD_POSITION, offsetof(Pose, px), 1.0f),
    };
    CHECK(theta_world_declare_fields(world, pose, fields, 2));
    CHECK(theta_world_declare_fields(world, pose, fields, 2)); /* the same again: a no-op */

    /* One value, then a batch. */
    uint64_t entities[4];
    for (int i = 0; i < 4; i++) CHECK(theta_world_spawn(world, &entities[i]));
    Pose sent = pose_of(0.9f, 1.2345678f, -0.0004f, 123.456789f, 0xdeadbeefu);
    uint8_t change = 0;
    CHECK(theta_world_set(world, entities[0], pose, (const uint8_t *)&sent, sizeof sent, &change));
    ASSERT(change == THETA_CHANGE_INSERTED);
    Pose got = get_pose(world, entities[0], pose);
    ASSERT(memcmp(&sent, &got, sizeof sent) != 0); /* quantised */
    check_within(&sent, &got);
    Pose batch[3];
    for (int i = 0; i < 3; i++) batch[i] = pose_of(0.2f * (float)i, 0.3333f * (float)i, 2.0007f, -5.5f, (uint32_t)i);
    ThetaBatchResult result;
    CHECK(theta_world_set_batch(world, pose, &entities[1], (const uint8_t *)batch, sizeof(Pose), 3, &result));
    ASSERT(result.inserted == 3);
    for (int i = 0; i < 3; i++) {
        Pose p = get_pose(world, entities[1 + i], pose);
        check_within(&batch[i], &p);
    }
    printf("pose within 1 mm and 0.1 degrees, tag bit-exact\n");

    /* A NaN: refused, nothing written (one bad value fails the whole batch). */
    uint64_t before = 0, after = 0;
    CHECK(theta_world_state_hash(world, &before));
    Pose bad = sent;
    bad.py = NAN;
    EXPECT(theta_world_set(world, entities[0], pose, (const uint8_t *)&bad, sizeof bad, NULL),
           THETA_STATUS_NOT_QUANTISABLE, "not a finite number");
    batch[2] = bad;
    EXPECT(theta_world_set_batch(world, pose, &entities[1], (const uint8_t *)batch, sizeof(Pose), 3, NULL),
           THETA_STATUS_NOT_QUANTISABLE, "c.Pose");
    CHECK(theta_world_state_hash(world, &after));
    ASSERT(before == after);

    /* A replica with the same types and fields applies the world's snapshot. */
    ThetaReplica replica;
    CHECK(theta_replica_new(&replica));
    uint32_t id = 0;
    CHECK(theta_replica_register_fixed(replica, (const uint8_t *)"c.Pose", 6, sizeof(Pose), &id));
    ASSERT(id == pose);
    CHECK(theta_replica_declare_fields(replica, pose, fields, 2));
    ThetaSnapshot snapshot;
    size_t chunks = 0;
    CHECK(theta_world_snapshot(world, 0, &snapshot));
    CHECK(theta_snapshot_chunk_count(snapshot, &chunks));
    ASSERT(chunks > 0);
    for (size_t i = 0; i < chunks; i++) {
        const uint8_t *bytes = NULL;
        size_t len = 0;
        CHECK(theta_snapshot_chunk(snapshot, i, &bytes, &len));
        CHECK(theta_replica_apply(replica, bytes, len, NULL));
    }
    CHECK(theta_snapshot_free(snapshot));
    uint64_t replica_hash = 0;
    CHECK(theta_replica_state_hash(replica, &replica_hash));
    ASSERT(replica_hash == after);
    printf("replica hash equal: %016llx\n", (unsigned long long)replica_hash);

    /* Misuse: each its status, nothing changed. */
    ThetaField many[THETA_MAX_FIELDS + 1];
    for (size_t i = 0; i < THETA_MAX_FIELDS + 1; i++) many[i] = field(THETA_FIELD_FLAGS, 0, 0);
    for (size_t i = 0; i < THETA_MAX_FIELDS + 1; i++) many[i].bytes = 1;
    EXPECT(theta_world_declare_fields(world, raw, NULL, 1), THETA_STATUS_NULL_POINTER, "fields");
    EXPECT(theta_world_declare_fields(world, raw, many, THETA_MAX_FIELDS + 1), THETA_STATUS_INVALID_ARGUMENT,
           "at most");
    ThetaField unknown = field(7, 0, 1.0f);
    EXPECT(theta_world_declare_fields(world, raw, &unknown, 1), THETA_STATUS_INVALID_ARGUMENT, "kind 7");
    ThetaField overlap[2] = {field(THETA_FIELD_POSITION, 0, 1.0f), field(THETA_FIELD_SCALAR, 8, 0.1f)};
    overlap[1].max = 1.0f;
    EXPECT(theta_world_declare_fields(world, raw, overlap, 2), THETA_STATUS_INVALID_ARGUMENT, "overlaps");
    ThetaField overrun = field(THETA_FIELD_POSITION, 4, 1.0f);
    EXPECT(theta_world_declare_fields(world, raw, &overrun, 1), THETA_STATUS_INVALID_ARGUMENT, "runs past");
    ThetaField stray = field(THETA_FIELD_POSITION, 0, 1.0f);
    stray.reserved[0] = 1;
    EXPECT(theta_world_declare_fields(world, raw, &stray, 1), THETA_STATUS_INVALID_ARGUMENT, "reserved");
    EXPECT(theta_world_declare_fields(world, text, fields, 1), THETA_STATUS_INVALID_ARGUMENT, "variable size");
    EXPECT(theta_world_declare_fields(world, 4242, fields, 1), THETA_STATUS_UNKNOWN_COMPONENT, "component");
    ThetaField coarser[2] = {fields[0], fields[1]};
    coarser[1].precision = 2.0f;
    EXPECT(theta_world_declare_fields(world, pose, coarser, 2), THETA_STATUS_REGISTRY_CONFLICT, "other fields");
    EXPECT(theta_replica_declare_fields(replica, pose, coarser, 2), THETA_STATUS_REGISTRY_CONFLICT,
           "other fields");
    /* Fields after a value. */
    const float xyz[3] = {0.1f, 0.2f, 0.3000001f};
    CHECK(theta_world_set(world, entities[0], raw, (const uint8_t *)xyz, sizeof xyz, NULL));
    EXPECT(theta_world_declare_fields(world, raw, &overlap[0], 1), THETA_STATUS_INVALID_ARGUMENT, "first value");
    /* Nothing changed: the raw type is still bit-exact, the pose still to 1 mm. */
    float back[3];
    size_t len = 0;
    CHECK(theta_world_get(world, entities[0], raw, (uint8_t *)back, sizeof back, &len));
    ASSERT(len == sizeof back && memcmp(back, xyz, sizeof xyz) == 0);
    Pose fine = pose_of(0.1f, 0.0014f, 0, 0, 1);
    CHECK(theta_world_set(world, entities[0], pose, (const uint8_t *)&fine, sizeof fine, NULL));
    got = get_pose(world, entities[0], pose);
    ASSERT(fabsf(got.px - 0.002f) < 1e-6f); /* 1 mm: a 2 mm grid; 2 mm would give 0 */
    /* Stale handles. */
    CHECK(theta_replica_free(replica));
    EXPECT(theta_replica_declare_fields(replica, pose, fields, 2), THETA_STATUS_INVALID_HANDLE, "replica");
    CHECK(theta_world_free(world));
    EXPECT(theta_world_declare_fields(world, pose, fields, 2), THETA_STATUS_INVALID_HANDLE, "world");
    printf("misuse: every status as expected\n");
    return 0;
}

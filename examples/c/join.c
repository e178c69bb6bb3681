/*
 * Joins a session that `theta host` serves, through the C ABI alone: builds the registry
 * world with the host's component types, joins with the host's certificate fingerprint
 * pinned and a join token, pushes a head pose each tick on the session clock, and ticks
 * until the host shuts down. Prints the peer id the host gave, then the final state hash,
 * which equals the host's final hash once this client caught up. Exits 1 on any failure,
 * or when the host has not closed the session after SECONDS (default 30).
 *
 *   theta host --bind 127.0.0.1:4433 --ticks 600     # prints the fingerprint and a token
 *   ./join 127.0.0.1:4433 FINGERPRINT TOKEN [SECONDS]
 *
 * Build: cc -std=c11 -Wall -Wextra -Werror -Iinclude examples/c/join.c \
 *           target/release/libtheta_net.a -lpthread -ldl -lm -o join
 */
#define _POSIX_C_SOURCE 200809L /* nanosleep, clock_gettime */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "theta.h"

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

/* The value of a hex digit, or -1. */
static int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* 64 hex digits, `:` between pairs allowed, as `theta host` prints them. */
static int parse_fingerprint(const char *text, uint8_t out[THETA_FINGERPRINT_LEN]) {
    size_t n = 0;
    for (const char *p = text; *p != '\0'; p++) {
        const int value = hex_digit(*p);
        if (*p == ':') {
            continue;
        }
        if (value < 0 || n == 2 * THETA_FINGERPRINT_LEN) {
            return 0;
        }
        out[n / 2] = (uint8_t)(n % 2 == 0 ? value << 4 : out[n / 2] | value);
        n++;
    }
    return n == 2 * THETA_FINGERPRINT_LEN;
}

static double seconds_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* --8<-- [start:join] */
/* The client's registry world: the same component types as the host's, same names and
 * layouts, in the same order (`theta host` registers these three), and the same declared
 * fields (its transform: a position to 1 mm at byte 0, a rotation to 0.1 degrees at 12).
 * The session only reads its types; the host refuses a join whose registry differs. */
static ThetaWorld demo_registry(void) {
    ThetaWorld world;
    uint32_t transform, id;
    ThetaField fields[2];
    memset(fields, 0, sizeof fields); /* unused members and reserved bytes are 0 */
    fields[0].kind = THETA_FIELD_POSITION;
    fields[0].offset = 0;
    fields[0].precision = 1.0f;
    fields[1].kind = THETA_FIELD_ROTATION;
    fields[1].offset = 12;
    fields[1].precision = 0.1f;
    CHECK(theta_world_new(NULL, &world));
    CHECK(theta_world_register_fixed(world, (const uint8_t *)"demo.Transform", 14, 28, &transform));
    CHECK(theta_world_declare_fields(world, transform, fields, 2));
    CHECK(theta_world_register_fixed(world, (const uint8_t *)"demo.Color", 10, 4, &id));
    CHECK(theta_world_register_variable(world, (const uint8_t *)"demo.Label", 10, 64, &id));
    return world;
}

/* Ticks until the host closes the session: 1 when it did, 0 on any other end. */
static int run_client(const char *addr, const uint8_t fingerprint[THETA_FINGERPRINT_LEN],
                      const char *token, double give_up_at) {
    ThetaWorld registry = demo_registry();
    ThetaSession session;
    /* The peer id is not chosen here: it is the one the host put in the token. */
    CHECK(theta_session_join((const uint8_t *)addr, strlen(addr), fingerprint,
                             (const uint8_t *)token, strlen(token), registry, NULL, &session));
    CHECK(theta_world_free(registry)); /* not consumed by the join: free it any time */

    int host_closed = 0, running = 1;
    ThetaSessionEvent events[64];
    size_t n = 0;
    while (running && seconds_now() < give_up_at) {
        /* This process's clock (nanoseconds since the session started, or the engine's
         * XrTime after theta_session_set_xr_time); the library converts it to the host's. */
        int64_t now;
        CHECK(theta_session_now(session, &now));
        ThetaPosef head = {.orientation = {0, 0, 0, 1}, .position = {0, 1.6f, 0}};
        CHECK(theta_session_push_pose(session, 0 /* head */, &head, now, 0xF /* tracked */));
        CHECK(theta_session_tick(session));
        do {
            CHECK(theta_session_poll_events(session, events, 64, &n));
            for (size_t i = 0; i < n; i++) {
                const ThetaSessionEvent *e = &events[i];
                if (e->kind == THETA_SESSION_EVENT_KIND_JOINED) {
                    printf("joined as peer %u\n", (unsigned)e->peer); /* the token's */
                } else if (e->kind == THETA_SESSION_EVENT_KIND_DISCONNECTED) {
                    printf("disconnected: %.*s\n", (int)e->data_len, (const char *)e->data);
                    host_closed = e->cause == THETA_DISCONNECT_CAUSE_HOST_CLOSED;
                    running = 0;
                }
            }
        } while (n == 64);
        nanosleep(&(struct timespec){.tv_nsec = 16 * 1000 * 1000}, NULL); /* ~60 Hz */
    }
    uint64_t hash;
    ThetaSessionStats stats;
    CHECK(theta_session_state_hash(session, &hash));
    CHECK(theta_session_stats(session, &stats));
    printf("final state hash %016llx (host tick %llu, %llu entities)\n", (unsigned long long)hash,
           (unsigned long long)stats.tick, (unsigned long long)stats.entities);
    CHECK(theta_session_free(session));
    return host_closed;
}
/* --8<-- [end:join] */

int main(int argc, char **argv) {
    uint8_t fingerprint[THETA_FINGERPRINT_LEN];
    const double seconds = argc > 4 ? strtod(argv[4], NULL) : 30.0;
    if (argc < 4 || !parse_fingerprint(argv[2], fingerprint) || !(seconds > 0)) {
        fprintf(stderr, "usage: %s ADDR FINGERPRINT TOKEN [SECONDS]\n", argv[0]);
        return 2;
    }
    if (theta_abi_version() != THETA_ABI_VERSION) {
        fprintf(stderr, "theta.h and the library disagree on the ABI version\n");
        return 1;
    }
    if (!run_client(argv[1], fingerprint, argv[3], seconds_now() + seconds)) {
        fprintf(stderr, "the session did not end with the host closing it\n");
        return 1;
    }
    return 0;
}

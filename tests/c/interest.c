/*
 * Interest management from C (run by tests/c_abi_interest.rs, with warnings as errors and
 * under valgrind): a host managing interest over 10 m cells and two clients over an
 * in-memory transport (in order, lossless). 64 entities stand on an 8 x 8 grid 5 m apart,
 * their positions in a component the host reads (theta_session_set_interest_source); a
 * diagonal of them carries scope 7; one entity has no position and no scope (global).
 * Client A looks at the corner at the origin through a sphere, client B subscribes scope
 * 7. Each must hold exactly what theta_session_sees says, its state hash equal to
 * theta_session_interest_hash. A then moves its sphere to the far corner: what it saw
 * leaves as LEFT events, gone from its world, alive on the host. Then misuse: each call
 * fails with its status and changes nothing. Exits 1 on the first failure.
 */
#define _POSIX_C_SOURCE 200809L /* nanosleep, clock_gettime */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "theta.h"

#define SIDE 8
#define SPACING 5.0f
#define ENTITIES (SIDE * SIDE + 1) /* the grid and the global entity */
#define SCOPE 7u
#define CLIENTS 2
#define CLIENT_CONN 1u
#define HOST_CONN(i) (100u + (uint64_t)(i))
#define WAIT_SECONDS 120 /* valgrind runs this ~40 times slower */

_Static_assert(THETA_SESSION_EVENT_KIND_LEFT == 25, "LEFT is event kind 25");

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

/* ---- The transport: a queue each way per client, in order and lossless. ------------- */

typedef struct Message {
    uint8_t kind; /* THETA_TRANSPORT_OUTPUT_KIND_SEND or _CLOSE */
    uint8_t channel;
    uint32_t code;
    uint8_t *bytes;
    size_t len;
    struct Message *next;
} Message;

typedef struct {
    Message *head, *tail;
} Queue;

typedef struct {
    ThetaSession session;
    Queue to_host, to_client;
    int joined;
} Client;

static ThetaSession host;
static Client clients[CLIENTS];
static uint8_t *buffer;
static size_t capacity;

/* What client A heard: the entities that left its interest, and despawns. */
static uint64_t left[ENTITIES];
static size_t left_count;
static size_t despawns;

static void push(Queue *q, const ThetaTransportOutput *out) {
    Message *m = calloc(1, sizeof *m);
    ASSERT(m != NULL);
    m->kind = out->kind;
    m->channel = out->channel;
    m->code = out->code;
    m->len = out->len;
    m->bytes = malloc(out->len ? out->len : 1);
    ASSERT(m->bytes != NULL);
    memcpy(m->bytes, buffer, out->len);
    if (q->tail) {
        q->tail->next = m;
    } else {
        q->head = m;
    }
    q->tail = m;
}

/* Takes `session`'s next output into the shared buffer (grown when too small); 0 when
 * there is none. */
static int poll_output(ThetaSession session, ThetaTransportOutput *out) {
    for (;;) {
        ThetaStatus s = theta_session_transport_poll(session, buffer, capacity, out);
        if (s == THETA_STATUS_BUFFER_TOO_SMALL) {
            capacity = out->len;
            buffer = realloc(buffer, capacity);
            ASSERT(buffer != NULL);
            continue;
        }
        CHECK(s);
        return out->kind != THETA_TRANSPORT_OUTPUT_KIND_NONE;
    }
}

/* Hands every queued message to `to` on its connection `conn`. */
/* Drops every queued message. */
static void discard(Queue *q) {
    while (q->head) {
        Message *m = q->head;
        q->head = m->next;
        free(m->bytes);
        free(m);
    }
    q->tail = NULL;
}

static void deliver(Queue *q, ThetaSession to, uint64_t conn) {
    while (q->head) {
        Message *m = q->head;
        ThetaStatus s = m->kind == THETA_TRANSPORT_OUTPUT_KIND_CLOSE
                            ? theta_session_transport_closed(to, conn, m->code, m->bytes, m->len)
                            : theta_session_transport_receive(to, conn, m->channel, m->bytes, m->len);
        if (s != THETA_STATUS_UNKNOWN_CONNECTION) {
            CHECK(s);
        }
        q->head = m->next;
        free(m->bytes);
        free(m);
    }
    q->tail = NULL;
}

/* Every event of `session`; client A's LEFT and DESPAWN are noted. */
static void poll_events(ThetaSession session, Client *client) {
    ThetaSessionEvent events[16];
    size_t n = 0;
    do {
        CHECK(theta_session_poll_events(session, events, 16, &n));
        for (size_t i = 0; i < n; i++) {
            if (client && events[i].kind == THETA_SESSION_EVENT_KIND_JOINED) {
                client->joined = 1;
            }
            if (client == &clients[0] && events[i].kind == THETA_SESSION_EVENT_KIND_LEFT) {
                ASSERT(left_count < ENTITIES);
                left[left_count++] = events[i].entity;
            }
            if (client == &clients[0] && events[i].kind == THETA_SESSION_EVENT_KIND_DESPAWN) {
                despawns++;
            }
        }
    } while (n == 16);
}

/* One round: every session ticks, outputs cross, events are polled. */
static void round_trip(void) {
    ThetaTransportOutput out;
    CHECK(theta_session_tick(host));
    while (poll_output(host, &out)) {
        for (int i = 0; i < CLIENTS; i++) {
            if (out.conn == HOST_CONN(i)) {
                push(&clients[i].to_client, &out);
            }
        }
    }
    for (int i = 0; i < CLIENTS; i++) {
        CHECK(theta_session_tick(clients[i].session));
        while (poll_output(clients[i].session, &out)) {
            push(&clients[i].to_host, &out);
        }
    }
    for (int i = 0; i < CLIENTS; i++) {
        deliver(&clients[i].to_host, host, HOST_CONN(i));
        deliver(&clients[i].to_client, clients[i].session, CLIENT_CONN);
    }
    poll_events(host, NULL);
    for (int i = 0; i < CLIENTS; i++) {
        poll_events(clients[i].session, &clients[i]);
    }
}

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* ---- The session's state, through the C ABI. ----------------------------------------- */

static uint64_t state_hash(ThetaSession session) {
    uint64_t h = 0;
    CHECK(theta_session_state_hash(session, &h));
    return h;
}

static uint64_t interest_hash(uint16_t peer) {
    uint64_t h = 0;
    CHECK(theta_session_interest_hash(host, peer, &h));
    return h;
}

static int is_alive(ThetaSession session, uint64_t entity) {
    uint8_t alive = 0;
    CHECK(theta_session_is_alive(session, entity, &alive));
    return alive;
}

/* Whether client i holds what the host says it sees, hash for hash. */
static int holds(int i) { return state_hash(clients[i].session) == interest_hash((uint16_t)(i + 1)); }

/* Rounds until `done` holds, then a few more; fails past the deadline. */
static void until(int (*done)(void), const char *what) {
    double deadline = seconds() + WAIT_SECONDS;
    while (!done()) {
        if (seconds() > deadline) {
            fprintf(stderr, "%s: not within %d s\n", what, WAIT_SECONDS);
            exit(1);
        }
        round_trip();
        nanosleep(&(struct timespec){.tv_nsec = 1000 * 1000}, NULL);
    }
    for (int r = 0; r < 5; r++) {
        round_trip();
    }
    if (!done()) {
        fprintf(stderr, "%s: did not last\n", what);
        exit(1);
    }
}

static uint64_t entities[ENTITIES];

static int sees(uint16_t peer, uint64_t entity) {
    uint8_t out = 0;
    CHECK(theta_session_sees(host, peer, entity, &out));
    return out;
}

static int both_joined(void) { return clients[0].joined && clients[1].joined; }
/* The host took each wish (A sees the origin, B the diagonal's end), and each client
 * holds what it sees. */
static int both_hold(void) {
    return sees(1, entities[0]) && sees(2, entities[SIDE - 1]) && holds(0) && holds(1);
}
/* A heard the 8 of the corner leave, the host took its new wish, both hold what they see. */
static int moved(void) {
    return left_count == 8 && sees(1, entities[SIDE * SIDE - 1]) && holds(0) && holds(1);
}

/* Checks both ways that client i holds exactly what the host says it sees; writes those
 * entities to `seen` (may be NULL) and returns how many. */
static size_t check_holds(int i, uint64_t *seen) {
    size_t count = 0;
    for (size_t k = 0; k < ENTITIES; k++) {
        uint8_t sees = 9;
        CHECK(theta_session_sees(host, (uint16_t)(i + 1), entities[k], &sees));
        ASSERT(sees <= 1);
        if (sees != is_alive(clients[i].session, entities[k])) {
            fprintf(stderr, "client %d, entity %llu: sees %d, holds %d\n", i + 1, (unsigned long long)entities[k],
                    sees, !sees);
            exit(1);
        }
        if (sees) {
            if (seen) {
                seen[count] = entities[k];
            }
            count++;
        }
    }
    return count;
}

static ThetaInterestVolume sphere(float x, float z, float radius, float outer) {
    ThetaInterestVolume v;
    memset(&v, 0, sizeof v);
    v.kind = THETA_INTEREST_VOLUME_SPHERE;
    v.a[0] = x;
    v.a[2] = z;
    v.inner = radius;
    v.outer = outer;
    return v;
}

static ThetaWorld new_world(uint32_t *position, uint32_t *tag) {
    ThetaWorld world = {0};
    CHECK(theta_world_new(NULL, &world));
    CHECK(theta_world_register_fixed(world, (const uint8_t *)"interest.Position", 17, 12, position));
    CHECK(theta_world_register_fixed(world, (const uint8_t *)"interest.Tag", 12, 4, tag));
    return world;
}

static void misuse(uint32_t position, uint32_t tag, uint64_t target);

int main(void) {
    uint32_t position = 0, tag = 0;
    ThetaWorld world = new_world(&position, &tag);
    ThetaSessionConfig config;
    CHECK(theta_session_config_init(&config));
    config.interest_cell = 10.0f;
    CHECK(theta_session_host_custom(world, NULL, 0, &config, NULL, &host));

    /* The scene: the grid (i-major), a diagonal in the scope, the global entity last. */
    for (int i = 0; i < SIDE; i++) {
        for (int j = 0; j < SIDE; j++) {
            uint64_t e = 0;
            CHECK(theta_session_spawn(host, &e));
            float p[3] = {(float)i * SPACING, 0.0f, (float)j * SPACING};
            CHECK(theta_session_set(host, e, position, (const uint8_t *)p, sizeof p, NULL));
            uint8_t t[4] = {(uint8_t)i, (uint8_t)j, 0, 0};
            CHECK(theta_session_set(host, e, tag, t, 4, NULL));
            if (i + j == SIDE - 1) {
                uint32_t scopes[2] = {SCOPE, 99};
                CHECK(theta_session_set_interest_scopes(host, e, scopes, 2));
            }
            entities[i * SIDE + j] = e;
        }
    }
    CHECK(theta_session_spawn(host, &entities[ENTITIES - 1]));
    uint8_t global_tag[4] = {0xFF, 0xFF, 0xFF, 0xFF};
    CHECK(theta_session_set(host, entities[ENTITIES - 1], tag, global_tag, 4, NULL));
    /* (The host's float layout is the component's: little-endian on every target here.) */
    CHECK(theta_session_set_interest_source(host, position, 0));

    /* The clients: A wishes for the corner before it joins, B subscribes after. */
    for (int i = 0; i < CLIENTS; i++) {
        uint8_t token[THETA_JOIN_TOKEN_LEN];
        size_t len = 0;
        CHECK(theta_session_mint_token(host, (uint16_t)(i + 1), 60, token, sizeof token, &len));
        uint32_t p = 0, t = 0;
        ThetaWorld registry = new_world(&p, &t);
        CHECK(theta_session_join_custom(token, len, registry, NULL, NULL, &clients[i].session));
        CHECK(theta_world_free(registry));
        CHECK(theta_session_transport_connected(host, HOST_CONN(i)));
        CHECK(theta_session_transport_connected(clients[i].session, CLIENT_CONN));
    }
    ThetaSession a = clients[0].session, b = clients[1].session;
    ThetaInterestVolume corner = sphere(0.0f, 0.0f, 12.0f, 14.0f);
    CHECK(theta_session_set_interest(a, &corner, 1, NULL, 0));
    until(both_joined, "the joins");
    uint32_t scope = SCOPE;
    CHECK(theta_session_set_interest(b, NULL, 0, &scope, 1));
    until(both_hold, "each client holds what it sees");

    uint64_t near[ENTITIES];
    size_t near_count = check_holds(0, near);
    ASSERT(near_count == 9); /* 8 of the grid within 12 m of the origin, and the global one */
    printf("A holds its corner: %zu entities\n", near_count);
    size_t scoped = check_holds(1, NULL);
    ASSERT(scoped == 9); /* the diagonal, and the global one */
    printf("B holds its scope: %zu entities\n", scoped);
    ASSERT(state_hash(a) != state_hash(host));

    /* A looks at the far corner: the 8 it saw leave, alive on the host. */
    float far = (float)(SIDE - 1) * SPACING;
    ThetaInterestVolume away = sphere(far, far, 12.0f, 14.0f);
    CHECK(theta_session_set_interest(a, &away, 1, NULL, 0));
    until(moved, "A holds the far corner");
    ASSERT(left_count == near_count - 1);
    for (size_t k = 0; k < near_count - 1; k++) {
        int found = 0;
        for (size_t l = 0; l < left_count; l++) {
            found |= left[l] == near[k];
        }
        ASSERT(found);
        ASSERT(!is_alive(a, near[k]));
        ASSERT(is_alive(host, near[k]));
    }
    ASSERT(despawns == 0);
    ASSERT(check_holds(0, NULL) == 9);
    printf("A left %zu entities, despawned none\n", left_count);

    misuse(position, tag, near[0]);

    for (int i = 0; i < CLIENTS; i++) {
        CHECK(theta_session_free(clients[i].session));
        discard(&clients[i].to_host);
        discard(&clients[i].to_client);
    }
    CHECK(theta_session_free(host));
    free(buffer);
    return 0;
}

/* Each misuse fails with its status and a message naming the cause; none changes what A
 * holds. `target` is alive on the host. */
static void misuse(uint32_t position, uint32_t tag, uint64_t target) {
    ThetaSession a = clients[0].session;
    uint64_t before = state_hash(a);
    ThetaInterestVolume volumes[THETA_MAX_INTEREST_VOLUMES + 1];
    for (size_t i = 0; i < THETA_MAX_INTEREST_VOLUMES + 1; i++) {
        volumes[i] = sphere(0.0f, 0.0f, 1.0f, 1.0f);
    }
    uint32_t scopes[THETA_MAX_INTEREST_SCOPES + 1] = {0};
    uint8_t out = 0;
    uint64_t hash = 0;

    /* NULL with a count; NULL out-parameters. */
    EXPECT(theta_session_set_interest_scopes(host, target, NULL, 2), THETA_STATUS_NULL_POINTER, "scopes");
    EXPECT(theta_session_set_interest(a, NULL, 1, NULL, 0), THETA_STATUS_NULL_POINTER, "volumes");
    EXPECT(theta_session_sees(host, 1, target, NULL), THETA_STATUS_NULL_POINTER, "out_sees");
    EXPECT(theta_session_interest_hash(host, 1, NULL), THETA_STATUS_NULL_POINTER, "out_hash");
    /* Bad numbers and too many. */
    float nan_position[3] = {NAN, 0.0f, 0.0f};
    EXPECT(theta_session_set_interest_position(host, target, nan_position), THETA_STATUS_INVALID_ARGUMENT, "finite");
    ThetaInterestVolume bad = sphere(0.0f, 0.0f, -1.0f, 1.0f);
    EXPECT(theta_session_set_interest(a, &bad, 1, NULL, 0), THETA_STATUS_INVALID_ARGUMENT, "radius");
    bad = sphere(0.0f, 0.0f, 5.0f, 4.0f);
    EXPECT(theta_session_set_client_interest(host, 1, &bad, 1, NULL, 0), THETA_STATUS_INVALID_ARGUMENT, "outer");
    bad.kind = 7;
    EXPECT(theta_session_set_interest(a, &bad, 1, NULL, 0), THETA_STATUS_INVALID_ARGUMENT, "kind 7");
    bad = sphere(0.0f, 0.0f, 1.0f, 1.0f);
    bad.kind = THETA_INTEREST_VOLUME_BOX;
    bad.a[0] = 2.0f; /* min x > max x */
    EXPECT(theta_session_set_interest(a, &bad, 1, NULL, 0), THETA_STATUS_INVALID_ARGUMENT, "min <= max");
    EXPECT(theta_session_set_interest(a, volumes, THETA_MAX_INTEREST_VOLUMES + 1, NULL, 0),
           THETA_STATUS_INVALID_ARGUMENT, "9 given");
    EXPECT(theta_session_set_interest_scopes(host, target, scopes, THETA_MAX_INTEREST_SCOPES + 1),
           THETA_STATUS_INVALID_ARGUMENT, "65 given");
    EXPECT(theta_session_set_interest_source(host, position, 4), THETA_STATUS_INVALID_ARGUMENT, "offset 4");
    EXPECT(theta_session_set_interest_source(host, tag, 0), THETA_STATUS_INVALID_ARGUMENT, "offset 0");
    EXPECT(theta_session_set_interest_source(host, 0xBAD, 0), THETA_STATUS_UNKNOWN_COMPONENT, "not registered");
    EXPECT(theta_session_set_priority(host, target, 0.0f), THETA_STATUS_INVALID_ARGUMENT, "priority weight");
    EXPECT(theta_session_set_priority(host, target, NAN), THETA_STATUS_INVALID_ARGUMENT, "priority weight");
    EXPECT(theta_session_set_priority(host, target, 1000.0f), THETA_STATUS_INVALID_ARGUMENT, "priority weight");
    /* Dead entities, wrong roles, the host's own peer. */
    EXPECT(theta_session_set_interest_scopes(host, target + 100000, scopes, 1), THETA_STATUS_DEAD_ENTITY, "no live");
    EXPECT(theta_session_sees(host, 1, 0, &out), THETA_STATUS_DEAD_ENTITY, "not alive");
    EXPECT(theta_session_set_interest_position(a, target, NULL), THETA_STATUS_WRONG_ROLE, "host");
    EXPECT(theta_session_interest_hash(a, 2, &hash), THETA_STATUS_WRONG_ROLE, "host");
    EXPECT(theta_session_set_interest(host, NULL, 0, NULL, 0), THETA_STATUS_WRONG_ROLE, "client");
    EXPECT(theta_session_sees(host, 0, target, &out), THETA_STATUS_INVALID_ARGUMENT, "host's own");
    /* A host without interest management; a stale handle. */
    uint32_t p = 0, t = 0;
    ThetaSession plain = {0};
    CHECK(theta_session_host_custom(new_world(&p, &t), NULL, 0, NULL, NULL, &plain));
    uint64_t e = 0;
    CHECK(theta_session_spawn(plain, &e));
    EXPECT(theta_session_set_interest_scopes(plain, e, scopes, 1), THETA_STATUS_INTEREST_OFF, "interest");
    EXPECT(theta_session_set_interest_source(plain, p, 0), THETA_STATUS_INTEREST_OFF, "interest");
    CHECK(theta_session_free(plain));
    EXPECT(theta_session_set_priority(plain, e, 2.0f), THETA_STATUS_INVALID_HANDLE, "not live");

    /* Nothing changed. */
    for (int r = 0; r < 10; r++) {
        round_trip();
    }
    ASSERT(state_hash(a) == before);
    ASSERT(interest_hash(1) == before);
    ASSERT(out == 0 && hash == 0);
    printf("misuse: every status as expected\n");
}

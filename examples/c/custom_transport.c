/*
 * Bring your own transport, in C: a host and two clients whose sessions run over a lossy
 * in-memory transport written here, as an engine would plug in Steam Networking Sockets,
 * EOS P2P or a WebRTC data channel. No socket is opened and the library starts no network
 * thread. The transport is seeded: unreliable messages are lost (20 %), duplicated (10 %)
 * and reordered (each is delivered 0 to 3 rounds late, so later ones overtake); reliable
 * messages are late but in order. The host writes values for a while, each client writes
 * an entity of its own; once the writes stop, every state hash must equal the host's.
 * Then the host leaves: its goodbye and closes go through the same transport.
 *
 *   ./custom_transport [SEED] [MAX_ROUNDS]     # prints "converged", exits 1 otherwise
 *
 * Build: cc -std=c11 -Wall -Wextra -Werror -Iinclude examples/c/custom_transport.c \
 *           libtheta_net.a -lpthread -ldl -lm -o custom_transport
 */
#define _POSIX_C_SOURCE 200809L /* nanosleep */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "theta.h"

#define CLIENTS 2
#define ENTITIES 30
#define WRITE_ROUNDS 120

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

/* ---- The transport: a seeded, lossy, in-memory network. ---------------------------- */

/* SplitMix64: the network's only source of chance. */
static uint64_t rng_state;
static uint64_t rng_next(void) {
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
/* True with probability percent / 100. */
static int chance(unsigned percent) { return rng_next() % 100 < percent; }

/* A message on its way: to the host (to == 0) or to client to - 1. */
typedef struct {
    uint64_t due;  /* the round it arrives in */
    uint64_t order; /* the order it was sent in: ties keep it */
    int to;
    uint64_t conn; /* the receiving end's id of the connection */
    uint8_t kind;  /* THETA_TRANSPORT_OUTPUT_KIND_SEND or _CLOSE */
    uint8_t channel;
    uint32_t code;
    uint8_t *bytes;
    size_t len;
} Message;

typedef struct {
    Message *items;
    size_t count, capacity;
    uint64_t sent;
} Network;

/* Connection ids, as each engine names them: the host calls client i's connection
 * 100 + i, each client calls its own 7. Reliable messages of a connection never overtake
 * each other: each way remembers the latest round one is due. */
#define HOST_CONN(i) (100u + (uint64_t)(i))
#define CLIENT_CONN 7u
static uint64_t reliable_due[CLIENTS][2];
static int link_open[CLIENTS];

static void schedule(Network *net, Message m) {
    if (net->count == net->capacity) {
        net->capacity = net->capacity ? 2 * net->capacity : 64;
        Message *grown = realloc(net->items, net->capacity * sizeof *grown);
        if (!grown) {
            fprintf(stderr, "out of memory\n");
            exit(1);
        }
        net->items = grown;
    }
    m.order = net->sent++;
    net->items[net->count++] = m;
}

/* Puts one output of a session on the network: `from` is 0 for the host, i + 1 for
 * client i. Unreliable messages are lost, duplicated and delayed here. */
static void transmit(Network *net, uint64_t round, int from, const ThetaTransportOutput *out,
                     const uint8_t *bytes) {
    const int client = from == 0 ? (int)(out->conn - HOST_CONN(0)) : from - 1;
    const int way = from == 0; /* 0: to the host, 1: to the client */
    if (client < 0 || client >= CLIENTS || !link_open[client]) {
        return;
    }
    Message m = {.to = from == 0 ? client + 1 : 0,
                 .conn = from == 0 ? CLIENT_CONN : HOST_CONN(client),
                 .kind = out->kind,
                 .channel = out->channel,
                 .code = out->code,
                 .len = out->len};
    if (out->kind == THETA_TRANSPORT_OUTPUT_KIND_SEND && out->channel == THETA_CHANNEL_UNRELIABLE) {
        if (chance(20)) {
            return; /* lost */
        }
        const int copies = chance(10) ? 2 : 1;
        for (int c = 0; c < copies; c++) {
            m.due = round + rng_next() % 4; /* reordered by delay */
            m.bytes = malloc(out->len ? out->len : 1);
            memcpy(m.bytes, bytes, out->len);
            schedule(net, m);
        }
        return;
    }
    /* Reliable, and closes (an orderly close comes after what was sent reliably). */
    uint64_t due = round + rng_next() % 3;
    if (due < reliable_due[client][way]) {
        due = reliable_due[client][way];
    }
    reliable_due[client][way] = due;
    m.due = due;
    m.bytes = malloc(out->len ? out->len : 1);
    memcpy(m.bytes, bytes, out->len);
    schedule(net, m);
    if (out->kind == THETA_TRANSPORT_OUTPUT_KIND_CLOSE) {
        link_open[client] = 0;
    }
}

/* --8<-- [start:drain] */
/* Takes every output of `session` (the host: from 0; client i: from i + 1) onto the
 * network, growing the buffer when the library says it is too small. */
static void drain(Network *net, uint64_t round, ThetaSession session, int from, uint8_t **buf,
                  size_t *capacity) {
    for (;;) {
        ThetaTransportOutput out;
        ThetaStatus status = theta_session_transport_poll(session, *buf, *capacity, &out);
        if (status == THETA_STATUS_BUFFER_TOO_SMALL) {
            /* The output stays queued: retry with out.len bytes. */
            uint8_t *grown = realloc(*buf, out.len);
            if (!grown) {
                fprintf(stderr, "out of memory\n");
                exit(1);
            }
            *buf = grown;
            *capacity = out.len;
            continue;
        }
        CHECK(status);
        if (out.kind == THETA_TRANSPORT_OUTPUT_KIND_NONE) {
            return;
        }
        transmit(net, round, from, &out, *buf);
    }
}
/* --8<-- [end:drain] */

static int by_due(const void *a, const void *b) {
    const Message *x = a, *y = b;
    if (x->due != y->due) {
        return x->due < y->due ? -1 : 1;
    }
    return x->order < y->order ? -1 : (x->order > y->order);
}

/* Hands every message due by `round` to its session, in the order they were sent. */
static void deliver(Network *net, uint64_t round, ThetaSession host,
                    const ThetaSession clients[CLIENTS]) {
    qsort(net->items, net->count, sizeof *net->items, by_due);
    size_t n = 0;
    while (n < net->count && net->items[n].due <= round) {
        Message *m = &net->items[n++];
        const ThetaSession to = m->to == 0 ? host : clients[m->to - 1];
        ThetaStatus status;
        if (m->kind == THETA_TRANSPORT_OUTPUT_KIND_CLOSE) {
            status = theta_session_transport_closed(to, m->conn, m->code, m->bytes, m->len);
        } else {
            status = theta_session_transport_receive(to, m->conn, m->channel, m->bytes, m->len);
        }
        /* A connection this side closed meanwhile, or a session that left: drop it. */
        if (status != THETA_STATUS_UNKNOWN_CONNECTION && status != THETA_STATUS_SESSION_CLOSED) {
            CHECK(status);
        }
        free(m->bytes);
    }
    memmove(net->items, net->items + n, (net->count - n) * sizeof *net->items);
    net->count -= n;
}

/* ---- The engine: a host and two clients. ------------------------------------------- */

static ThetaWorld scene_types(uint32_t *position) {
    ThetaWorld world;
    CHECK(theta_world_new(NULL, &world));
    CHECK(theta_world_register_fixed(world, (const uint8_t *)"demo.Position", 13, 12, position));
    return world;
}

/* Prints a session's notable events; counts JOINED and host closes. */
static void events(ThetaSession session, const char *who, int *joined, int *host_closed) {
    ThetaSessionEvent batch[32];
    size_t n = 0;
    do {
        CHECK(theta_session_poll_events(session, batch, 32, &n));
        for (size_t i = 0; i < n; i++) {
            const ThetaSessionEvent *e = &batch[i];
            if (e->kind == THETA_SESSION_EVENT_KIND_JOINED) {
                printf("%s: joined as peer %u\n", who, (unsigned)e->peer);
                (*joined)++;
            } else if (e->kind == THETA_SESSION_EVENT_KIND_DISCONNECTED) {
                printf("%s: disconnected: %.*s\n", who, (int)e->data_len, (const char *)e->data);
                *host_closed += e->cause == THETA_DISCONNECT_CAUSE_HOST_CLOSED;
            } else if (e->kind == THETA_SESSION_EVENT_KIND_PEER_JOINED) {
                printf("%s: peer %u joined\n", who, (unsigned)e->peer);
            }
        }
    } while (n == 32);
}

static uint64_t state_hash(ThetaSession session) {
    uint64_t hash;
    CHECK(theta_session_state_hash(session, &hash));
    return hash;
}

static void position_of(float out[3], uint64_t round, uint64_t who) {
    out[0] = (float)round * 0.01f;
    out[1] = 1.6f;
    out[2] = (float)who;
}

int main(int argc, char **argv) {
    if (theta_abi_version() != THETA_ABI_VERSION) {
        fprintf(stderr, "library ABI %u, header %u\n", theta_abi_version(), THETA_ABI_VERSION);
        return 1;
    }
    rng_state = argc > 1 ? strtoull(argv[1], NULL, 10) : 1;
    const uint64_t max_rounds = argc > 2 ? strtoull(argv[2], NULL, 10) : 3000;

    /* The host, over this transport: unreliable messages up to 1200 bytes. */
    uint32_t position;
    ThetaWorld world = scene_types(&position);
    uint64_t entities[ENTITIES];
    for (int i = 0; i < ENTITIES; i++) {
        CHECK(theta_world_spawn(world, &entities[i]));
    }
    ThetaTransportConfig transport;
    CHECK(theta_transport_config_init(&transport));
    transport.max_unreliable_bytes = 1200;
    ThetaSession host;
    CHECK(theta_session_host_custom(world, NULL, 0, NULL, &transport, &host)); /* world moved */

    /* Two clients, invited with tokens (an engine hands them over its lobby). */
    ThetaWorld registry = scene_types(&position);
    ThetaSession clients[CLIENTS];
    for (int i = 0; i < CLIENTS; i++) {
        uint8_t token[THETA_JOIN_TOKEN_LEN];
        size_t token_len;
        CHECK(theta_session_mint_token(host, (uint16_t)(i + 1), 60, token, sizeof token, &token_len));
        CHECK(theta_session_join_custom(token, token_len, registry, NULL, &transport, &clients[i]));
    }
    CHECK(theta_world_free(registry));

    /* The transport connects each client: both ends report their side of it. */
    for (int i = 0; i < CLIENTS; i++) {
        link_open[i] = 1;
        CHECK(theta_session_transport_connected(host, HOST_CONN(i)));
        CHECK(theta_session_transport_connected(clients[i], CLIENT_CONN));
    }

    Network net = {0};
    size_t capacity = 256;
    uint8_t *buf = malloc(capacity);
    uint64_t own[CLIENTS] = {0};
    int joined = 0, host_closed = 0, converged = 0;
    uint64_t writes_until = 0, round = 0;
    for (; round < max_rounds && !converged; round++) {
        if (joined == CLIENTS && writes_until == 0) {
            writes_until = round + WRITE_ROUNDS;
            for (int i = 0; i < CLIENTS; i++) {
                CHECK(theta_session_spawn(clients[i], &own[i]));
            }
        }
        if (round < writes_until) {
            float value[3];
            for (int e = (int)(round % 3); e < ENTITIES; e += 3) {
                position_of(value, round, (uint64_t)e);
                CHECK(theta_session_set(host, entities[e], position, (const uint8_t *)value, sizeof value, NULL));
            }
            for (int i = 0; i < CLIENTS; i++) {
                position_of(value, round, 100 + (uint64_t)i);
                CHECK(theta_session_set(clients[i], own[i], position, (const uint8_t *)value, sizeof value, NULL));
            }
        } else if (writes_until != 0) {
            converged = 1;
            for (int i = 0; i < CLIENTS; i++) {
                converged &= state_hash(clients[i]) == state_hash(host);
            }
            if (converged) {
                break;
            }
        }
        /* One frame: every session ticks, then the transport carries what they queued. */
        CHECK(theta_session_tick(host));
        drain(&net, round, host, 0, &buf, &capacity);
        for (int i = 0; i < CLIENTS; i++) {
            CHECK(theta_session_tick(clients[i]));
            drain(&net, round, clients[i], i + 1, &buf, &capacity);
        }
        deliver(&net, round, host, clients);
        /* What arrived was answered at once (a join, an acknowledgement): send it too. */
        drain(&net, round, host, 0, &buf, &capacity);
        for (int i = 0; i < CLIENTS; i++) {
            drain(&net, round, clients[i], i + 1, &buf, &capacity);
        }
        events(host, "host", &joined, &host_closed);
        for (int i = 0; i < CLIENTS; i++) {
            events(clients[i], i == 0 ? "client 1" : "client 2", &joined, &host_closed);
        }
        nanosleep(&(struct timespec){.tv_nsec = 1000 * 1000}, NULL);
    }
    if (!converged) {
        fprintf(stderr, "no convergence within %llu rounds\n", (unsigned long long)max_rounds);
        return 1;
    }
    printf("converged %llu rounds after the last write (round %llu): state hash %016llx on the host "
           "and both clients\n",
           (unsigned long long)(round - writes_until), (unsigned long long)round,
           (unsigned long long)state_hash(host));

    /* The host leaves: a goodbye and a close per client, carried by the transport. */
    CHECK(theta_session_leave(host));
    drain(&net, round, host, 0, &buf, &capacity);
    for (uint64_t late = round; late < round + 8; late++) {
        deliver(&net, late, host, clients);
        for (int i = 0; i < CLIENTS; i++) {
            drain(&net, late, clients[i], i + 1, &buf, &capacity);
            events(clients[i], i == 0 ? "client 1" : "client 2", &joined, &host_closed);
        }
    }
    printf("host left: %d of %d clients heard it\n", host_closed, CLIENTS);

    for (size_t i = 0; i < net.count; i++) {
        free(net.items[i].bytes);
    }
    free(net.items);
    free(buf);
    CHECK(theta_session_free(host));
    for (int i = 0; i < CLIENTS; i++) {
        CHECK(theta_session_free(clients[i]));
    }
    return host_closed == CLIENTS ? 0 : 1;
}

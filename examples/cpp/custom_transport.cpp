// Bring your own transport through the C++ wrapper: a host and a client whose sessions
// run over an in-memory transport (a queue each way, every message delivered in order,
// as a loopback connection of Steam Networking Sockets would). The host writes values,
// the client writes an entity of its own; they converge; then the client reconnects
// over a new connection and resumes, grabs the host's entity (which the host set free),
// moves it and lets it go; the client looks away from it (interest management: it
// leaves the client's world, not the host's) and back; and the host leaves. Positions
// are declared fields (quantised to 1 mm). Prints "converged", "fields", the client's
// message to the host, "resumed", "ownership" and "interest"; exits 1 on any failure.
//
// Build: c++ -std=c++17 -fno-exceptions -fno-rtti -Wall -Wextra -Werror -Iinclude
//           -Ibindings/cpp examples/cpp/custom_transport.cpp libtheta_net.a -lpthread -ldl -lm
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <string>
#include <thread>

#include "theta.hpp"

namespace {

template <class T>
T must(theta::Result<T> result, const char *what) {
    if (!result) {
        std::fprintf(stderr, "%s: %s\n", what, result.error().message.c_str());
        std::exit(1);
    }
    return std::move(result).value();
}

void must(const theta::Status &status, const char *what) {
    if (!status) {
        std::fprintf(stderr, "%s: %s\n", what, status.error().message.c_str());
        std::exit(1);
    }
}

/// A message on its way to the other end of connection `conn`, as that end names it.
struct Message {
    bool close;
    uint64_t conn;
    ThetaChannel channel;
    uint32_t code;
    std::vector<uint8_t> bytes;
};

/// The transport: one queue to the host, one to the client. The host calls its client's
/// connection `host_conn`, the client calls it `client_conn`; a reconnect is a new pair.
struct Loopback {
    std::deque<Message> to_host, to_client;
    uint64_t host_conn = 10, client_conn = 1;

    /// Carries what `from` queued to the other side's queue.
    void drain(theta::Session &from, bool from_host) {
        theta::TransportOutput out;
        while (must(from.transport_poll(out), "transport_poll")) {
            Message m{out.kind == THETA_TRANSPORT_OUTPUT_KIND_CLOSE, from_host ? client_conn : host_conn,
                      static_cast<ThetaChannel>(out.channel), out.code, out.bytes};
            (from_host ? to_client : to_host).push_back(std::move(m));
        }
    }
    /// Hands every queued message to its session.
    static void deliver(std::deque<Message> &queue, theta::Session &to) {
        for (; !queue.empty(); queue.pop_front()) {
            const Message &m = queue.front();
            theta::Status s = m.close ? to.transport_closed(m.conn, m.code,
                                                            std::string_view(reinterpret_cast<const char *>(
                                                                                 m.bytes.data()),
                                                                             m.bytes.size()))
                                      : to.transport_receive(m.conn, m.channel, m.bytes.data(), m.bytes.size());
            // Bytes for a connection this side already closed are dropped.
            if (!s && s.status() != THETA_STATUS_UNKNOWN_CONNECTION) {
                must(s, "deliver");
            }
        }
    }
    void round(theta::Session &host, theta::Session &client) {
        must(host.tick(), "host tick");
        must(client.tick(), "client tick");
        for (int i = 0; i < 2; i++) {  // what arrives is answered at once: carry that too
            drain(host, true);
            drain(client, false);
            deliver(to_host, host);
            deliver(to_client, client);
        }
    }
};

/// Whether `session` reported an event of `kind` since the last call.
bool polled(theta::Session &session, uint8_t kind) {
    ThetaSessionEvent events[32];
    bool seen = false;
    for (size_t n = 32; n == 32;) {
        n = must(session.poll(events, 32), "poll");
        for (size_t i = 0; i < n; i++) {
            seen |= events[i].kind == kind;
        }
    }
    return seen;
}

/// Whether `session` reported, since the last call, that `entity` is `owner`'s now.
bool polled_owner(theta::Session &session, uint64_t entity, uint16_t owner) {
    ThetaSessionEvent events[32];
    bool seen = false;
    for (size_t n = 32; n == 32;) {
        n = must(session.poll(events, 32), "poll");
        for (size_t i = 0; i < n; i++) {
            seen |= events[i].kind == THETA_SESSION_EVENT_KIND_OWNERSHIP_CHANGED && events[i].entity == entity &&
                    events[i].peer == owner;
        }
    }
    return seen;
}

}  // namespace

int main() {
    theta::World world = must(theta::World::create(), "world");
    const uint32_t position = must(world.register_fixed("demo.Position", 12), "register");
    theta::World registry = must(theta::World::create(), "registry");
    must(registry.register_fixed("demo.Position", 12), "register");
    // Declared fields: positions to 1 mm, fewer bytes on the wire. Both sides declare the
    // same (the layout is part of the registry hash checked at join).
    const ThetaField fields[] = {theta::Field::position(0, 1.0f)};
    must(world.declare_fields(position, fields), "declare_fields");
    must(registry.declare_fields(position, fields), "declare_fields");
    uint64_t entity = must(world.spawn(), "spawn");

    // Interest management over 10 m cells: until the host knows where entities are (see
    // set_interest_source below) they are global, seen by every client.
    ThetaSessionConfig config = theta::session_config();
    config.interest_cell = 10.0f;
    theta::Session host = must(theta::Session::host_custom(world, {}, &config), "host_custom");
    const std::string token = must(host.mint_token(1, 60), "mint_token");
    theta::Session client = must(theta::Session::join_custom(token, registry), "join_custom");
    Loopback net;
    must(host.transport_connected(net.host_conn), "host connected");
    must(client.transport_connected(net.client_conn), "client connected");

    bool joined = false;
    for (int round = 0; round < 500 && !joined; round++) {
        net.round(host, client);
        joined = polled(client, THETA_SESSION_EVENT_KIND_JOINED);
    }
    const uint64_t mine = must(client.spawn(), "client spawn");
    for (int round = 0; round < 30; round++) {
        const float value[3] = {float(round), 1.6f, 0};
        must(host.set(entity, position, value), "host set");
        must(client.set(mine, position, value), "client set");
        net.round(host, client);
    }
    for (int round = 0; round < 500 && must(client.state_hash(), "hash") != must(host.state_hash(), "hash");
         round++) {
        net.round(host, client);
    }
    if (must(client.state_hash(), "hash") != must(host.state_hash(), "hash")) {
        std::fprintf(stderr, "no convergence\n");
        return 1;
    }
    std::printf("converged: state hash %016llx\n", static_cast<unsigned long long>(must(host.state_hash(), "hash")));

    // Values are quantised to the declared millimetre (a 2 mm grid); NaN is refused.
    const float fine[3] = {0.0014f, 1.6f, 0};
    must(host.set(entity, position, fine), "host set");
    float stored[3];
    must(host.get(entity, position, stored, sizeof stored), "host get");
    const float nan[3] = {std::nanf(""), 0, 0};
    if (stored[0] != 0.002f || host.set(entity, position, nan).status() != THETA_STATUS_NOT_QUANTISABLE) {
        std::fprintf(stderr, "fields: %f stored, or NaN accepted\n", double(stored[0]));
        return 1;
    }
    std::printf("fields: positions to 1 mm, NaN refused\n");

    // Resuming is for a client whose connection ended: statuses otherwise.
    if (host.reconnect().status() != THETA_STATUS_WRONG_ROLE ||
        client.reconnect().status() != THETA_STATUS_CANNOT_RESUME) {
        std::fprintf(stderr, "reconnect: a host or a connected client resumed\n");
        return 1;
    }

    // An application message: the client tells the host, reliable-ordered.
    const char hello[] = "hello";
    must(client.send_message(THETA_PEER_HOST, 7, hello, sizeof hello - 1), "send_message");
    std::string heard;
    for (int round = 0; round < 50 && heard.empty(); round++) {
        net.round(host, client);
        ThetaSessionEvent events[32];
        const size_t n = must(host.poll(events, 32), "poll");
        for (size_t i = 0; i < n; i++) {
            if (events[i].kind == THETA_SESSION_EVENT_KIND_MESSAGE && events[i].channel == 7) {
                heard.assign(reinterpret_cast<const char *>(events[i].data), events[i].data_len);
                std::printf("message from peer %u: %s\n", unsigned(events[i].peer), heard.c_str());
            }
        }
    }
    if (heard != hello) {
        std::fprintf(stderr, "the host did not get the message\n");
        return 1;
    }

    // The connection is lost; the host writes on; the client resumes over a new one.
    must(host.transport_closed(net.host_conn, THETA_CLOSE_CODE_LOST, "timed out"), "host closed");
    must(client.transport_closed(net.client_conn, THETA_CLOSE_CODE_LOST, "timed out"), "client closed");
    const float moved[3] = {7, 7, 7};
    must(host.set(entity, position, moved), "host set");
    must(client.reconnect(), "reconnect");
    net.host_conn += 1;
    net.client_conn += 1;
    must(host.transport_connected(net.host_conn), "host connected");
    must(client.transport_connected(net.client_conn), "client connected");
    bool resumed = false, rejoined = false;
    for (int round = 0; round < 500 && !resumed; round++) {
        net.round(host, client);
        rejoined |= polled(client, THETA_SESSION_EVENT_KIND_JOINED);
        resumed = rejoined && must(client.state_hash(), "hash") == must(host.state_hash(), "hash");
    }
    if (!resumed) {
        std::fprintf(stderr, "no resume\n");
        return 1;
    }
    std::printf("resumed over connection %llu\n", static_cast<unsigned long long>(net.client_conn));

    // Ownership: the host sets its entity free; the client grabs it, moves it, lets go.
    must(host.set_owner(entity, 0, THETA_OWNER_NOBODY), "set_owner");
    must(client.request_ownership(entity), "request_ownership");
    bool granted = false;
    for (int round = 0; round < 500 && !granted; round++) {
        net.round(host, client);
        granted = polled_owner(client, entity, 1);
    }
    if (!granted || must(host.owner(entity), "owner") != 1) {
        std::fprintf(stderr, "the client was not granted the host's entity\n");
        return 1;
    }
    if (host.set(entity, position, moved).status() != THETA_STATUS_NOT_OWNER) {
        std::fprintf(stderr, "the host wrote an entity the client owns\n");
        return 1;
    }
    const float grabbed[3] = {1, 2, 3};
    must(client.set(entity, position, grabbed), "client set");
    must(client.release_ownership(entity), "release_ownership");
    bool released = false;
    for (int round = 0; round < 500 && !released; round++) {
        net.round(host, client);
        released = polled_owner(host, entity, THETA_OWNER_NOBODY) ||
                   must(host.owner(entity), "owner") == THETA_OWNER_NOBODY;
    }
    float kept[3] = {0, 0, 0};
    if (!released || must(host.get(entity, position, kept, sizeof kept), "get") != sizeof kept || kept[0] != 1 ||
        kept[2] != 3) {
        std::fprintf(stderr, "the release did not leave the client's last write\n");
        return 1;
    }
    std::printf("ownership: the client took the entity, moved it and let it go\n");

    // Interest: the host reads positions from the component; the client looks far away
    // (its own entity stays its own), so the host's entity at (1, 2, 3) leaves its world
    // with a LEFT event; looking back brings it again, whole.
    must(host.set_interest_source(position), "set_interest_source");
    must(host.set_priority(entity, 4.0f), "set_priority");
    const ThetaInterestVolume away[] = {theta::Volume::sphere({100, 0, 0}, 5, 6)};
    must(client.set_interest(away, 1), "set_interest");
    bool left = false;
    for (int round = 0; round < 500 && !left; round++) {
        net.round(host, client);
        left = polled(client, THETA_SESSION_EVENT_KIND_LEFT);
    }
    if (!left || must(client.is_alive(entity), "is_alive") || !must(host.is_alive(entity), "is_alive") ||
        must(host.sees(1, entity), "sees") || !must(host.sees(1, mine), "sees") ||
        must(client.state_hash(), "hash") != must(host.interest_hash(1), "interest_hash")) {
        std::fprintf(stderr, "interest: the entity did not leave the client's world alone\n");
        return 1;
    }
    must(client.set_interest({theta::Volume::box({0, 0, 0}, {2, 3, 4}, 1)}), "set_interest");
    // A client sends a changed wish at most every 50 ms: the rounds take their time.
    bool back = false;
    for (int round = 0; round < 2000 && !back; round++) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        net.round(host, client);
        back = must(client.is_alive(entity), "is_alive") &&
               must(client.state_hash(), "hash") == must(host.interest_hash(1), "interest_hash");
    }
    // Misuse is a status: a negative radius, a weight of 0, a client asking the host's call.
    const ThetaInterestVolume bad[] = {theta::Volume::sphere({0, 0, 0}, -1)};
    if (!back || client.set_interest(bad, 1).status() != THETA_STATUS_INVALID_ARGUMENT ||
        host.set_priority(entity, 0).status() != THETA_STATUS_INVALID_ARGUMENT ||
        client.sees(1, entity).status() != THETA_STATUS_WRONG_ROLE) {
        std::fprintf(stderr, "interest: the entity did not come back, or misuse was accepted\n");
        return 1;
    }
    std::printf("interest: the entity left the client's world and came back\n");

    // The host leaves: its goodbye and close go out; it ticks no more.
    must(host.leave(), "leave");
    net.drain(host, true);
    Loopback::deliver(net.to_client, client);
    if (!polled(client, THETA_SESSION_EVENT_KIND_DISCONNECTED)) {
        std::fprintf(stderr, "the client did not hear the host leave\n");
        return 1;
    }
    std::printf("host left\n");
    return 0;
}

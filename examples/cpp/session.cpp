// A host and a client in one process over loopback, through the C++ wrapper: the host
// invites the client with a join token and the client pins the host's certificate
// fingerprint; the host spawns 200 entities, moves some of them for 60 ticks and pushes
// its head pose each tick; it trains a datagram dictionary on demand; the client ticks
// until its state hash equals the host's and samples the host's head pose. Every wait is
// bounded: the example gives up with exit code 1 after 10 s, or after the number of
// seconds given as its argument (tests/c_examples.rs allows more under valgrind).
//
// Build (from the repository root):
//   c++ -std=c++17 -fno-exceptions -fno-rtti -Wall -Wextra -Werror -Iinclude -Ibindings/cpp
//       examples/cpp/session.cpp target/release/libtheta_net.a -lpthread -ldl -lm
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "theta.hpp"

namespace {

struct Transform {
    float position[3];
    float rotation[4];
};

constexpr size_t kEntities = 200;
constexpr int kMovingTicks = 60;
constexpr uint8_t kHead = 0;
// XrSpaceLocationFlags: orientation and position valid and tracked.
constexpr uint64_t kTracked = 0xF;

// Unwraps a result or exits with the library's message.
template <class T>
T expect(theta::Result<T> result, const char *what) {
    if (!result) {
        std::fprintf(stderr, "%s failed (%d): %s\n", what, static_cast<int>(result.status()),
                     result.error().message.c_str());
        std::exit(1);
    }
    return std::move(result).value();
}

void expect(const theta::Status &status, const char *what) {
    if (!status) {
        std::fprintf(stderr, "%s failed (%d): %s\n", what, static_cast<int>(status.status()),
                     status.error().message.c_str());
        std::exit(1);
    }
}

// Both sessions, ticked together, with the client's events drained after each tick.
struct Loopback {
    theta::Session &host;
    theta::Session &client;
    std::chrono::steady_clock::time_point deadline;
    std::vector<ThetaSessionEvent> events = std::vector<ThetaSessionEvent>(64);
    bool joined = false;
    size_t replica_events = 0;

    void drain(theta::Session &session, bool is_client) {
        for (size_t n; (n = expect(session.poll(events.data(), events.size()), "poll")) > 0;) {
            for (size_t i = 0; i < n; i++) {
                const ThetaSessionEvent &e = events[i];
                if (e.kind == THETA_SESSION_EVENT_KIND_DISCONNECTED) {
                    const std::string reason(theta::event_data(e));
                    std::fprintf(stderr, "client disconnected: %s\n", reason.c_str());
                    std::exit(1);
                }
                if (e.kind == THETA_SESSION_EVENT_KIND_WRITE_REJECTED) {
                    std::fprintf(stderr, "a write was rejected\n");
                    std::exit(1);
                }
                joined = joined || (is_client && e.kind == THETA_SESSION_EVENT_KIND_JOINED);
                replica_events += is_client && e.kind <= THETA_SESSION_EVENT_KIND_DESPAWN;
            }
        }
    }

    // One tick of both, a short sleep for the network threads, then the events.
    void tick() {
        expect(host.tick(), "host tick");
        expect(client.tick(), "client tick");
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
        drain(host, false);
        drain(client, true);
    }

    // Ticks until `done()`, or exits when the deadline passed.
    template <class Done>
    void tick_until(const char *what, Done done) {
        while (!done()) {
            if (std::chrono::steady_clock::now() > deadline) {
                std::fprintf(stderr, "gave up waiting for %s\n", what);
                std::exit(1);
            }
            tick();
        }
    }
};

ThetaPosef head_pose(int tick) {
    ThetaPosef pose{};
    pose.orientation.w = 1.0f;
    pose.position.x = 0.01f * static_cast<float>(tick);
    pose.position.y = 1.6f;
    return pose;
}

}  // namespace

int main(int argc, char **argv) {
    const long give_up_after = argc > 1 ? std::strtol(argv[1], nullptr, 10) : 10;
    if (give_up_after <= 0) {
        std::fprintf(stderr, "usage: %s [seconds to give up after, default 10]\n", argv[0]);
        return 2;
    }
    // Both sides register the same component types; the host's world moves into its session.
    theta::World world = expect(theta::World::create(), "World::create");
    const uint32_t transform_id = expect(world.register_fixed("demo.Transform", sizeof(Transform)), "register");
    theta::World registry = expect(theta::World::create(), "World::create");
    expect(registry.register_fixed("demo.Transform", sizeof(Transform)), "register");

    // Defaults, except that dictionaries are trained on demand only, and that the host
    // waits longer for a join request (the tests run this under valgrind, where the
    // handshake alone takes seconds on a busy machine).
    ThetaSessionConfig config = theta::session_config();
    config.train_after_samples = THETA_TRAIN_ON_DEMAND_ONLY;
    config.admission_timeout_ms = 60000;

    theta::Session host = expect(theta::Session::host("127.0.0.1:0", world, {}, &config), "Session::host");
    const uint16_t port = expect(host.local_port(), "local_port");
    const uint16_t host_peer = expect(host.peer(), "peer");
    const std::string token = expect(host.mint_token(1, 60), "mint_token");
    const theta::Fingerprint fingerprint = expect(host.fingerprint(), "fingerprint");
    const std::string addr = "127.0.0.1:" + std::to_string(port);
    theta::Session client =
        expect(theta::Session::join(addr, fingerprint, token, registry, &config), "Session::join");

    Loopback loop{host, client, std::chrono::steady_clock::now() + std::chrono::seconds(give_up_after)};
    loop.tick_until("the join", [&] { return loop.joined; });
    std::printf("joined:   client peer %u on port %u\n", expect(client.peer(), "peer"), port);

    std::vector<uint64_t> entities;
    std::vector<Transform> transforms(kEntities);
    for (size_t i = 0; i < kEntities; i++) {
        entities.push_back(expect(host.spawn(), "spawn"));
        transforms[i] = Transform{{static_cast<float>(i), 0, 0}, {0, 0, 0, 1}};
    }
    // Every first value in one call, as an engine hands over its array of transforms.
    ThetaBatchResult written{};
    expect(host.set_batch_of(transform_id, entities.data(), transforms.data(), kEntities, &written), "set_batch");
    if (written.inserted != kEntities) {
        std::fprintf(stderr, "set_batch inserted %llu of %zu\n", static_cast<unsigned long long>(written.inserted),
                     kEntities);
        return 1;
    }
    for (int t = 0; t < kMovingTicks; t++) {
        for (size_t i = static_cast<size_t>(t) % 10; i < kEntities; i += 10) {
            transforms[i].position[1] += 0.25f;
            expect(host.set(entities[i], transform_id, transforms[i]), "set");
        }
        expect(host.push_pose(kHead, head_pose(t), expect(host.now(), "now"), kTracked), "push_pose");
        loop.tick();
    }

    // A datagram dictionary, trained from the datagrams sent so far, reaches the client.
    const uint32_t dictionary = expect(host.train_dictionary(THETA_MESSAGE_KIND_DATAGRAM), "train_dictionary");
    auto newest = [&](const theta::Session &s) {
        return expect(s.compression_stats(THETA_MESSAGE_KIND_DATAGRAM), "compression_stats").newest_dictionary;
    };
    loop.tick_until("the dictionary", [&] { return newest(host) == dictionary && newest(client) == dictionary; });
    for (int t = 0; t < 10; t++) {  // traffic compressed with the dictionary
        for (size_t i = static_cast<size_t>(t) % 10; i < kEntities; i += 10) {
            transforms[i].position[2] += 0.5f;
            expect(host.set(entities[i], transform_id, transforms[i]), "set");
        }
        loop.tick();
    }

    uint64_t host_hash = 0, client_hash = 0;
    loop.tick_until("convergence", [&] {
        host_hash = expect(host.state_hash(), "state_hash");
        client_hash = expect(client.state_hash(), "state_hash");
        return host_hash == client_hash;
    });
    theta::SampledPose head;
    loop.tick_until("the host's head pose", [&] {
        theta::Result<theta::SampledPose> sampled =
            client.sample_pose(host_peer, kHead, expect(client.now(), "now"));
        if (sampled.status() == THETA_STATUS_NOT_FOUND) {
            return false;
        }
        head = expect(std::move(sampled), "sample_pose");
        return true;
    });

    const ThetaCompressionStats sent = expect(host.compression_stats(THETA_MESSAGE_KIND_DATAGRAM), "stats");
    const ThetaCompressionStats received = expect(client.compression_stats(THETA_MESSAGE_KIND_DATAGRAM), "stats");
    const std::vector<ThetaPeerStats> peers = expect(host.peer_stats(), "peer_stats");
    const std::vector<ThetaComponentWireStats> components = expect(host.component_stats(), "component_stats");
    const std::string panel = expect(host.diagnostics_text(), "diagnostics_text");
    if (peers.size() != 1 || components.empty() || panel.empty() || sent.frames_with_dictionary == 0) {
        std::fprintf(stderr, "unexpected figures:\n%s\n", panel.c_str());
        return 1;
    }
    std::printf("entities: %llu on the client, %zu replica events\n",
                static_cast<unsigned long long>(expect(client.stats(), "stats").entities), loop.replica_events);
    std::printf("datagrams: %llu sent, %llu with dictionary %u, %llu -> %llu bytes (ratio %.2f); %llu received\n",
                static_cast<unsigned long long>(sent.frames_sent),
                static_cast<unsigned long long>(sent.frames_with_dictionary), dictionary,
                static_cast<unsigned long long>(sent.bytes_uncompressed),
                static_cast<unsigned long long>(sent.bytes_framed),
                sent.bytes_uncompressed ? static_cast<double>(sent.bytes_framed) / sent.bytes_uncompressed : 1.0,
                static_cast<unsigned long long>(received.frames_received));
    std::printf("wire:     %llu bytes sent to the client, rtt %.2f ms\n",
                static_cast<unsigned long long>(peers[0].wire_bytes_sent), peers[0].rtt_us / 1000.0);
    std::printf("head:     host's head at (%.2f, %.2f, %.2f), flags %#llx\n", head.pose.position.x,
                head.pose.position.y, head.pose.position.z, static_cast<unsigned long long>(head.flags));
    std::printf("state:    host %016llx, client %016llx: converged\n", static_cast<unsigned long long>(host_hash),
                static_cast<unsigned long long>(client_hash));
    // Leave without blocking this thread, then wait (bounded) until nothing runs any more,
    // as an engine does before its scripts reload.
    expect(client.close(), "close");
    expect(host.close(), "close");
    const size_t pending = expect(theta::Session::wait_closed(10000), "wait_closed");
    std::printf("closed:   %zu closes pending\n", pending);
    return pending == 0 ? 0 : 1;
}

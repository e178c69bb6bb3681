// The C example's scenario through the C++ wrapper: a host world with two component types
// and 1000 entities, a chunked snapshot for a replica, 30 ticks of updates, inserts,
// removes, spawns and despawns as delta frames, then a state-hash check.
//
// Build (from the repository root):
//   c++ -std=c++17 -fno-exceptions -fno-rtti -Wall -Wextra -Werror -Iinclude -Ibindings/cpp
//       examples/cpp/replicate.cpp target/release/libtheta_net.a -lpthread -ldl -lm
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "theta.hpp"

namespace {

struct Transform {
    float position[3];
    float rotation[4];
};

struct Object {
    uint64_t entity;
    Transform transform;
    uint32_t color;
};

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

uint32_t next_random() {
    static uint32_t state = 12345;
    state ^= state << 13;
    state ^= state >> 17;
    state ^= state << 5;
    return state;
}

}  // namespace

int main() {
    theta::World world = expect(theta::World::create(), "World::create");
    const uint32_t transform_id = expect(world.register_fixed("demo.Transform", sizeof(Transform)), "register");
    const uint32_t color_id = expect(world.register_fixed("demo.Color", sizeof(uint32_t)), "register");

    std::vector<Object> objects(1000);
    std::vector<uint64_t> ids;
    for (size_t i = 0; i < objects.size(); i++) {
        objects[i].entity = expect(world.spawn(), "spawn");
        objects[i].transform = Transform{{static_cast<float>(i), 0, 0}, {0, 0, 0, 1}};
        objects[i].color = next_random();
        ids.push_back(objects[i].entity);
    }
    expect(world.set_batch(transform_id, ids.data(), &objects[0].transform, sizeof(Object), ids.size()), "set_batch");
    expect(world.set_batch(color_id, ids.data(), &objects[0].color, sizeof(Object), ids.size()), "set_batch");

    theta::Replica replica = expect(theta::Replica::create(), "Replica::create");
    theta::Tracker tracker;
    size_t chunks = 0, snapshot_bytes = 0;
    {
        theta::Snapshot snapshot = expect(world.snapshot(), "snapshot");
        chunks = expect(snapshot.chunk_count(), "chunk_count");
        for (size_t i = 0; i < chunks; i++) {
            theta::Bytes chunk = expect(snapshot.chunk(i), "chunk");
            expect(replica.apply(chunk), "apply chunk");
            snapshot_bytes += chunk.size;
        }
        tracker = expect(theta::Tracker::after(snapshot), "Tracker::after");
    }  // the snapshot is freed here; the tracker does not need it

    std::vector<ThetaEvent> events(64);
    size_t event_count = 0, delta_bytes = 0;
    auto drain = [&] {
        for (size_t n; (n = expect(replica.poll(events.data(), events.size()), "poll")) > 0;) {
            event_count += n;
        }
    };
    drain();
    for (int tick = 0; tick < 30; tick++) {
        for (size_t i = 0; i < objects.size() / 10; i++) {
            Object &o = objects[next_random() % objects.size()];
            o.transform.position[1] += 0.5f;
            expect(world.set(o.entity, transform_id, o.transform), "set");
        }
        for (int k = 0; k < 2; k++) {
            Object o{expect(world.spawn(), "spawn"), Transform{{0, 1, 2}, {0, 0, 0, 1}}, 0};
            expect(world.set(o.entity, transform_id, o.transform), "set");
            objects.push_back(o);
        }
        const size_t gone = next_random() % objects.size();
        expect(world.despawn(objects[gone].entity), "despawn");
        objects[gone] = objects.back();
        objects.pop_back();
        expect(world.remove(objects[next_random() % objects.size()].entity, color_id), "remove");
        expect(world.set(objects[next_random() % objects.size()].entity, color_id, next_random()), "set color");

        theta::Delta delta = expect(tracker.diff(world), "diff");
        theta::Bytes bytes = expect(delta.bytes(), "bytes");
        expect(replica.apply(bytes), "apply delta");
        delta_bytes += bytes.size;
        expect(world.advance(), "advance");
        drain();
    }

    // Errors are values: a wrong size is refused with a message.
    const uint8_t short_value[3] = {0, 0, 0};
    theta::Status refused = world.set(objects[0].entity, transform_id, short_value, sizeof short_value);
    if (refused.status() != THETA_STATUS_WRONG_SIZE || refused.error().message.empty()) {
        std::fprintf(stderr, "expected THETA_STATUS_WRONG_SIZE with a message\n");
        return 1;
    }

    const uint64_t host_hash = expect(world.state_hash(), "state_hash");
    const uint64_t replica_hash = expect(replica.state_hash(), "state_hash");
    std::printf("snapshot: %zu chunks, %zu bytes\n", chunks, snapshot_bytes);
    std::printf("deltas:   30 frames, %zu bytes\n", delta_bytes);
    std::printf("events:   %zu\n", event_count);
    std::printf("state:    host %016llx, replica %016llx: %s\n", static_cast<unsigned long long>(host_hash),
                static_cast<unsigned long long>(replica_hash), host_hash == replica_hash ? "converged" : "DIVERGED");
    return host_hash == replica_hash ? 0 : 1;
}

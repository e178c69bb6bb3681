// theta.hpp: header-only C++17 wrapper of the Theta C ABI (include/theta.h).
//
// Move-only RAII owners for every object, no exceptions, no RTTI (builds with
// -fno-exceptions -fno-rtti, as Unreal does). Every fallible call returns a
// theta::Result<T>: test it with ok() / operator bool, then read value() or error().
// Threading and lifetime rules are those of theta.h.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "theta.h"

namespace theta {

/// A failed call: its status and the library's message.
struct Error {
    ThetaStatus status = THETA_STATUS_OK;
    std::string message;
};

/// The message of the last failure on this thread.
inline std::string last_error_message() {
    size_t len = 0;
    if (theta_last_error(nullptr, 0, &len) != THETA_STATUS_OK) {
        return {};
    }
    std::string message(len + 1, '\0');
    theta_last_error(reinterpret_cast<uint8_t *>(message.data()), message.size(), &len);
    message.resize(len);
    return message;
}

/// A value or an error. T must be default-constructible and movable.
template <class T>
class [[nodiscard]] Result {
   public:
    Result(T value) : value_(std::move(value)) {}
    Result(Error error) : error_(std::move(error)) {}

    bool ok() const { return error_.status == THETA_STATUS_OK; }
    explicit operator bool() const { return ok(); }
    /// The value; a default-constructed T when !ok().
    T &value() & { return value_; }
    T &&value() && { return std::move(value_); }
    const Error &error() const { return error_; }
    ThetaStatus status() const { return error_.status; }

   private:
    T value_{};
    Error error_{};
};

/// Success or an error.
template <>
class [[nodiscard]] Result<void> {
   public:
    Result() = default;
    Result(Error error) : error_(std::move(error)) {}

    bool ok() const { return error_.status == THETA_STATUS_OK; }
    explicit operator bool() const { return ok(); }
    const Error &error() const { return error_; }
    ThetaStatus status() const { return error_.status; }

   private:
    Error error_{};
};

using Status = Result<void>;

namespace detail {

inline Error error_of(ThetaStatus status) { return Error{status, last_error_message()}; }

inline Status status_of(ThetaStatus status) {
    if (status == THETA_STATUS_OK) {
        return {};
    }
    return error_of(status);
}

/// Runs `call(&out)` and wraps `out` or the error.
template <class T, class Call>
Result<T> fetch(Call &&call) {
    T out{};
    ThetaStatus status = call(&out);
    if (status != THETA_STATUS_OK) {
        return error_of(status);
    }
    return out;
}

inline const uint8_t *bytes_of(std::string_view s) { return reinterpret_cast<const uint8_t *>(s.data()); }

/// A move-only owner of a handle H freed by Free.
template <class H, ThetaStatus (*Free)(H)>
class Owned {
   public:
    Owned() = default;
    explicit Owned(H handle) : handle_(handle) {}
    Owned(const Owned &) = delete;
    Owned &operator=(const Owned &) = delete;
    Owned(Owned &&other) noexcept : handle_(other.release()) {}
    Owned &operator=(Owned &&other) noexcept {
        if (this != &other) {
            reset();
            handle_ = other.release();
        }
        return *this;
    }
    ~Owned() { reset(); }

    /// The raw handle, for calls the wrapper does not cover.
    H get() const { return handle_; }
    explicit operator bool() const { return handle_.id != 0; }

    /// Frees the object now (a no-op when empty).
    void reset() {
        if (handle_.id != 0) {
            Free(handle_);
            handle_ = H{0};
        }
    }

   private:
    H release() {
        H handle = handle_;
        handle_ = H{0};
        return handle;
    }
    H handle_{0};
};

}  // namespace detail

/// Fails when the loaded library speaks another ABI than this header.
inline Status check_abi() {
    if (theta_abi_version() != THETA_ABI_VERSION) {
        return Error{THETA_STATUS_INVALID_ARGUMENT,
                     "library ABI " + std::to_string(theta_abi_version()) + " differs from header ABI " +
                         std::to_string(THETA_ABI_VERSION)};
    }
    return {};
}

/// Bytes owned by the library, valid as long as their owner.
struct Bytes {
    const uint8_t *data = nullptr;
    size_t size = 0;
};

class World;

/// A world's state at one tick, in encoded chunks.
class Snapshot {
   public:
    Snapshot() = default;
    explicit Snapshot(ThetaSnapshot handle) : owned_(handle) {}

    Result<uint64_t> tick() const {
        return detail::fetch<uint64_t>([&](uint64_t *out) { return theta_snapshot_tick(owned_.get(), out); });
    }
    Result<size_t> chunk_count() const {
        return detail::fetch<size_t>([&](size_t *out) { return theta_snapshot_chunk_count(owned_.get(), out); });
    }
    /// Chunk `index`; its bytes live as long as this snapshot.
    Result<Bytes> chunk(size_t index) const {
        return detail::fetch<Bytes>(
            [&](Bytes *out) { return theta_snapshot_chunk(owned_.get(), index, &out->data, &out->size); });
    }
    ThetaSnapshot get() const { return owned_.get(); }

   private:
    detail::Owned<ThetaSnapshot, theta_snapshot_free> owned_;
};

/// An encoded delta frame.
class Delta {
   public:
    Delta() = default;
    explicit Delta(ThetaDelta handle) : owned_(handle) {}

    /// The frame's bytes; they live as long as this delta.
    Result<Bytes> bytes() const {
        return detail::fetch<Bytes>([&](Bytes *out) { return theta_delta_bytes(owned_.get(), &out->data, &out->size); });
    }
    Result<ThetaDeltaInfo> info() const {
        return detail::fetch<ThetaDeltaInfo>([&](ThetaDeltaInfo *out) { return theta_delta_info(owned_.get(), out); });
    }

   private:
    detail::Owned<ThetaDelta, theta_delta_free> owned_;
};

/// The authoritative world of a host.
class World {
   public:
    World() = default;

    /// A new world; refuses to run against a library of another ABI.
    static Result<World> create(const ThetaWorldConfig *config = nullptr) {
        if (Status abi = check_abi(); !abi) {
            return abi.error();
        }
        ThetaWorld handle{0};
        if (ThetaStatus s = theta_world_new(config, &handle); s != THETA_STATUS_OK) {
            return detail::error_of(s);
        }
        return World(handle);
    }

    Result<uint32_t> register_fixed(std::string_view name, uint32_t size) {
        return detail::fetch<uint32_t>([&](uint32_t *out) {
            return theta_world_register_fixed(get(), detail::bytes_of(name), name.size(), size, out);
        });
    }
    Result<uint32_t> register_variable(std::string_view name, uint32_t max_size) {
        return detail::fetch<uint32_t>([&](uint32_t *out) {
            return theta_world_register_variable(get(), detail::bytes_of(name), name.size(), max_size, out);
        });
    }
    Result<uint32_t> component_id(std::string_view name) const {
        return detail::fetch<uint32_t>([&](uint32_t *out) {
            return theta_world_component_id(get(), detail::bytes_of(name), name.size(), out);
        });
    }
    Result<uint64_t> spawn() {
        return detail::fetch<uint64_t>([&](uint64_t *out) { return theta_world_spawn(get(), out); });
    }
    Status despawn(uint64_t entity) { return detail::status_of(theta_world_despawn(get(), entity)); }
    Status set(uint64_t entity, uint32_t component, const void *data, size_t size) {
        return detail::status_of(
            theta_world_set(get(), entity, component, static_cast<const uint8_t *>(data), size, nullptr));
    }
    /// Writes a trivially copyable value as its bytes.
    template <class T>
    Status set(uint64_t entity, uint32_t component, const T &value) {
        static_assert(std::is_trivially_copyable_v<T>, "component values are raw bytes");
        return set(entity, component, &value, sizeof(T));
    }
    /// Writes `count` values found `stride` bytes apart from `first`.
    Status set_batch(uint32_t component, const uint64_t *entities, const void *first, size_t stride, size_t count,
                     ThetaBatchResult *result = nullptr) {
        return detail::status_of(theta_world_set_batch(get(), component, entities,
                                                       static_cast<const uint8_t *>(first), stride, count, result));
    }
    /// Whether the entity held the component.
    Result<bool> remove(uint64_t entity, uint32_t component) {
        uint8_t removed = 0;
        if (ThetaStatus s = theta_world_remove(get(), entity, component, &removed); s != THETA_STATUS_OK) {
            return detail::error_of(s);
        }
        return removed != 0;
    }
    Result<uint64_t> advance() {
        return detail::fetch<uint64_t>([&](uint64_t *out) { return theta_world_advance(get(), out); });
    }
    Result<uint64_t> tick() const {
        return detail::fetch<uint64_t>([&](uint64_t *out) { return theta_world_tick(get(), out); });
    }
    Result<uint64_t> state_hash() const {
        return detail::fetch<uint64_t>([&](uint64_t *out) { return theta_world_state_hash(get(), out); });
    }
    Result<ThetaWorldStats> stats() const {
        return detail::fetch<ThetaWorldStats>([&](ThetaWorldStats *out) { return theta_world_stats(get(), out); });
    }
    /// A snapshot in chunks of at most `max_chunk_bytes` (0: the default, 16 KiB).
    Result<Snapshot> snapshot(size_t max_chunk_bytes = 0) {
        ThetaSnapshot handle{0};
        if (ThetaStatus s = theta_world_snapshot(get(), max_chunk_bytes, &handle); s != THETA_STATUS_OK) {
            return detail::error_of(s);
        }
        return Snapshot(handle);
    }
    Result<Delta> delta_since(uint64_t tick) {
        ThetaDelta handle{0};
        if (ThetaStatus s = theta_world_delta_since(get(), tick, &handle); s != THETA_STATUS_OK) {
            return detail::error_of(s);
        }
        return Delta(handle);
    }
    ThetaWorld get() const { return owned_.get(); }

   private:
    explicit World(ThetaWorld handle) : owned_(handle) {}
    detail::Owned<ThetaWorld, theta_world_free> owned_;
};

/// Consecutive delta frames for one receiver over an in-order transport.
class Tracker {
   public:
    Tracker() = default;

    static Result<Tracker> create() {
        ThetaTracker handle{0};
        if (ThetaStatus s = theta_tracker_new(&handle); s != THETA_STATUS_OK) {
            return detail::error_of(s);
        }
        return Tracker(handle);
    }
    /// A tracker for a receiver that applied `snapshot`.
    static Result<Tracker> after(const Snapshot &snapshot) {
        ThetaTracker handle{0};
        if (ThetaStatus s = theta_tracker_new_after_snapshot(snapshot.get(), &handle); s != THETA_STATUS_OK) {
            return detail::error_of(s);
        }
        return Tracker(handle);
    }
    Result<Delta> diff(World &world) {
        ThetaDelta handle{0};
        if (ThetaStatus s = theta_tracker_diff(owned_.get(), world.get(), &handle); s != THETA_STATUS_OK) {
            return detail::error_of(s);
        }
        return Delta(handle);
    }

   private:
    explicit Tracker(ThetaTracker handle) : owned_(handle) {}
    detail::Owned<ThetaTracker, theta_tracker_free> owned_;
};

/// A local copy of a peer's world.
class Replica {
   public:
    Replica() = default;

    /// A new replica; refuses to run against a library of another ABI.
    static Result<Replica> create() {
        if (Status abi = check_abi(); !abi) {
            return abi.error();
        }
        ThetaReplica handle{0};
        if (ThetaStatus s = theta_replica_new(&handle); s != THETA_STATUS_OK) {
            return detail::error_of(s);
        }
        return Replica(handle);
    }

    Result<uint32_t> register_fixed(std::string_view name, uint32_t size) {
        return detail::fetch<uint32_t>([&](uint32_t *out) {
            return theta_replica_register_fixed(get(), detail::bytes_of(name), name.size(), size, out);
        });
    }
    Result<uint32_t> component_id(std::string_view name) const {
        return detail::fetch<uint32_t>([&](uint32_t *out) {
            return theta_replica_component_id(get(), detail::bytes_of(name), name.size(), out);
        });
    }
    /// Applies a snapshot chunk or delta frame; the result is a ThetaApplied code.
    Result<uint8_t> apply(Bytes bytes) {
        return detail::fetch<uint8_t>(
            [&](uint8_t *out) { return theta_replica_apply(get(), bytes.data, bytes.size, out); });
    }
    /// Moves up to `capacity` events into `out`; their data lives until the next poll.
    Result<size_t> poll(ThetaEvent *out, size_t capacity) {
        return detail::fetch<size_t>(
            [&](size_t *count) { return theta_replica_poll_events(get(), out, capacity, count); });
    }
    /// Copies a value into `buf`; the result is its size.
    Result<size_t> get(uint64_t entity, uint32_t component, void *buf, size_t capacity) const {
        return detail::fetch<size_t>([&](size_t *len) {
            return theta_replica_get(get(), entity, component, static_cast<uint8_t *>(buf), capacity, len);
        });
    }
    Result<uint64_t> state_hash() const {
        return detail::fetch<uint64_t>([&](uint64_t *out) { return theta_replica_state_hash(get(), out); });
    }
    Result<ThetaReplicaStats> stats() const {
        return detail::fetch<ThetaReplicaStats>(
            [&](ThetaReplicaStats *out) { return theta_replica_stats(get(), out); });
    }
    ThetaReplica get() const { return owned_.get(); }

   private:
    explicit Replica(ThetaReplica handle) : owned_(handle) {}
    detail::Owned<ThetaReplica, theta_replica_free> owned_;
};

}  // namespace theta

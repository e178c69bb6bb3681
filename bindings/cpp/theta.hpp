// theta.hpp: header-only C++17 wrapper of the Theta C ABI (include/theta.h).
//
// Move-only RAII owners for every object (world, snapshot, delta, tracker, replica,
// session), no exceptions, no RTTI (builds with -fno-exceptions -fno-rtti, as Unreal
// does). Every fallible call returns a theta::Result<T>: test it with ok() / operator
// bool, then read value() or error().
// Threading and lifetime rules are those of theta.h.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

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

/// Runs `call(out, capacity, &count)` for a list of T, growing `out` to the count the
/// library asks for on THETA_STATUS_BUFFER_TOO_SMALL (the list may grow between calls).
template <class T, class Call>
Result<std::vector<T>> fetch_all(Call &&call) {
    std::vector<T> out;
    for (;;) {
        size_t count = 0;
        ThetaStatus status = call(out.empty() ? nullptr : out.data(), out.size(), &count);
        if (status == THETA_STATUS_OK) {
            out.resize(count);
            return out;
        }
        if (status != THETA_STATUS_BUFFER_TOO_SMALL) {
            return error_of(status);
        }
        out.resize(count);
    }
}

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
    /// Gives the handle up without freeing it (for a call that consumed the object).
    H release() {
        H handle = handle_;
        handle_ = H{0};
        return handle;
    }

   private:
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

/// The default session configuration: zeroed, with its struct_size set (as
/// theta_session_config_init writes it). Set the fields you need on the copy.
inline ThetaSessionConfig session_config() {
    ThetaSessionConfig config{};
    config.struct_size = sizeof(ThetaSessionConfig);
    return config;
}

/// The default custom-transport configuration: zeroed, with its struct_size set (as
/// theta_transport_config_init writes it).
inline ThetaTransportConfig transport_config() {
    ThetaTransportConfig config{};
    config.struct_size = sizeof(ThetaTransportConfig);
    return config;
}

/// The default world configuration: zeroed, with its struct_size set.
inline ThetaWorldConfig world_config() {
    ThetaWorldConfig config{};
    config.struct_size = sizeof(ThetaWorldConfig);
    return config;
}

/// Interest volumes (ThetaInterestVolume) for Session::set_interest and
/// Session::set_client_interest: entities inside become relevant to the client and stay
/// so until they leave the outer bound.
struct Volume {
    /// A sphere around `center` (usually the head): entities within `radius` metres
    /// become relevant and stay so within `outer` (>= radius: the hysteresis).
    static ThetaInterestVolume sphere(std::array<float, 3> center, float radius, float outer) {
        ThetaInterestVolume v{};
        v.kind = THETA_INTEREST_VOLUME_SPHERE;
        for (size_t i = 0; i < 3; i++) {
            v.a[i] = center[i];
        }
        v.inner = radius;
        v.outer = outer;
        return v;
    }
    /// A sphere without hysteresis (outer = radius).
    static ThetaInterestVolume sphere(std::array<float, 3> center, float radius) {
        return sphere(center, radius, radius);
    }
    /// An axis-aligned box from `min` to `max`: entities inside become relevant and stay
    /// so within `margin` metres around it.
    static ThetaInterestVolume box(std::array<float, 3> min, std::array<float, 3> max, float margin = 0.0f) {
        ThetaInterestVolume v{};
        v.kind = THETA_INTEREST_VOLUME_BOX;
        for (size_t i = 0; i < 3; i++) {
            v.a[i] = min[i];
            v.b[i] = max[i];
        }
        v.outer = margin;
        return v;
    }
};

/// Declared fields (ThetaField) for World::declare_fields and Replica::declare_fields:
/// what the bytes of a fixed-size component mean, so that they are quantised to a stated
/// precision; bytes no field names stay raw and bit-exact. Every peer must declare the
/// same fields (they are part of the registry hash checked at join).
struct Field {
    /// Three floats (x, y, z, metres) at `offset`, within `mm` millimetres per axis.
    static ThetaField position(uint32_t offset, float mm) { return with(THETA_FIELD_POSITION, offset, mm); }
    /// A quaternion (x, y, z, w floats) at `offset`, within `degrees`.
    static ThetaField rotation(uint32_t offset, float degrees) {
        return with(THETA_FIELD_ROTATION, offset, degrees);
    }
    /// A float at `offset` in [min, max], within `precision`.
    static ThetaField scalar(uint32_t offset, float min, float max, float precision) {
        ThetaField f = with(THETA_FIELD_SCALAR, offset, precision);
        f.min = min;
        f.max = max;
        return f;
    }
    /// A little-endian integer of `bytes` (1, 2, 4 or 8) at `offset`, bit-exact.
    static ThetaField integer(uint32_t offset, uint8_t bytes) {
        ThetaField f = with(THETA_FIELD_INT, offset, 0.0f);
        f.bytes = bytes;
        return f;
    }
    /// Bit flags of `bytes` (1, 2, 4 or 8) at `offset`, bit-exact.
    static ThetaField flags(uint32_t offset, uint8_t bytes) {
        ThetaField f = with(THETA_FIELD_FLAGS, offset, 0.0f);
        f.bytes = bytes;
        return f;
    }

   private:
    // Zero-initialised: members a kind does not use, and the reserved bytes, must be 0.
    static ThetaField with(uint32_t kind, uint32_t offset, float precision) {
        ThetaField f{};
        f.kind = kind;
        f.offset = offset;
        f.precision = precision;
        return f;
    }
};

/// Bytes owned by the library, valid as long as their owner.
struct Bytes {
    const uint8_t *data = nullptr;
    size_t size = 0;
};

class World;

/// One thing a session over a custom transport asks of it (Session::transport_poll).
struct TransportOutput {
    /// THETA_TRANSPORT_OUTPUT_KIND_SEND or _CLOSE (_NONE when nothing was queued).
    uint8_t kind = THETA_TRANSPORT_OUTPUT_KIND_NONE;
    /// The engine's id of the connection.
    uint64_t conn = 0;
    /// SEND: a ThetaChannel.
    uint8_t channel = 0;
    /// CLOSE: a ThetaCloseCode.
    uint32_t code = 0;
    /// SEND: the message; CLOSE: the reason (UTF-8). Its capacity is reused by the next poll.
    std::vector<uint8_t> bytes;
};

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
    /// Declares the fields of fixed-size `component` (see Field), before its first value;
    /// from then on its values are quantised to them. THETA_STATUS_NOT_QUANTISABLE then
    /// refuses a write whose declared field is NaN, infinite or out of range.
    Status declare_fields(uint32_t component, const ThetaField *fields, size_t count) {
        return detail::status_of(theta_world_declare_fields(get(), component, fields, count));
    }
    template <size_t N>
    Status declare_fields(uint32_t component, const ThetaField (&fields)[N]) {
        return declare_fields(component, fields, N);
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
    friend class Session;
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
    /// Declares the fields of one of the engine's own fixed-size types, as
    /// World::declare_fields, before any value of it arrives.
    Status declare_fields(uint32_t component, const ThetaField *fields, size_t count) {
        return detail::status_of(theta_replica_declare_fields(get(), component, fields, count));
    }
    template <size_t N>
    Status declare_fields(uint32_t component, const ThetaField (&fields)[N]) {
        return declare_fields(component, fields, N);
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

/// A certificate fingerprint (SHA-256), as a host gives it and a client pins it.
using Fingerprint = std::array<uint8_t, THETA_FINGERPRINT_LEN>;

/// Another peer's device pose for a display time, with its XrSpaceLocationFlags.
struct SampledPose {
    ThetaPosef pose{};
    uint64_t flags = 0;
};

/// The data of a session event (a value, or a reason as UTF-8 text); it lives until the
/// next poll on its session.
inline std::string_view event_data(const ThetaSessionEvent &event) {
    if (event.data == nullptr) {
        return {};
    }
    return std::string_view(reinterpret_cast<const char *>(event.data), event.data_len);
}

/// A host or a client over QUIC, owning its world; the destructor leaves or shuts down
/// (theta_session_free, which joins the session's network thread and may block about
/// 1 s); close() does the same on a background thread, and wait_closed() waits for every
/// such close. Or a host or client over the engine's own transport (host_custom(),
/// join_custom()): see "BRING YOUR OWN TRANSPORT" in theta.h.
class Session {
   public:
    Session() = default;

    /// Hosts on `bind` (e.g. "127.0.0.1:0"; see local_port()) with a self-signed
    /// certificate. The world is MOVED into the session: on success `world` is empty, on
    /// failure it stays the caller's. An empty `secret_hex` generates a join secret;
    /// `config` may be null for the defaults. Refuses a library of another ABI.
    static Result<Session> host(std::string_view bind, World &world, std::string_view secret_hex = {},
                                const ThetaSessionConfig *config = nullptr) {
        if (Status abi = check_abi(); !abi) {
            return abi.error();
        }
        ThetaSession handle{0};
        ThetaStatus s = theta_session_host(detail::bytes_of(bind), bind.size(), world.get(),
                                           detail::bytes_of(secret_hex), secret_hex.size(), config, &handle);
        return hosted(s, handle, world);
    }
    /// Hosts as host() does, presenting a PEM certificate chain (leaf first) and its key.
    static Result<Session> host_pem(std::string_view bind, World &world, std::string_view cert_chain_pem,
                                    std::string_view key_pem, std::string_view secret_hex = {},
                                    const ThetaSessionConfig *config = nullptr) {
        if (Status abi = check_abi(); !abi) {
            return abi.error();
        }
        ThetaSession handle{0};
        ThetaStatus s = theta_session_host_pem(detail::bytes_of(bind), bind.size(), world.get(),
                                               detail::bytes_of(cert_chain_pem), cert_chain_pem.size(),
                                               detail::bytes_of(key_pem), key_pem.size(),
                                               detail::bytes_of(secret_hex), secret_hex.size(), config, &handle);
        return hosted(s, handle, world);
    }
    /// Joins the host at `addr`, pinning its certificate `fingerprint`, with a join `token`
    /// it minted. `registry` is only read (its component types must equal the host's). The
    /// outcome arrives later as a JOINED or DISCONNECTED event from poll().
    static Result<Session> join(std::string_view addr, const Fingerprint &fingerprint, std::string_view token,
                                const World &registry, const ThetaSessionConfig *config = nullptr) {
        if (Status abi = check_abi(); !abi) {
            return abi.error();
        }
        ThetaSession handle{0};
        if (ThetaStatus s = theta_session_join(detail::bytes_of(addr), addr.size(), fingerprint.data(),
                                               detail::bytes_of(token), token.size(), registry.get(), config, &handle);
            s != THETA_STATUS_OK) {
            return detail::error_of(s);
        }
        return Session(handle);
    }
    /// Joins as join() does, verifying the host's chain against the PEM CA certificates
    /// `ca_pem` for `server_name` instead of pinning a fingerprint.
    static Result<Session> join_ca(std::string_view addr, std::string_view ca_pem, std::string_view server_name,
                                   std::string_view token, const World &registry,
                                   const ThetaSessionConfig *config = nullptr) {
        if (Status abi = check_abi(); !abi) {
            return abi.error();
        }
        ThetaSession handle{0};
        if (ThetaStatus s = theta_session_join_ca(detail::bytes_of(addr), addr.size(), detail::bytes_of(ca_pem),
                                                  ca_pem.size(), detail::bytes_of(server_name), server_name.size(),
                                                  detail::bytes_of(token), token.size(), registry.get(), config,
                                                  &handle);
            s != THETA_STATUS_OK) {
            return detail::error_of(s);
        }
        return Session(handle);
    }

    /// Hosts over the engine's own transport (no socket, no network thread); the world is
    /// MOVED in as by host(). Report connections and their messages with transport_*(),
    /// and carry out what transport_poll() gives.
    static Result<Session> host_custom(World &world, std::string_view secret_hex = {},
                                       const ThetaSessionConfig *config = nullptr,
                                       const ThetaTransportConfig *transport = nullptr) {
        if (Status abi = check_abi(); !abi) {
            return abi.error();
        }
        ThetaSession handle{0};
        ThetaStatus s = theta_session_host_custom(world.get(), detail::bytes_of(secret_hex), secret_hex.size(),
                                                  config, transport, &handle);
        return hosted(s, handle, world);
    }
    /// Joins over the engine's own transport with a join `token`; the request goes once
    /// the connection to the host is reported (transport_connected()).
    static Result<Session> join_custom(std::string_view token, const World &registry,
                                       const ThetaSessionConfig *config = nullptr,
                                       const ThetaTransportConfig *transport = nullptr) {
        if (Status abi = check_abi(); !abi) {
            return abi.error();
        }
        ThetaSession handle{0};
        if (ThetaStatus s = theta_session_join_custom(detail::bytes_of(token), token.size(), registry.get(), config,
                                                      transport, &handle);
            s != THETA_STATUS_OK) {
            return detail::error_of(s);
        }
        return Session(handle);
    }
    /// Custom transport: connection `conn` (the engine's id) opened.
    Status transport_connected(uint64_t conn) {
        return detail::status_of(theta_session_transport_connected(get(), conn));
    }
    /// Custom transport: connection `conn` received one whole message on `channel`.
    Status transport_receive(uint64_t conn, ThetaChannel channel, const void *data, size_t size) {
        return detail::status_of(theta_session_transport_receive(get(), conn, static_cast<uint8_t>(channel),
                                                                 static_cast<const uint8_t *>(data), size));
    }
    /// Custom transport: connection `conn` ended with the peer's `code` (a ThetaCloseCode;
    /// THETA_CLOSE_CODE_LOST when the transport lost it) and `reason`.
    Status transport_closed(uint64_t conn, uint32_t code, std::string_view reason = {}) {
        return detail::status_of(
            theta_session_transport_closed(get(), conn, code, detail::bytes_of(reason), reason.size()));
    }
    /// Custom transport: the transport's round-trip estimate of `conn`, microseconds.
    Status transport_set_rtt(uint64_t conn, uint64_t rtt_us) {
        return detail::status_of(theta_session_transport_set_rtt(get(), conn, rtt_us));
    }
    /// Custom transport: takes the next output into `out` (its bytes into out.bytes,
    /// grown as needed); the result is false when nothing was queued. Poll until false
    /// after every tick and report, and carry the outputs out in order.
    Result<bool> transport_poll(TransportOutput &out) {
        for (;;) {
            ThetaTransportOutput raw{};
            out.bytes.resize(out.bytes.capacity() < 256 ? 256 : out.bytes.capacity());
            ThetaStatus s = theta_session_transport_poll(get(), out.bytes.data(), out.bytes.size(), &raw);
            if (s == THETA_STATUS_BUFFER_TOO_SMALL) {
                out.bytes.reserve(raw.len);  // the output stays queued: take it with room for it
                continue;
            }
            if (s != THETA_STATUS_OK) {
                return detail::error_of(s);
            }
            out.kind = raw.kind;
            out.conn = raw.conn;
            out.channel = raw.channel;
            out.code = raw.code;
            out.bytes.resize(raw.len);
            return raw.kind != THETA_TRANSPORT_OUTPUT_KIND_NONE;
        }
    }
    /// Custom transport: says goodbye (a goodbye, then a close per connection, to poll and
    /// carry out before the session is destroyed).
    Status leave() { return detail::status_of(theta_session_leave(get())); }
    /// Client: reconnects after the connection dropped, resuming its state without a
    /// snapshot (over a custom transport, report the new connection with
    /// transport_connected() after it). JOINED or DISCONNECTED follows; DISCONNECTED with
    /// cause REFUSED: the host's grace period ended, join again with a fresh token.
    /// THETA_STATUS_WRONG_ROLE on a host; THETA_STATUS_CANNOT_RESUME on a client never
    /// admitted, still connected or already resuming.
    Status reconnect() { return detail::status_of(theta_session_reconnect(get())); }

    /// One network tick; never blocks on the network.
    Status tick() { return detail::status_of(theta_session_tick(get())); }
    /// Moves up to `capacity` events into `out`; their data lives until the next poll.
    /// Poll until the result is 0 to drain.
    Result<size_t> poll(ThetaSessionEvent *out, size_t capacity) {
        return detail::fetch<size_t>(
            [&](size_t *count) { return theta_session_poll_events(get(), out, capacity, count); });
    }

    Result<uint64_t> spawn() {
        return detail::fetch<uint64_t>([&](uint64_t *out) { return theta_session_spawn(get(), out); });
    }
    Status despawn(uint64_t entity) { return detail::status_of(theta_session_despawn(get(), entity)); }
    Status set(uint64_t entity, uint32_t component, const void *data, size_t size) {
        return detail::status_of(
            theta_session_set(get(), entity, component, static_cast<const uint8_t *>(data), size, nullptr));
    }
    /// Writes a trivially copyable value as its bytes.
    template <class T>
    Status set(uint64_t entity, uint32_t component, const T &value) {
        static_assert(std::is_trivially_copyable_v<T>, "component values are raw bytes");
        return set(entity, component, &value, sizeof(T));
    }
    /// Writes `count` values of a fixed-size component to entities this peer owns in one
    /// call: value i, for entities[i], is at `first + i * stride`. All or nothing.
    Status set_batch(uint32_t component, const uint64_t *entities, const void *first, size_t stride, size_t count,
                     ThetaBatchResult *result = nullptr) {
        return detail::status_of(theta_session_set_batch(get(), component, entities,
                                                         static_cast<const uint8_t *>(first), stride, count, result));
    }
    /// Writes an array of trivially copyable values, one per entity.
    template <class T>
    Status set_batch_of(uint32_t component, const uint64_t *entities, const T *values, size_t count,
                        ThetaBatchResult *result = nullptr) {
        static_assert(std::is_trivially_copyable_v<T>, "component values are raw bytes");
        return set_batch(component, entities, static_cast<const void *>(values), sizeof(T), count, result);
    }
    /// Whether the entity held the component.
    Result<bool> remove(uint64_t entity, uint32_t component) {
        uint8_t removed = 0;
        if (ThetaStatus s = theta_session_remove(get(), entity, component, &removed); s != THETA_STATUS_OK) {
            return detail::error_of(s);
        }
        return removed != 0;
    }
    /// Copies a value into `buf`; the result is its size.
    Result<size_t> get(uint64_t entity, uint32_t component, void *buf, size_t capacity) const {
        return detail::fetch<size_t>([&](size_t *len) {
            return theta_session_get(get(), entity, component, static_cast<uint8_t *>(buf), capacity, len);
        });
    }
    Result<bool> is_alive(uint64_t entity) const {
        uint8_t alive = 0;
        if (ThetaStatus s = theta_session_is_alive(get(), entity, &alive); s != THETA_STATUS_OK) {
            return detail::error_of(s);
        }
        return alive != 0;
    }

    Result<uint64_t> state_hash() const {
        return detail::fetch<uint64_t>([&](uint64_t *out) { return theta_session_state_hash(get(), out); });
    }
    Result<ThetaSessionStats> stats() const {
        return detail::fetch<ThetaSessionStats>(
            [&](ThetaSessionStats *out) { return theta_session_stats(get(), out); });
    }
    /// The figures of each connection.
    Result<std::vector<ThetaPeerStats>> peer_stats() const {
        return detail::fetch_all<ThetaPeerStats>([&](ThetaPeerStats *out, size_t capacity, size_t *count) {
            return theta_session_peer_stats(get(), out, capacity, count);
        });
    }
    /// The human-readable panel of the session's figures.
    Result<std::string> diagnostics_text() const {
        std::string text;
        for (;;) {
            size_t len = 0;
            uint8_t *buf = text.empty() ? nullptr : reinterpret_cast<uint8_t *>(text.data());
            if (ThetaStatus s = theta_session_diagnostics_text(get(), buf, text.size(), &len); s != THETA_STATUS_OK) {
                return detail::error_of(s);
            }
            if (len < text.size()) {
                text.resize(len);
                return text;
            }
            text.resize(len + 1);  // room for the NUL; the panel may have grown
        }
    }

    /// The host certificate's fingerprint: a host's own, or the one a client pins.
    Result<Fingerprint> fingerprint() const {
        return detail::fetch<Fingerprint>(
            [&](Fingerprint *out) { return theta_session_fingerprint(get(), out->data()); });
    }
    Result<uint16_t> local_port() const {
        return detail::fetch<uint16_t>([&](uint16_t *out) { return theta_session_local_port(get(), out); });
    }
    /// Host: a join token admitting `peer` once, valid for `ttl_seconds`.
    Result<std::string> mint_token(uint16_t peer, uint64_t ttl_seconds) const {
        std::string token(THETA_JOIN_TOKEN_LEN, '\0');
        size_t len = 0;
        ThetaStatus s = theta_session_mint_token(get(), peer, ttl_seconds, reinterpret_cast<uint8_t *>(token.data()),
                                                 token.size(), &len);
        if (s == THETA_STATUS_BUFFER_TOO_SMALL) {
            token.resize(len);
            s = theta_session_mint_token(get(), peer, ttl_seconds, reinterpret_cast<uint8_t *>(token.data()),
                                         token.size(), &len);
        }
        if (s != THETA_STATUS_OK) {
            return detail::error_of(s);
        }
        token.resize(len);
        return token;
    }
    /// This session's peer id (THETA_STATUS_NOT_FOUND on a client not joined yet).
    Result<uint16_t> peer() const {
        return detail::fetch<uint16_t>([&](uint16_t *out) { return theta_session_peer(get(), out); });
    }

    /// Stores this peer's newest pose of `device` (0 head, 1 left hand, 2 right hand,
    /// 3-10 trackers) at `time` (XrTime ns) with its XrSpaceLocationFlags.
    Status push_pose(uint8_t device, const ThetaPosef &pose, int64_t time, uint64_t flags) {
        return detail::status_of(theta_session_push_pose(get(), device, &pose, time, flags));
    }
    /// push_pose() with velocities (either may be null when unknown).
    Status push_pose_velocity(uint8_t device, const ThetaPosef &pose, int64_t time, uint64_t flags,
                              const ThetaVector3f *linear_velocity, const ThetaVector3f *angular_velocity) {
        return detail::status_of(theta_session_push_pose_velocity(get(), device, &pose, time, flags,
                                                                  linear_velocity, angular_velocity));
    }
    /// Stores the input state of a controller whose pose was pushed before.
    Status push_controller(uint8_t device, const ThetaControllerState &state) {
        return detail::status_of(theta_session_push_controller(get(), device, &state));
    }
    /// Another peer's device pose to render at `display_time` (THETA_STATUS_NOT_FOUND
    /// until a sample arrived).
    Result<SampledPose> sample_pose(uint16_t peer, uint8_t device, int64_t display_time) const {
        return detail::fetch<SampledPose>([&](SampledPose *out) {
            return theta_session_sample_pose(get(), peer, device, display_time, &out->pose, &out->flags);
        });
    }
    /// Another peer's newest controller state (THETA_STATUS_NOT_FOUND until one arrived).
    Result<ThetaControllerState> sample_controller(uint16_t peer, uint8_t device) const {
        return detail::fetch<ThetaControllerState>(
            [&](ThetaControllerState *out) { return theta_session_sample_controller(get(), peer, device, out); });
    }
    /// Tells the session the engine's XrTime now.
    Status set_xr_time(int64_t xr_now) { return detail::status_of(theta_session_set_xr_time(get(), xr_now)); }
    /// The session clock now, XrTime ns.
    Result<int64_t> now() const {
        return detail::fetch<int64_t>([&](int64_t *out) { return theta_session_now(get(), out); });
    }

    /// Host: starts training a dictionary for `kind`; the result is the id it will have.
    Result<uint32_t> train_dictionary(ThetaMessageKind kind) {
        return detail::fetch<uint32_t>([&](uint32_t *out) {
            return theta_session_train_dictionary(get(), static_cast<uint8_t>(kind), out);
        });
    }
    Result<ThetaCompressionStats> compression_stats(ThetaMessageKind kind) const {
        return detail::fetch<ThetaCompressionStats>([&](ThetaCompressionStats *out) {
            return theta_session_compression_stats(get(), static_cast<uint8_t>(kind), out);
        });
    }
    /// Value and wire bytes sent per component type.
    Result<std::vector<ThetaComponentWireStats>> component_stats() const {
        return detail::fetch_all<ThetaComponentWireStats>(
            [&](ThetaComponentWireStats *out, size_t capacity, size_t *count) {
                return theta_session_component_stats(get(), out, capacity, count);
            });
    }

    // Application messages (theta_session_send_message): opaque bytes on an application
    // channel, to THETA_PEER_HOST, one peer, or THETA_PEER_ALL; they arrive as
    // THETA_SESSION_EVENT_KIND_MESSAGE events (channel, peer = sender, data = body).

    /// Sends `size` bytes at `data` on `channel` to `to`: reliable-ordered, or unreliable
    /// (at most once, maybe not at all) when `reliable` is false.
    Status send_message(uint16_t to, uint32_t channel, const void *data, size_t size, bool reliable = true) {
        return detail::status_of(theta_session_send_message(get(), to, channel,
                                                            reliable ? THETA_MESSAGE_RELIABLE : 0,
                                                            static_cast<const uint8_t *>(data), size));
    }
    /// Host: answers a THETA_SESSION_EVENT_KIND_MESSAGE_REQUESTED event (its `request`):
    /// relays the message, or refuses it to its sender with `reason`.
    Status decide_message(uint64_t request, bool accept, std::string_view reason = {}) {
        return detail::status_of(theta_session_decide_message(get(), request, accept ? 1 : 0,
                                                              reinterpret_cast<const uint8_t *>(reason.data()),
                                                              reason.size()));
    }
    /// Host: holds client-to-client messages for decide_message() (unanswered ones are
    /// refused after `timeout_ms`; 0: 1 000 ms).
    Status set_message_filter(bool enabled, uint32_t timeout_ms = 0) {
        return detail::status_of(theta_session_set_message_filter(get(), enabled ? 1 : 0, timeout_ms));
    }
    /// Host: each client's message rates from its next connection (0: a field's default).
    Status set_message_limits(uint32_t messages_per_second, uint32_t burst_messages, uint32_t bytes_per_second,
                              uint32_t burst_bytes, uint32_t flood_factor = 0) {
        return detail::status_of(theta_session_set_message_limits(get(), messages_per_second, burst_messages,
                                                                  bytes_per_second, burst_bytes, flood_factor));
    }

    // Ownership (component 0: the whole entity). Answers come as OWNERSHIP_CHANGED,
    // OWNERSHIP_DENIED and, on a host with ThetaSessionConfig::ownership_hook_ms,
    // OWNERSHIP_REQUESTED events from poll().

    /// Client: asks the host for (entity, component), or renews a lease held.
    Status request_ownership(uint64_t entity, uint32_t component = 0) {
        return detail::status_of(theta_session_request_ownership(get(), entity, component));
    }
    /// Gives up what this peer holds; a client's last writes go first, then nobody owns it.
    Status release_ownership(uint64_t entity, uint32_t component = 0) {
        return detail::status_of(theta_session_release_ownership(get(), entity, component));
    }
    /// Sets who may take (entity, component) and its flags (THETA_OWNERSHIP_DESPAWN_WITH_OWNER
    /// or 0): the host for anything, a client for what it holds.
    Status set_ownership_policy(uint64_t entity, uint32_t component, ThetaOwnershipPolicy policy,
                                uint8_t flags = 0) {
        return detail::status_of(
            theta_session_set_ownership_policy(get(), entity, component, static_cast<uint8_t>(policy), flags));
    }
    /// Host: makes `owner` (a peer id, or THETA_OWNER_NOBODY) the owner, whatever the policy.
    Status set_owner(uint64_t entity, uint32_t component, uint16_t owner) {
        return detail::status_of(theta_session_set_owner(get(), entity, component, owner));
    }
    /// Host: answers an OWNERSHIP_REQUESTED event (its `request`); a refusal tells the
    /// requester `reason` (at most THETA_MAX_OWNERSHIP_REASON_BYTES).
    Status decide_ownership(uint64_t request, bool accept, std::string_view reason = {}) {
        return detail::status_of(theta_session_decide_ownership(get(), request, accept ? 1 : 0,
                                                                detail::bytes_of(reason), reason.size()));
    }
    /// Who owns (entity, component) as this peer knows: a peer id, or THETA_OWNER_NOBODY.
    Result<uint16_t> owner(uint64_t entity, uint32_t component = 0) const {
        return detail::fetch<uint16_t>(
            [&](uint16_t *out) { return theta_session_owner(get(), entity, component, out); });
    }

    // Interest management (a host with ThetaSessionConfig::interest_cell): each client
    // gets only the entities it sees; those leaving its interest come as LEFT events.

    /// Host: places `entity` at `position` (x, y, z metres) for interest management.
    Status set_interest_position(uint64_t entity, const std::array<float, 3> &position) {
        return detail::status_of(theta_session_set_interest_position(get(), entity, position.data()));
    }
    /// Host: takes `entity`'s position away (with no scope either, every client sees it).
    Status clear_interest_position(uint64_t entity) {
        return detail::status_of(theta_session_set_interest_position(get(), entity, nullptr));
    }
    /// Host: reads every entity's position from `component` (three floats at `offset`).
    Status set_interest_source(uint32_t component, uint32_t offset = 0) {
        return detail::status_of(theta_session_set_interest_source(get(), component, offset));
    }
    /// Host: the scopes `entity` belongs to (at most THETA_MAX_INTEREST_SCOPES).
    Status set_interest_scopes(uint64_t entity, const uint32_t *scopes, size_t count) {
        return detail::status_of(theta_session_set_interest_scopes(get(), entity, scopes, count));
    }
    Status set_interest_scopes(uint64_t entity, const std::vector<uint32_t> &scopes) {
        return set_interest_scopes(entity, scopes.data(), scopes.size());
    }
    /// Host: what client `peer` sees (volumes and subscribed scopes), for the host's rules.
    Status set_client_interest(uint16_t peer, const ThetaInterestVolume *volumes, size_t volume_count,
                               const uint32_t *scopes = nullptr, size_t scope_count = 0) {
        return detail::status_of(
            theta_session_set_client_interest(get(), peer, volumes, volume_count, scopes, scope_count));
    }
    Status set_client_interest(uint16_t peer, const std::vector<ThetaInterestVolume> &volumes,
                               const std::vector<uint32_t> &scopes = {}) {
        return set_client_interest(peer, volumes.data(), volumes.size(), scopes.data(), scopes.size());
    }
    /// Client: what this client wants to see (usually a sphere around the head, each frame).
    Status set_interest(const ThetaInterestVolume *volumes, size_t volume_count, const uint32_t *scopes = nullptr,
                        size_t scope_count = 0) {
        return detail::status_of(theta_session_set_interest(get(), volumes, volume_count, scopes, scope_count));
    }
    Status set_interest(const std::vector<ThetaInterestVolume> &volumes, const std::vector<uint32_t> &scopes = {}) {
        return set_interest(volumes.data(), volumes.size(), scopes.data(), scopes.size());
    }
    /// `entity`'s priority weight among what this peer sends (1 by default, from
    /// THETA_MIN_PRIORITY_WEIGHT to THETA_MAX_PRIORITY_WEIGHT).
    Status set_priority(uint64_t entity, float weight) {
        return detail::status_of(theta_session_set_priority(get(), entity, weight));
    }
    /// Host: whether client `peer` sees `entity` now.
    Result<bool> sees(uint16_t peer, uint64_t entity) const {
        uint8_t out = 0;
        if (ThetaStatus s = theta_session_sees(get(), peer, entity, &out); s != THETA_STATUS_OK) {
            return detail::error_of(s);
        }
        return out != 0;
    }
    /// Host: the state hash client `peer` holds once the network delivers.
    Result<uint64_t> interest_hash(uint16_t peer) const {
        return detail::fetch<uint64_t>([&](uint64_t *out) { return theta_session_interest_hash(get(), peer, out); });
    }

    ThetaSession get() const { return owned_.get(); }

    /// Leaves or shuts down without blocking: the session is empty afterwards, and its
    /// goodbye and thread join happen in the background (theta_session_close).
    Status close() { return detail::status_of(theta_session_close(owned_.release())); }
    /// Waits up to `timeout_ms` for every close() to finish; the result is how many are
    /// still pending (0: nothing the library started for them runs any more).
    static Result<size_t> wait_closed(uint32_t timeout_ms) {
        return detail::fetch<size_t>([&](size_t *out) { return theta_session_wait_closed(timeout_ms, out); });
    }

   private:
    explicit Session(ThetaSession handle) : owned_(handle) {}
    /// The result of a host call: on success the world was moved into the session; on
    /// failure it stays the caller's, unchanged.
    static Result<Session> hosted(ThetaStatus status, ThetaSession handle, World &world) {
        if (status == THETA_STATUS_OK) {
            world.owned_.release();
            return Session(handle);
        }
        return detail::error_of(status);
    }
    detail::Owned<ThetaSession, theta_session_free> owned_;
};

}  // namespace theta

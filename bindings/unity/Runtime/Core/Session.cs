using System;
using System.Runtime.InteropServices;
using Theta.Interop;

namespace Theta
{
    /// <summary>
    /// A host or a client over QUIC, owning the replicated state. Call <see cref="Tick"/>
    /// once per frame and <see cref="Poll"/> until it returns 0.
    ///
    /// <see cref="Dispose"/> does not block: the goodbye to the peers and the join of the
    /// session's network thread happen on a background thread. An engine that must leave
    /// nothing running (script reload, quitting) disposes every session, then calls
    /// <see cref="WaitClosed"/>. A session never disposed is closed by its finalizer.
    /// </summary>
    public sealed unsafe partial class Session : IDisposable
    {
        /// <summary>Bytes of a certificate fingerprint (SHA-256).</summary>
        public const int FingerprintLength = (int)NativeMethods.THETA_FINGERPRINT_LEN;

        private NativeHandle handle;

        private Session(ThetaSession session)
        {
            handle = new NativeHandle(session.id);
        }

        ~Session()
        {
            Close();
        }

        internal ThetaSession Handle => new ThetaSession { id = handle.Get(nameof(Session)) };

        /// <summary>
        /// Hosts on <paramref name="bind"/> (e.g. "0.0.0.0:7000"; port 0 picks one, see
        /// <see cref="LocalPort"/>) with a self-signed certificate. The world MOVES into the
        /// session: on success it is unusable (write through the session); on failure it
        /// stays the caller's. A null <paramref name="secretHex"/> generates a join secret.
        /// </summary>
        public static Session Host(string bind, World world, SessionConfig config = null, string secretHex = null)
        {
            if (world == null)
            {
                throw new ArgumentNullException(nameof(world));
            }
            Library.EnsureCompatible();
            byte[] address = Library.Utf8(bind, nameof(bind));
            byte[] secret = secretHex == null ? new byte[0] : Library.Utf8(secretHex, nameof(secretHex));
            ThetaSessionConfig native = (config ?? new SessionConfig()).ToNative();
            ThetaWorld theWorld = world.Handle;
            ThetaSession session;
            fixed (byte* a = address)
            fixed (byte* s = secret)
            {
                Library.Check(NativeMethods.theta_session_host(a, (UIntPtr)address.Length, theWorld, s, (UIntPtr)secret.Length, &native, &session));
            }
            world.MovedInto("a Session");
            return new Session(session);
        }

        /// <summary>
        /// Joins the host at <paramref name="address"/> ("192.168.1.20:7000" or
        /// "name:7000", resolved in the background), pinning its certificate
        /// <paramref name="fingerprint"/>, with a join <paramref name="token"/> it minted.
        /// <paramref name="registry"/> is only read: its component types must equal the
        /// host's. Returns at once; the outcome is a Joined or Disconnected event.
        /// </summary>
        public static Session Join(string address, byte[] fingerprint, string token, World registry, SessionConfig config = null)
        {
            if (fingerprint == null)
            {
                throw new ArgumentNullException(nameof(fingerprint));
            }
            if (fingerprint.Length != FingerprintLength)
            {
                throw new ArgumentException("a fingerprint has " + FingerprintLength + " bytes, not " + fingerprint.Length, nameof(fingerprint));
            }
            if (registry == null)
            {
                throw new ArgumentNullException(nameof(registry));
            }
            Library.EnsureCompatible();
            byte[] addr = Library.Utf8(address, nameof(address));
            byte[] tok = Library.Utf8(token, nameof(token));
            ThetaSessionConfig native = (config ?? new SessionConfig()).ToNative();
            ThetaWorld theRegistry = registry.Handle;
            ThetaSession session;
            fixed (byte* a = addr)
            fixed (byte* f = fingerprint)
            fixed (byte* t = tok)
            {
                Library.Check(NativeMethods.theta_session_join(a, (UIntPtr)addr.Length, f, t, (UIntPtr)tok.Length, theRegistry, &native, &session));
            }
            return new Session(session);
        }

        /// <summary>One network tick; never blocks on the network.</summary>
        public void Tick()
        {
            Library.Check(NativeMethods.theta_session_tick(Handle));
        }

        /// <summary>
        /// Moves pending events into <paramref name="buffer"/> (up to its capacity) and
        /// returns how many; poll until 0. Allocates nothing.
        /// </summary>
        public int Poll(SessionEventBuffer buffer)
        {
            if (buffer == null)
            {
                throw new ArgumentNullException(nameof(buffer));
            }
            ThetaSession session = Handle;
            ThetaSessionEvent* events = buffer.Pointer;
            UIntPtr count;
            buffer.Count = 0;
            Library.Check(NativeMethods.theta_session_poll_events(session, events, (UIntPtr)buffer.Capacity, &count));
            buffer.Count = (int)count;
            return buffer.Count;
        }

        /// <summary>
        /// Client: resumes after a Disconnected event (cause <see cref="DisconnectCause.TimedOut"/>:
        /// the app was paused, the network changed). The session dials its host again and the
        /// host sends what changed meanwhile, no snapshot, while it keeps this client's state
        /// (<see cref="SessionConfig.ResumeGrace"/>). A Joined or Disconnected event follows;
        /// Disconnected with cause <see cref="DisconnectCause.Refused"/> means the grace ended:
        /// dispose this session and join again with a fresh token. Throws
        /// <see cref="ThetaException"/> with <see cref="Status.WrongRole"/> on a host,
        /// <see cref="Status.CannotResume"/> on a client never admitted, still connected or
        /// already resuming.
        /// </summary>
        public void Reconnect()
        {
            Library.Check(NativeMethods.theta_session_reconnect(Handle));
        }

        /// <summary>Creates an entity owned by this peer.</summary>
        public Entity Spawn()
        {
            ulong entity;
            Library.Check(NativeMethods.theta_session_spawn(Handle, &entity));
            return new Entity(entity);
        }

        /// <summary>Destroys an entity this peer owns.</summary>
        public void Despawn(Entity entity)
        {
            Library.Check(NativeMethods.theta_session_despawn(Handle, entity.Id));
        }

        /// <summary>Writes a value (copied) of an entity this peer owns.</summary>
        public Change Set(Entity entity, ComponentType component, ReadOnlySpan<byte> value)
        {
            component.CheckValue(value.Length, nameof(value));
            ThetaSession session = Handle;
            byte change;
            fixed (byte* p = &MemoryMarshal.GetReference(value))
            {
                Library.Check(NativeMethods.theta_session_set(session, entity.Id, component.Id, p, (UIntPtr)value.Length, &change));
            }
            return (Change)change;
        }

        /// <summary>Writes a value (copied) from an array.</summary>
        public Change Set(Entity entity, ComponentType component, byte[] value)
        {
            if (value == null)
            {
                throw new ArgumentNullException(nameof(value));
            }
            return Set(entity, component, new ReadOnlySpan<byte>(value));
        }

        /// <summary>Writes an unmanaged value as its bytes.</summary>
        public Change Set<T>(Entity entity, ComponentType component, T value)
#if THETA_NO_UNMANAGED_CONSTRAINT
            where T : struct
#else
            where T : unmanaged
#endif
        {
            return Set(entity, component, Bytes.Of(ref value));
        }

        /// <summary>
        /// Writes <paramref name="values"/>[i] to <paramref name="entities"/>[i] in one call,
        /// all or nothing. The component must be fixed-size, of the values' size.
        /// </summary>
        public BatchResult SetBatch<T>(ComponentType component, Entity[] entities, T[] values)
#if THETA_NO_UNMANAGED_CONSTRAINT
            where T : struct
#else
            where T : unmanaged
#endif
        {
            if (entities == null)
            {
                throw new ArgumentNullException(nameof(entities));
            }
            if (values == null)
            {
                throw new ArgumentNullException(nameof(values));
            }
            return SetBatch(component, new ReadOnlySpan<Entity>(entities), new ReadOnlySpan<T>(values));
        }

        /// <summary>As <see cref="SetBatch{T}(ComponentType, Entity[], T[])"/>, from spans.</summary>
        public BatchResult SetBatch<T>(ComponentType component, ReadOnlySpan<Entity> entities, ReadOnlySpan<T> values)
#if THETA_NO_UNMANAGED_CONSTRAINT
            where T : struct
#else
            where T : unmanaged
#endif
        {
            if (entities.Length != values.Length)
            {
                throw new ArgumentException(entities.Length + " entities but " + values.Length + " values", nameof(values));
            }
            ReadOnlySpan<byte> bytes = MemoryMarshal.AsBytes(values);
            int stride = values.Length == 0 ? 0 : bytes.Length / values.Length;
            return SetBatch(component, entities, bytes, stride);
        }

        /// <summary>
        /// Writes values found <paramref name="stride"/> bytes apart in
        /// <paramref name="values"/> (a component inside an array of engine structs), one
        /// per entity, all or nothing.
        /// </summary>
        public BatchResult SetBatch(ComponentType component, ReadOnlySpan<Entity> entities, ReadOnlySpan<byte> values, int stride)
        {
            if (component.Id == 0)
            {
                throw new ArgumentException("component type 0 is not registered", nameof(component));
            }
            if (component.IsVariable)
            {
                throw new ArgumentException("a batch writes a fixed-size component", nameof(component));
            }
            int size = component.KnowsLayout ? component.Size : stride;
            if (stride < size || stride < 0)
            {
                throw new ArgumentException("stride " + stride + " is less than the value size " + size, nameof(stride));
            }
            if (entities.Length > 0 && (long)(entities.Length - 1) * stride + size > values.Length)
            {
                throw new ArgumentException(entities.Length + " values of " + size + " bytes at stride " + stride + " need more than " + values.Length + " bytes", nameof(values));
            }
            ThetaSession session = Handle;
            ThetaBatchResult result;
            fixed (Entity* e = &MemoryMarshal.GetReference(entities))
            fixed (byte* v = &MemoryMarshal.GetReference(values))
            {
                Library.Check(NativeMethods.theta_session_set_batch(session, component.Id, (ulong*)e, v, (UIntPtr)stride, (UIntPtr)entities.Length, &result));
            }
            return new BatchResult { Inserted = result.inserted, Updated = result.updated, Unchanged = result.unchanged };
        }

        /// <summary>Removes a component from an entity this peer owns; whether it held it.</summary>
        public bool Remove(Entity entity, ComponentType component)
        {
            byte removed;
            Library.Check(NativeMethods.theta_session_remove(Handle, entity.Id, component.Id, &removed));
            return removed != 0;
        }

        /// <summary>Copies a value into <paramref name="destination"/>; returns its length.</summary>
        public int Get(Entity entity, ComponentType component, Span<byte> destination)
        {
            ThetaSession session = Handle;
            UIntPtr length;
            fixed (byte* p = &MemoryMarshal.GetReference(destination))
            {
                Library.Check(NativeMethods.theta_session_get(session, entity.Id, component.Id, p, (UIntPtr)destination.Length, &length));
            }
            return (int)length;
        }

        /// <summary>A value as a <typeparamref name="T"/>.</summary>
        public T Get<T>(Entity entity, ComponentType component) where T : struct
        {
            var value = default(T);
            Span<byte> bytes = MemoryMarshal.AsBytes(MemoryMarshal.CreateSpan(ref value, 1));
            int length = Get(entity, component, bytes);
            if (length != bytes.Length)
            {
                throw new ArgumentException("the value has " + length + " bytes, a " + typeof(T).Name + " " + bytes.Length);
            }
            return value;
        }

        public bool IsAlive(Entity entity)
        {
            byte alive;
            Library.Check(NativeMethods.theta_session_is_alive(Handle, entity.Id, &alive));
            return alive != 0;
        }

        /// <summary>Hash of the replicated state: equal on every peer once converged.</summary>
        public ulong StateHash
        {
            get
            {
                ulong hash;
                Library.Check(NativeMethods.theta_session_state_hash(Handle, &hash));
                return hash;
            }
        }

        /// <summary>This peer's id; null on a client not joined yet.</summary>
        public ushort? Peer
        {
            get
            {
                ushort peer;
                ThetaStatus status = NativeMethods.theta_session_peer(Handle, &peer);
                if (status == ThetaStatus.NotFound || status == ThetaStatus.NotConnected)
                {
                    return null;
                }
                Library.Check(status);
                return peer;
            }
        }

        /// <summary>The port the session's endpoint is bound to.</summary>
        public int LocalPort
        {
            get
            {
                ushort port;
                Library.Check(NativeMethods.theta_session_local_port(Handle, &port));
                return port;
            }
        }

        /// <summary>The host certificate's SHA-256 fingerprint (a host's own, or the one a client pins).</summary>
        public byte[] Fingerprint()
        {
            var fingerprint = new byte[FingerprintLength];
            ThetaSession session = Handle;
            fixed (byte* p = fingerprint)
            {
                Library.Check(NativeMethods.theta_session_fingerprint(session, p));
            }
            return fingerprint;
        }

        /// <summary>Host: a join token admitting <paramref name="peer"/> once, valid for <paramref name="ttl"/>.</summary>
        public string MintToken(ushort peer, TimeSpan ttl)
        {
            if (ttl.TotalSeconds < 1)
            {
                throw new ArgumentOutOfRangeException(nameof(ttl), "at least one second");
            }
            ThetaSession session = Handle;
            var token = new byte[NativeMethods.THETA_JOIN_TOKEN_LEN];
            UIntPtr length;
            fixed (byte* p = token)
            {
                Library.Check(NativeMethods.theta_session_mint_token(session, peer, (ulong)ttl.TotalSeconds, p, (UIntPtr)token.Length, &length));
            }
            return System.Text.Encoding.ASCII.GetString(token, 0, (int)length);
        }

        /// <summary>Counts of the session (all zero on a client still resolving its host).</summary>
        public SessionStats Stats
        {
            get
            {
                ThetaSessionStats stats;
                Library.Check(NativeMethods.theta_session_stats(Handle, &stats));
                return new SessionStats
                {
                    Tick = stats.tick,
                    Entities = stats.entities,
                    Components = stats.components,
                    PeerCount = stats.peer_count,
                    InboundDropped = stats.inbound_dropped,
                };
            }
        }

        /// <summary>
        /// Stores this peer's newest pose of <paramref name="device"/>, in OpenXR's frame, at
        /// <paramref name="time"/> (XrTime ns, see <see cref="SetXrTime"/>).
        /// </summary>
        public void PushPose(Device device, XrPose pose, long time, PoseFlags flags = PoseFlags.Tracked)
        {
            CheckDevice(device);
            ThetaSession session = Handle;
            Library.Check(NativeMethods.theta_session_push_pose(session, (byte)device, (ThetaPosef*)&pose, time, (ulong)flags));
        }

        /// <summary>As <see cref="PushPose(Device, XrPose, long, PoseFlags)"/>, from a pose in Unity's frame.</summary>
        public void PushPose(Device device, UnityPose pose, long time, PoseFlags flags = PoseFlags.Tracked)
        {
            PushPose(device, Frames.ToOpenXr(pose), time, flags);
        }

        /// <summary>
        /// Another peer's device pose (OpenXR frame) to render at
        /// <paramref name="displayTime"/>; false until a sample of it arrived.
        /// </summary>
        public bool TrySamplePose(ushort peer, Device device, long displayTime, out XrPose pose, out PoseFlags flags)
        {
            CheckDevice(device);
            ThetaSession session = Handle;
            XrPose sampled;
            ulong sampledFlags;
            ThetaStatus status = NativeMethods.theta_session_sample_pose(session, peer, (byte)device, displayTime, (ThetaPosef*)&sampled, &sampledFlags);
            if (status == ThetaStatus.NotFound)
            {
                pose = default(XrPose);
                flags = PoseFlags.None;
                return false;
            }
            Library.Check(status);
            pose = sampled;
            flags = (PoseFlags)sampledFlags;
            return true;
        }

        /// <summary>As <see cref="TrySamplePose(ushort, Device, long, out XrPose, out PoseFlags)"/>, in Unity's frame.</summary>
        public bool TrySamplePose(ushort peer, Device device, long displayTime, out UnityPose pose, out PoseFlags flags)
        {
            XrPose xr;
            bool found = TrySamplePose(peer, device, displayTime, out xr, out flags);
            pose = found ? Frames.ToUnity(xr) : default(UnityPose);
            return found;
        }

        /// <summary>Tells the session the engine's XrTime now, so pose times share its clock.</summary>
        public void SetXrTime(long xrNow)
        {
            Library.Check(NativeMethods.theta_session_set_xr_time(Handle, xrNow));
        }

        /// <summary>The session clock now, XrTime ns.</summary>
        public long Now
        {
            get
            {
                long now;
                Library.Check(NativeMethods.theta_session_now(Handle, &now));
                return now;
            }
        }

        private static void CheckDevice(Device device)
        {
            if (device > Device.Tracker7)
            {
                throw new ArgumentOutOfRangeException(nameof(device), "not a Device");
            }
        }

        /// <summary>
        /// Closes the session without blocking: the handle is invalid at once; the goodbye
        /// and the thread join run in the background (see <see cref="WaitClosed"/>).
        /// </summary>
        public void Dispose()
        {
            Close();
            GC.SuppressFinalize(this);
        }

        private void Close()
        {
            ulong id = handle.Take("this Session was disposed");
            if (id != 0)
            {
                NativeMethods.theta_session_close(new ThetaSession { id = id });
            }
        }

        /// <summary>
        /// Waits up to <paramref name="timeout"/> for every disposed session to finish
        /// closing; returns how many still are (0: nothing the library started for them
        /// runs any more). Call before a domain reload or quitting.
        /// </summary>
        public static int WaitClosed(TimeSpan timeout)
        {
            if (timeout < TimeSpan.Zero || timeout.TotalMilliseconds > uint.MaxValue)
            {
                throw new ArgumentOutOfRangeException(nameof(timeout));
            }
            Library.EnsureCompatible();
            UIntPtr pending;
            Library.Check(NativeMethods.theta_session_wait_closed((uint)timeout.TotalMilliseconds, &pending));
            return (int)pending;
        }
    }

    /// <summary>Counts of a session.</summary>
    public struct SessionStats
    {
        public ulong Tick;
        public ulong Entities;
        public ulong Components;
        public ulong PeerCount;
        public ulong InboundDropped;
    }
}

using System;
using System.Runtime.InteropServices;
using Theta.Interop;

namespace Theta
{
    /// <summary>The kind of an <see cref="InterestVolume"/>.</summary>
    public enum InterestVolumeKind : uint
    {
        Sphere = 0,
        Box = 1,
    }

    /// <summary>
    /// A region a client is interested in (metres, world space): entities inside become
    /// relevant to it and stay so until they leave the outer bound (hysteresis, so an entity
    /// at the edge does not flap). Make one with <see cref="Sphere(Vector3f, float, float)"/>
    /// or <see cref="Box"/>. Laid out as the C ABI's ThetaInterestVolume (36 bytes), so a
    /// span of them crosses without a copy.
    /// </summary>
    [StructLayout(LayoutKind.Sequential)]
    public readonly struct InterestVolume : IEquatable<InterestVolume>
    {
        /// <summary>Sphere or box.</summary>
        public readonly InterestVolumeKind Kind;
        /// <summary>Sphere: the centre. Box: the lowest corner.</summary>
        public readonly Vector3f A;
        /// <summary>Box: the highest corner. Sphere: unused.</summary>
        public readonly Vector3f B;
        /// <summary>Sphere: the radius within which entities become relevant. Box: unused.</summary>
        public readonly float Inner;
        /// <summary>Sphere: the radius within which they stay so. Box: the margin around it.</summary>
        public readonly float Outer;

        private InterestVolume(InterestVolumeKind kind, Vector3f a, Vector3f b, float inner, float outer)
        {
            Kind = kind;
            A = a;
            B = b;
            Inner = inner;
            Outer = outer;
        }

        /// <summary>
        /// A sphere around <paramref name="center"/> (usually the head): entities within
        /// <paramref name="radius"/> become relevant and stay so within
        /// <paramref name="outer"/> (at least the radius).
        /// </summary>
        public static InterestVolume Sphere(Vector3f center, float radius, float outer)
        {
            return new InterestVolume(InterestVolumeKind.Sphere, center, default(Vector3f), radius, outer);
        }

        /// <summary>A sphere without hysteresis (the outer radius is the radius).</summary>
        public static InterestVolume Sphere(Vector3f center, float radius)
        {
            return Sphere(center, radius, radius);
        }

        /// <summary>
        /// An axis-aligned box from <paramref name="min"/> to <paramref name="max"/>: entities
        /// inside become relevant and stay so within <paramref name="margin"/> around it.
        /// </summary>
        public static InterestVolume Box(Vector3f min, Vector3f max, float margin = 0)
        {
            return new InterestVolume(InterestVolumeKind.Box, min, max, 0, margin);
        }

        public bool Equals(InterestVolume o) => Kind == o.Kind && A.Equals(o.A) && B.Equals(o.B) && Inner == o.Inner && Outer == o.Outer;

        public override bool Equals(object obj) => obj is InterestVolume o && Equals(o);

        public override int GetHashCode() => A.GetHashCode() ^ (B.GetHashCode() << 3) ^ Inner.GetHashCode() ^ ((int)Kind << 29);

        public override string ToString() => Kind == InterestVolumeKind.Sphere
            ? "sphere " + A + " r " + Inner + ".." + Outer
            : "box " + A + ".." + B + " margin " + Outer;
    }

    /// <summary>
    /// Interest management: on a host whose config sets <see cref="SessionConfig.InterestCell"/>,
    /// each client gets only the entities it sees: global ones (no position, no scope),
    /// those in a scope it subscribes to, and those inside its volumes. An entity entering
    /// arrives whole; one leaving gives the client a Left event and leaves its world (it is
    /// not despawned). Misuse throws <see cref="ThetaException"/> with its status:
    /// <see cref="Status.InterestOff"/> on a host without an interest cell,
    /// <see cref="Status.WrongRole"/> for the other role's call,
    /// <see cref="Status.InvalidArgument"/> for a bad volume or too many,
    /// <see cref="Status.DeadEntity"/> for an entity not alive.
    /// </summary>
    public sealed unsafe partial class Session
    {
        /// <summary>Most volumes of one client.</summary>
        public const int MaxInterestVolumes = (int)NativeMethods.THETA_MAX_INTEREST_VOLUMES;
        /// <summary>Most scopes of an entity, and most scopes a client subscribes to.</summary>
        public const int MaxInterestScopes = (int)NativeMethods.THETA_MAX_INTEREST_SCOPES;
        /// <summary>The lightest priority weight (<see cref="SetPriority"/>).</summary>
        public const float MinPriorityWeight = NativeMethods.THETA_MIN_PRIORITY_WEIGHT;
        /// <summary>The heaviest priority weight.</summary>
        public const float MaxPriorityWeight = NativeMethods.THETA_MAX_PRIORITY_WEIGHT;

        /// <summary>Host: places the entity at <paramref name="position"/> (metres) for interest management.</summary>
        public void SetInterestPosition(Entity entity, Vector3f position)
        {
            Library.Check(NativeMethods.theta_session_set_interest_position(Handle, entity.Id, &position.X));
        }

        /// <summary>Host: takes the entity's position away (with no scope either, every client sees it).</summary>
        public void ClearInterestPosition(Entity entity)
        {
            Library.Check(NativeMethods.theta_session_set_interest_position(Handle, entity.Id, null));
        }

        /// <summary>
        /// Host: reads every entity's position from its value of <paramref name="component"/>:
        /// three floats at byte <paramref name="offset"/> (a transform's position, say),
        /// followed as the values change.
        /// </summary>
        public void SetInterestSource(ComponentType component, int offset = 0)
        {
            if (offset < 0)
            {
                throw new ArgumentOutOfRangeException(nameof(offset), offset, "a byte offset");
            }
            Library.Check(NativeMethods.theta_session_set_interest_source(Handle, component.Id, (uint)offset));
        }

        /// <summary>
        /// Host: the scopes (a room, a tool, a team) the entity belongs to, replacing its
        /// earlier ones: clients subscribed to one of them see it wherever it is.
        /// </summary>
        public void SetInterestScopes(Entity entity, ReadOnlySpan<uint> scopes)
        {
            ThetaSession session = Handle;
            fixed (uint* s = &MemoryMarshal.GetReference(scopes))
            {
                Library.Check(NativeMethods.theta_session_set_interest_scopes(session, entity.Id, s, (UIntPtr)scopes.Length));
            }
        }

        /// <summary>
        /// Host: what client <paramref name="peer"/> sees (volumes and subscribed scopes),
        /// for rules the host's engine decides; the client's next changed wish replaces it
        /// unless the host's config sets <see cref="SessionConfig.InterestHostOnly"/>.
        /// </summary>
        public void SetClientInterest(ushort peer, ReadOnlySpan<InterestVolume> volumes, ReadOnlySpan<uint> scopes)
        {
            ThetaSession session = Handle;
            fixed (InterestVolume* v = &MemoryMarshal.GetReference(volumes))
            fixed (uint* s = &MemoryMarshal.GetReference(scopes))
            {
                Library.Check(NativeMethods.theta_session_set_client_interest(session, peer, (ThetaInterestVolume*)v, (UIntPtr)volumes.Length, s, (UIntPtr)scopes.Length));
            }
        }

        /// <summary>
        /// Client: what this client wants to see, replacing its previous wish: volumes
        /// (usually a sphere around the head, every frame) and subscribed scopes. Sent to the
        /// host when it changed, at most every 50 ms. Allocates nothing.
        /// </summary>
        public void SetInterest(ReadOnlySpan<InterestVolume> volumes, ReadOnlySpan<uint> scopes)
        {
            ThetaSession session = Handle;
            fixed (InterestVolume* v = &MemoryMarshal.GetReference(volumes))
            fixed (uint* s = &MemoryMarshal.GetReference(scopes))
            {
                Library.Check(NativeMethods.theta_session_set_interest(session, (ThetaInterestVolume*)v, (UIntPtr)volumes.Length, s, (UIntPtr)scopes.Length));
            }
        }

        /// <summary>Client: one volume and no scope (the head's sphere). Allocates nothing.</summary>
        public void SetInterest(InterestVolume volume)
        {
            Library.Check(NativeMethods.theta_session_set_interest(Handle, (ThetaInterestVolume*)&volume, (UIntPtr)1, null, UIntPtr.Zero));
        }

        /// <summary>
        /// The entity's priority weight among what this peer sends (1 by default, from
        /// <see cref="MinPriorityWeight"/> to <see cref="MaxPriorityWeight"/>): when a
        /// tick's byte budget is short, heavier (and, on a host, nearer) entities go first.
        /// </summary>
        public void SetPriority(Entity entity, float weight)
        {
            Library.Check(NativeMethods.theta_session_set_priority(Handle, entity.Id, weight));
        }

        /// <summary>Host: whether client <paramref name="peer"/> sees the entity now.</summary>
        public bool Sees(ushort peer, Entity entity)
        {
            byte sees;
            Library.Check(NativeMethods.theta_session_sees(Handle, peer, entity.Id, &sees));
            return sees != 0;
        }

        /// <summary>
        /// Host: the state hash client <paramref name="peer"/> holds once the network
        /// delivers (the hash of what it sees): compare with its <see cref="StateHash"/>.
        /// </summary>
        public ulong InterestHash(ushort peer)
        {
            ulong hash;
            Library.Check(NativeMethods.theta_session_interest_hash(Handle, peer, &hash));
            return hash;
        }
    }
}
